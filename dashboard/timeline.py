"""An incident's timeline as a person reads it: an alert that flaps (fires, resolves, fires
again...) is one line with a count, not thirty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Line:
    entry: dict[str, Any]  # the first occurrence
    count: int
    last_at: str


def collapse(entries: list[dict[str, Any]]) -> list[Line]:
    """Entries of the same kind and message become one line (in order of first occurrence),
    counting how often it happened and when it last did."""
    lines: dict[tuple[str, str], Line] = {}
    for entry in entries:
        key = (entry["kind"], entry["message"])
        seen = lines.get(key)
        lines[key] = (
            Line(entry, 1, entry["at"])
            if seen is None
            else Line(seen.entry, seen.count + 1, entry["at"])
        )
    return list(lines.values())
