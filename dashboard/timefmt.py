"""How the console shows values: times relative ("5 min ago") with the absolute UTC time
beside them, one colour per severity, and structured details as readable fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

#: Streamlit colour names, from the most to the least urgent.
SEVERITY_COLOURS = {"critical": "red", "error": "orange", "warning": "yellow", "info": "blue"}


def ago(stamp: str | None, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago' (future times say 'in ...')."""
    if not stamp:
        return "never"
    seconds = ((now or datetime.now(UTC)) - datetime.fromisoformat(stamp)).total_seconds()
    later, seconds = seconds < 0, abs(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{seconds // size:.0f} {unit}"
            break
    else:
        amount = f"{seconds:.0f} s"
    return f"in {amount}" if later else f"{amount} ago"


def utc(stamp: str | None) -> str:
    """The absolute time, in UTC, to the second."""
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def severity_badge(severity: str) -> str:
    """Markdown for a coloured severity label."""
    return f":{SEVERITY_COLOURS.get(severity, 'gray')}-badge[{severity}]"


def fields(details: dict[str, Any], *, limit: int = 400) -> str:
    """`key: value · key: value`, nested values as compact JSON, nothing as a dash (0 stays
    0), cut at `limit` characters."""
    parts = []
    for key, value in details.items():
        if value is None or value == "" or value == [] or value == {}:
            shown = "—"
        elif isinstance(value, dict | list):
            shown = json.dumps(value, separators=(", ", ": "), default=str)
        else:
            shown = str(value)
        parts.append(f"{key}: {shown}")
    text = " · ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
