"""Prometheus recording and alerting rules for teams that keep alerting in Prometheus:
anomalies (on the vmanomaly-style series /metrics exports), SLO burn rates and error budgets
(controlplane/slos.py), capacity crossings (a
`predict_linear` over each capacity signal, the Prometheus-native echo of the forecasts), and
the control plane's own health (the same group as deploy/base/monitoring.yaml; a test keeps
them equal). `aiops rules export` writes them as a rule file or a `PrometheusRule`.
"""

from __future__ import annotations

from typing import Any

import yaml

from controlplane import slos
from controlplane.config import CapacitySignalSettings, Settings

_HEALTH = """
- alert: AiopsIntakeFailing
  expr: sum(rate(aiops_notifications_rejected_total{reason="store_unavailable"}[5m])) > 0
  for: 5m
  labels: {severity: critical}
  annotations:
    summary: Webhooks are refused with 503 (the store is unavailable); Alertmanager retries.
- alert: AiopsApiDown
  expr: absent(up{service="aiops-api"} == 1)
  for: 5m
  labels: {severity: critical}
  annotations:
    summary: No API replica answers its scrape.
- alert: AiopsLoopsStalled
  expr: max(aiops_workers_live) < 1
  for: 2m
  labels: {severity: critical}
  annotations:
    summary: No worker has a fresh heartbeat; detection, policies and reports stopped.
- alert: AiopsSignalsUnowned
  expr: max(aiops_signals_unowned) > 0
  for: 5m
  labels: {severity: warning}
  annotations:
    summary: "{{ $value }} detection signals have no live worker scoring them."
- alert: AiopsDetectionLagging
  expr: max(aiops_detection_lag_seconds) > 600
  for: 5m
  labels: {severity: warning}
  annotations:
    summary: A detection signal was last scored {{ $value | humanizeDuration }} ago.
- alert: AiopsPolicyLeaseLapsed
  expr: max(aiops_lease_expires_in_seconds{lease="policy-decide"}) < -120
  for: 5m
  labels: {severity: warning}
  annotations:
    summary: No worker holds the policy lease; new incidents are not decided on.
- alert: AiopsLeasesLost
  expr: max by (lease) (increase(aiops_lease_token[30m])) > 3
  labels: {severity: warning}
  annotations:
    summary: Lease {{ $labels.lease }} changed holder {{ $value }} times in 30 minutes (workers paused, crashing or cut off from the store).
- alert: AiopsNotificationChannelFailing
  expr: max by (channel) (aiops_notification_channel_failing) > 0
  labels: {severity: warning}
  annotations:
    summary: Notification channel {{ $labels.channel }} refuses messages for good (see GET /api/v1/notifications/channels).
"""  # noqa: E501


def health_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(_HEALTH)
    return rules


def anomaly_rules(settings: Settings) -> list[dict[str, Any]]:
    detection = settings.detection
    sustain = int(detection.sustain_points * detection.interval_seconds)
    return [
        {
            "record": "aiops:signal_outside_band",
            "expr": "(y > yhat_upper) or (y < yhat_lower)",
        },
        {
            "alert": "AiopsAnomaly",
            "expr": f"anomaly_score >= {detection.threshold:g}",
            "for": f"{sustain}s",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.for }} ({{ $labels.service }}) is anomalous: "
                'score {{ $value | printf "%.2f" }}.'
            },
        },
    ]


def capacity_rules(settings: Settings) -> list[dict[str, Any]]:
    """Per capacity signal: its utilisation of the limit, and an alert when its trend (a
    straight line through as much history as the lead looks ahead) crosses the limit within
    the lead. The control plane's forecasts are better; this one needs only Prometheus."""
    capacity = settings.capacity
    rules: list[dict[str, Any]] = []
    for signal in capacity.signals:
        limit = _limit(signal)
        labels = {"signal": signal.name, "service": signal.service, "resource": signal.resource}
        rules.append(
            {
                "record": "aiops:capacity_utilization:ratio",
                "expr": f"({signal.query}) / ({limit})",
                "labels": labels,
            }
        )
        lead = capacity.lead_seconds
        step = capacity.step_seconds
        rules.append(
            {
                "alert": "AiopsCapacityCrossing",
                "expr": f"predict_linear(({signal.query})[{lead}s:{step}s], {lead}) > ({limit})",
                "for": "30m",
                "labels": {**labels, "severity": "warning"},
                "annotations": {
                    "summary": f"{signal.name} ({signal.service}) is on course to cross its "
                    f"limit within {lead // 3600} h."
                },
            }
        )
    return rules


def _limit(signal: CapacitySignalSettings) -> str:
    return signal.limit_query if signal.limit_query else f"{signal.limit:g}"


def rule_file(settings: Settings) -> dict[str, Any]:
    """The groups of a Prometheus rule file."""
    groups = [
        {"name": "aiops-anomalies", "rules": anomaly_rules(settings)},
        {"name": "aiops-capacity", "rules": capacity_rules(settings)},
        {"name": "aiops-slos", "rules": slos.rules(settings.slos)},
        {"name": "aiops-control-plane", "rules": health_rules()},
    ]
    return {"groups": [g for g in groups if g["rules"]]}


def prometheus_rule(settings: Settings, name: str = "aiops-rules") -> dict[str, Any]:
    """The same groups as a Prometheus Operator `PrometheusRule`."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "aiops"}},
        "spec": rule_file(settings),
    }
