"""Coordination through the store, on SQLite and PostgreSQL: leases fence a holder that lost
them, members share the signals without overlap, a dead member's signals move, and a member
whose signals moved on cannot write them. Rendezvous hashing moves only what it must."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from controlplane.domain.errors import LeaseLostError
from controlplane.storage.coordination import Lease, Membership, SignalOwners, rendezvous
from controlplane.storage.models import AuditEventRow, LeaseRow

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
SIGNALS = [f"signal-{i}" for i in range(60)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_a_holder_that_lost_its_lease_commits_nothing(db):
    clock = Clock()
    first, second = (Lease(db, "reports", holder, 30, clock) for holder in ("a", "b"))
    assert first.hold()
    assert not second.hold()
    clock.advance(20)  # renewed past half its time
    assert first.hold()
    assert not second.hold()
    clock.advance(31)  # "a" is paused past its lease: "b" takes it over
    assert second.hold()
    with pytest.raises(LeaseLostError, match="held by b \\(token 2\\)"), first.write() as session:
        session.add(
            AuditEventRow(actor="a", action="late", target_type="test", target_id="x", details={})
        )
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEventRow)) == 0
        row = session.get(LeaseRow, "reports")
        assert (row.holder, row.token) == ("b", 2)
    assert not first.hold()  # and it cannot take it back while "b" renews
    with second.write() as session:  # the holder's writes go through
        session.add(
            AuditEventRow(
                actor="b", action="on time", target_type="test", target_id="x", details={}
            )
        )
    second.release()
    assert first.hold()
    assert first.token == 3


def _members(db, clock, names):
    return {name: Membership(db, name, 10, clock) for name in names}


def _shares(db, clock, names):
    return {name: SignalOwners(db, name, clock) for name in names}


def test_live_members_share_the_signals_and_a_dead_ones_move(db):
    clock = Clock()
    members = _members(db, clock, ["w1", "w2", "w3"])
    shares = _shares(db, clock, members)
    for member in members.values():
        assert member.beat() == ["w1", "w2", "w3"][: list(members).index(member.me) + 1]
    owned = {name: share.sync(SIGNALS, 10).owned for name, share in shares.items()}
    assert set().union(*owned.values()) == set(SIGNALS)
    assert sum(len(o) for o in owned.values()) == len(SIGNALS)  # no signal twice
    assert all(owned.values())

    clock.advance(11)  # w3 stopped beating (killed); the others beat and re-share
    for name in ("w1", "w2"):
        members[name].beat()
    moved = {name: shares[name].sync(SIGNALS, 10) for name in ("w1", "w2")}
    assert {s for h in moved.values() for s in h.claimed} == owned["w3"]
    assert not any(h.released for h in moved.values())  # only the dead one's signals move
    assert moved["w1"].owned | moved["w2"].owned == set(SIGNALS)

    with db.write() as session:  # w3 wakes up: the fence leaves it nothing to write
        assert shares["w3"].owned_for_update(session) == set()
    assert shares["w3"].sync(SIGNALS, 10).owned == set()  # its own heartbeat is stale


def test_a_joining_member_takes_its_share_once_the_owner_lets_go(db):
    clock = Clock()
    members = _members(db, clock, ["w1", "w2"])
    shares = _shares(db, clock, members)
    for name in members:
        members[name].beat()
    for name in members:
        shares[name].sync(SIGNALS, 10)
    Membership(db, "w3", 10, clock).beat()
    newcomer = SignalOwners(db, "w3", clock)
    assert newcomer.sync(SIGNALS, 10).owned == set()  # the live owners still hold them
    released = set().union(*(shares[n].sync(SIGNALS, 10).released for n in members))
    taken = newcomer.sync(SIGNALS, 10)
    assert taken.owned == released == newcomer.wanted(SIGNALS, ["w1", "w2", "w3"])
    members["w1"].leave()  # a clean stop frees its signals at once
    assert shares["w2"].sync(SIGNALS, 10).claimed  # w1 is gone from the live list


@settings(max_examples=50, deadline=None)
@given(
    members=st.lists(st.text("abcdef", min_size=1, max_size=4), min_size=2, max_size=6, unique=True)
)
def test_rendezvous_moves_only_the_signals_of_the_member_that_left(members):
    before = {s: rendezvous(s, members) for s in SIGNALS}
    gone, rest = members[0], members[1:]
    after = {s: rendezvous(s, rest) for s in SIGNALS}
    assert {s for s in SIGNALS if before[s] != after[s]} == {
        s for s in SIGNALS if before[s] == gone
    }


def test_the_api_reports_workers_signals_and_leases_on_metrics(db, client):
    """Workers serve no HTTP: the API reports them from the store for the PrometheusRule."""
    now = datetime.now(UTC)
    Membership(db, "w1", 20, lambda: now).beat()
    SignalOwners(db, "w1", lambda: now).sync(["a", "b"], 20)
    Lease(db, "policy-decide", "w1", 30, lambda: now).hold()
    text = client.get("/metrics").text
    assert "aiops_workers_live 1.0" in text
    assert "aiops_signals_unowned 0.0" in text
    assert 'aiops_lease_token{lease="policy-decide"} 1.0' in text
    assert 'aiops_lease_expires_in_seconds{lease="policy-decide"}' in text


def test_two_loops_of_one_process_take_turns_on_leased_work(db):
    """The lease's holder is the process: the API's policy loop and a CLI's cycle in the same
    process must still not decide at once (rates and cooldowns count every decision)."""
    clock = Clock()
    api_loop, cli_cycle = (Lease(db, "policy-decide", "this-process", 30, clock) for _ in "ab")
    with api_loop.running() as first:
        assert first
        with cli_cycle.running() as second:
            assert not second
    with cli_cycle.running() as after:
        assert after


def test_a_worker_alone_takes_more_signals_than_one_statement_can_name(db):
    """40,000 names: beyond SQLite's 32,766 parameters a statement (claims go in chunks)."""
    clock = Clock()
    names = [f"s{i:05d}" for i in range(40_000)]
    Membership(db, "alone", 10, clock).beat()
    assert SignalOwners(db, "alone", clock).sync(names, 10).owned == set(names)
