"""Domain types and the error tree: plain values with no I/O, shared by every layer."""

from controlplane.domain.errors import (
    ConfigError,
    ConflictError,
    ControlPlaneError,
    NotFoundError,
    PermanentError,
    SourceUnavailableError,
    StoreUnavailableError,
    TemporaryError,
)
from controlplane.domain.models import (
    AlertStatus,
    IncidentStatus,
    Principal,
    Role,
    Severity,
    TimelineKind,
)

__all__ = [
    "AlertStatus",
    "ConfigError",
    "ConflictError",
    "ControlPlaneError",
    "IncidentStatus",
    "NotFoundError",
    "PermanentError",
    "Principal",
    "Role",
    "Severity",
    "SourceUnavailableError",
    "StoreUnavailableError",
    "TemporaryError",
    "TimelineKind",
]
