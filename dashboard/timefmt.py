"""How the console shows times and severities: relative ("5 min ago") with the absolute UTC
time beside it for hovering or copying, and one colour per severity."""

from __future__ import annotations

from datetime import UTC, datetime

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
