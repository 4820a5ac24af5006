"""The policy schema (`runbooks/policies/*.yaml`) and its loader.

A policy file holds `policies:`, a list of policies. Each says which incidents it matches, the
action it proposes with typed parameters (the params model of a registered action, chosen by
its `type`), the mode (`dry_run`, the default; `approval`;
`auto`), the guardrails that may refuse it, how to verify it and whether to roll back when
verification fails, and the runbook it belongs to. Unknown keys are errors; every error names
the file, the policy, the key and the value. Parameters may use `{service}`, `{namespace}`
and `{labels[NAME]}` placeholders, filled from the incident.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controlplane.domain.errors import ConfigError
from controlplane.domain.models import Severity
from controlplane.domain.windows import Window
from remediations import REGISTRY, ActionParams

Mode = Literal["dry_run", "approval", "auto"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Every given field must match (lists: any of their values); omitted fields match all."""

    source: list[str] | None = Field(None, description="alertmanager, detector or forecast.")
    service: list[str] | None = None
    severity: list[Severity] | None = None
    alertname: list[str] | None = None
    detector: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="Exact label values.")


if TYPE_CHECKING:
    AnyActionParams = ActionParams
else:  # the discriminated union of every registered action's params model
    AnyActionParams = Annotated[
        Union[tuple(cls.Params for cls in REGISTRY.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


class BlastRadius(_Strict):
    max_replica_change: int | None = Field(None, ge=0, description="Absolute, either way.")
    max_replica_change_percent: float | None = Field(None, ge=0, description="Of the current.")
    min_replicas: int = Field(0, ge=0)
    max_replicas: int | None = Field(None, ge=0)


class ErrorBudget(_Strict):
    """Act only while this SLO has at least `remaining` of its error budget left."""

    slo: str = Field(..., description="The name of an SLO in the settings.")
    remaining: float = Field(..., ge=0, le=1, description="e.g. 0.1: refuse under 10% left.")


class Guardrails(_Strict):
    cooldown_seconds: int = Field(900, ge=0, description="Per target, between actions.")
    max_actions_per_hour: int = Field(4, ge=0, description="This policy, all targets.")
    blast_radius: BlastRadius = BlastRadius()
    maintenance_windows: list[Window] = Field(
        default_factory=list, description="If set, changes run only inside one of them."
    )
    namespaces: list[str] | None = Field(None, description="Allowed namespaces.")
    environments: list[str] | None = Field(
        None, description="Allowed values of the incident's `env`/`environment` label."
    )
    min_error_budget: ErrorBudget | None = Field(
        None, description="Refuse unless the SLO has this share of its error budget left."
    )


class Verify(_Strict):
    promql: str | None = Field(
        None, description="Must return a non-empty result within the timeout (e.g. 'x < 0.5')."
    )
    timeout_seconds: float = Field(300, gt=0, le=3600)
    settle_seconds: float = Field(
        0,
        ge=0,
        le=3600,
        description="Wait this long after each change before checking the PromQL, so it "
        "reads data from after the change (at least the scrape interval, plus the query's "
        "range). A condition that already held before the change (a gradual shift's step) "
        "would otherwise pass on the old data.",
    )


class Policy(_Strict):
    name: str = Field(..., description="Unique, lowercase, dashes.")
    description: str = ""
    runbook: str | None = Field(None, description="Name of the runbook it belongs to.")
    enabled: bool = True
    on_request: bool = Field(
        False,
        description="Decided only when proposed for an incident (by an agent through MCP), "
        "never on every matching incident: a catalogue of actions to propose.",
    )
    match: Match = Match()
    action: AnyActionParams
    mode: Mode = "dry_run"
    guardrails: Guardrails = Guardrails()
    verify: Verify = Verify()
    rollback_on_failure: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"must be lowercase letters, digits and dashes, got {value!r}")
        return value

    @field_validator("runbook")
    @classmethod
    def _runbook(cls, value: str | None) -> str | None:
        import runbooks

        if value is not None and value not in runbooks.names():
            raise ValueError(f"no runbook named {value!r}; known: {', '.join(runbooks.names())}")
        return value

    @property
    def version(self) -> str:
        """A digest of the policy's content, recorded with every decision."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class PolicyFile(_Strict):
    policies: list[Policy] = Field(default_factory=list)


def load_policies(directory: Path) -> list[Policy]:
    """Every policy of every `*.yaml` file in `directory`, validated; names must be unique."""
    if not directory.is_dir():
        raise ConfigError(f"policies directory {str(directory)!r} does not exist")
    policies: list[Policy] = []
    for path in sorted(directory.glob("*.yaml")):
        policies.extend(load_file(path))
    names = [p.name for p in policies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"policies in {str(directory)!r}: name {twice[0]!r} is used twice")
    return policies


def load_file(path: Path) -> list[Policy]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"policy file {str(path)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy file {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return PolicyFile.model_validate(loaded or {}).policies
    except ValidationError as exc:
        raise ConfigError(_describe(path, loaded, exc)) from None


def _describe(path: Path, loaded: Any, exc: ValidationError) -> str:
    lines = [f"policy file {str(path)!r}:"]
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        where = ".".join(location)
        if len(location) >= 2 and location[0] == "policies" and location[1].isdigit():
            name = _policy_name(loaded, int(location[1]))
            where = f"policy {name!r}: " + ".".join(p for p in location[2:] if p not in _UNION_TAGS)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where} = {error.get('input')!r}: {message}")
    return "\n".join(lines)


# The discriminator values pydantic puts in error locations: one per action.
_UNION_TAGS = set(REGISTRY)


def _policy_name(loaded: Any, index: int) -> str:
    try:
        return str(loaded["policies"][index]["name"])
    except (KeyError, IndexError, TypeError):
        return f"#{index + 1}"
