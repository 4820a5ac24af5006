"""Warm a cache: replay a list of keys (Redis) or paths (HTTP) with bounded concurrency and
rate, and report the hit ratio before and after.

- Redis: each key's value (and its TTL) is copied from `source_url` to `url`; without a
  source, the keys file holds `key value` lines. The hit ratio is the share of the listed keys
  present in the target.
- HTTP: each path is fetched from `url`; a response counts as a hit when the cache says so
  (`X-Cache: HIT` or a positive `Age`). The ratio after is measured on a second pass over a
  sample of the paths.

Warming only adds entries, so there is nothing to roll back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import redis
from pydantic import Field

from controlplane.domain.errors import InvalidInputError, TemporaryError
from remediations.base import Action, ActionParams, Outcome, Plan, TargetRef, url_identity

SAMPLE = 50
#: Share of the listed entries that must be cached after warming for verification to pass.
MIN_HIT_RATIO = 0.95


class RateLimiter:
    """At most `rate` calls per second across threads (a simple token schedule)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> float:
        """Sleep until this caller's slot; returns the slot (monotonic seconds)."""
        with self.lock:
            now = time.monotonic()
            slot = max(self.next, now)
            self.next = slot + self.interval
        time.sleep(max(0.0, slot - now))
        return slot


class WarmCacheParams(ActionParams):
    type: Literal["warm_cache"]
    target: Literal["redis", "http"]
    url: str = Field(..., description="redis://host:port/db or the HTTP base URL.")
    keys_file: str = Field(..., description="Keys (redis) or paths (http), one per line.")
    source_url: str | None = Field(
        None, description="redis: where values are copied from (else the keys are touched)."
    )
    concurrency: int = Field(8, ge=1, le=256)
    rate_per_second: float = Field(200, gt=0)


class WarmCache(Action[WarmCacheParams]):
    name = "warm_cache"
    Params = WarmCacheParams
    reversible = False  # warming only adds entries

    @classmethod
    def target(cls, params: WarmCacheParams) -> TargetRef:
        kind = "RedisCache" if params.target == "redis" else "HTTPCache"
        return TargetRef(kind, url_identity(params.url))

    @property
    def kind(self) -> str:
        return self.params.target

    @property
    def url(self) -> str:
        return self.params.url

    @property
    def keys_file(self) -> Path:
        return Path(self.params.keys_file)

    def entries(self) -> list[tuple[str, str | None]]:
        """(key, value) pairs from the keys file; value only in `key value` lines."""
        try:
            lines = self.keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInputError(
                f"warm_cache: keys_file {str(self.keys_file)!r}: {exc.strerror}"
            ) from None
        out = []
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            key, _, value = text.partition(" ")
            if self.kind == "redis" and self.params.source_url is None and not value:
                raise InvalidInputError(
                    f"warm_cache: {self.keys_file}: line {number}: no value for {key!r} "
                    "(give 'key value' lines, or a source_url to copy from)"
                )
            out.append((key, value or None))
        if not out:
            raise InvalidInputError(f"warm_cache: keys_file {str(self.keys_file)!r} lists no keys")
        return out

    def plan(self) -> Plan:
        entries = self.entries()
        before = self._hit_ratio([k for k, _ in entries]) if self.kind == "redis" else None
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            {"hit_ratio": before},
            {"hit_ratio": 1.0, "entries": len(entries)},
            f"warm {len(entries)} {self.kind} entries at {self.target(self.params).name} "
            f"({self.params.concurrency} at a time, at most {self.params.rate_per_second:g}/s)",
            details={"first": [k for k, _ in entries[:5]]},
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        entries = self.entries()
        if dry_run:
            return Outcome(True, f"dry run: {len(entries)} entries would be warmed")
        started = time.monotonic()
        warm = self._redis_warmer() if self.kind == "redis" else self._http_warmer()
        results = self._run(warm, entries)
        failed = sum(not ok for ok, _ in results)
        hits = sum(hit for _, hit in results)
        state: dict[str, Any] = {
            "warmed": len(entries) - failed,
            "failed": failed,
            "seconds": round(time.monotonic() - started, 3),
        }
        if self.kind == "http":
            state["hit_ratio_before"] = round(hits / len(entries), 4)
        return Outcome(failed == 0, f"{state['warmed']} warmed, {failed} failed", state)

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        keys = [k for k, _ in self.entries()]
        if self.kind == "redis":
            ratio = self._hit_ratio(keys)
        else:
            sample = keys[:: max(1, len(keys) // SAMPLE)][:SAMPLE]
            ratio = sum(
                hit for _, hit in self._run(self._http_warmer(), [(k, None) for k in sample])
            ) / len(sample)
        return Outcome(
            ratio >= MIN_HIT_RATIO, f"hit ratio {ratio:.1%} after warming", {"hit_ratio": ratio}
        )

    def rollback(self, plan: Plan) -> Outcome:
        return Outcome(True, "warming only adds cache entries: nothing to undo")

    def drift(self, planned: Plan, fresh: Plan) -> str | None:
        return None  # a warmer cache than planned is no reason not to warm it

    # -- workers ---------------------------------------------------------------------------
    def _run(
        self, warm: Callable[[str, str | None], bool], entries: list[tuple[str, str | None]]
    ) -> list[tuple[bool, bool]]:
        limiter = RateLimiter(self.params.rate_per_second)

        def one(entry: tuple[str, str | None]) -> tuple[bool, bool]:
            limiter.wait()
            try:
                return True, warm(*entry)
            except (redis.RedisError, httpx.HTTPError):
                return False, False

        with ThreadPoolExecutor(max_workers=self.params.concurrency) as pool:
            return list(pool.map(one, entries))

    def _redis_warmer(self) -> Callable[[str, str | None], bool]:
        target = _redis(self.url)
        source = _redis(self.params.source_url) if self.params.source_url else None

        def warm(key: str, value: str | None) -> bool:
            if source is None:
                target.set(key, value or "")
                return False
            data, ttl = source.get(key), source.pttl(key)
            if data is None:
                raise redis.RedisError(f"{key} is not in the source")
            target.set(key, data, px=ttl if isinstance(ttl, int) and ttl > 0 else None)
            return False

        return warm

    def _http_warmer(self) -> Callable[[str, str | None], bool]:
        session = httpx.Client(base_url=self.url, timeout=10.0)

        def warm(path: str, _: str | None) -> bool:
            response = session.get(path)
            response.raise_for_status()
            age = response.headers.get("Age", "0")
            return "HIT" in response.headers.get("X-Cache", "").upper() or (
                age.isdigit() and int(age) > 0
            )

        return warm

    def _hit_ratio(self, keys: list[str]) -> float:
        client = _redis(self.url)
        try:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            present = sum(int(bool(v)) for v in pipe.execute())
        except redis.RedisError as exc:
            where = self.target(self.params).name
            raise TemporaryError(f"warm_cache: Redis at {where}: {exc}") from None
        return present / len(keys)


def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
