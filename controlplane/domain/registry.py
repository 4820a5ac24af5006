"""Building a plugin (detector, forecaster) by name from its registry, with errors that name
the unknown name or parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from controlplane.domain.errors import InvalidInputError

T = TypeVar("T")


def instantiate(registry: Mapping[str, type[T]], kind: str, name: str, params: dict[str, Any]) -> T:
    """`registry[name](**params)`; `kind` ("detector", "model") words the errors."""
    try:
        cls = registry[name]
    except KeyError:
        raise InvalidInputError(f"{kind} must be one of {sorted(registry)}, got {name!r}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInputError(f"{kind} {name!r}: {exc}") from None
