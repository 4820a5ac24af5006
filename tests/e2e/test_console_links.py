"""Addresses in a real browser: a reload keeps the sign-in and the page, a pasted link opens
the incident or decision it names (after sign-in when the browser has none), a list row
opens its incident, and signing out (or a revoked token) ends the session for good.

Headless Chromium against `streamlit run` and the API on loopback, on the SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.storage import Database
from controlplane.testing.servers import ApiServer, Console
from tests.e2e.chromium import Chromium, find_chromium
from tests.factories import WEBHOOK_TOKEN, alert, bearer, notification

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAV = '[data-testid="stSidebarNav"] a span'


@pytest.fixture
def console(tmp_path: Path, settings: Settings, db: Database) -> Iterator[tuple[str, str]]:
    if settings.database.url.startswith("postgresql"):
        pytest.skip("the browser run uses the SQLite store (the AppTest suite covers both)")
    if find_chromium() is None:
        pytest.skip("Chromium is not installed: make system-deps installs it (Debian chromium)")
    with ApiServer(create_app(settings, db)) as api:
        for service in ("checkout", "search"):
            httpx.post(
                f"{api.url}/api/v1/webhooks/alertmanager",
                json=notification([alert(service, service=service, severity="critical")], service),
                headers=bearer(WEBHOOK_TOKEN),
            ).raise_for_status()
        console_settings = settings.model_copy(
            update={"console": settings.console.model_copy(update={"api_url": api.url})}
        )
        with Console(console_settings, log=tmp_path / "console.log") as running:
            yield api.url, running.url


def sign_in(browser: Chromium, token: str) -> None:
    browser.wait_for_text("API token")
    browser.type_into('input[type="password"]', token)
    browser.click_text("button", "Sign in")


def incidents(api_url: str, token: str) -> dict[str, str]:
    """Each service's incident as the console heads it: "#N title"."""
    listing = httpx.get(f"{api_url}/api/v1/incidents", headers=bearer(token)).json()
    return {i["service"]: f"#{i['incident_id']} {i['title']}" for i in listing["data"]}


def number(heading: str) -> str:
    return heading.split()[0].lstrip("#")


def on_incident_page(browser: Chromium, heading: str) -> None:
    """The incident page is open on this incident (not a link to it on another page)."""
    browser.wait_for_text(f"Acknowledge #{number(heading)}")
    assert heading in browser.evaluate("document.body.innerText")
    assert browser.evaluate("location.pathname") == "/incidents"
    assert browser.evaluate("location.search") == f"?incident={number(heading)}"


def test_reload_keeps_the_sign_in_and_the_page(console, tokens, db):
    api_url, console_url = console
    heads = incidents(api_url, tokens["viewer"])
    with Chromium(find_chromium() or "chromium") as browser:
        # A pasted link, no session yet: sign in, and the link's incident is open.
        browser.navigate(f"{console_url}/incidents?incident={number(heads['search'])}")
        sign_in(browser, tokens["operator"])
        on_incident_page(browser, heads["search"])
        assert "Signed in as test-operator" in browser.evaluate("document.body.innerText")

        browser.reload()
        on_incident_page(browser, heads["search"])
        page = browser.evaluate("document.body.innerText")
        assert "API token" not in page
        assert "Signed in as test-operator" in page
        cookie = browser.evaluate("document.cookie")
        assert "aiops_console_session=" in cookie
        assert tokens["operator"] not in cookie  # the browser holds a session id, not the token

        # Signing out ends it: a reload asks for a token again.
        browser.click_text("button", "Sign out")
        browser.wait_for_text("API token")
        browser.reload()
        browser.wait_for_text("API token")

        # A revoked token ends the session at the next reload.
        sign_in(browser, tokens["viewer"])
        on_incident_page(browser, heads["search"])
        revoked = httpx.delete(
            f"{api_url}/api/v1/tokens/test-viewer", headers=bearer(tokens["admin"])
        )
        assert revoked.status_code == 200, revoked.text
        browser.reload()
        browser.wait_for_text("API token")


def test_a_row_of_the_incident_list_opens_it(console, tokens):
    api_url, console_url = console
    heads = incidents(api_url, tokens["viewer"])
    with Chromium(find_chromium() or "chromium") as browser:
        browser.navigate(console_url)
        sign_in(browser, tokens["viewer"])
        browser.wait_for_text("Open incidents")
        browser.click_text(NAV, "Incidents")
        browser.wait_for_text("incident(s) match")
        browser.click_text("button", heads["checkout"])
        on_incident_page(browser, heads["checkout"])
        browser.click_text("button", heads["search"])  # another row, with one already open
        on_incident_page(browser, heads["search"])
