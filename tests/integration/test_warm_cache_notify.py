"""warm_cache against the real Redis on this machine (and an HTTP cache on loopback), notify
against a webhook receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
import redis

import remediations
from controlplane.domain.errors import InvalidInputError, PermanentError
from remediations.cache import RateLimiter
from tests.factories import Receiver

pytestmark = pytest.mark.integration
TARGET, SOURCE = "redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/15"


@pytest.fixture
def caches() -> Iterator[tuple[redis.Redis, redis.Redis]]:
    target, source = redis.Redis.from_url(TARGET), redis.Redis.from_url(SOURCE)
    try:
        target.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    target.flushdb()
    source.flushdb()
    yield target, source
    target.flushdb()
    source.flushdb()


def test_warm_redis_from_a_source_with_rate_and_hit_ratio(caches, tmp_path):
    target, source = caches
    keys = [f"product:{i}" for i in range(200)]
    for key in keys:
        source.set(key, f"value-{key}", px=600_000)
    for key in keys[:50]:
        target.set(key, "old")
    (tmp_path / "keys.txt").write_text("# hot products\n" + "\n".join(keys) + "\n")
    action = action_for(
        {"type": "warm_cache", "target": "redis", "url": TARGET, "source_url": SOURCE,
         "keys_file": str(tmp_path / "keys.txt"), "concurrency": 4, "rate_per_second": 2000},
    )  # fmt: skip
    plan = action.plan()
    assert plan.before == {"hit_ratio": 0.25}
    assert plan.after["entries"] == 200
    assert action.execute(plan, dry_run=True).message == "dry run: 200 entries would be warmed"
    assert target.dbsize() == 50
    outcome = action.execute(plan, dry_run=False)
    assert outcome.ok
    assert outcome.state["warmed"] == 200
    assert target.get("product:7") == b"value-product:7"
    assert 0 < target.pttl("product:7") <= 600_000
    verified = action.verify(plan, timeout_seconds=1)
    assert verified.ok
    assert verified.state["hit_ratio"] == 1.0


def test_rate_limiter_spaces_slots_across_threads():
    limiter = RateLimiter(500.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = sorted(pool.map(lambda _: limiter.wait(), range(40)))
    gaps = [b - a for a, b in pairwise(slots)]
    assert min(gaps) >= limiter.interval - 1e-9  # never two requests closer than 1/rate


def test_warm_redis_from_key_value_lines_and_bad_files(caches, tmp_path):
    target, _ = caches
    (tmp_path / "kv.txt").write_text("a 1\nb 2\n")
    action = action_for(
        {
            "type": "warm_cache",
            "target": "redis",
            "url": TARGET,
            "keys_file": str(tmp_path / "kv.txt"),
        },
    )
    action.execute(action.plan(), dry_run=False)
    assert target.get("b") == b"2"
    (tmp_path / "bad.txt").write_text("a 1\nlonely\n")
    bad = action_for(
        {
            "type": "warm_cache",
            "target": "redis",
            "url": TARGET,
            "keys_file": str(tmp_path / "bad.txt"),
        },
    )
    with pytest.raises(InvalidInputError, match="line 2: no value for 'lonely'"):
        bad.plan()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_warm_http_reports_hits_before_and_after(receiver, tmp_path):
    receiver.cached.update({"/p/1", "/p/2"})
    (tmp_path / "paths.txt").write_text("\n".join(f"/p/{i}" for i in range(10)))
    action = action_for(
        {
            "type": "warm_cache",
            "target": "http",
            "url": receiver.url,
            "keys_file": str(tmp_path / "paths.txt"),
        },
    )
    outcome = action.execute(action.plan(), dry_run=False)
    assert outcome.state["hit_ratio_before"] == 0.2
    assert action.verify(action.plan(), timeout_seconds=1).state["hit_ratio"] == 1.0


def test_notify_posts_a_slack_compatible_body(receiver):
    action = action_for({"type": "notify", "url": f"{receiver.url}/ok", "text": "checkout scaled"})
    plan = action.plan()
    assert action.execute(plan, dry_run=True).message == "dry run: not sent"
    assert receiver.posts == []
    assert action.execute(plan, dry_run=False).ok
    assert receiver.bodies == [{"text": "checkout scaled"}]
    (post,) = receiver.posts
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Idempotency-Key"] == plan.details["idempotency_key"]
    refused = action_for({"type": "notify", "url": f"{receiver.url}/no", "text": "x"})
    with pytest.raises(PermanentError, match="refused: 403"):
        refused.execute(refused.plan(), dry_run=False)


def action_for(params: dict):
    return remediations.build(remediations.parse(params), _no_cluster)


def _no_cluster():
    raise AssertionError("these actions need no cluster")
