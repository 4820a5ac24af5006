"""The API's /docs page, rendered by headless Chromium with no way out to the internet (the
browser's proxy points at a closed port): Swagger UI comes from the API itself and reads the
OpenAPI 3.1 document, so the operations are listed."""

from __future__ import annotations

import pytest

from controlplane.api import create_app
from controlplane.testing.servers import ApiServer
from tests.e2e.chromium import Chromium, find_chromium

pytestmark = pytest.mark.integration


def test_docs_render_every_operation_offline(settings, db):
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (make test installs it as root)")
    with ApiServer(create_app(settings, db)) as api, Chromium(binary) as browser:
        browser.navigate(f"{api.url}/docs")
        browser.wait_for_text("List Incidents")
        text = browser.evaluate("document.body.innerText")
    assert "Unable to render this definition" not in text
    for operation in ("/api/v1/webhooks/alertmanager", "/api/v1/overview", "/v1/traces"):
        assert operation in text
