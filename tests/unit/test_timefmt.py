"""How the console words times: relative, with the absolute UTC time beside."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.timefmt import ago, severity_badge, utc

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_relative_times_in_each_unit_and_the_future():
    assert ago("2026-12-01T11:59:48Z", NOW) == "12 s ago"
    assert ago("2026-12-01T11:55:00+00:00", NOW) == "5 min ago"
    assert ago("2026-12-01T09:00:00Z", NOW) == "3 h ago"
    assert ago("2026-11-28T12:00:00Z", NOW) == "3 d ago"
    assert ago("2026-12-03T12:00:00Z", NOW) == "in 2 d"
    assert ago(None, NOW) == "never"


def test_absolute_times_are_stated_in_utc():
    assert utc("2026-12-01T13:00:00+01:00") == "2026-12-01 12:00:00 UTC"
    assert severity_badge("critical") == ":red-badge[critical]"
    assert severity_badge("unknown") == ":gray-badge[unknown]"
