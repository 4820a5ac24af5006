"""The aggregates behind `/overview`: counts only, cheap at any store size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.models import IncidentStatus
from controlplane.storage.models import DecisionRow, IncidentRow, ReportRow, SignalStateRow

TOP_SERVICES = 15


@dataclass(frozen=True)
class Snapshot:
    by_severity: dict[str, int]
    by_service: list[tuple[str, int]]  # most open incidents first
    decisions_24h: dict[str, int]  # by status
    signals: Sequence[SignalStateRow]
    latest_report: ReportRow | None


def snapshot(session: Session, now: datetime) -> Snapshot:
    open_ = IncidentRow.status != IncidentStatus.RESOLVED
    severities = session.execute(
        select(IncidentRow.severity, func.count()).where(open_).group_by(IncidentRow.severity)
    )
    services = session.execute(
        select(IncidentRow.service, func.count())
        .where(open_)
        .group_by(IncidentRow.service)
        .order_by(func.count().desc())
        .limit(TOP_SERVICES)
    )
    decisions = session.execute(
        select(DecisionRow.status, func.count())
        .where(DecisionRow.created_at >= now - timedelta(hours=24))
        .group_by(DecisionRow.status)
    )
    return Snapshot(
        by_severity={s: n for s, n in severities},
        by_service=[(s or "-", n) for s, n in services],
        decisions_24h={s: n for s, n in decisions},
        signals=session.scalars(select(SignalStateRow).order_by(SignalStateRow.signal)).all(),
        latest_report=session.scalars(
            select(ReportRow).order_by(ReportRow.report_id.desc()).limit(1)
        ).first(),
    )
