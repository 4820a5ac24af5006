"""Alertmanager silences from the API: `/silences` (list, expire) and
`/incidents/{id}/silences` (the ones covering an incident; silence it). See
controlplane/incidents/silences.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from controlplane.api.deps import DbDep, Operator, SettingsDep, Viewer
from controlplane.api.params import Id, IncidentFilter
from controlplane.api.schemas import MatcherModel, SilencePublic, SilenceRequest, error_responses
from controlplane.config import Settings
from controlplane.domain.errors import InvalidInputError, NotFoundError
from controlplane.domain.models import Principal, TimelineKind
from controlplane.incidents import lifecycle
from controlplane.incidents.silences import Matcher, Silence, Silences, incident_comment
from controlplane.storage import Database, audit
from controlplane.storage.decisions import add_timeline
from controlplane.storage.models import AlertRow

router = APIRouter(tags=["silences"])
_ERRORS = error_responses(401, 403, 404, 409)


def _client(settings: Settings) -> Silences:
    return Silences(settings.alertmanager.url, settings.alertmanager.timeout_seconds)


def _public(silence: Silence) -> SilencePublic:
    return SilencePublic(
        silence_id=silence.id,
        state=silence.state,
        matchers=[
            MatcherModel(name=m.name, value=m.value, is_regex=m.is_regex, is_equal=m.is_equal)
            for m in silence.matchers
        ],
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        incident_id=silence.incident_id,
    )


@router.get("/silences", response_model=list[SilencePublic], responses=_ERRORS)
async def list_silences(
    settings: SettingsDep,
    _: Viewer,
    state: Annotated[str | None, Query(pattern="^(active|pending|expired)$")] = None,
    incident_id: IncidentFilter = None,
) -> list[SilencePublic]:
    """Alertmanager's silences, newest end first; filter by state or by the incident made for."""

    def query() -> list[SilencePublic]:
        found = [
            s
            for s in _client(settings).all()
            if (state is None or s.state == state)
            and (incident_id is None or s.incident_id == incident_id)
        ]
        return [_public(s) for s in sorted(found, key=lambda s: s.ends_at, reverse=True)]

    return await run_in_threadpool(query)


def _label_sets(db: Database, incident_id: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The incident's labels and each of its alerts' labels."""
    with db.read() as session:
        incident = lifecycle.get_incident(session, incident_id)
        alerts = session.scalars(select(AlertRow.labels).where(AlertRow.incident_id == incident_id))
        own = {str(k): str(v) for k, v in (incident.labels or {}).items()}
        return own, [{str(k): str(v) for k, v in a.items()} for a in alerts]


@router.get(
    "/incidents/{incident_id}/silences", response_model=list[SilencePublic], responses=_ERRORS
)
async def covering(
    incident_id: Id, db: DbDep, settings: SettingsDep, _: Viewer
) -> list[SilencePublic]:
    """Active and pending silences that cover the incident (any of its alerts)."""

    def query() -> list[SilencePublic]:
        own, alerts = _label_sets(db, incident_id)
        live = [s for s in _client(settings).all() if s.state != "expired"]
        return [_public(s) for s in live if any(s.covers(labels) for labels in alerts or [own])]

    return await run_in_threadpool(query)


@router.post(
    "/incidents/{incident_id}/silences",
    response_model=SilencePublic,
    status_code=201,
    responses=_ERRORS,
)
async def silence(
    incident_id: Id, body: SilenceRequest, db: DbDep, settings: SettingsDep, who: Operator
) -> SilencePublic:
    """Silence the incident's alerts in Alertmanager (operator; comment required). The
    silence's comment names the incident and the author; the incident's timeline and the
    audit log record it."""

    def create() -> SilencePublic:
        own, _ = _label_sets(db, incident_id)
        if body.matchers:
            matchers = [Matcher(m.name, m.value, m.is_regex, m.is_equal) for m in body.matchers]
        elif own:
            matchers = [Matcher(name, value) for name, value in sorted(own.items())]
        else:
            raise InvalidInputError(
                f"matchers: incident {incident_id} has no labels to match, give matchers"
            )
        client = _client(settings)
        comment = incident_comment(incident_id, who.name, body.comment)
        silence_id = client.create(matchers, body.minutes, who.name, comment)
        made = client.get(silence_id)
        shown = ", ".join(f"{m.name}={m.value}" for m in matchers)
        _record(
            db,
            who,
            "created",
            made,
            incident_id,
            f"Silenced for {body.minutes:g} min by {who.name} ({shown}): {body.comment}",
            {"matchers": [m.as_api() for m in matchers], "comment": body.comment},
        )
        return _public(made)

    return await run_in_threadpool(create)


@router.delete("/silences/{silence_id}", response_model=SilencePublic, responses=_ERRORS)
async def expire(silence_id: str, db: DbDep, settings: SettingsDep, who: Operator) -> SilencePublic:
    """Expire a silence now (operator); audited, and on its incident's timeline."""

    def run() -> SilencePublic:
        client = _client(settings)
        try:
            current = client.get(silence_id)
        except InvalidInputError:  # Alertmanager answers 400 to an id that is not a UUID
            raise NotFoundError(f"silence {silence_id!r} does not exist") from None
        client.expire(silence_id)
        expired = client.get(silence_id)
        message = f"Silence {silence_id} expired by {who.name}"
        _record(db, who, "expired", expired, current.incident_id, message, {})
        return _public(expired)

    return await run_in_threadpool(run)


def _record(
    db: Database,
    who: Principal,
    verb: str,
    silence: Silence,
    incident_id: int | None,
    message: str,
    details: dict[str, Any],
) -> None:
    """A silence made or expired: on its incident's timeline, and in the audit log."""
    with db.write() as session:
        if incident_id is not None:
            add_timeline(
                session,
                incident_id,
                TimelineKind.SILENCED,
                who.name,
                message,
                {"silence_id": silence.id},
            )
        audit.record(
            session,
            actor=who.name,
            action=f"silence.{verb}",
            target_type="silence",
            target_id=silence.id,
            details={
                "incident_id": incident_id,
                "ends_at": silence.ends_at.isoformat(),
                **details,
            },
        )
