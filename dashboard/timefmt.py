"""How the console shows values: times relative ("5 min ago") with the absolute UTC time
beside them, one colour per severity, structured details as readable fields, and text from
outside (alerts, spans, comments) escaped for Markdown and DOT, links only when http(s)."""

from __future__ import annotations

import json
import re
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


#: What can turn text into markup: emphasis and code, links and images (brackets), HTML and
#: autolinks (angle brackets), strike-through, maths, tables, Streamlit's `:colour[...]`
#: (brackets again); and the two ways a bare address becomes a link.
_MARKUP = re.compile(r"([\\`*_\[\]<>~$|])")
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def plain(text: object) -> str:
    """Text from outside (alert names and summaries, service names, comments) for a place
    that renders Markdown: whatever could become markup escaped, so an alert cannot put a
    link, an image or a colour on the page. Newlines become spaces."""
    escaped = _MARKUP.sub(r"\\\1", " ".join(str(text).split()))
    return _AUTOLINK.sub(lambda m: m.group(1).replace("/", "\\/").replace(".", "\\."), escaped)


def dot_id(text: object) -> str:
    """A quoted Graphviz DOT identifier: quotes and backslashes escaped, newlines dropped."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + " ".join(escaped.split()) + '"'


def web_link(url: str | None) -> str | None:
    """`url` when it is an http(s) address, else None: a `javascript:` or `data:` link from
    an alert never becomes something to click."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None
