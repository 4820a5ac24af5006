"""Security detection over the per-client access records taken from server spans
(`collectors/traces.py`: `http.response.status_code`, `client.address`, `http.route` or
`url.path`, `user_agent.original`).

Each scan reads the last `window_minutes` and looks for, per client:
- credential stuffing: at least `burst_denied_per_minute` refusals (401, 403) in one minute;
- a slow brute force: `slow_denied` refusals over the window, none of its minutes a burst;
- rate abuse: at least `throttled_per_minute` throttles (429) in one minute;
- a scraper: at least `scraper_min_requests` requests, `scraper_factor` times the median
  client's, over at least `scraper_min_routes` distinct routes;
- probing: `new_routes_per_client` paths that no route of the service matched (frameworks
  set `http.route` only on a match, so a scanner's guesses arrive without one) and that the
  service never served in the `baseline_days` before the window (a service without that
  history is skipped);
and per authentication route (`auth_routes`):
- a distributed attack: a minute of at least `auth_min_requests` requests, at least
  `auth_denied_ratio` of them refused, from at least `auth_min_clients` clients (each client
  may stay under the per-client thresholds; its incident's client is `distributed`).

Findings become incidents of source `security` through the same intake as every alert, one
per suspicious client (its findings are its alerts), resolved when they are gone from a
scan. Policies never act on them unless their `match.source` names `security` (no scale-out
in answer to an attack by default). The scan deletes access records older than `keep_days`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controlplane.config import SecuritySettings, Settings
from controlplane.domain.errors import ControlPlaneError
from controlplane.incidents.intake import ingest_alert
from controlplane.loops import every
from controlplane.storage import Database
from controlplane.storage.coordination import Lease, process_id
from controlplane.storage.models import AccessPointRow

log = logging.getLogger(__name__)
SOURCE = "security"
LEASE = "security-scan"
KINDS = {
    "credential_stuffing": ("SecurityCredentialStuffing", "critical"),
    "slow_brute_force": ("SecuritySlowBruteForce", "warning"),
    "rate_abuse": ("SecurityRateAbuse", "warning"),
    "scraper": ("SecurityScraper", "warning"),
    "probing": ("SecurityProbing", "warning"),
    "auth_attack": ("SecurityDistributedAuthAttack", "critical"),
}
#: How often the baseline of routes each service serves is read again.
BASELINE_REFRESH = timedelta(hours=1)
#: The client of a finding about many clients at once.
DISTRIBUTED = "distributed"


@dataclass(frozen=True)
class Access:
    service: str
    route: str
    client: str
    minute: datetime
    requests: int
    denied: int
    throttled: int
    user_agent: str
    unrouted: int = 0


@dataclass(frozen=True)
class Finding:
    kind: str
    client: str
    service: str
    started: datetime
    evidence: str
    route: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.client, self.route


def findings(
    records: Sequence[Access],
    config: SecuritySettings,
    baseline: Mapping[str, set[str]] | None = None,
) -> list[Finding]:
    """What the rules find in a window of access records, per client and per auth route
    (`baseline`: the routes each service served before the window)."""
    by_client: dict[str, list[Access]] = defaultdict(list)
    for record in records:
        by_client[record.client].append(record)
    totals = {c: sum(r.requests for r in rs) for c, rs in by_client.items()}
    median = statistics.median(totals.values()) if totals else 0
    out = []
    for client, rows in sorted(by_client.items()):
        out += _per_client(client, rows, totals[client], median, config)
        out += _probing(client, rows, baseline or {}, config)
    return out + _auth_attacks(records, config)


def _probing(
    client: str, rows: list[Access], baseline: Mapping[str, set[str]], config: SecuritySettings
) -> list[Finding]:
    """Paths no route of a service matched and it never served before, from one client
    (services with a baseline only)."""
    new: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        known = baseline.get(r.service)
        if known and r.unrouted and r.route not in known:
            new[r.service].add(r.route)
    out = []
    for service, routes in sorted(new.items()):
        if len(routes) >= config.new_routes_per_client:
            first = min(r.minute for r in rows if r.service == service)
            examples = ", ".join(sorted(routes)[:5])
            out.append(
                Finding(
                    "probing",
                    client,
                    service,
                    first,
                    f"{client}: {len(routes)} routes {service} never served in the "
                    f"{config.baseline_days} days before, e.g. {examples}",
                )
            )
    return out


def _auth_attacks(records: Sequence[Access], config: SecuritySettings) -> list[Finding]:
    """Minutes of an auth route refusing most of many clients' requests."""
    auth = re.compile(config.auth_routes)
    minutes: dict[tuple[str, str, datetime], list[Access]] = defaultdict(list)
    for r in records:
        if auth.search(r.route):
            minutes[r.service, r.route, r.minute].append(r)
    attacked: dict[tuple[str, str], list[tuple[datetime, int, int]]] = defaultdict(list)
    for (service, route, minute), rows in minutes.items():
        requests, denied = sum(r.requests for r in rows), sum(r.denied for r in rows)
        clients = len({r.client for r in rows if r.denied})
        if (
            requests >= config.auth_min_requests
            and denied >= config.auth_denied_ratio * requests
            and clients >= config.auth_min_clients
        ):
            attacked[service, route].append((minute, denied, clients))
    return [
        Finding(
            "auth_attack",
            DISTRIBUTED,
            service,
            min(m for m, _, _ in spikes),
            f"{route} on {service}: up to {max(d for _, d, _ in spikes)} refused requests a "
            f"minute from up to {max(c for _, _, c in spikes)} clients, in {len(spikes)} minutes",
            route,
        )
        for (service, route), spikes in sorted(attacked.items())
    ]


