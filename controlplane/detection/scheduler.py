"""The detection loop: every interval, fetch each signal's new points, score them, and turn
sustained anomalies into incidents through the same intake as Alertmanager alerts.

Per signal it keeps, in memory, the fitted detector and the current anomaly episode. An
episode opens after `sustain_points` anomalous points in a row and becomes a *firing* alert
(fingerprint = the signal, startsAt = the first anomalous point's timestamp) with the evidence
attached; it resolves once no point has been anomalous for `quiet_seconds` of data time. The
intake groups by service, deduplicates and keeps the timeline, so two schedulers on one store
(API replicas) raise the same alert, once. A source that is down or refuses the query marks
the signal `no_data` and never counts as an anomaly; the other signals carry on.

Several workers share the signals (`storage.coordination`): each cycle a worker frees the
signals rendezvous hashing now gives another live worker and takes those it is given that are
free or whose owner died. Taking one, it carries on the previous owner's open episode (kept
with the signal's state) and the points that owner already judged only train the detector
(re-warmed from history, or its own older row): an episode is neither opened twice nor lost.
Alerts and state are written only for the signals the store still says it owns.

A signal family (`detection.families`) is one PromQL query whose every series is a signal:
one range query a cycle fetches them all, from the oldest new point any of this worker's
members needs (the whole history when it just took one over). New series become signals as
they appear; every worker sees the same series, so they share them like any others.

Signals on the default ensemble are rows of detector fleets (`fleets.py`: columnar state, one
compiled call a cycle, saved to `detection.state_dir` so a restart resumes where it stopped).
Other detectors score in-process, or on a Dask cluster (`dask.address`) in batches of
signals: the detectors (small numpy state) travel to the workers and back with their state.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

import detectors
from controlplane.collectors import PrometheusSource, SignalSource, TraceSource
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import (
    DetectionSettings,
    Settings,
    SignalFamilySettings,
    SignalSettings,
)
from controlplane.detection.compute import Scorer, make_scorer
from controlplane.detection.fleets import Placed, SignalFleets, identity
from controlplane.domain.errors import ControlPlaneError, QueryError, SourceUnavailableError
from controlplane.domain.models import Severity
from controlplane.domain.series import MetricSeries, utc
from controlplane.incidents.intake import ingest_alert
from controlplane.loops import every
from controlplane.storage import Database
from controlplane.storage.coordination import SignalOwners, chunks
from controlplane.storage.db import upsert
from controlplane.storage.models import EvidenceRow, SignalStateRow

log = logging.getLogger(__name__)
ALERT_NAME = "AnomalyDetected"
# A record (the most unusual point in the series' memory) opens a critical incident.
CRITICAL_SCORE = 1.0
CRITICAL_AFTER = timedelta(minutes=15)


def signal_params(signal: SignalSettings) -> dict[str, Any]:
    """The signal's detector parameters, with novelty damping off unless it says otherwise.

    Offline (NAB, `aiops detect`) a persisting anomaly should score high once, at its onset.
    Here an episode must stay open while the anomaly lasts (sustain, quiet period), so
    repeated high scores are kept (damping=1) by default.
    """
    params = dict(signal.params)
    if "damping" in detectors.make(signal.detector).get_params():
        params.setdefault("damping", 1.0)
    return params


@dataclass
class Episode:
    onset: datetime
    last_anomalous: datetime
    peak: float
    severity: Severity
    evidence: dict[str, Any]
    escalated: bool = False  # the extra "sustained" alert was sent

    def as_dict(self) -> dict[str, Any]:
        """What the signal's state keeps, for the next owner."""
        return {
            "onset": self.onset.isoformat(),
            "last_anomalous": self.last_anomalous.isoformat(),
            "peak": self.peak,
            "severity": self.severity.value,
            "evidence": self.evidence,
            "escalated": self.escalated,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Episode:
        return cls(
            onset=datetime.fromisoformat(doc["onset"]),
            last_anomalous=datetime.fromisoformat(doc["last_anomalous"]),
            peak=float(doc["peak"]),
            severity=Severity(doc["severity"]),
            evidence=dict(doc["evidence"]),
            escalated=bool(doc["escalated"]),
        )


@dataclass
class SignalRun:
    """What the scheduler remembers about one signal between cycles."""

    signal: SignalSettings
    detector: detectors.BaseDetector | None = None  # detectors other than the ensemble
    placed: Placed | None = None  # the ensemble's: a row of a fleet
    last_ts: np.datetime64 | None = None
    recent: deque[tuple[datetime, float, float]] = field(default_factory=deque)
    streak: list[tuple[datetime, float]] = field(default_factory=list)
    episode: Episode | None = None
    status: str = "no_data"
    error: str | None = None
    last_score: float | None = None
    last_success_at: datetime | None = None
    #: Points up to here were judged by the previous owner: they train, they open nothing.
    judged_until: datetime | None = None


@dataclass
class CycleReport:
    fetched: int = 0
    no_data: int = 0
    points: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


class DetectionScheduler:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        scorer: Scorer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owners: SignalOwners | None = None,
    ) -> None:
        """`owners`: this worker's share of the signals; None scores every signal."""
        self.config: DetectionSettings = settings.detection
        self.owners = owners
        self.member_ttl = settings.coordination.member_ttl_seconds
        self.db = db
        self.clock = clock
        self.scorer = scorer or make_scorer(settings.dask)
        self.collector = (
            PrometheusCollector(settings.prometheus) if settings.prometheus.url else None
        )
        prometheus = PrometheusSource(self.collector) if self.collector else None
        self.sources: dict[str, SignalSource | None] = {
            "prometheus": prometheus,
            "traces": TraceSource(db),
        }
        self.runs = {s.name: self._new_run(s) for s in self.config.signals}
        self.members: dict[str, set[str]] = {f.name: set() for f in self.config.families}
        # Alerts whose write failed (store down); the intake is idempotent, so resending is safe.
        self.pending: list[tuple[SignalRun, dict[str, Any]]] = []
        self.fleets = SignalFleets(self.config.state_dir)
        self.saved_at: datetime | None = None
        self._restore()

    def _restore(self) -> None:
        """Resume the ensemble signals the last run saved (unchanged ones only)."""
        wanted = {
            run.signal.name: identity(run.signal, signal_params(run.signal))
            for run in self.runs.values()
            if SignalFleets.handles(run.signal)
        }
        for name, placed in self.fleets.restore(wanted).items():
            run = self.runs[name]
            run.placed, run.last_ts = placed, placed.last_ts
        if self.fleets.placed:
            log.info("detection resumed %d signals from saved state", len(self.fleets.placed))

    def save_state(self, now: datetime | None = None) -> None:
        """Save the detector state (when `snapshot_seconds` passed since the last save, or
        now when `now` is None: at stop)."""
        since = None if now is None or self.saved_at is None else now - self.saved_at
        if since is not None and since.total_seconds() < self.config.snapshot_seconds:
            return
        self.fleets.save()
        self.saved_at = now or self.clock()

    # -- the loop ---------------------------------------------------------------------------
    async def run_forever(self, stop: asyncio.Event) -> None:
        await every(self.config.interval_seconds, self.run_cycle, stop, "detection")
        await asyncio.to_thread(self.save_state)

    async def run_cycle(self) -> CycleReport:
        now = self.clock()
        report = CycleReport()
        runs = await asyncio.to_thread(self._share)  # first: the families fetch for its owners
        families = await asyncio.gather(*(self._fetch_family(f, now) for f in self.config.families))
        prefetched = {name: series for found in families for name, series in found.items()}
        if self.owners is None:  # one process scores everything: the new series too
            runs = list(self.runs.values())
        fetched = await asyncio.gather(*(self._fetch(run, now, prefetched) for run in runs))
        work = [
            (run, series) for run, series in zip(runs, fetched, strict=True) if series is not None
        ]
        report.fetched = len(work)
        report.no_data = len(runs) - len(work)
        scored = await asyncio.to_thread(self._score, work)
        alerts, self.pending = self.pending, []
        for (run, series), scores in zip(work, scored, strict=True):
            report.points += len(scores)
            alerts.extend((run, a) for a in self._advance(run, series, scores, now))
        try:
            await asyncio.to_thread(self._write, alerts, report, now)
        except ControlPlaneError:
            self.pending = alerts  # the store is down: deliver them with the next cycle
            raise
        await asyncio.to_thread(self.save_state, now)
        return report

    def _share(self) -> list[SignalRun]:
        """The runs this worker scores this cycle (all of them without `owners`); the ones it
        just took carry on their previous owner's episode."""
        if self.owners is None:
            return list(self.runs.values())
        handover = self.owners.sync(self.runs, self.member_ttl)
        if handover.claimed or handover.released:
            log.info(
                "detection: took %d signals, gave away %d, scores %d",
                len(handover.claimed),
                len(handover.released),
                len(handover.owned),
            )
        if handover.claimed:
            self._take_over(handover.claimed)
        return [run for name, run in self.runs.items() if name in handover.owned]

    def _take_over(self, names: set[str]) -> None:
        with self.db.read() as session:  # in chunks: a worker alone may take 100,000 at once
            states = {
                row.signal: row
                for chunk in chunks(names)
                for row in session.scalars(
                    select(SignalStateRow).where(SignalStateRow.signal.in_(chunk))
                )
            }
        for name in names:
            run, state = self.runs[name], states.get(name)
            run.streak.clear()
            run.episode = Episode.from_dict(state.episode) if state and state.episode else None
            run.judged_until = state.last_point_at if state else None

    def _score(self, work: list[tuple[SignalRun, MetricSeries]]) -> list[np.ndarray]:
        """The ensemble signals through their fleets, the others through the scorer."""
        in_fleets = [(run, s) for run, s in work if SignalFleets.handles(run.signal)]
        others = [(run, s) for run, s in work if not SignalFleets.handles(run.signal)]
        unplaced = [run for run, _ in in_fleets if run.placed is None]
        placed = self.fleets.place([(run.signal, signal_params(run.signal)) for run in unplaced])
        for run, where in zip(unplaced, placed, strict=True):
            run.placed = where  # once: the row stays the signal's
        places = [run.placed for run, _ in in_fleets if run.placed is not None]
        fleet_scores = self.fleets.score(
            [(p, s.values) for p, (_, s) in zip(places, in_fleets, strict=True)]
        )
        done = self.scorer.score([(self._detector(run), s.values) for run, s in others])
        by_run: dict[str, np.ndarray] = {}
        for (run, _), scores in zip(in_fleets, fleet_scores, strict=True):
            by_run[run.signal.name] = scores
        for (run, _), (detector, scores) in zip(others, done, strict=True):
            run.detector = detector
            by_run[run.signal.name] = scores
        return [by_run[run.signal.name] for run, _ in work]

    # -- fetching --------------------------------------------------------------------------
    def _new_run(self, signal: SignalSettings) -> SignalRun:
        return SignalRun(signal, recent=deque(maxlen=self.config.evidence_points))

    def _start(self, run: SignalRun, now: datetime) -> datetime:
        """The first point to fetch: after the last one seen, at most the history back."""
        earliest = now - timedelta(seconds=self.config.history_seconds)
        if run.last_ts is None:  # a long stop resumes on at most the history's length
            return earliest
        return max(earliest, utc(run.last_ts) + timedelta(seconds=run.signal.step_seconds))

    async def _fetch_family(
        self, family: SignalFamilySettings, now: datetime
    ) -> dict[str, MetricSeries | None]:
        """Every series of the family's query since the oldest point this worker's members
        need, by signal name (None for all when the query failed); a new signal for each
        series not seen before. Every worker reads every series, members or not, so that all
        of them know the same signals to share out."""
        if self.collector is None:
            return {}  # its members say "no data" when owned (prometheus.url unset)
        known = self.members[family.name]
        # From the oldest point a member of this worker needs; at least a short look back,
        # in which every live series shows (new ones included).
        starts = [self._start(self.runs[n], now) for n in known if self._scores(n)]
        start = min([*starts, now - timedelta(seconds=5 * family.step_seconds)])
        if not known:  # the first look: the whole history
            start = now - timedelta(seconds=self.config.history_seconds)
        try:
            found = await self.collector.collect(family.query, start, now, family.step_seconds)
        except (SourceUnavailableError, QueryError) as exc:
            log.warning("signal family %s: no data: %s", family.name, exc)
            return dict.fromkeys(known)
        series: dict[str, MetricSeries | None] = {}
        for one in found:
            try:
                signal = family.member(one.labels)
            except (KeyError, ValueError) as exc:  # a series without a templated label
                log.warning("signal family %s: series %s skipped: %s", family.name, one.labels, exc)
                continue
            if signal.name not in self.runs:
                self.runs[signal.name] = self._new_run(signal)
                known.add(signal.name)
            series[signal.name] = one
        return series

    def _in_family(self, name: str) -> bool:
        return any(name in known for known in self.members.values())

    def _scores(self, name: str) -> bool:
        return self.owners is None or name in self.owners.owned

    async def _fetch(
        self, run: SignalRun, now: datetime, prefetched: dict[str, MetricSeries | None]
    ) -> MetricSeries | None:
        signal = run.signal
        source = self.sources["traces" if signal.query.startswith("traces:") else "prometheus"]
        if source is None:
            run.status, run.error = "no_data", "prometheus.url is not configured"
            return None
        start = self._start(run, now)
        if start > now:  # the next point is not due yet: nothing new, and nothing wrong
            return None
        try:
            if self._in_family(signal.name):  # fetched with its family, or nothing new
                if signal.name not in prefetched:
                    return None
                series = prefetched[signal.name]
                if series is None:
                    raise SourceUnavailableError("its family's query failed")
                keep = series.timestamps >= np.datetime64(start.replace(tzinfo=None))
                series = MetricSeries(
                    series.name, series.timestamps[keep], series.values[keep], series.labels
                )
            else:
                series = await source.fetch(signal, start, now)
        except (SourceUnavailableError, QueryError) as exc:
            run.status, run.error = "no_data", str(exc)
            log.warning("signal %s: no data: %s", signal.name, exc)
            return None
        if series is not None and run.last_ts is not None:
            keep = series.timestamps > run.last_ts  # an edge point may come back
            series = MetricSeries(
                series.name, series.timestamps[keep], series.values[keep], series.labels
            )
        if series is None or not len(series):
            if run.last_success_at is None:  # never any data; otherwise: nothing new yet
                run.status, run.error = "no_data", "the query returned no points"
            return None
        run.error, run.last_success_at = None, now
        return series

    def _detector(self, run: SignalRun) -> detectors.BaseDetector:
        if run.detector is None:
            return detectors.make(run.signal.detector, **signal_params(run.signal)).fit([])
        return run.detector

    # -- anomaly episodes ------------------------------------------------------------------
    def _advance(
        self, run: SignalRun, series: MetricSeries, scores: np.ndarray, now: datetime
    ) -> list[dict[str, Any]]:
        """Feed scored points into the signal's episode; returns alerts to deliver.

        Points older than the quiet period (the warm-up history of a first cycle, or a backlog)
        train the detector and can start a streak, but cannot open an episode: an anomaly that
        was over before anyone could look would open and resolve in the same breath.
        """
        alerts = []
        threshold, quiet = self.config.threshold, timedelta(seconds=self.config.quiet_seconds)
        current = now - quiet
        for stamp, value, score in zip(series.timestamps, series.values, scores, strict=True):
            at = utc(stamp)
            run.recent.append((at, float(value), float(score)))
            episode = run.episode
            if run.judged_until is not None and at <= run.judged_until:
                if score < threshold:  # judged by the previous owner: the streak only
                    run.streak.clear()
                else:
                    run.streak.append((at, float(score)))
            elif score >= threshold:
                run.streak.append((at, float(score)))
                if episode is not None:
                    episode.last_anomalous = at
                    episode.peak = max(episode.peak, float(score))
                    if self._escalates(episode, at):
                        alerts.append(self._alert(run, episode, "firing", escalated=True))
                elif len(run.streak) >= self.config.sustain_points and at >= current:
                    run.episode = self._open(run)
                    alerts.append(self._alert(run, run.episode, "firing"))
            else:
                run.streak.clear()
                if episode is not None and at - episode.last_anomalous >= quiet:
                    alerts.append(self._alert(run, episode, "resolved", ends_at=at))
                    if episode.escalated:
                        alerts.append(
                            self._alert(run, episode, "resolved", ends_at=at, escalated=True)
                        )
                    run.episode = None
        run.last_ts = series.timestamps[-1]
        if run.placed is not None:
            run.placed.last_ts = run.last_ts  # saved with the state it goes with
        run.last_score = float(scores[-1])
        run.status = "anomalous" if run.episode else "ok"
        return alerts

    def _open(self, run: SignalRun) -> Episode:
        onset = run.streak[0][0]
        peak = max(s for _, s in run.streak)
        severity = Severity.CRITICAL if peak >= CRITICAL_SCORE else Severity.WARNING
        if run.placed is not None:
            params, why = self.fleets.params(run.placed), self.fleets.explain(run.placed)
        else:
            detector = self._detector(run)
            params, why = detector.get_params(), detector.explain()
        evidence = {
            "signal": run.signal.name,
            "service": run.signal.service,
            "query": run.signal.query,
            "detector": run.signal.detector,
            "params": params,
            "threshold": self.config.threshold,
            "why": why,  # in words, for the person who reads the incident
            "onset": onset.isoformat(),
            "points": [
                {"at": at.isoformat(), "value": _json_float(v), "score": round(s, 4)}
                for at, v, s in run.recent
            ],
        }
        return Episode(onset, run.streak[-1][0], peak, severity, evidence)

    def _escalates(self, episode: Episode, at: datetime) -> bool:
        """A warning becomes critical once it lasted CRITICAL_AFTER (one extra alert)."""
        if episode.severity == Severity.CRITICAL or at - episode.onset < CRITICAL_AFTER:
            return False
        episode.severity = Severity.CRITICAL
        episode.escalated = True
        return True

    def _alert(
        self,
        run: SignalRun,
        episode: Episode,
        status: str,
        *,
        ends_at: datetime | None = None,
        escalated: bool = False,
    ) -> dict[str, Any]:
        signal = run.signal
        fingerprint_of = f"{signal.name}{'/sustained' if escalated else ''}"
        severity = Severity.CRITICAL if escalated else episode.severity
        return {
            "status": status,
            "labels": {
                "alertname": ALERT_NAME,
                "signal": signal.name,
                "service": signal.service,
                "detector": signal.detector,
                "severity": severity.value,
            },
            "annotations": {
                "summary": f"{signal.name} anomalous since {episode.onset:%Y-%m-%d %H:%M} UTC "
                f"(peak score {episode.peak:.2f})",
                "query": signal.query,
                **({"escalation": f"anomalous for {CRITICAL_AFTER}"} if escalated else {}),
            },
            "startsAt": episode.onset.isoformat(),
            "endsAt": (ends_at.isoformat() if ends_at else "0001-01-01T00:00:00Z"),
            "generatorURL": "",
            "fingerprint": hashlib.sha256(fingerprint_of.encode()).hexdigest()[:16],
        }

    # -- writing -----------------------------------------------------------------------------
    def _write(
        self, alerts: list[tuple[SignalRun, dict[str, Any]]], report: CycleReport, now: datetime
    ) -> None:
        """Deliver the alerts and record the state of the signals this worker still owns (the
        owner rows are locked first: a worker whose signals moved on writes none of them)."""
        with self.db.write() as session:
            runs = list(self.runs.values())
            if self.owners is not None:
                owned = self.owners.owned_for_update(session)
                runs = [run for run in runs if run.signal.name in owned]
                alerts = [(run, alert) for run, alert in alerts if run.signal.name in owned]
            for run, alert in alerts:
                result = ingest_alert(
                    session, alert, source=run.signal.source, group_key=run.signal.name
                )
                report.opened.extend(result.opened)
                report.resolved.extend(result.resolved)
                incident_ids = result.opened + result.updated
                opening = alert["status"] == "firing" and "escalation" not in alert["annotations"]
                if opening and run.episode and incident_ids:
                    session.add(_evidence(incident_ids[0], run.episode))
            upsert(
                session, SignalStateRow.__table__, [_state(run, now) for run in runs], ["signal"]
            )


