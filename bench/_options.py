"""What the bench scripts share on their command lines."""

from __future__ import annotations

import json
from typing import Any


def parameter(text: str) -> tuple[str, Any]:
    """`--set name=value`: the value read as JSON when it is JSON (numbers, lists), else text."""
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def model_spec(text: str) -> tuple[str, dict[str, Any]]:
    """`auto` or `auto:top=1;guard=false`: a model name and its parameters (`;` between them,
    values as in `parameter`)."""
    name, _, rest = text.partition(":")
    return name, dict(parameter(item) for item in rest.split(";") if item)