def _per_client(
    client: str, rows: list[Access], total: int, median: float, config: SecuritySettings
) -> list[Finding]:
    denied_per_minute: dict[datetime, int] = defaultdict(int)
    throttled_per_minute: dict[datetime, int] = defaultdict(int)
    for r in rows:
        denied_per_minute[r.minute] += r.denied
        throttled_per_minute[r.minute] += r.throttled
    service = max(rows, key=lambda r: r.requests).service
    first = min(r.minute for r in rows)
    out = []
    bursts = [m for m, n in denied_per_minute.items() if n >= config.burst_denied_per_minute]
    denied = sum(denied_per_minute.values())
    if bursts:
        peak = max(denied_per_minute.values())
        targets = ", ".join(sorted({r.route for r in rows if r.denied}))
        out.append(
            Finding(
                "credential_stuffing",
                client,
                service,
                min(bursts),
                f"{client}: up to {peak} refused logins a minute on {targets}",
            )
        )
    elif denied >= config.slow_denied:
        out.append(
            Finding(
                "slow_brute_force",
                client,
                service,
                first,
                f"{client}: {denied} refused requests over {len(rows)} minutes, never a burst",
            )
        )
    throttled = [m for m, n in throttled_per_minute.items() if n >= config.throttled_per_minute]
    if throttled:
        out.append(
            Finding(
                "rate_abuse",
                client,
                service,
                min(throttled),
                f"{client}: up to {max(throttled_per_minute.values())} throttled requests a minute",
            )
        )
    routes = {r.route for r in rows}  # distinct ones
    if (
        total >= config.scraper_min_requests
        and total >= config.scraper_factor * median
        and len(routes) >= config.scraper_min_routes
    ):
        agent = rows[0].user_agent
        out.append(
            Finding(
                "scraper",
                client,
                service,
                first,
                f"{client} ({agent}): {total} requests over {len(routes)} routes, "
                f"{total / max(median, 1):.0f}x the median client",
            )
        )
    return out


