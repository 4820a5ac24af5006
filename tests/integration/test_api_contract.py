"""The whole API, fuzzed from its own OpenAPI document by schemathesis, on SQLite and on
PostgreSQL, against a live server (its intake writer running): no answer may be a 5xx, and
every answer must be one the document declares (status, content type, headers, body
schema). A bounded number of examples per operation keeps it inside the suite's time; the
operations and cases run are printed.

(schemathesis' pytest plugin does not run under this pytest, so each operation's Hypothesis
test is built and run here; a failure names the operation and the reproducing request.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test

from controlplane.api import create_app
from controlplane.testing.servers import ApiServer
from tests.factories import bearer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES = 60
#: Every check schemathesis has, except the stateful ones (use after free, resource
#: availability, object-level authorisation), which need links the document does not declare.
STATEFUL = {"use_after_free", "ensure_resource_availability", "object_level_authorization"}
CHECKS = [c for c in schemathesis.checks.CHECKS.get_all() if c.__name__ not in STATEFUL]
#: Where schema-valid data is refused on purpose: a time JSON Schema cannot tell apart from
#: any other (0001-01-01T00:00:00+01:00 has no UTC instant to store) is a 422.
ACCEPTS_ALL_VALID = {"POST /api/v1/webhooks/alertmanager": ["positive_data_acceptance"]}


def test_every_operation_answers_as_documented(settings, db, tokens):
    with ApiServer(create_app(settings, db)) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        failures: list[str] = []
        cases = 0
        operations = [result.ok() for result in schema.get_all_operations()]
        headers = bearer(tokens["admin"])
        for operation in operations:
            check = fuzz(operation, headers, ACCEPTS_ALL_VALID.get(operation.label, []))
            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group
                failures.append(f"{operation.label}: {describe(exc)}"[:2500])
            cases += check.ran  # type: ignore[attr-defined]
    print(f"\nschemathesis: {len(operations)} operations, {cases} cases, {len(failures)} failing")
    assert not failures, "\n\n".join(failures)


def CHECKS_FOR(label: str) -> list[Any]:  # noqa: N802 (reads like the table it is)
    skipped = ACCEPTS_ALL_VALID.get(label, [])
    return [c for c in CHECKS if c.__name__ not in skipped]


def describe(exc: BaseException) -> str:
    """A failure with each of its distinct findings (schemathesis groups them)."""
    if isinstance(exc, BaseExceptionGroup):
        return str(exc) + "".join(f"\n  - {describe(sub)}" for sub in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def fuzz(operation: Any, headers: dict[str, str], skipped: list[str]) -> Any:
    """The Hypothesis test of one operation: every generated case sent and validated."""
    checks = [c for c in CHECKS if c.__name__ not in skipped]

    @given(case=operation.as_strategy())
    @settings_for_suite
    def check(case: Any) -> None:
        check.ran += 1  # type: ignore[attr-defined]
        case.call_and_validate(headers=headers, checks=checks, timeout=30)

    check.ran = 0  # type: ignore[attr-defined]
    return check


settings_for_suite = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_sequences_of_operations_answer_as_documented(settings, db, tokens):
    """schemathesis' state machine: operations chained through the links it infers from the
    document (incidents listed, then one read, acknowledged, resolved; decisions listed, then
    read, approved, rejected, planned again; runbooks listed, then read), each answer checked
    as above. 15 sequences of up to 6 steps: longer chains trip Hypothesis' check that data
    generation does not depend on outside state, which a live server's state does."""
    with ApiServer(create_app(settings, db)) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        machine = schema.as_state_machine()
        headers = bearer(tokens["admin"])
        steps: list[str] = []

        class Chained(machine):  # type: ignore[misc, valid-type]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return {"headers": headers, "timeout": 30}

            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                steps.append(case.operation.label)
                case.validate_response(response, checks=CHECKS_FOR(case.operation.label))

        run_state_machine_as_test(
            Chained,
            settings=hypothesis_settings(
                settings_for_suite, max_examples=15, stateful_step_count=6
            ),
        )
    chained = sorted(set(steps))
    print(f"\nstateful: {len(steps)} calls over {len(chained)} operations: {chained}")
    assert len(chained) > 5
