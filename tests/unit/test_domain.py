"""Domain invariants: severity mapping and ordering, role permissions, payload parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controlplane.domain.alertmanager import Notification
from controlplane.domain.models import Role, Severity
from tests.factories import alertmanager_fixture


@given(st.one_of(st.none(), st.text(max_size=20)))
def test_any_severity_label_maps_to_a_level(label):
    assert Severity.from_label(label) in Severity


@pytest.mark.parametrize(
    ("label", "level"),
    [
        ("critical", Severity.CRITICAL),
        ("PAGE", Severity.CRITICAL),
        (" high ", Severity.ERROR),
        ("warn", Severity.WARNING),
        ("low", Severity.INFO),
        (None, Severity.WARNING),
        ("unheard-of", Severity.WARNING),
    ],
)
def test_severity_aliases(label, level):
    assert Severity.from_label(label) is level


def test_severity_rank_is_the_declared_order():
    ranks = [s.rank for s in Severity]
    assert ranks == sorted(ranks, reverse=True)


@given(st.sampled_from(list(Role)), st.sampled_from(list(Role)))
def test_role_permissions(holder, required):
    allowed = holder.allows(required)
    if holder is Role.ADMIN:
        assert allowed
    elif Role.WEBHOOK in (holder, required):
        assert allowed == (holder is required)  # the webhook role is a silo
    else:
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        assert allowed == (order.index(holder) >= order.index(required))


@pytest.mark.parametrize("name", ["sample", "resolved_sample", "from_prometheus_sample"])
def test_real_alertmanager_payloads_parse(name):
    notification = Notification.model_validate(alertmanager_fixture(name))
    alert = notification.alerts[0]
    assert alert.starts_at.tzinfo is not None
    assert (alert.ends_at is None) == (alert.status == "firing")


def test_strict_types_refuse_coercion():
    payload = alertmanager_fixture("sample")
    payload["truncatedAlerts"] = "0"
    with pytest.raises(ValidationError) as error:
        Notification.model_validate(json.loads(json.dumps(payload)))
    assert error.value.errors()[0]["loc"] == ("truncatedAlerts",)