class SecurityScanner:
    """Scans the access records and raises or resolves security incidents."""

    def __init__(
        self, settings: Settings, db: Database, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.config = settings.security
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lease = Lease(db, LEASE, process_id(), settings.coordination.lease_seconds, self.clock)
        #: What the last scan found, by (kind, client, route): when it started.
        self.open: dict[tuple[str, str, str], Finding] = {}
        self._baseline: tuple[datetime, dict[str, set[str]]] | None = None

    async def run_forever(self, stop: asyncio.Event) -> None:
        await every(
            self.config.interval_seconds, lambda: asyncio.to_thread(self.scan), stop, "security"
        )
        self.lease.release()

    def scan(self) -> list[Finding]:
        with self.lease.running() as mine:
            if not mine:
                return []
            now = self.clock()
            since = now - timedelta(minutes=self.config.window_minutes)
            with self.db.read() as session:
                rows = session.scalars(
                    select(AccessPointRow).where(AccessPointRow.minute >= since)
                ).all()
                baseline = self._routes_served(session, since)
                records = [
                    Access(
                        r.service,
                        r.route,
                        r.client,
                        r.minute,
                        r.requests,
                        r.denied,
                        r.throttled,
                        r.user_agent,
                        r.unrouted,
                    )
                    for r in rows
                ]
            found = {f.key: f for f in findings(records, self.config, baseline)}
            try:
                self._raise(found, now)
                self._forget(now - timedelta(days=self.config.keep_days))
            except ControlPlaneError as exc:
                log.warning("security incidents not written: %s", exc)
                return []
            return list(found.values())

    def _routes_served(self, session: Session, before: datetime) -> dict[str, set[str]]:
        """The baseline: routes each service served in the `baseline_days` before `before`,
        read again once an hour (a week of records changes little in an hour, and reading
        it every scan would read a week of per-minute rows a minute)."""
        if self._baseline is None or before - self._baseline[0] >= BASELINE_REFRESH:
            since = before - timedelta(days=self.config.baseline_days)
            self._baseline = before, _baseline(session, before, since)
        return self._baseline[1]

    def _forget(self, before: datetime) -> None:
        with self.lease.write() as session:
            session.execute(delete(AccessPointRow).where(AccessPointRow.minute < before))

    def _raise(self, found: dict[tuple[str, str, str], Finding], now: datetime) -> None:
        gone = [(self.open[key], now) for key in self.open.keys() - found.keys()]
        ongoing = [(self.open.get(key, f), None) for key, f in found.items()]
        with self.lease.write() as session:
            for finding, ended in [*ongoing, *gone]:
                ingest_alert(
                    session,
                    _alert(finding, finding.started, ended),
                    source=SOURCE,
                    group_key="/".join(finding.key),
                    joins_others=False,
                    group_by="client",
                )
        self.open = {key: self.open.get(key, f) for key, f in found.items()}


def _alert(finding: Finding, started: datetime, ended: datetime | None) -> dict[str, Any]:
    name, severity = KINDS[finding.kind]
    labels = {
        "alertname": name,
        "service": finding.service,
        "client": finding.client,
        "severity": severity,
        "kind": "security",
        **({"route": finding.route} if finding.route else {}),
    }
    fingerprint = hashlib.sha256("/".join(finding.key).encode()).hexdigest()[:16]
    alert: dict[str, Any] = {
        "status": "resolved" if ended else "firing",
        "labels": labels,
        "annotations": {"summary": finding.evidence},
        "startsAt": started.isoformat(),
        "endsAt": ended.isoformat() if ended else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    return alert


def _baseline(session: Session, before: datetime, since: datetime) -> dict[str, set[str]]:
    """The routes each service served in [since, before)."""
    rows = session.execute(
        select(AccessPointRow.service, AccessPointRow.route)
        .where(AccessPointRow.minute >= since, AccessPointRow.minute < before)
        .distinct()
    ).all()
    out: dict[str, set[str]] = defaultdict(set)
    for service, route in rows:
        out[service].add(route)
    return out
