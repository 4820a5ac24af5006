"""The console's sign-in store: ids are unguessable and distinct, a sign-in ends when it
expires or is closed, and the cookie the browser gets holds the id only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.sessions import COOKIE, Sessions, cookie_script

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
USER = {"name": "alice", "role": "operator"}


def test_a_sign_in_is_found_until_it_expires_or_is_closed():
    store = Sessions(timedelta(hours=12))
    first = store.open("secret-1", USER, now=NOW)
    second = store.open("secret-1", USER, now=NOW)
    assert first != second
    assert len(first) >= 40  # 32 random bytes, URL-safe
    found = store.find(first, now=NOW + timedelta(hours=11, minutes=59))
    assert found is not None
    assert found.token == "secret-1"
    assert store.find(first, now=NOW + timedelta(hours=12)) is None  # expired, and forgotten
    store.close(second)
    assert store.find(second, now=NOW) is None
    assert store.find("guessed", now=NOW) is None


def test_the_cookie_holds_the_id_and_deleting_it_expires_it():
    script = cookie_script("abc", timedelta(hours=12))
    assert f"{COOKIE}=abc; Path=/; Max-Age=43200; SameSite=Strict" in script
    assert f"{COOKIE}=; Path=/; Max-Age=0;" in cookie_script(None, timedelta(hours=12))
