"""`aiops mcp` end to end with the official SDK's own client, over streamable HTTP and stdio:
a viewer sees only read tools and cannot call a write tool; an operator's proposal is planned
by the policy loop with every guardrail and waits for approval (nothing runs); a note lands on
the timeline; requests without a valid token are refused."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from sqlalchemy import select

from controlplane.config import load_settings
from controlplane.policy.runner import PolicyRunner
from controlplane.storage.models import AuditEventRow, DecisionRow, TimelineEntryRow
from controlplane.testing.kube import FakeKube
from controlplane.testing.servers import free_port, stop_process
from tests.factories import (
    WEBHOOK_TOKEN,
    WEBHOOK_URL,
    alert,
    bearer,
    notification,
    start_aiops,
    wait_for,
)

pytestmark = pytest.mark.integration
POLICY = {
    "name": "checkout-scale",
    "match": {"service": ["checkout"]},
    "action": {"type": "scale_deployment", "deployment": "checkout", "namespace": "shop", "by": 1},
    "mode": "auto",  # a proposal still waits for a person
    "on_request": True,  # decided when proposed, not on every matching incident
}
WRITE_TOOLS = {"propose_action", "add_note"}


@pytest.fixture
def policies(tmp_path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "shop.yaml").write_text(yaml.safe_dump({"policies": [POLICY]}))
    return folder


@pytest.fixture
def incident(client) -> int:
    body = notification([alert("m1", service="checkout", severity="critical")], "g-mcp")
    answer = client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN))
    return int(answer.json()["opened"][0])


def environment(settings, policies: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIOPS_DATABASE__URL": settings.database.url,
        "AIOPS_DATABASE__MIGRATE_ON_START": "false",
        "AIOPS_AUTOMATION__POLICIES_DIR": str(policies),
    }


@pytest.fixture
def mcp_url(settings, policies, tmp_path):
    port = free_port()
    process = start_aiops(
        ["mcp", "--transport", "http", "--port", str(port)],
        environment(settings, policies),
        tmp_path / "mcp.log",
    )
    url = f"http://127.0.0.1:{port}/mcp"

    def answering() -> bool:
        try:
            return httpx.post(url, json={}, timeout=2).status_code == 401
        except httpx.HTTPError:
            return False

    try:
        wait_for(answering, timeout=30, what="aiops mcp to answer")
        yield url
    finally:
        stop_process(process)


def over_http(url: str, token: str) -> Client:
    http = create_mcp_http_client(headers=bearer(token))
    return Client(streamable_http_client(url, http_client=http))


async def _tools(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


def test_a_viewer_reads_and_sees_no_write_tool(mcp_url, tokens, incident):
    async def session() -> None:
        async with over_http(mcp_url, tokens["viewer"]) as client:
            names = await _tools(client)
            assert "list_incidents" in names
            assert "get_incident" in names
            assert not names & WRITE_TOOLS
            listed = await client.call_tool("list_incidents", {"status": ["open"]})
            assert listed.structured_content["count"] == 1
            detail = await client.call_tool("get_incident", {"incident_id": incident})
            assert detail.structured_content["service"] == "checkout"
            assert detail.structured_content["links"]["console"].endswith(f"={incident}")
            refused = await client.call_tool(
                "propose_action", {"incident_id": incident, "policy": "x", "reason": "y"}
            )
            assert refused.is_error
            assert "no tool 'propose_action' for role 'viewer'" in refused.content[0].text

    anyio.run(session)


def test_a_proposal_is_planned_with_guardrails_and_waits_for_approval(
    mcp_url, tokens, incident, settings, db, policies
):
    async def propose() -> int:
        async with over_http(mcp_url, tokens["operator"]) as client:
            assert await _tools(client) >= WRITE_TOOLS
            bad = await client.call_tool(
                "propose_action", {"incident_id": incident, "policy": "nope", "reason": "r"}
            )
            assert bad.is_error
            assert "no enabled policy 'nope'" in bad.content[0].text
            made = await client.call_tool(
                "propose_action",
                {"incident_id": incident, "policy": "checkout-scale", "reason": "p99 doubles"},
            )
            assert not made.is_error, made.content
            noted = await client.call_tool(
                "add_note", {"incident_id": incident, "text": "looks like the Tuesday spike"}
            )
            assert noted.structured_content == {"incident_id": incident, "noted": True}
            return int(made.structured_content["proposal_id"])

    proposal_id = anyio.run(propose)
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "checkout", replicas=2)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            automation={"policies_dir": str(policies), "kubernetes": {"host": cluster.url}},
        )
        PolicyRunner(config, db).cycle()
        PolicyRunner(config, db).cycle()  # nothing more happens without a person
        assert cluster.get("deployments", "shop", "checkout")["spec"]["replicas"] == 2

    async def follow() -> dict:
        async with over_http(mcp_url, tokens["viewer"]) as client:
            got = await client.call_tool("get_proposal", {"proposal_id": proposal_id})
            return got.structured_content

    followed = anyio.run(follow)
    assert followed["status"] == "planned"
    decision = followed["decision"]
    assert decision["status"] == "pending_approval"
    assert decision["mode"] == "approval"  # the policy says auto; a proposal is capped
    assert decision["reason"].startswith("proposed by test-operator: p99 doubles;")
    assert decision["plan"]["diff"]
    with db.read() as session:
        actions = set(session.scalars(select(AuditEventRow.action)))
        notes = session.scalars(
            select(TimelineEntryRow.message).where(TimelineEntryRow.kind == "note")
        ).all()
        assert session.scalars(select(DecisionRow.status)).all() == ["pending_approval"]
    assert {"proposal.created", "proposal.planned", "incident.note"} <= actions
    assert notes == ["looks like the Tuesday spike"]


def test_requests_without_a_valid_token_are_refused(mcp_url, tokens):
    assert httpx.post(mcp_url, json={}).status_code == 401
    webhook = httpx.post(mcp_url, json={}, headers=bearer(tokens["webhook"]))
    assert webhook.status_code == 401  # a webhook token is not a person's


def test_stdio_with_the_token_in_the_environment(settings, policies, tokens, incident):
    env = environment(settings, policies) | {"AIOPS_MCP_TOKEN": tokens["viewer"]}
    aiops = str(Path(sys.executable).with_name("aiops"))
    params = StdioServerParameters(command=aiops, args=["mcp"], env=env)

    async def session() -> None:
        async with Client(params) as client:
            assert not await _tools(client) & WRITE_TOOLS
            listed = await client.call_tool("list_incidents", {})
            assert json.loads(listed.content[0].text)["count"] == 1

    anyio.run(session)
