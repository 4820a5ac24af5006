"""The control plane's one error tree. Every layer raises these; the API maps them to HTTP.

    ControlPlaneError
    ├── ConfigError              bad settings or policy YAML: fail at start-up, name key and value
    ├── NotFoundError            -> 404
    ├── ConflictError            -> 409 (e.g. an incident already resolved)
    │   └── LeaseLostError           another process took this one's lease: commit nothing
    ├── TemporaryError(delay)    retry later -> 503 with Retry-After
    │   ├── StoreUnavailableError    the database cannot be reached or written
    │   └── SourceUnavailableError   a metrics source is down: no data, NOT an anomaly
    ├── InvalidInputError        bad data at an edge (CSV, detector input): names field and value
    │   └── UnstorableError          valid-looking input the store refuses: 422, never retried
    ├── NotFittedError           a detector or forecaster used before `fit`
    └── PermanentError           never retry; escalate to a human
        └── QueryError               the source answered, but refused the query (bad PromQL)

Messages name the offending field and echo the bad value ("got %r"), so that whoever reads them
can fix the input without reading code.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of every error the control plane raises on purpose."""


class ConfigError(ControlPlaneError):
    """Settings or a configuration file are invalid; raised at start-up."""


class NotFoundError(ControlPlaneError):
    """The named resource does not exist."""


class ConflictError(ControlPlaneError):
    """The request conflicts with the resource's current state."""


class LeaseLostError(ConflictError):
    """This process no longer holds the lease (or signal) its work was for: another process
    took it over, so nothing of this work may be committed."""


class TemporaryError(ControlPlaneError):
    """A dependency failed in a way that may heal; the caller should retry after `delay` s."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class StoreUnavailableError(TemporaryError):
    """The database is down, unreachable or read-only."""


class SourceUnavailableError(TemporaryError):
    """A metrics or trace source cannot be reached: the signal has no data, it is not anomalous."""


class PermanentError(ControlPlaneError):
    """Retrying will not help; a human has to look."""


class QueryError(PermanentError):
    """The source is up but rejected or failed the query: the signal has no data, no anomaly."""


class InvalidInputError(ControlPlaneError, ValueError):
    """Input data is malformed; the message names the file, row, column or parameter."""


class UnstorableError(InvalidInputError):
    """The store is up but refuses this one input: it will never succeed, so it is refused
    (not answered as retryable) and the store's message is logged, not echoed."""


class NotFittedError(ControlPlaneError, RuntimeError):
    """An estimator was used before `fit`."""
