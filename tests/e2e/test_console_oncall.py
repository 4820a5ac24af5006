"""The On-call page and an incident's silences through AppTest against the real API, a real
Alertmanager and a loopback channel that refuses every message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from controlplane.api import create_app
from controlplane.config import Settings, load_settings
from controlplane.notifications.notifier import Notifier
from controlplane.testing.oncall import OnCallServices
from controlplane.testing.servers import Alertmanager, ApiServer, free_port
from tests.factories import WEBHOOK_TOKEN, alert, bearer, notification, signed_in, wait_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Env:
    api: str
    config: Settings
    alertmanager: str


@pytest.fixture
def env(settings, db, tokens, tmp_path, monkeypatch) -> Iterator[Env]:
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with (
        OnCallServices() as oncall,
        Alertmanager(tmp_path / "am", webhook_url=closed, token="unused") as am,
    ):
        oncall.fail("/teams", 404, times=100)  # the workflow was deleted
        path = tmp_path / "notifications.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "channels": {"teams": {"type": "teams", "url": f"{oncall.url}/teams/flow"}},
                    "routes": [
                        {"name": "all", "events": ["incident.opened"], "channels": ["teams"]}
                    ],
                }
            )
        )
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            auth={"webhook_token": WEBHOOK_TOKEN},
            notifications={"file": str(path)},
            alertmanager={"url": am.url},
        )
        with ApiServer(create_app(config, db)) as server:
            monkeypatch.setenv("AIOPS_CONSOLE__API_URL", server.url)
            body = notification([alert("c1", service="checkout", severity="critical")], "g-c1")
            httpx.post(
                f"{server.url}/api/v1/webhooks/alertmanager",
                json=body,
                headers=bearer(WEBHOOK_TOKEN),
            ).raise_for_status()
            Notifier(config, db).cycle()
            yield Env(server.url, config, am.url)


def test_a_failing_channel_is_shown_first_and_a_window_opens_and_closes(env, tokens):
    app = signed_in(tokens["operator"], "operator", "test-operator", "oncall")
    assert not app.exception
    (failing,) = [e.value for e in app.error]
    assert failing.startswith("**teams** (teams) fails for good: Teams webhook refused")
    assert "404" in failing
    assert app.caption[0].value == "No maintenance window is open now."
    app.text_input(key="window_name").input("checkout db migration").run()
    app.text_input(key="window_service").input("checkout").run()
    app.text_input(key="window_reason").input("schema change").run()
    app.button(key="window_open").click().run()
    assert not app.exception
    assert app.success[0].value.endswith("'checkout db migration' opened (open now)")
    windows = httpx.get(
        f"{env.api}/api/v1/maintenance-windows?active=true", headers=bearer(tokens["viewer"])
    ).json()
    (window,) = windows
    assert (window["service"], window["automation"], window["created_by"]) == (
        "checkout",
        "approval",
        "test-operator",
    )
    number = window["window_id"]
    app.text_input(key=f"cancel-reason-{number}").input("done").run()
    app.button(key=f"cancel-{number}").click().run()
    assert app.success[0].value == f"Window #{number} closed"
    viewer = signed_in(tokens["viewer"], "viewer", "test-viewer", "oncall")
    assert viewer.button(key="window_open").disabled


def test_an_incident_is_silenced_and_unsilenced_from_its_page(env, tokens):
    incidents = httpx.get(f"{env.api}/api/v1/incidents", headers=bearer(tokens["viewer"]))
    (incident,) = incidents.json()["data"]
    number = incident["incident_id"]
    app = signed_in(tokens["operator"], "operator", "test-operator", "incidents")
    app.button(key=f"open-incident-{number}").click().run()
    assert "No Alertmanager silence covers this incident." in [c.value for c in app.caption]
    app.button(key=f"silence-{number}").click().run()
    assert f"A comment is required to silence #{number}." in [e.value for e in app.error]
    app.text_input(key=f"silence-comment-{number}").input("known, fix deploying").run()
    app.button(key=f"silence-{number}").click().run()
    assert not app.exception
    assert app.success[0].value.startswith(f"#{number} silenced until")
    (silence,) = httpx.get(f"{env.alertmanager}/api/v2/silences").json()
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "test-operator"
    assert f"[aiops incident #{number}, silenced by test-operator]" in silence["comment"]
    app.button(key=f"expire-{silence['id']}").click().run()
    assert app.success[0].value == f"Silence {silence['id'][:8]} expired"
    (after,) = httpx.get(f"{env.alertmanager}/api/v2/silences").json()
    assert after["status"]["state"] == "expired"


def test_a_resolved_incident_offers_its_postmortem_draft(env, tokens):
    incidents = httpx.get(f"{env.api}/api/v1/incidents", headers=bearer(tokens["viewer"]))
    (incident,) = incidents.json()["data"]
    number = incident["incident_id"]
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "incidents")
    app.button(key=f"open-incident-{number}").click().run()
    assert not app.get("download_button")  # open: nothing to write up yet
    httpx.post(
        f"{env.api}/api/v1/incidents/{number}/resolve",
        json={"comment": "fixed"},
        headers=bearer(tokens["operator"]),
    ).raise_for_status()
    app.multiselect(key="filter_status").set_value(["resolved"]).run()
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == [f"Postmortem draft #{number} (md)", f"Postmortem draft #{number} (html)"]
    draft = httpx.get(
        f"{env.api}/api/v1/incidents/{number}/postmortem", headers=bearer(tokens["viewer"])
    )
    assert draft.text.startswith(f"# Postmortem: #{number}")


def test_the_noise_page_shows_the_week_and_the_weekly_reports(env, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "noise")
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Incidents"] == "1"
    assert metrics["Fixed by automation"] == "-"  # nothing resolved yet
    assert [s.value for s in app.subheader] == [
        "Incidents per service per week",
        "Alerts nobody acted on",
        "Flapping incidents",
        "Weekly reports",
    ]
    assert any("set noise.schedule" in c.value for c in app.caption)

    made = httpx.post(
        f"{env.api}/api/v1/reports?kind=noise", headers=bearer(tokens["operator"])
    ).json()  # what the schedule does on Mondays, now
    number = made["report_id"]
    wait_for(lambda: _status(env, tokens, number) == "done", what="the noise report")
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "noise")
    assert not app.exception
    assert any(f"#{number} of " in m.value and "1 incidents" in m.value for m in app.markdown)
    page = httpx.get(
        f"{env.api}/api/v1/reports/{number}?format=html", headers=bearer(tokens["viewer"])
    )
    assert "<img alt='incidents per service per week'" in page.text


def _status(env: Env, tokens, number: int) -> str:
    answer = httpx.get(f"{env.api}/api/v1/reports/{number}", headers=bearer(tokens["viewer"]))
    return str(answer.json()["status"])
