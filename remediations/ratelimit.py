"""Rate-limit one client where the user already rate-limits: a rule on an Envoy Gateway
`BackendTrafficPolicy` (gateway.envoyproxy.io/v1alpha1) that gives the client's address its
own local limit, e.g. 10 requests a minute, for a security incident's attacker.

The rule is appended to `spec.rateLimit.local.rules` (the policy's other rules stay as they
are) with a JSON patch guarded by the resourceVersion it read, dry-run by the API server
first; rolling back removes exactly that rule. The client must be an IP address: a
distributed attack (no one address) cannot be limited this way, and the plan says so.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field

from controlplane.domain.errors import InvalidInputError
from remediations._kube import retry_on_conflict
from remediations.base import Action, ActionParams, Outcome, Plan, TargetRef, wait_for

GROUP, VERSION, PLURAL = "gateway.envoyproxy.io", "v1alpha1", "backendtrafficpolicies"


class LimitClientParams(ActionParams):
    type: Literal["limit_client"]
    namespace: str = Field("{namespace}", min_length=1)
    policy: str = Field(..., min_length=1, description="The BackendTrafficPolicy to add to.")
    client: str = Field("{labels[client]}", min_length=1, description="The client's IP address.")
    requests: int = Field(10, ge=1, description="Requests allowed to it per `unit`.")
    unit: Literal["Second", "Minute", "Hour", "Day"] = "Minute"


class LimitClient(Action[LimitClientParams]):
    name = "limit_client"
    Params = LimitClientParams

    @classmethod
    def target(cls, params: LimitClientParams) -> TargetRef:
        """The client's rule in the policy: limits of different clients are different
        targets (cooldowns and rates count per client)."""
        return TargetRef(
            "BackendTrafficPolicy", f"{params.policy}:{params.client}", params.namespace
        )

    def _cidr(self) -> str:
        try:
            address = ipaddress.ip_address(self.params.client)
        except ValueError:
            raise InvalidInputError(
                f"client: must be an IP address, got {self.params.client!r}"
            ) from None
        return f"{address}/{address.max_prefixlen}"

    def _rule(self) -> dict[str, Any]:
        return {
            "clientSelectors": [{"sourceCIDR": {"type": "Exact", "value": self._cidr()}}],
            "limit": {"requests": self.params.requests, "unit": self.params.unit},
        }

    def _read(self) -> dict[str, Any]:
        return self.kube.custom_object(
            GROUP, VERSION, PLURAL, self.params.namespace, self.params.policy
        )

    def plan(self) -> Plan:
        obj = self._read()
        before = _rules(obj)
        rule = self._rule()
        after = before if rule in before else [*before, rule]  # limited already: no change
        answer = self._write(obj, after, dry_run=True)
        limit = f"{self.params.requests} requests a {self.params.unit.lower()}"
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            {"rules": before},
            {"rules": after},
            f"limit {self.params.client} to {limit} on BackendTrafficPolicy "
            f"{self.params.namespace}/{self.params.policy}",
            answer,
            {"rule": rule, "scaffold": _missing(obj)},
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        rule = plan.details["rule"]

        def add() -> dict[str, Any]:
            obj = self._read()
            rules = _rules(obj)
            return self._write(obj, rules if rule in rules else [*rules, rule], dry_run=dry_run)

        answer = retry_on_conflict(add)
        return Outcome(True, f"{self.params.client} limited", {"rules": _rules(answer)})

    def rollback(self, plan: Plan) -> Outcome:
        rule = plan.details["rule"]
        if rule in plan.before["rules"]:  # it was there before: nothing of ours to undo
            return Outcome(True, f"{self.params.client} was limited before; left as it was")

        def remove() -> dict[str, Any]:
            obj = self._read()
            rules = [r for r in _rules(obj) if r != rule]
            scaffold = plan.details.get("scaffold")
            if rules or scaffold is None:
                return self._write(obj, rules, dry_run=False)
            # Ours was the only rule, in objects the plan added: take them away again.
            return self._patch(obj, [{"op": "remove", "path": scaffold}], dry_run=False)

        answer = retry_on_conflict(remove)
        return Outcome(True, f"{self.params.client} no longer limited", {"rules": _rules(answer)})

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        def check() -> Outcome:
            present = plan.details["rule"] in _rules(self._read())
            return Outcome(present, "the rule is in place" if present else "the rule is gone")

        return wait_for(check, timeout_seconds=timeout_seconds)

    def _write(self, obj: dict[str, Any], rules: list[Any], *, dry_run: bool) -> dict[str, Any]:
        """Set the local rate-limit rules (creating `rateLimit.local` when it is missing)."""
        operations: list[dict[str, Any]] = []
        missing = _missing(obj)
        if missing == "/spec/rateLimit":
            operations.append({"op": "add", "path": missing, "value": {"type": "Local"}})
        if missing is not None:
            operations.append({"op": "add", "path": "/spec/rateLimit/local", "value": {}})
        operations.append({"op": "add", "path": "/spec/rateLimit/local/rules", "value": rules})
        return self._patch(obj, operations, dry_run=dry_run)

    def _patch(
        self, obj: dict[str, Any], operations: list[dict[str, Any]], *, dry_run: bool
    ) -> dict[str, Any]:
        version = obj["metadata"]["resourceVersion"]
        guarded = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
        return self.kube.patch_custom_object(
            GROUP, VERSION, PLURAL, self.params.namespace, self.params.policy,
            [*guarded, *operations], dry_run=dry_run,
        )  # fmt: skip


def _rules(obj: dict[str, Any]) -> list[Any]:
    local = ((obj.get("spec") or {}).get("rateLimit") or {}).get("local") or {}
    return list(local.get("rules") or [])


def _missing(obj: dict[str, Any]) -> str | None:
    """The outermost object local rate limits need that the policy lacks, if any."""
    spec = obj.get("spec") or {}
    if "rateLimit" not in spec:
        return "/spec/rateLimit"
    if "local" not in (spec.get("rateLimit") or {}):
        return "/spec/rateLimit/local"
    return None
