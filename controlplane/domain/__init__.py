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
    "ConfigError",
    "ConflictError",
    "ControlPlaneError",
    "IncidentStatus",
    "NotFoundError",
    "PermanentError",
    "Role",
    "Severity",
    "SourceUnavailableError",
    "StoreUnavailableError",
    "TemporaryError",
    "TimelineKind",
    "AlertStatus",
    "Principal",
]
