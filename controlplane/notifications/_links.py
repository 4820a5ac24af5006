"""How every channel labels the links an event carries."""

from __future__ import annotations

from controlplane.notifications.events import Event

LABELS = {
    "approve": "Review and approve",
    "console": "Open in the console",
    "prometheus": "Prometheus graph",
    "grafana": "Grafana Explore",
}


def labelled(event: Event) -> list[tuple[str, str, str]]:
    """(key, label, url) for each link of the event, in a stable order."""
    order = [k for k in LABELS if k in event.links] + sorted(set(event.links) - set(LABELS))
    return [(k, LABELS.get(k, k), event.links[k]) for k in order]
