"""`aiops mcp`: the control plane for AI agents, over the Model Context Protocol (the official
`mcp` SDK), on stdio or streamable HTTP.

Read tools (viewer): incidents with their evidence, root-cause hints and timeline; signals and
their scores; capacity forecasts; decisions; the audit log; the policies an agent may propose.
Write tools (operator) only create what a person then decides: `propose_action` asks the policy
loop to plan a named policy for an incident (every guardrail, a dry-run plan, at most approval
mode, marked as proposed by the agent) and `add_note` writes on an incident's timeline. No tool
executes, approves or resolves anything.

Callers authenticate with the API's bearer tokens and have its roles: over HTTP each request
carries its token (checked against the store, as the API does); over stdio the token is given
once, in `AIOPS_MCP_TOKEN`. A viewer is not even shown the write tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import mcp_types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.applications import Starlette

from controlplane import __version__, auth
from controlplane.api.schemas import (
    AuditEventPublic,
    DecisionPublic,
    IncidentDetailPublic,
    IncidentPublic,
    RootCauseHintPublic,
    SignalPublic,
)
from controlplane.config import Settings
from controlplane.detection import rootcause
from controlplane.domain.errors import ControlPlaneError, InvalidInputError, NotFoundError
from controlplane.domain.models import IncidentStatus, Principal, Role, TimelineKind
from controlplane.domain.storable import StoredText
from controlplane.incidents import lifecycle
from controlplane.notifications.from_store import Linker
from controlplane.policy.decider import PROPOSAL_WAITING
from controlplane.policy.schema import Policy, load_policies
from controlplane.storage import Database
from controlplane.storage import audit as audit_log
from controlplane.storage import decisions as store
from controlplane.storage.models import (
    AuditEventRow,
    DecisionRow,
    ProposalRow,
    ReportRow,
    SignalStateRow,
)

NAME = "aiops-controlplane"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListIncidents(_Args):
    status: list[IncidentStatus] = Field(default_factory=list, description="Any of these.")
    service: str | None = Field(None, description="Part of the service name.")
    text: str | None = Field(None, description="Part of the title.")
    limit: int = Field(20, ge=1, le=200)


class IncidentId(_Args):
    incident_id: int = Field(..., ge=1)


class ListSignals(_Args):
    status: str | None = Field(None, description="ok, anomalous or no_data.")
    limit: int = Field(100, ge=1, le=1000)


class GetForecast(_Args):
    signal: str | None = Field(None, description="A capacity signal; none: every signal.")


class ListDecisions(_Args):
    status: list[str] = Field(default_factory=list)
    incident_id: int | None = Field(None, ge=1)
    limit: int = Field(20, ge=1, le=200)


class ListAudit(_Args):
    action_prefix: str | None = Field(None, description='e.g. "decision." or "incident.".')
    target_id: str | None = None
    limit: int = Field(50, ge=1, le=500)


class NoArgs(_Args):
    pass


class ProposeAction(_Args):
    incident_id: int = Field(..., ge=1)
    policy: StoredText = Field(
        ..., description="A policy from list_policies matching the incident."
    )
    reason: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why, for the reviewer."
    )


class AddNote(_Args):
    incident_id: int = Field(..., ge=1)
    text: StoredText = Field(..., min_length=1, max_length=2000)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[_Args]
    role: Role
    run: Callable[[Tools, Principal, Any], Any]
    writes: bool = False


class Tools:
    """What each tool does, on the store (the same rows and shapes as the REST API)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        self.linker = Linker(settings)
        folder = settings.automation.policies_dir
        self.policies: list[Policy] = load_policies(folder) if folder is not None else []

    def list_incidents(self, _: Principal, args: ListIncidents) -> dict[str, Any]:
        where = lifecycle.IncidentFilter(statuses=args.status, service=args.service, text=args.text)
        with self.db.read() as session:
            rows, total = lifecycle.list_incidents(session, where, limit=args.limit, offset=0)
            shown = [IncidentPublic.model_validate(r).model_dump(mode="json") for r in rows]
        return {"count": total, "incidents": shown}

    def get_incident(self, _: Principal, args: IncidentId) -> dict[str, Any]:
        with self.db.read() as session:
            row = lifecycle.get_incident(session, args.incident_id, details=True)
            detail = IncidentDetailPublic.model_validate(row)
            detail.links = self.linker.incident(session, row)
            detail.root_cause_hints = [
                RootCauseHintPublic.model_validate(h) for h in rootcause.hints_for(session, row)
            ]
            detail.decisions = [
                DecisionPublic.model_validate(d)
                for d in store.for_incident(session, args.incident_id)
            ]
            return detail.model_dump(mode="json")

    def list_signals(self, _: Principal, args: ListSignals) -> list[dict[str, Any]]:
        query = select(SignalStateRow).order_by(SignalStateRow.signal).limit(args.limit)
        if args.status:
            query = query.where(SignalStateRow.status == args.status)
        with self.db.read() as session:
            rows = session.scalars(query).all()
            return [
                {
                    **SignalPublic.model_validate(r).model_dump(mode="json"),
                    "value": r.last_value,
                    "expected": [r.yhat_lower, r.yhat, r.yhat_upper],
                }
                for r in rows
            ]

    def get_forecast(self, _: Principal, args: GetForecast) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.scalars(
                select(ReportRow)
                .where(ReportRow.status == "succeeded")
                .order_by(ReportRow.report_id.desc())
                .limit(1)
            ).first()
            if row is None or not row.data:
                raise NotFoundError("no capacity report has succeeded yet")
            outlooks = row.data.get("outlooks", [])
            if args.signal:
                outlooks = [o for o in outlooks if o.get("signal") == args.signal]
                if not outlooks:
                    raise NotFoundError(f"report #{row.report_id} has no signal {args.signal!r}")
            created = row.created_at.isoformat()
            return {"report_id": row.report_id, "created_at": created, "outlooks": outlooks}

    def list_decisions(self, _: Principal, args: ListDecisions) -> list[dict[str, Any]]:
        where = store.filters(args.status, None, args.incident_id)
        with self.db.read() as session:
            rows = session.scalars(
                store.listing()
                .where(*where)
                .order_by(DecisionRow.decision_id.desc())
                .limit(args.limit)
            ).all()
            return [DecisionPublic.model_validate(r).model_dump(mode="json") for r in rows]

    def list_audit(self, _: Principal, args: ListAudit) -> list[dict[str, Any]]:
        where = audit_log.filters(
            actor=None,
            action_prefix=args.action_prefix,
            target_type=None,
            target_id=args.target_id,
            since=None,
            until=None,
        )
        with self.db.read() as session:
            rows = session.scalars(
                audit_log.listing()
                .where(*where)
                .order_by(AuditEventRow.audit_event_id.desc())
                .limit(args.limit)
            ).all()
            return [AuditEventPublic.model_validate(r).model_dump(mode="json") for r in rows]

    def list_policies(self, _: Principal, __: NoArgs) -> list[dict[str, Any]]:
        return [
            {
                "name": p.name,
                "description": p.description,
                "mode": p.mode,
                "on_request": p.on_request,
                "action": p.action.type,
                "match": p.match.model_dump(exclude_none=True),
            }
            for p in self.policies
            if p.enabled
        ]

    def propose_action(self, who: Principal, args: ProposeAction) -> dict[str, Any]:
        """Queue the proposal for the policy loop (the process holding the decide lease
        plans it); nothing runs without an operator's approval."""
        if args.policy not in {p.name for p in self.policies if p.enabled}:
            known = ", ".join(sorted(p.name for p in self.policies if p.enabled)) or "none"
            raise InvalidInputError(f"policy: no enabled policy {args.policy!r} (known: {known})")
        now = datetime.now(UTC)
        with self.db.write() as session:
            incident = lifecycle.get_incident(session, args.incident_id)
            if incident.status == IncidentStatus.RESOLVED:
                raise InvalidInputError(f"incident_id: incident {args.incident_id} is resolved")
            row = ProposalRow(
                incident_id=args.incident_id,
                policy=args.policy,
                proposed_by=who.name,
                reason=args.reason,
                status=PROPOSAL_WAITING,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            audit_log.record(
                session,
                actor=who.name,
                action="proposal.created",
                target_type="proposal",
                target_id=row.proposal_id,
                details={**args.model_dump(), "via": "mcp"},
            )
            store.add_timeline(
                session,
                args.incident_id,
                TimelineKind.DECISION,
                who.name,
                f"{who.name} (agent) proposed {args.policy}: {args.reason}",
                {"proposal_id": row.proposal_id},
            )
            return {
                "proposal_id": row.proposal_id,
                "status": row.status,
                "next": "the policy loop plans it (guardrails, dry-run plan) at most in approval "
                "mode; an operator approves or rejects it. Follow it with get_proposal.",
            }

    def get_proposal(self, _: Principal, args: ProposalId) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.get(ProposalRow, args.proposal_id)
            if row is None:
                raise NotFoundError(f"proposal {args.proposal_id} does not exist")
            decision = session.get(DecisionRow, row.decision_id) if row.decision_id else None
            return {
                "proposal_id": row.proposal_id,
                "incident_id": row.incident_id,
                "policy": row.policy,
                "proposed_by": row.proposed_by,
                "status": row.status,
                "detail": row.detail,
                "decision": DecisionPublic.model_validate(decision).model_dump(mode="json")
                if decision
                else None,
            }

    def add_note(self, who: Principal, args: AddNote) -> dict[str, Any]:
        with self.db.write() as session:
            lifecycle.get_incident(session, args.incident_id)
            store.add_timeline(
                session, args.incident_id, TimelineKind.NOTE, who.name, args.text, {"via": "mcp"}
            )
            audit_log.record(
                session,
                actor=who.name,
                action="incident.note",
                target_type="incident",
                target_id=args.incident_id,
                details={"text": args.text, "via": "mcp"},
            )
        return {"incident_id": args.incident_id, "noted": True}


class ProposalId(_Args):
    proposal_id: int = Field(..., ge=1)


TOOLS = [
    Tool("list_incidents", "Incidents, newest first, filtered.", ListIncidents, Role.VIEWER,
         Tools.list_incidents),
    Tool("get_incident", "One incident: alerts, evidence, root-cause hints, timeline, "
         "decisions and links to its graphs.", IncidentId, Role.VIEWER, Tools.get_incident),
    Tool("list_signals", "Watched signals: status, anomaly score, value and expected band.",
         ListSignals, Role.VIEWER, Tools.list_signals),
    Tool("get_forecast", "The latest capacity forecast (all signals, or one).", GetForecast,
         Role.VIEWER, Tools.get_forecast),
    Tool("list_decisions", "Policy decisions, newest first.", ListDecisions, Role.VIEWER,
         Tools.list_decisions),
    Tool("list_audit", "The audit log, newest first.", ListAudit, Role.VIEWER, Tools.list_audit),
    Tool("list_policies", "The policies an action can be proposed with.", NoArgs, Role.VIEWER,
         Tools.list_policies),
    Tool("get_proposal", "A proposal and the decision the policy loop made of it.", ProposalId,
         Role.VIEWER, Tools.get_proposal),
    Tool("propose_action", "Propose a policy's action for an incident. It is planned with "
         "every guardrail and waits for an operator's approval; it never runs by itself.",
         ProposeAction, Role.OPERATOR, Tools.propose_action, writes=True),
    Tool("add_note", "Add a note to an incident's timeline.", AddNote, Role.OPERATOR,
         Tools.add_note, writes=True),
]  # fmt: skip
BY_NAME = {tool.name: tool for tool in TOOLS}


def visible(role: Role) -> list[Tool]:
    """The tools a caller of this role is shown (a viewer sees no write tool)."""
    return [t for t in TOOLS if role.allows(t.role)]


class StoreTokens:
    """The API's bearer tokens, checked against the store (webhook tokens are refused)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db

    def principal(self, secret: str) -> Principal | None:
        with self.db.read() as session:
            found = auth.authenticate(
                session, secret, webhook_token=self.settings.auth.webhook_token
            )
        return None if found is None or found.role == Role.WEBHOOK else found

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await anyio.to_thread.run_sync(self.principal, token)
        if found is None:
            return None
        return AccessToken(token=token, client_id=found.name, scopes=[found.role.value])


def build_server(
    settings: Settings, db: Database, *, stdio_caller: Principal | None = None
) -> Server[Any]:
    """The MCP server. Over HTTP the caller is the request's token; over stdio, `stdio_caller`."""
    tools = Tools(settings, db)

    def caller() -> Principal:
        token = get_access_token()
        if token is not None:
            return Principal(token.client_id, Role(token.scopes[0]))
        if stdio_caller is None:
            raise PermissionError("no caller: a bearer token is required")
        return stdio_caller

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=t.args.model_json_schema(),
                    annotations=types.ToolAnnotations(
                        read_only_hint=not t.writes, destructive_hint=False
                    ),
                )
                for t in visible(caller().role)
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        who = caller()
        tool = BY_NAME.get(params.name)
        if tool is None or not who.role.allows(tool.role):
            return _error(f"no tool {params.name!r} for role {who.role.value!r}")
        try:
            args = tool.args.model_validate(params.arguments or {})
            result = await anyio.to_thread.run_sync(tool.run, tools, who, args)
        except ValidationError as exc:
            return _error(f"bad arguments for {tool.name}: {exc}")
        except ControlPlaneError as exc:
            return _error(str(exc))
        text = json.dumps(result, default=str)
        return types.CallToolResult(
            content=[types.TextContent(text=text)],
            structured_content=result if isinstance(result, dict) else {"items": result},
        )

    return Server(
        NAME,
        version=__version__,
        instructions="Read incidents, evidence and forecasts; propose actions for a person to "
        "approve. Nothing here executes an action.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def http_app(settings: Settings, db: Database, url: str) -> Starlette:
    """The streamable HTTP app at `url` (…/mcp), every request authenticated by bearer token."""
    server = build_server(settings, db)
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=True,
        stateless_http=True,
        host=settings.api.host,
        auth=AuthSettings(
            issuer_url=settings.console_api_url,
            resource_server_url=url,
            validate_token_resource=False,
        ),
        token_verifier=StoreTokens(settings, db),
    )


async def run_stdio(settings: Settings, db: Database, secret: str) -> None:
    from mcp.server.stdio import stdio_server

    who = StoreTokens(settings, db).principal(secret)
    if who is None:
        raise InvalidInputError("AIOPS_MCP_TOKEN: not a valid viewer, operator or admin token")
    server = build_server(settings, db, stdio_caller=who)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
