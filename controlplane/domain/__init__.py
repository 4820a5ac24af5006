"""Domain types and the error tree: plain values with no I/O, shared by every layer."""

from controlplane.domain.errors import (
    ConfigError,
    ConflictError,
    ControlPlaneError,
    InvalidInputError,
    NotFittedError,
    NotFoundError,
    PermanentError,
    QueryError,
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
    "InvalidInputError",
    "NotFittedError",
    "NotFoundError",
    "PermanentError",
    "Principal",
    "QueryError",
    "Role",
    "Severity",
    "SourceUnavailableError",
    "StoreUnavailableError",
    "TemporaryError",
    "TimelineKind",
]
