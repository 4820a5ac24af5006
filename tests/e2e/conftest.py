"""Console fixtures: a real Prometheus (Debian package) holding the demo shop's two weeks of
resource history, shared by the page tests and the browser test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from controlplane.demo import capacity as shop
from controlplane.domain.errors import ConfigError
from controlplane.testing.servers import Prometheus


@pytest.fixture(scope="session")
def shop_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        server = Prometheus(tmp_path_factory.mktemp("prometheus"), history=shop.history(end))
        with server:
            yield server.url
    except ConfigError as exc:
        pytest.skip(str(exc))