def _evidence(incident_id: int, episode: Episode) -> EvidenceRow:
    return EvidenceRow(
        incident_id=incident_id,
        signal=episode.evidence["signal"],
        service=episode.evidence["service"],
        onset_at=episode.onset,
        peak_score=episode.peak,
        data=episode.evidence,
    )


#: Points of the recent window the expected band is read from (about an hour at 1-minute steps).
BAND_POINTS = 64
#: Half-width of the band in robust standard deviations (1.4826 MAD): the conventional 3 sigma.
BAND_SIGMAS = 3.0


def expected(run: SignalRun) -> dict[str, float | None]:
    """The last value, and what the recent window before it expects (median +- 3 robust
    standard deviations): the `y`, `yhat`, `yhat_lower` and `yhat_upper` vmanomaly users chart.
    The same band for every detector, so it does not depend on one detector's internals."""
    if not run.recent:
        return {"last_value": None, "yhat": None, "yhat_lower": None, "yhat_upper": None}
    last = run.recent[-1][1]
    before = itertools.islice(reversed(run.recent), 1, BAND_POINTS + 1)  # no copy of the deque
    window = np.array([v for _, v, _ in before], dtype=float)
    window = window[np.isfinite(window)]
    if window.size < 2:
        return {
            "last_value": _json_float(last),
            "yhat": None,
            "yhat_lower": None,
            "yhat_upper": None,
        }
    center = float(np.median(window))
    spread = BAND_SIGMAS * 1.4826 * float(np.median(np.abs(window - center)))
    return {
        "last_value": _json_float(last),
        "yhat": _json_float(center),
        "yhat_lower": _json_float(center - spread),
        "yhat_upper": _json_float(center + spread),
    }


def _state(run: SignalRun, now: datetime) -> dict[str, Any]:
    return dict(
        signal=run.signal.name,
        service=run.signal.service,
        query=run.signal.query,
        detector=run.signal.detector,
        status=run.status,
        last_error=run.error,
        last_point_at=utc(run.last_ts) if run.last_ts is not None else None,
        last_score=run.last_score,
        **expected(run),
        last_success_at=run.last_success_at,
        updated_at=now,
        episode=run.episode.as_dict() if run.episode else None,
    )


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 6)
