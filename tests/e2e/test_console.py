"""The console, driven by Streamlit's AppTest, against the real API served on loopback."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from controlplane.api import create_app
from controlplane.testing.servers import ApiServer, free_port
from tests.factories import APP, alert, bearer, listed, notification, signed_in
from tests.factories import WEBHOOK_URL as URL

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings, db, tokens, monkeypatch):
    with ApiServer(create_app(settings, db)) as server:
        monkeypatch.setenv("AIOPS_CONSOLE__API_URL", server.url)
        yield server


@pytest.fixture
def seeded(api, tokens):
    import httpx

    hdr = bearer(tokens["webhook"])
    for n, (service, severity) in enumerate([("checkout", "critical"), ("search", "warning")]):
        httpx.post(
            api.url + URL,
            json=notification([alert(f"c{n}", service=service, severity=severity)], f"g{n}"),
            headers=hdr,
        )
    return api


def test_sign_in_with_a_token(api, tokens):
    app = AppTest.from_file(APP, default_timeout=30).run()
    app.button[0].click().run()
    assert app.error[0].value == "Enter an API token."
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert "Sign-in failed: unknown or revoked token (HTTP 401)" in app.error[0].value
    app.text_input[0].input(tokens["webhook"])  # Alertmanager's token: it may only deliver
    app.button[0].click().run()
    assert "a webhook token can only deliver alerts" in app.error[0].value
    assert "token" not in app.session_state
    app.text_input[0].input(tokens["operator"])
    app.button[0].click().run()
    assert app.session_state["user"] == {"name": "test-operator", "role": "operator"}
    assert app.title[0].value == "Overview"


def test_lists_incidents_and_shows_detail(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    assert not app.exception
    assert "2 incident(s) match" in app.caption[0].value
    rows = listed(app)
    assert [title for _, title in rows] == ["Alertc0", "Alertc1"]  # checkout's critical first
    assert not app.subheader  # nothing is opened for the user
    first = rows[0][0]
    app.button(key=f"open-incident-{first}").click().run()
    assert app.subheader[0].value.startswith(f"#{first} ")
    assert app.query_params["incident"] == str(first)  # a link to paste
    timeline = " ".join(m.value for m in app.markdown)
    assert "opened" in timeline


def test_a_link_opens_its_incident(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    wanted = listed(app)[1][0]
    app.query_params["incident"] = str(wanted)
    app.run()
    assert app.subheader[0].value.startswith(f"#{wanted} ")
    app.query_params["incident"] = "abc"
    app.run()
    assert "not an incident number" in app.error[0].value


def test_filters_reach_the_api(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    app.multiselect(key="filter_severity").set_value(["critical"]).run()
    assert [title for _, title in listed(app)] == ["Alertc0"]  # checkout's
    app.text_input(key="filter_service").input("nothing-here").run()
    assert app.info[0].value == "No incidents match these filters."


def test_viewer_cannot_act(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    app.button(key=f"open-incident-{listed(app)[0][0]}").click().run()
    assert app.button(key="ack").disabled
    assert app.button(key="resolve").disabled


def test_operator_acknowledges_then_resolves(seeded, tokens):
    import httpx

    app = signed_in(tokens["operator"], "operator", "test-operator")
    incident_id = listed(app)[0][0]
    app.button(key=f"open-incident-{incident_id}").click().run()
    app.text_input(key=f"incident-comment-{incident_id}").input("looking").run()
    app.button(key="ack").click().run()
    assert not app.exception
    # It says what was done, to which incident, by whom; the comment is gone; the incident
    # shown is still the one acted on (the next click cannot land on another).
    assert app.success[0].value.startswith(f"#{incident_id} (")
    assert "acknowledged by test-operator" in app.success[0].value
    assert app.text_input(key=f"incident-comment-{incident_id}").value == ""
    assert app.subheader[0].value.startswith(f"#{incident_id} ")
    cells = [m.value for m in app.markdown]  # the list's row: its status and its owner
    assert ":orange[◐ acknowledged]" in cells
    assert "test-operator" in cells
    detail = httpx.get(
        f"{seeded.url}/api/v1/incidents/{incident_id}", headers=bearer(tokens["viewer"])
    ).json()
    assert detail["status"] == "acknowledged"
    assert detail["acknowledged_by"] == "test-operator"
    assert detail["timeline"][-1]["message"] == "Acknowledged by test-operator: looking"
    app.button(key="resolve").click().run()
    assert app.subheader[0].value.startswith(f"#{incident_id} ")  # resolved, still shown
    assert app.button(key="resolve").disabled
    detail = httpx.get(
        f"{seeded.url}/api/v1/incidents/{incident_id}", headers=bearer(tokens["viewer"])
    ).json()
    assert detail["status"] == "resolved"


def test_api_down_gives_a_clear_message(monkeypatch, tokens):
    monkeypatch.setenv("AIOPS_CONSOLE__API_URL", f"http://127.0.0.1:{free_port()}")
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    assert "cannot be reached" in app.error[0].value


def test_search_titles(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    app.text_input(key="filter_text").input("alertC1").run()  # titles: Alertc0, Alertc1
    assert [title for _, title in listed(app)] == ["Alertc1"]
    app.text_input(key="filter_text").input("100%_no_such").run()
    assert app.info[0].value == "No incidents match these filters."


def test_an_alert_cannot_put_links_or_images_on_the_page(api, tokens):
    import httpx

    hostile = alert("h1", service="pay[x](http://evil.example)", severity="critical")
    hostile["labels"]["alertname"] = "![t](http://evil.example/t.png)"
    hostile["annotations"]["summary"] = "[log in](https://evil.example) <img src=x>"
    hostile["generatorURL"] = "javascript:alert(1)"
    httpx.post(
        api.url + URL, json=notification([hostile], "h"), headers=bearer(tokens["webhook"])
    ).raise_for_status()
    app = signed_in(tokens["viewer"], "viewer", "test-viewer")
    ((number, _),) = listed(app)
    app.button(key=f"open-incident-{number}").click().run()
    assert not app.exception
    rendered = [m.value for m in [*app.markdown, *app.subheader, *app.caption]]
    rendered += [b.label for b in app.button]
    for text in rendered:
        assert not re.search(r"(?<!\\)\]\(", text), text  # a bracket escaped: no link
        assert not re.search(r"(?<!\\)<img", text), text
    assert app.dataframe[-1].value["source"].tolist() == [None]  # not a javascript: link
