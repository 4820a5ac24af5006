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

from controlplane.api import create_app
from controlplane.testing.servers import ApiServer
from tests.factories import bearer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES = 60
#: Every check schemathesis has, except the stateful ones (use after free, resource
#: availability, object-level authorisation): they need a stateful run, which is not here
#: (schemathesis' state machine against a live server tripped Hypothesis' flakiness check).
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
