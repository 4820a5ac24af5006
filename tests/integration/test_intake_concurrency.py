"""Concurrent deliveries through the group-commit writer: whatever lands in one batch, the
outcome is the one of applying them one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.api import create_app
from controlplane.domain.alertmanager import Notification
from controlplane.incidents.intake import Delivery, ingest
from controlplane.storage.models import IncidentRow, TimelineEntryRow
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_URL as URL
from tests.factories import alert, bearer, counts, notification

pytestmark = pytest.mark.integration


def test_concurrent_duplicates_and_ha_peers_open_one_incident(settings, db, tokens):
    payloads = []
    for peer in range(4):  # an HA pair and retries: same alerts, different bodies
        body = notification([alert("c1", service="api"), alert("c2", service="api")], "g")
        body["externalURL"] = f"http://127.0.0.1:{9093 + peer}"
        payloads += [body] * 5
    with ApiServer(create_app(settings, db)) as api, ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(
                lambda p: httpx.post(
                    api.url + URL, json=p, headers=bearer(tokens["webhook"]), timeout=30
                ),
                payloads,
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert sum(len(r.json()["opened"]) for r in responses) == 1
    after = counts(db)
    assert (after["incident"], after["alert"], after["timeline_entry"]) == (1, 2, 2)
    assert after["notification"] == 4


def _batch(draw_spec: list[tuple[str, str, str]]) -> list[Delivery]:
    deliveries = []
    for n, (fingerprint, status, group) in enumerate(draw_spec):
        payload = notification([alert(fingerprint, service=group, status=status)], group)
        payload["externalURL"] = f"http://127.0.0.1:{n}"  # distinct bodies
        deliveries.append(
            Delivery.of(str(payload).encode(), payload, Notification.model_validate(payload))
        )
    return deliveries


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["firing", "resolved"]),
            st.sampled_from(["g1", "g2"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_one_batch_equals_one_at_a_time(db, spec):
    def outcome(batched: bool) -> tuple:
        deliveries = _batch(spec)
        with db.write() as session:
            if batched:
                ingest(session, deliveries)
            else:
                for delivery in deliveries:
                    ingest(session, [delivery])
            incidents = sorted(
                (i.group_key, i.status, i.severity) for i in session.query(IncidentRow)
            )
            entries = sorted(e.kind for e in session.query(TimelineEntryRow))
            session.rollback()
        return incidents, entries

    assert outcome(batched=True) == outcome(batched=False)
