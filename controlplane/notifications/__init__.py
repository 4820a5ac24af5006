"""Notifications: telling people and other tools what happened.

Events (`events`) come from the audit log; routes (`routing`, a YAML file) say which event
goes to which channel, with quiet hours, rate limits and grouping; the notifier
(`notifier`) routes them into an outbox in the store and delivers it with retries. Each
channel is a plugin in `REGISTRY`: registering one is what gets it routed, validated and
tested (tests/integration/test_notification_channels.py).
"""

from __future__ import annotations

from controlplane.notifications.base import Channel
from controlplane.notifications.cloud_events import CloudEvents
from controlplane.notifications.grafana import GrafanaAnnotation
from controlplane.notifications.pagerduty import PagerDuty
from controlplane.notifications.slack import SlackApi, SlackWebhook
from controlplane.notifications.smtp import Email
from controlplane.notifications.teams import Teams
from controlplane.notifications.webhook import Webhook

REGISTRY: dict[str, type[Channel]] = {  # type: ignore[type-arg]
    cls.name: cls
    for cls in (
        SlackWebhook,
        SlackApi,
        Teams,
        PagerDuty,
        Webhook,
        Email,
        CloudEvents,
        GrafanaAnnotation,
    )
}
