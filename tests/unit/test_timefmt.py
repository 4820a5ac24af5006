"""How the console words times: relative, with the absolute UTC time beside."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.timefmt import ago, dot_id, fields, plain, severity_badge, utc, web_link
from dashboard.timeline import collapse

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


def test_a_flapping_alert_is_one_line_with_a_count():
    entries = [
        {"kind": "opened", "message": "opened", "at": "2026-12-01T10:00:00Z"},
        *(
            {"kind": kind, "message": f"{kind} HighLatency", "at": f"2026-12-01T10:{m:02d}:00Z"}
            for m in range(1, 31)
            for kind in ["alert_added" if m % 2 else "alert_resolved"]
        ),
    ]
    lines = collapse(entries)
    assert [(line.entry["kind"], line.count) for line in lines] == [
        ("opened", 1),
        ("alert_added", 15),
        ("alert_resolved", 15),
    ]
    assert lines[2].last_at == "2026-12-01T10:30:00Z"


def test_details_read_as_fields_not_as_a_python_repr():
    text = fields({"policy": "p", "replicas": 0, "reason": None, "checks": [{"ok": True}]})
    assert text == 'policy: p · replicas: 0 · reason: — · checks: [{"ok": true}]'
    assert "None" not in text
    assert len(fields({"long": "x" * 1000}, limit=50)) == 50


def test_text_from_alerts_cannot_become_markup():
    hostile = "![t](http://evil.example/t.png) [login](https://evil.example) <img> :red[x] www.e.x"
    shown = plain(hostile)
    assert "](" not in shown.replace("\\](", "")  # no link or image survives
    assert "<img>" not in shown
    assert "://" not in shown
    assert "www." not in shown
    assert plain("HighLatency: p95 2.4 s (checkout)") == "HighLatency: p95 2.4 s (checkout)"
    assert plain("a\nb") == "a b"


def test_dot_identifiers_are_quoted_and_escaped():
    assert dot_id('pay"] -> "x') == '"pay\\"] -> \\"x"'
    assert dot_id("a\\b") == '"a\\\\b"'


def test_only_http_links_are_links():
    assert web_link("https://grafana.example/d/1") == "https://grafana.example/d/1"
    assert web_link("javascript:alert(1)") is None
    assert web_link("") is None
