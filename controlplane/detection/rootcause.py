"""Root-cause hints: which anomalous service and signal most likely started an incident.

Candidates are the anomalies (evidence rows) and incidents whose onset lies within `WINDOW`
of the incident's opening, that were still going on when it opened (an incident resolved
before it cannot have caused it), and whose service is connected to the incident's: the
same service, one reachable along the trace dependency graph either way, or (for incidents)
one sharing a host label (`node`, `instance`, `pod`). An alert-driven candidate has no
anomaly score; it is scored by its severity. They are ranked by two principles:
1. Blame flows down the call graph: errors and latency seen by a caller are attributed to the
   deepest anomalous callee reachable from it (edges from the trace dependency graph): the
   fewer anomalous services below a candidate, the higher it ranks.
2. Earlier onset first: the cause usually shows before its effects.
Ties go to the higher anomaly score. Hints are computed on read, from what is stored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controlplane.collectors.traces import Edge, dependency_graph
from controlplane.storage.models import EvidenceRow, IncidentRow

WINDOW = timedelta(hours=1)


@dataclass
class Hint:
    rank: int
    service: str
    signal: str
    onset_at: datetime
    score: float | None
    reasons: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    service: str
    signal: str
    onset_at: datetime
    score: float | None
    shared: bool = False  # shares a host label with the incident
    from_severity: str | None = None  # scored by this severity (no anomaly score)


#: Scores of alert-driven candidates, which carry no anomaly score.
SEVERITY_SCORE = {"critical": 1.0, "error": 0.75, "warning": 0.5, "info": 0.25}
#: Labels that name where something runs: incidents sharing one are related.
HOST_LABELS = ("node", "instance", "pod")


#: Capacity-risk incidents (raised by forecasts) say what may happen, not what went wrong.
FORECAST = "forecast"


def hints_for(session: Session, incident: IncidentRow) -> list[Hint]:
    if incident.source == FORECAST:  # a prediction, not a symptom: nothing to trace back
        return []
    lo, hi = incident.opened_at - WINDOW, incident.opened_at + WINDOW
    edges = dependency_graph(session, since=lo)
    connected = _connected(edges, incident.service)
    candidates = _earliest_per_service(
        [c for c in _candidates(session, incident, lo, hi) if c.service in connected or c.shared]
    )
    if not candidates:
        return []
    anomalous = set(candidates)
    downstream = _anomalous_downstream(edges, anomalous)
    upstream: dict[str, list[str]] = defaultdict(list)
    for service, below in downstream.items():
        for callee in below:
            upstream[callee].append(service)
    order = sorted(
        candidates.values(),
        key=lambda c: (len(downstream[c.service]), c.onset_at, -(c.score or 0.0)),
    )
    first_onset = min(c.onset_at for c in order)
    calls = {(e.caller, e.callee): e for e in edges}
    hints = []
    for rank, c in enumerate(order, start=1):
        hint = Hint(rank, c.service, c.signal, c.onset_at, c.score)
        if c.from_severity:
            hint.reasons.append(f"scored by its alerts' severity ({c.from_severity})")
        if not downstream[c.service]:
            hint.reasons.append("no anomalous dependency of its own: deepest on the call path")
        else:
            hint.reasons.append("depends on anomalous " + ", ".join(sorted(downstream[c.service])))
        if upstream[c.service]:
            hint.reasons.append(
                "explains anomalies of its callers "
                + ", ".join(_caller(calls, u, c.service) for u in sorted(upstream[c.service]))
            )
        lead = c.onset_at - first_onset
        hint.reasons.append(
            "earliest onset" if lead == timedelta(0) else f"onset {_minutes(lead)} after the first"
        )
        hints.append(hint)
    return hints


def _candidates(
    session: Session, incident: IncidentRow, lo: datetime, hi: datetime
) -> list[_Candidate]:
    ongoing = or_(IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at >= incident.opened_at)
    evidence = session.scalars(
        select(EvidenceRow)
        .join(IncidentRow, IncidentRow.incident_id == EvidenceRow.incident_id)
        .where(
            EvidenceRow.kind == "anomaly",
            or_(
                EvidenceRow.incident_id == incident.incident_id,
                (EvidenceRow.onset_at >= lo) & (EvidenceRow.onset_at <= hi) & ongoing,
            ),
        )
    )
    found = [_Candidate(e.service, e.signal, e.onset_at, e.peak_score) for e in evidence]
    # Alert-driven incidents of other services count too (scored by severity, onset = opening).
    others = session.scalars(
        select(IncidentRow).where(
            IncidentRow.opened_at >= lo,
            IncidentRow.opened_at <= hi,
            IncidentRow.service.is_not(None),
            IncidentRow.source != FORECAST,
            ongoing,
        )
    )
    found += [_from_incident(i, shared=_shares_a_host(i, incident)) for i in others]
    if incident.service and not any(c.service == incident.service for c in found):
        found.append(_from_incident(incident, shared=True))
    return found


def _from_incident(incident: IncidentRow, *, shared: bool) -> _Candidate:
    return _Candidate(
        str(incident.service),
        f"incident:{incident.title}",
        incident.opened_at,
        SEVERITY_SCORE.get(incident.severity, 0.5),
        shared=shared,
        from_severity=incident.severity,
    )


def _shares_a_host(one: IncidentRow, other: IncidentRow) -> bool:
    return any(
        one.labels.get(label) and one.labels.get(label) == other.labels.get(label)
        for label in HOST_LABELS
    )


def _connected(edges: list[Edge], service: str | None) -> set[str]:
    """The service and every service reachable from it along the graph, either way."""
    if service is None:
        return set()
    neighbours: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        neighbours[e.caller].add(e.callee)
        neighbours[e.callee].add(e.caller)
    seen, stack = {service}, [service]
    while stack:
        for nxt in neighbours[stack.pop()] - seen:
            seen.add(nxt)
            stack.append(nxt)
    return seen


def _earliest_per_service(candidates: list[_Candidate]) -> dict[str, _Candidate]:
    best: dict[str, _Candidate] = {}
    for c in sorted(candidates, key=lambda c: (c.onset_at, c.score is None, -(c.score or 0))):
        best.setdefault(c.service, c)
    return best


def _anomalous_downstream(edges: list[Edge], anomalous: set[str]) -> dict[str, set[str]]:
    """For each anomalous service, the anomalous services reachable along caller -> callee."""
    callees: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        callees[e.caller].add(e.callee)
    result: dict[str, set[str]] = {}
    for service in anomalous:
        seen: set[str] = set()
        stack = list(callees[service])
        while stack:
            node = stack.pop()
            if node in seen or node == service:
                continue
            seen.add(node)
            stack.extend(callees[node])
        result[service] = seen & anomalous
    return result


def _caller(calls: dict[tuple[str, str], Edge], caller: str, callee: str) -> str:
    edge = calls.get((caller, callee))
    if edge is None:
        return caller  # reached through intermediate services
    return f"{caller} ({edge.calls} calls, {edge.errors} errors)"


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"
