"""The one `Settings` object: the only module that reads the environment or a config file.

Sources, highest priority first: keyword arguments, environment variables (`AIOPS_` prefix,
`__` between section and field, e.g. `AIOPS_DATABASE__URL`), a YAML file given with
`--config`, then the defaults below. Unknown keys and bad values fail at start-up with a
`ConfigError` naming the key, the environment variable and the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from controlplane.domain.errors import ConfigError

ENV_PREFIX = "AIOPS_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = Field(
        "sqlite:///aiops.db",
        description="SQLAlchemy URL. SQLite (embedded default) or postgresql+psycopg://...",
    )
    migrate_on_start: bool = Field(True, description="Run Alembic upgrade when the API starts.")
    pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL connection pool size.")
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return url


class ApiSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the API listens on.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (webhooks, OTLP)."
    )
    retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with 503 when the store is unavailable."
    )


class AuthSettings(_Section):
    webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token Alertmanager sends (http_config.authorization). It may only "
        "deliver notifications. Tokens made with `aiops token create --role webhook` work too.",
    )


class IncidentSettings(_Section):
    group_by: str = Field(
        "alertmanager_group",
        description="How alerts are grouped into one open incident: 'alertmanager_group' "
        "(Alertmanager's groupKey) or the name of a label such as 'service'.",
    )

    @field_validator("group_by")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError(f"must be 'alertmanager_group' or a label name, got {value!r}")
        return value


class ConsoleSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the Streamlit console listens on.")
    port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit console.")
    api_url: str = Field(
        "", description="API base URL the console calls; empty means http://{api.host}:{api.port}."
    )


class Settings(BaseSettings):
    """Everything the control plane can be told. See README 'Configuration'."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    incidents: IncidentSettings = IncidentSettings()
    console: ConsoleSettings = ConsoleSettings()

    @property
    def console_api_url(self) -> str:
        return self.console.api_url or f"http://{self.api.host}:{self.api.port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: defaults < YAML file < environment < keyword overrides.

    Raises ConfigError naming the file, the key (with its environment variable) and the value.
    """
    file_values = _read_yaml(config_file) if config_file else {}
    env_values = EnvSettingsSource(Settings)()
    merged = _deep_merge(_deep_merge(file_values, env_values), overrides)
    try:
        # model_validate skips BaseSettings.__init__, so the sources are exactly the ones above.
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping at the top, got {type(loaded).__name__}"
        )
    return loaded


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_SECRET_WORDS = ("token", "password", "secret", "credential")


def _shown(path: list[str], value: object) -> str:
    """The bad value as it may be printed: secrets hidden, URL passwords masked."""
    if path[0] == "auth" or any(word in part for part in path for word in _SECRET_WORDS):
        return "<hidden>"
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return repr(f"{scheme}://{user}:***@{host}" if ":" in credentials else value)
    return repr(value)


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    where = f" (config file {str(config_file)!r} or environment)" if config_file else ""
    lines = [f"invalid settings{where}:"]
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        key = ".".join(path)
        env = ENV_PREFIX + "__".join(part.upper() for part in path)
        value = _shown(path, error.get("input"))
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {key} ({env}) = {value}: {message}")
    return "\n".join(lines)
