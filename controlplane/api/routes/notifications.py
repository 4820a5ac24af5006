"""The notification outbox (`/notifications`, `/notifications/channels`, requeueing a failed
message) and signed approval links (`/approval-links/{link}`): see controlplane/notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.api.deps import DbDep, Operator, SettingsDep, Viewer
from controlplane.api.pagination import newest_page
from controlplane.api.params import Id, IncidentFilter, Limit, Offset
from controlplane.api.schemas import (
    ApprovalLinkPublic,
    ChannelHealthPublic,
    DecisionPublic,
    LinkReviewRequest,
    MessagePublic,
    MessagesPublic,
    error_responses,
)
from controlplane.config import Settings
from controlplane.domain.errors import ConflictError, NotFoundError, PermanentError
from controlplane.notifications import links, routing
from controlplane.notifications.notifier import Status
from controlplane.policy import state
from controlplane.storage import Database, audit
from controlplane.storage.models import ApprovalLinkUseRow, DecisionRow, MessageRow

router = APIRouter(tags=["notifications"])
_ERRORS = error_responses(401, 403, 404, 409)


@router.get("/notifications", response_model=MessagesPublic, responses=_ERRORS)
async def list_messages(
    db: DbDep,
    _: Viewer,
    status: Annotated[str | None, Query(pattern="^(pending|sent|failed|muted)$")] = None,
    channel: str | None = None,
    incident_id: IncidentFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> MessagesPublic:
    """Messages of the outbox, newest first."""
    where = []
    if status:
        where.append(MessageRow.status == status)
    if channel:
        where.append(MessageRow.channel == channel)
    if incident_id:
        where.append(MessageRow.incident_id == incident_id)

    def query() -> MessagesPublic:
        with db.read() as session:
            return newest_page(
                session,
                select(MessageRow),
                MessageRow.message_id,
                where,
                limit,
                offset,
                MessagesPublic,
            )

    return await run_in_threadpool(query)


@router.get("/notifications/channels", response_model=list[ChannelHealthPublic], responses=_ERRORS)
async def channel_health(db: DbDep, settings: SettingsDep, _: Viewer) -> list[ChannelHealthPublic]:
    """Each channel of the notifications file (and any still in the outbox): messages by
    status, and whether it is failing for good (its latest finished message failed)."""
    return await run_in_threadpool(_health, db, settings)


def _health(db: Database, settings: Settings) -> list[ChannelHealthPublic]:
    configured = {}
    if settings.notifications.file is not None:
        configured = routing.load(settings.notifications.file).channels
    with db.read() as session:
        counts: dict[str, dict[str, int]] = {name: {} for name in configured}
        for channel, status, count in session.execute(
            select(MessageRow.channel, MessageRow.status, func.count()).group_by(
                MessageRow.channel, MessageRow.status
            )
        ):
            counts.setdefault(channel, {})[status] = count
        out = []
        for channel in sorted(counts):
            last = _last_finished(session, channel)
            params = configured.get(channel)
            out.append(
                ChannelHealthPublic(
                    channel=channel,
                    type=params.type if params else None,
                    counts=counts[channel],
                    failing=last is not None and last.status == Status.FAILED,
                    last_error=last.last_error if last is not None else None,
                )
            )
        return out


def _last_finished(session: Session, channel: str) -> MessageRow | None:
    return session.scalars(
        select(MessageRow)
        .where(MessageRow.channel == channel, MessageRow.status.in_([Status.SENT, Status.FAILED]))
        .order_by(MessageRow.message_id.desc())
        .limit(1)
    ).first()


@router.post("/notifications/{message_id}/retry", response_model=MessagePublic, responses=_ERRORS)
async def retry(message_id: Id, db: DbDep, who: Operator) -> MessagePublic:
    """Send a failed message again (operator), once its channel is fixed."""

    def requeue() -> MessagePublic:
        with db.write() as session:
            row = session.get(MessageRow, message_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"message {message_id} does not exist")
            if row.status != Status.FAILED:
                raise ConflictError(f"message {message_id} is {row.status}: only failed ones")
            now = datetime.now(UTC)
            row.status, row.attempts, row.next_attempt_at = Status.PENDING, 0, now
            audit.record(
                session,
                actor=who.name,
                action="notification.requeued",
                target_type="message",
                target_id=message_id,
                details={"channel": row.channel, "last_error": row.last_error},
            )
            session.flush()
            return MessagePublic.model_validate(row)

    return await run_in_threadpool(requeue)


def _link(settings: Settings, token: str) -> links.ApprovalLink:
    secret = settings.notifications.link_secret
    if secret is None:
        raise PermanentError("approval links are off: notifications.link_secret is not set")
    return links.verify(secret.get_secret_value(), token, datetime.now(UTC))


@router.get("/approval-links/{link}", response_model=ApprovalLinkPublic, responses=_ERRORS)
async def open_link(link: str, db: DbDep, settings: SettingsDep) -> ApprovalLinkPublic:
    """What a signed approval link (from a message) shows: the decision and its plan. Needs
    no sign-in; the link only shows, and only this one decision, until it expires."""
    signed = _link(settings, link)

    def query() -> ApprovalLinkPublic:
        with db.read() as session:
            row = session.get(DecisionRow, signed.decision_id)
            if row is None:
                raise NotFoundError(f"decision {signed.decision_id} does not exist")
            used = session.get(ApprovalLinkUseRow, signed.nonce) is not None
            return ApprovalLinkPublic(
                decision=DecisionPublic.model_validate(row),
                link_plan_digest=signed.plan_digest,
                plan_changed=row.plan_digest != signed.plan_digest,
                expires_at=signed.expires_at,
                used=used,
            )

    return await run_in_threadpool(query)


@router.post("/approval-links/{link}", response_model=DecisionPublic, responses=_ERRORS)
async def review_link(
    link: str, body: LinkReviewRequest, db: DbDep, settings: SettingsDep, who: Operator
) -> DecisionPublic:
    """Approve (or reject) the plan a link showed (operator, signed in; comment required).
    Refused when the decision was planned again since the message, and when the link was
    already used: a link works once."""
    signed = _link(settings, link)

    def review() -> DecisionPublic:
        try:
            with db.write() as session:
                session.add(
                    ApprovalLinkUseRow(
                        nonce=signed.nonce, decision_id=signed.decision_id, used_by=who.name
                    )
                )
                session.flush()
                row = state.review(
                    session,
                    signed.decision_id,
                    who,
                    approve=body.approve,
                    comment=body.comment,
                    plan_digest=signed.plan_digest,
                )
                return DecisionPublic.model_validate(row)
        except IntegrityError:
            raise ConflictError("link: this approval link was already used") from None

    return await run_in_threadpool(review)
