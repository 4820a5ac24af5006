"""A blameless postmortem draft for a resolved incident, in Markdown and HTML.

Everything the store knows goes in: the facts (when it opened, was acknowledged and resolved,
by whom, how long each took), the timeline, the evidence with a chart of each anomaly, the
root-cause hints, and every decision with its approval, execution, verification and rollback.
What only people know is left as headed blanks to fill: impact, what went well, what went
badly, action items.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import markdown_it

from controlplane.domain.errors import ConflictError
from controlplane.domain.models import IncidentStatus
from controlplane.storage.models import DecisionRow, IncidentRow

TO_FILL = "_To fill in._"


@dataclass(frozen=True)
class Hint:
    service: str
    signal: str
    reasons: list[str]


def draft(
    incident: IncidentRow, decisions: list[DecisionRow], hints: list[Hint], links: dict[str, str]
) -> str:
    """The Markdown draft (charts as embedded PNG images)."""
    if incident.status != IncidentStatus.RESOLVED or incident.resolved_at is None:
        raise ConflictError(
            f"incident {incident.incident_id} is {incident.status}: a postmortem is drafted "
            "once it is resolved"
        )
    parts = [
        f"# Postmortem: #{incident.incident_id} {incident.title}",
        "_A draft from the control plane's record. Blameless: it says what happened and "
        "what the system did, not who is at fault._",
        "## Summary",
        _facts(incident),
        "## Impact",
        TO_FILL + " Who was affected, how, and for how long.",
        "## Timeline (UTC)",
        *[
            f"- `{_utc(e.at)}` **{e.kind}** ({e.actor}): {_one_line(e.message)}"
            for e in incident.timeline
        ],
        "## Evidence",
        *(_evidence(e) for e in incident.evidence),
        *([] if incident.evidence else ["No detector or forecast evidence: alerts only."]),
        *_links(links),
        "## Root-cause hints",
        *[
            f"{n}. **{h.service}** · {h.signal}: {'; '.join(h.reasons)}"
            for n, h in enumerate(hints, 1)
        ],
        *([] if hints else ["None: no anomalous signal or dependency pointed anywhere."]),
        "## What automation did",
        *(_decision(d) for d in decisions),
        *([] if decisions else ["No policy matched: people handled it."]),
        "## What went well",
        TO_FILL,
        "## What went badly",
        TO_FILL,
        "## Where we got lucky",
        TO_FILL,
        "## Action items",
        "| action | owner | ticket | due |\n|---|---|---|---|\n| | | | |",
    ]
    return "\n\n".join(parts) + "\n"


def as_html(markdown: str, title: str) -> str:
    """The draft as one self-contained HTML page."""
    body = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}"
        "code{background:#f4f4f4}</style></head><body>"
        f"{body}</body></html>"
    )


def _facts(incident: IncidentRow) -> str:
    resolved = incident.resolved_at
    assert resolved is not None
    rows = [
        ("Severity", incident.severity),
        ("Service", incident.service or "-"),
        ("Source", incident.source),
        ("Opened", _utc(incident.opened_at)),
        (
            "Acknowledged",
            f"{_utc(incident.acknowledged_at)} by {incident.acknowledged_by} "
            f"({_span(incident.acknowledged_at - incident.opened_at)} after it opened)"
            if incident.acknowledged_at
            else "never",
        ),
        ("Resolved", f"{_utc(resolved)} by {incident.resolved_by}"),
        ("Duration", _span(resolved - incident.opened_at)),
        ("Alerts", ", ".join(sorted({a.name for a in incident.alerts})) or "-"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {_cell(v)} |" for k, v in rows)


def _evidence(evidence: Any) -> str:
    data = evidence.data or {}
    text = (
        f"**{evidence.signal}** ({evidence.kind}), onset {_utc(evidence.onset_at)}, "
        f"peak score {evidence.peak_score:.2f}"
    )
    if data.get("query"):
        text += f"\n\n```promql\n{data['query']}\n```"
    points = data.get("points") or []
    if points:
        text += f"\n\n![{evidence.signal}](data:image/png;base64,{_chart(points, evidence)})"
    return text


def _chart(points: list[dict[str, Any]], evidence: Any) -> str:
    """The signal and its anomaly score around the onset, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [datetime.fromisoformat(p["at"]) for p in points]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True)
    top.plot(times, [p["value"] for p in points], color="#1f77b4")
    top.set_ylabel("value")
    bottom.plot(times, [p["score"] for p in points], color="#ff7f0e")
    bottom.set_ylabel("anomaly score")
    bottom.set_ylim(0, 1)
    for axis in (top, bottom):
        axis.axvline(evidence.onset_at, color="red", linestyle="--", linewidth=1)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
    bottom.set_xlabel("UTC")
    top.set_title(f"{evidence.signal}: onset {_utc(evidence.onset_at)}", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _links(links: dict[str, str]) -> list[str]:
    shown = [
        f"[{label}]({links[key]})"
        for key, label in (("prometheus", "Prometheus graph"), ("grafana", "Grafana Explore"))
        if key in links
    ]
    return ["The evidence over the incident's time range: " + " · ".join(shown)] if shown else []


def _decision(decision: DecisionRow) -> str:
    lines = [
        f"- **{decision.policy}** ({decision.action} `{decision.target}`, mode {decision.mode}): "
        f"**{decision.status}**: {_one_line(decision.reason)}"
    ]
    plan = decision.plan or {}
    if plan.get("summary"):
        lines.append(f"  - planned: {_one_line(str(plan['summary']))}")
    if decision.reviewed_by:
        lines.append(
            f"  - reviewed by {decision.reviewed_by} at {_utc(decision.reviewed_at)}: "
            f"{_one_line(decision.review_comment or '')}"
        )
    for step, result in (decision.outcome or {}).items():
        verdict = "ok" if result.get("ok") else "FAILED"
        started = result.get("started_at", "")[:19].replace("T", " ")
        lines.append(f"  - {step} ({started}): {verdict}: {_one_line(result.get('message', ''))}")
    return "\n".join(lines)


def _utc(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")
