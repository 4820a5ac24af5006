"""Root-cause hints: which anomalous service and signal most likely started an incident.

Candidates are the anomalies (evidence rows) and incidents of any service whose onset lies
within `WINDOW` of the incident's opening. They are ranked by two principles:
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


#: Capacity-risk incidents (raised by forecasts) say what may happen, not what went wrong.
FORECAST = "forecast"


def hints_for(session: Session, incident: IncidentRow) -> list[Hint]:
    if incident.source == FORECAST:  # a prediction, not a symptom: nothing to trace back
        return []
    lo, hi = incident.opened_at - WINDOW, incident.opened_at + WINDOW
    candidates = _earliest_per_service(_candidates(session, incident, lo, hi))
    if not candidates:
        return []
    edges = dependency_graph(session, since=lo)
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
    evidence = session.scalars(
        select(EvidenceRow).where(
            EvidenceRow.kind == "anomaly",
            or_(
                EvidenceRow.incident_id == incident.incident_id,
                (EvidenceRow.onset_at >= lo) & (EvidenceRow.onset_at <= hi),
            ),
        )
    )
    found = [_Candidate(e.service, e.signal, e.onset_at, e.peak_score) for e in evidence]
    # Alert-driven incidents of other services count too (no score, onset = opening).
    others = session.scalars(
        select(IncidentRow).where(
            IncidentRow.opened_at >= lo,
            IncidentRow.opened_at <= hi,
            IncidentRow.service.is_not(None),
            IncidentRow.source != FORECAST,
        )
    )
    found += [_Candidate(str(i.service), f"incident:{i.title}", i.opened_at, None) for i in others]
    if incident.service and not any(c.service == incident.service for c in found):
        found.append(
            _Candidate(incident.service, f"incident:{incident.title}", incident.opened_at, None)
        )
    return found


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
