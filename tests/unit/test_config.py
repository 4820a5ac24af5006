"""Settings: precedence (defaults < YAML < environment < overrides) and errors that name the
key, the environment variable and the value."""

from __future__ import annotations

import pytest

from controlplane.config import load_settings
from controlplane.domain.errors import ConfigError


def test_defaults_are_the_embedded_ones(monkeypatch):
    settings = load_settings()
    assert settings.database.url == "sqlite:///aiops.db"
    assert settings.incidents.group_by == "alertmanager_group"
    assert settings.console_api_url == "http://127.0.0.1:8080"


def test_yaml_then_environment_then_overrides(tmp_path, monkeypatch):
    config = tmp_path / "aiops.yaml"
    config.write_text("api:\n  port: 9000\n  host: 127.0.0.2\nincidents:\n  group_by: service\n")
    monkeypatch.setenv("AIOPS_API__PORT", "9100")
    settings = load_settings(config)
    assert (settings.api.host, settings.api.port) == ("127.0.0.2", 9100)
    assert settings.incidents.group_by == "service"
    assert load_settings(config, api={"port": 9200}).api.port == 9200


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("AIOPS_API__PORT", "eighty", "api.port (AIOPS_API__PORT) = 'eighty'"),
        ("AIOPS_API__PORT", "70000", "api.port (AIOPS_API__PORT) = '70000'"),
        (
            "AIOPS_DATABASE__URL",
            "mysql://x",
            "database.url (AIOPS_DATABASE__URL) = 'mysql://x': must be",
        ),
        ("AIOPS_INCIDENTS__GROUP_BY", "bad key!", "incidents.group_by"),
        ("AIOPS_LOG_LEVEL", "LOUD", "log_level (AIOPS_LOG_LEVEL) = 'LOUD'"),
    ],
)
def test_bad_environment_values_name_key_and_value(monkeypatch, env, value, expected):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert expected in str(error.value)


def test_secrets_are_not_echoed(monkeypatch):
    monkeypatch.setenv("AIOPS_AUTH__WEBHOOK_TOKEN", "")
    monkeypatch.setenv("AIOPS_AUTH__NOPE", "s3cr3t")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "auth.nope" in str(error.value)
    assert "s3cr3t" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api: [1, 2", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("api:\n  prot: 1\n", "api.prot"),
        ("database:\n  pool_size: 0\n", "database.pool_size (AIOPS_DATABASE__POOL_SIZE) = 0"),
    ],
)
def test_bad_yaml_names_the_file_and_key(tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert expected in str(error.value)
    assert "bad.yaml" in str(error.value)


def test_database_passwords_are_masked(monkeypatch):
    monkeypatch.setenv("AIOPS_DATABASE__URL", "mysql://bob:hunter2@127.0.0.1/db")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "mysql://bob:***@127.0.0.1/db" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_the_database_url_is_shown_without_its_password():
    from controlplane.storage import masked

    shown = masked("postgresql+psycopg://aiops:s3cret@127.0.0.1:5432/aiops?sslmode=disable")
    assert "s3cret" not in shown
    assert shown == "postgresql+psycopg://aiops:***@127.0.0.1:5432/aiops?sslmode=disable"


def test_capacity_signals_name_their_forecasters_parameters(tmp_path):
    """A user names the candidates `auto` blends (statsmodels' ETS here); a bad one stops
    start-up naming the key and the entry."""
    signal = (
        "capacity:\n  signals:\n    - {name: cpu, service: shop, query: up, limit: 4,\n"
        "       model_params: {candidates: %s, top: 2}}\n"
    )
    config = tmp_path / "aiops.yaml"
    config.write_text(signal % "[seasonal_naive, ets, {model: holt_winters, log: true}]")
    (cpu,) = load_settings(config).capacity.signals
    assert cpu.model_params["candidates"][1] == "ets"
    config.write_text(signal % "[{model: nope}]")
    with pytest.raises(ConfigError, match="model_params") as raised:
        load_settings(config)
    assert "'nope'" in str(raised.value)
