"""The ensemble over many series at once: columnar state, one compiled call per round.

`EnsembleFleet` holds what `EnsembleDetector` holds for one series, for every series of a
fleet, as arrays with one row per series (float32 windows, histograms and rings; a pool for
the seasonal rings, whose length depends on each series' cycle). A round of new points for
any set of rows is one call into `_kernels`' step functions, the very steps the per-series
detectors run, so a series scores exactly as it would through `EnsembleDetector` (a test
checks it on NAB). What the compiled loop cannot do, choosing a cycle once a series' seasonal
warm-up is complete, happens in Python between two calls, for the few series concerned.

The state can be written to a file and read back (`save`, `load`): a restart resumes where it
stopped instead of warming the whole fleet up again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
from numba import njit

from controlplane.domain.errors import InvalidInputError
from detectors import _kernels
from detectors.base import BASES, as_values
from detectors.cusum import CusumDetector
from detectors.ensemble import COMBINE, EnsembleDetector
from detectors.holt import HoltWintersDetector
from detectors.robust import RobustZScoreDetector
from detectors.seasonal import SeasonalDetector, find_period

#: Member kinds, in the compiled loop's numbering.
KINDS = {"robust_zscore": 0, "seasonal": 1, "cusum": 2, "holt_winters": 3}
#: The seasonal member's period while its warm-up is still collecting points.
WARMING = -1
#: Rows warmed up per call (bounds the warm-up buffers held at once).
WARM_BATCH = 4096
#: The state the compiled loops take, grouped into tuples (names of `EnsembleFleet.state`).
CALIBRATION = ("cal_state", "cal_point", "cal_mean", "cal_ring")
ROBUST = ("r_ring", "r_order", "r_state")
SEASONAL = ("s_win", "s_order", "s_state", "s_pushed", "s_period", "s_drift", "s_offset", "s_size")
OTHERS = ("c_state", "h_state")  # CUSUM's and Holt's
ENSEMBLE = ("recent", "nov_state", "rng", "last", "last_range")  # novelty, range, explanation


# nogil: a round of a large fleet runs in a thread beside the API's event loop.
@njit(cache=True, error_model="numpy", nogil=True)
def _round(
    rows: np.ndarray,
    lines: np.ndarray,
    chunk: np.ndarray,
    lengths: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    out: np.ndarray,
    config: tuple[np.ndarray, ...],
    calibration: tuple[np.ndarray, ...],
    robust: tuple[np.ndarray, ...],
    seasonal: tuple[np.ndarray, ...],
    pool: np.ndarray,
    warming: tuple[np.ndarray, ...],
    others: tuple[np.ndarray, ...],
    ensemble: tuple[np.ndarray, ...],
    fparams: np.ndarray,
    iparams: np.ndarray,
) -> None:
    """Score chunk[lines[j], starts[j]:lengths[j]] as the continuation of series rows[j]
    (into out[lines[j]]).

    A row stops early (stops[j] = the next position) right after the point that completes
    its seasonal warm-up: the caller chooses the cycle and calls again from there; otherwise
    stops[j] = -1. fparams = [floor, alpha, squash, damping, tolerance (< 0: no range rule),
    cusum drift, cusum rate, holt alpha, holt beta]; iparams = [basis, combine (0 max,
    1 mean), seasons, warmup].
    """
    kinds, weights, mean_of, ring_widths = config
    cal_state, cal_point, cal_mean, cal_ring = calibration
    r_ring, r_order, r_state = robust
    s_win, s_order, s_state, s_pushed, s_period, s_drift, s_offset, s_size = seasonal
    warm, warm_slot, warm_count = warming
    c_state, h_state = others
    recent, nov_state, rng, last, last_range = ensemble
    floor, alpha, squash, damping, tolerance = (
        fparams[0],
        fparams[1],
        fparams[2],
        fparams[3],
        fparams[4],
    )
    basis, combine, seasons, warmup = iparams[0], iparams[1], iparams[2], iparams[3]
    empty = np.zeros(0, np.float32)
    unused_window = (
        np.zeros(1, np.float32),
        np.zeros(1, np.uint8),
        np.zeros(_kernels.ROBUST_STATE),
    )
    unused_state = np.zeros(5)
    members = kinds.shape[0]
    total_weight = weights.sum()
    scratch = np.zeros((members, chunk.shape[1]))  # one row's rarities, member by member
    for j in range(rows.shape[0]):
        i, line = rows[j], lines[j]
        stops[j] = -1
        # This row's state, as views made once for all its points.
        states, points, rings = cal_state[:, i], cal_point[:, i], cal_ring[:, i]
        means = cal_mean[:, i]
        # (A member that is not in the ensemble reads placeholders it never uses.)
        robusts = (r_ring[i], r_order[i], r_state[i]) if r_state.shape[0] else unused_window
        cusums = c_state[i] if c_state.shape[0] else unused_state
        holts = h_state[i] if h_state.shape[0] else unused_state
        recents, novelties, ranges = recent[i], nov_state[i], rng[i]
        start, end = starts[j], lengths[j]
        if s_period[i] == WARMING and end - start >= warmup - warm_count[i]:
            end = start + warmup - warm_count[i]  # pause after the warm-up's last point
            stops[j] = end
        # Member by member over the row's points (tight loops over one member's state).
        for m in range(members):
            kind = kinds[m]
            member_means = means[mean_of[m]] if mean_of[m] >= 0 else empty
            member_ring = rings[m, : ring_widths[m]]
            # One loop per kind, so that the loop itself has no branch on it.
            if kind == 0:
                for t in range(start, end):
                    v = chunk[line, t]
                    scratch[m, t - start] = _kernels.robust_z_step(
                        v, v, robusts[0], robusts[1], robusts[2], floor, basis
                    )
            elif kind == 1:
                period, drift = s_period[i], s_drift[i]
                ring = pool[s_offset[i] : s_offset[i] + s_size[i]]
                window, order, state, pushed = s_win[i], s_order[i], s_state[i], s_pushed[i]
                for t in range(start, end):
                    v = chunk[line, t]
                    raw = math.nan
                    if period == WARMING:
                        warm[warm_slot[i], warm_count[i]] = v
                        warm_count[i] += 1
                    elif period > 0:
                        residual = _kernels.seasonal_step(v, ring, pushed, period, seasons, drift)
                        raw = _kernels.robust_z_step(
                            residual, v, window, order, state, floor, basis
                        )
                    scratch[m, t - start] = raw
            elif kind == 2:
                for t in range(start, end):
                    scratch[m, t - start] = _kernels.cusum_step(
                        chunk[line, t], cusums, fparams[5], fparams[6]
                    )
            else:
                for t in range(start, end):
                    scratch[m, t - start] = _kernels.holt_step(
                        chunk[line, t], holts, fparams[7], fparams[8]
                    )
            for t in range(start, end):  # then its calibration (two tight loops, not one)
                scratch[m, t - start] = _kernels.rarity_step(
                    scratch[m, t - start],
                    states[m],
                    points[m],
                    member_means,
                    member_ring,
                    alpha,
                    squash,
                )
            if end > start:
                last[i, m] = scratch[m, end - 1 - start]
        for t in range(start, end):
            combined = 0.0
            for m in range(members):
                weighted = scratch[m, t - start] * weights[m]
                combined = max(combined, weighted) if combine == 0 else combined + weighted
            if combine == 1:
                combined /= total_weight
            combined = min(max(combined, 0.0), 1.0)
            score = _kernels.novelty_step(combined, recents, novelties, damping)
            if tolerance >= 0.0:
                v = chunk[line, t]
                last_range[i, 0], last_range[i, 1] = ranges[1], ranges[2]
                breakout = _kernels.range_step(v, ranges, tolerance)
                last_range[i, 2] = breakout
                score = max(score, breakout)
            out[line, t] = score


@njit(cache=True, error_model="numpy", nogil=True)
def _replay(
    rows: np.ndarray,
    warm: np.ndarray,
    warm_slot: np.ndarray,
    member: int,
    mean_index: int,
    ring_width: int,
    calibration: tuple[np.ndarray, ...],
    seasonal: tuple[np.ndarray, ...],
    pool: np.ndarray,
    fparams: np.ndarray,
    iparams: np.ndarray,
) -> None:
    """The seasonal member's warm-up, replayed through its residual and calibration once its
    cycle is chosen (what `SeasonalDetector._choose_period` does for one series)."""
    cal_state, cal_point, cal_mean, cal_ring = calibration
    s_win, s_order, s_state, s_pushed, s_period, s_drift, s_offset, s_size = seasonal
    floor, alpha, squash = fparams[0], fparams[1], fparams[2]
    basis, seasons = iparams[0], iparams[2]
    empty = np.zeros(0, np.float32)
    raws = np.empty(warm.shape[1])
    for j in range(rows.shape[0]):
        i = rows[j]
        ring = pool[s_offset[i] : s_offset[i] + s_size[i]]
        means = cal_mean[mean_index, i] if mean_index >= 0 else empty
        values = warm[warm_slot[i]]
        period, drift = s_period[i], s_drift[i]
        window, order, state, pushed = s_win[i], s_order[i], s_state[i], s_pushed[i]
        for t in range(values.shape[0]):  # the residuals' robust z, then their calibration
            v = values[t]
            residual = _kernels.seasonal_step(v, ring, pushed, period, seasons, drift)
            raws[t] = _kernels.robust_z_step(residual, v, window, order, state, floor, basis)
        states, points, rings = cal_state[member, i], cal_point[member, i], cal_ring[member, i]
        for t in range(values.shape[0]):
            _kernels.rarity_step(raws[t], states, points, means, rings[:ring_width], alpha, squash)


class EnsembleFleet:
    """Many series scored by one ensemble configuration (`EnsembleDetector`'s parameters).

    Rows are added with `add` (fresh state) and fed with `update` (one or more points per row,
    for any subset of rows); `warm` is `update` on long histories, in batches.
    """

    def __init__(self, **params: Any) -> None:
        template = EnsembleDetector(**params).fit([])  # validates, and gives the members
        self.params = template.get_params()
        unknown = [m for m in template.members if m not in KINDS]
        if unknown:  # an ensemble member the compiled loop does not know yet
            raise InvalidInputError(f"the fleet cannot run member {unknown[0]!r} yet")
        self.kinds = np.array([KINDS[m] for m in template.members], np.int64)
        self.members = template.members
        weights = template.weights or (1.0,) * len(template.members)
        self.weights = np.array(weights, np.float64)
        by_kind = {type(m).name: m for m in template.members_}
        self._member_params(by_kind)
        averaged = [m.averages_bursts and template.mean_window > 1 for m in template.members_]
        self.mean_of = np.cumsum(averaged) - 1
        self.mean_of[~np.array(averaged)] = -1
        self.ring_widths = np.array([template.mean_window if a else 1 for a in averaged])
        self.fparams = np.array(
            [
                template.floor,
                template.calibration_alpha,
                template.squash,
                template.damping,
                -1.0 if template.range_tolerance is None else template.range_tolerance,
                self.cusum.drift,
                self.cusum.rate,
                self.holt.alpha,
                self.holt.beta,
            ]
        )
        self.iparams = np.array(
            [
                BASES.index(template.floor_basis),
                COMBINE.index(template.combine),
                self.seasonal.seasons,
                self.seasonal.warmup,
            ],
            np.int64,
        )
        self.n = 0
        self.state: dict[str, np.ndarray] = {}
        self.pool = np.zeros(0, np.float32)
        self.pool_used = 0
        self.warm_buffer = np.zeros((0, self.seasonal.warmup))
        self.free_slots: list[int] = []
        self.meta: dict[str, Any] = {}  # what `load` read beside the state
        self._allocate(0)

    def _member_params(self, by_kind: dict[str, Any]) -> None:
        """Each member's own constants (the ensemble shares floor, basis, jitter with them)."""
        self.robust = by_kind.get("robust_zscore") or RobustZScoreDetector()
        self.seasonal = by_kind.get("seasonal") or SeasonalDetector()
        self.cusum = by_kind.get("cusum") or CusumDetector()
        self.holt = by_kind.get("holt_winters") or HoltWintersDetector()
        if self.robust.window != self.seasonal.window:
            raise InvalidInputError("the fleet needs one robust window for robust z and seasonal")
        self.window = self.robust.window

    # -- rows ---------------------------------------------------------------------------------
    def _fresh(self, rows: int) -> dict[str, np.ndarray]:
        members, width, bins = len(self.kinds), self.window, _kernels.RARE_BINS
        has = {kind: kind in self.kinds for kind in range(4)}
        n_means = int((self.mean_of >= 0).sum())
        cal_state = np.zeros((members, rows, _kernels.RARE_STATE))
        cal_state[:, :, _kernels.RARE_GROWTH] = 1.0

        def some(kind: int, *shape: int, dtype: Any = np.float64) -> np.ndarray:
            return np.zeros((rows if has[kind] else 0, *shape), dtype)

        return {
            "cal_state": cal_state,
            "cal_point": np.zeros((members, rows, bins), np.float32),
            "cal_mean": np.zeros((n_means, rows, bins), np.float32),
            "cal_ring": np.zeros((members, rows, int(self.ring_widths.max())), np.float32),
            "r_ring": some(0, width, dtype=np.float32),
            "r_order": some(0, width, dtype=np.uint8),
            "r_state": some(0, _kernels.ROBUST_STATE),
            "s_win": some(1, width, dtype=np.float32),
            "s_order": some(1, width, dtype=np.uint8),
            "s_state": some(1, _kernels.ROBUST_STATE),
            "s_pushed": some(1, 2),
            "s_period": np.full(rows, WARMING if has[1] else 0, np.int32),
            "s_drift": np.zeros(rows, np.int32),
            "s_offset": np.zeros(rows, np.int64),
            "s_size": np.zeros(rows, np.int64),
            "warm_slot": np.full(rows, -1, np.int64),
            "warm_count": np.zeros(rows, np.int64),
            "c_state": some(2, 5),
            "h_state": some(3, 4),
            "recent": np.zeros((rows, self.novelty_window), np.float32),
            "nov_state": np.zeros((rows, 4)),
            "rng": np.zeros((rows, 3)),
            "last": np.zeros((rows, members), np.float32),
            "last_range": np.zeros((rows, 3)),
        }

    @property
    def novelty_window(self) -> int:
        return max(int(self.params["novelty_window"]), 1)

    def _allocate(self, rows: int) -> None:
        fresh = self._fresh(rows)
        if not self.state:
            self.state = fresh
            return
        self._append(fresh)

    def _append(self, rows: dict[str, np.ndarray]) -> None:
        """Rows after the present ones (the per-member arrays keep members first)."""
        for name, array in rows.items():
            axis = 1 if array.ndim == 3 else 0
            self.state[name] = np.concatenate([self.state[name], array], axis=axis)

    def add(self, count: int) -> np.ndarray:
        """`count` new series with fresh state; returns their row numbers."""
        rows = np.arange(self.n, self.n + count)
        self._allocate(count)
        self.n += count
        return rows

    def __len__(self) -> int:
        return self.n

    # -- scoring ------------------------------------------------------------------------------
    def update(self, values: Any, rows: Any = None) -> np.ndarray:
        """Score new points: values[j] (one point, or a row of points) continues rows[j]
        (all rows by default). Returns the scores, shaped like `values`."""
        chunk = as_values(values, columns=None)
        single = np.ndim(values) == 1
        if single:
            chunk = chunk.reshape(-1, 1)
        picked = np.arange(self.n) if rows is None else np.asarray(rows, np.int64)
        if len(picked) != len(chunk):
            raise InvalidInputError(f"{len(chunk)} rows of values for {len(picked)} series")
        if len(picked) and (picked.min() < 0 or picked.max() >= self.n):
            raise InvalidInputError(
                f"rows must be in [0, {self.n}), got {picked.min()}..{picked.max()}"
            )
        if len(np.unique(picked)) != len(picked):
            raise InvalidInputError("rows must be distinct: one row of values per series")
        lengths = np.full(len(picked), chunk.shape[1], np.int64)
        out = self._score(picked, chunk, lengths)
        return out[:, 0] if single else out

    def warm(self, histories: list[np.ndarray]) -> list[np.ndarray]:
        """Add one series per history and score it as the start of its stream; returns each
        history's scores (what `EnsembleDetector().fit_score(history)` returns)."""
        scores: list[np.ndarray] = []
        rows = self.add(len(histories))  # one allocation for all (not one per batch)
        for first in range(0, len(histories), WARM_BATCH):
            part = [as_values(h) for h in histories[first : first + WARM_BATCH]]
            longest = max((len(h) for h in part), default=0)
            chunk = np.full((len(part), longest), np.nan)
            for j, history in enumerate(part):
                chunk[j, : len(history)] = history
            lengths = np.array([len(h) for h in part], np.int64)
            out = self._score(rows[first : first + len(part)], chunk, lengths)
            scores.extend(out[j, : lengths[j]] for j in range(len(part)))
        return scores

    def _score(self, rows: np.ndarray, chunk: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = np.zeros(chunk.shape)
        stops = np.empty(len(rows), np.int64)
        self._give_warm_slots(rows)
        lines = np.arange(len(rows))
        self._call(rows, lines, chunk, lengths, np.zeros(len(rows), np.int64), stops, out)
        paused = np.flatnonzero(stops >= 0)
        if len(paused):  # their seasonal warm-up is complete: choose, then go on from there
            self._choose_periods(rows[paused])
            again = np.empty(len(paused), np.int64)
            self._call(rows[paused], paused, chunk, lengths[paused], stops[paused], again, out)
        return out

    def _call(
        self,
        rows: np.ndarray,
        lines: np.ndarray,
        chunk: np.ndarray,
        lengths: np.ndarray,
        starts: np.ndarray,
        stops: np.ndarray,
        out: np.ndarray,
    ) -> None:
        s = self.state
        _round(
            rows,
            lines,
            chunk,
            lengths,
            starts,
            stops,
            out,
            (self.kinds, self.weights, self.mean_of, self.ring_widths),
            self._group(CALIBRATION),
            self._group(ROBUST),
            self._group(SEASONAL),
            self.pool,
            (self.warm_buffer, s["warm_slot"], s["warm_count"]),
            self._group(OTHERS),
            self._group(ENSEMBLE),
            self.fparams,
            self.iparams,
        )

    def _group(self, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        return tuple(self.state[name] for name in names)

    # -- the seasonal member's warm-up --------------------------------------------------------
    def _give_warm_slots(self, rows: np.ndarray) -> None:
        """A warm-up buffer for every row about to collect its seasonal warm-up."""
        s = self.state
        needing = rows[(s["s_period"][rows] == WARMING) & (s["warm_slot"][rows] < 0)]
        missing = len(needing) - len(self.free_slots)
        if missing > 0:
            first = len(self.warm_buffer)
            grown = np.zeros((missing, self.seasonal.warmup))
            self.warm_buffer = np.concatenate([self.warm_buffer, grown])
            self.free_slots.extend(range(first, first + missing))
        for row in needing:
            s["warm_slot"][row] = self.free_slots.pop()

    def _choose_periods(self, rows: np.ndarray) -> None:
        """`SeasonalDetector._choose_period` for rows whose warm-up is complete."""
        s, seasonal = self.state, self.seasonal
        cycling = []
        for row in rows:
            period = find_period(
                self.warm_buffer[s["warm_slot"][row]],
                min_period=seasonal.min_period,
                max_period=min(seasonal.max_period, seasonal.warmup // 2),
                min_acf=seasonal.min_acf,
            )
            s["s_period"][row] = period
            if period:
                drift = min(round(period * seasonal.jitter), period - 1)
                s["s_drift"][row] = drift
                s["s_size"][row] = period * seasonal.seasons + drift
                s["s_offset"][row] = self._reserve(int(s["s_size"][row]))
                cycling.append(row)
        if cycling:
            member = int(np.flatnonzero(self.kinds == KINDS["seasonal"])[0])
            _replay(
                np.array(cycling, np.int64),
                self.warm_buffer,
                s["warm_slot"],
                member,
                int(self.mean_of[member]),
                int(self.ring_widths[member]),
                self._group(CALIBRATION),
                self._group(SEASONAL),
                self.pool,
                self.fparams,
                self.iparams,
            )
        for row in rows:
            self.free_slots.append(int(s["warm_slot"][row]))
            s["warm_slot"][row] = -1
        if len(self.free_slots) == len(self.warm_buffer):  # nobody warming: give it back
            self.warm_buffer = self.warm_buffer[:0]
            self.free_slots = []

    def _reserve(self, size: int) -> int:
        """Room for one seasonal ring in the pool (NaN: no value of that phase yet)."""
        if self.pool_used + size > len(self.pool):
            grown = np.full(
                max(2 * len(self.pool), self.pool_used + size, 1 << 16), np.nan, np.float32
            )
            grown[: self.pool_used] = self.pool[: self.pool_used]
            self.pool = grown
        offset = self.pool_used
        self.pool_used += size
        return offset

    # -- reading -------------------------------------------------------------------------------
    def explain(self, row: int) -> str | None:
        """`EnsembleDetector.explain` for one row (its latest point)."""
        s = self.state
        low, high, breakout = s["last_range"][row]
        if breakout >= 1.0:
            return EnsembleDetector.range_words(low, high, float(self.params["range_tolerance"]))
        if not s["nov_state"][row, 1]:
            return None
        return EnsembleDetector.member_words(self.members, [float(r) for r in s["last"][row]])

    @property
    def nbytes(self) -> int:
        """The memory the state holds (the warm-up buffers included)."""
        arrays = [*self.state.values(), self.warm_buffer]
        return sum(a.nbytes for a in arrays) + self.pool_used * self.pool.itemsize

    def __getstate__(self) -> dict[str, Any]:
        """What pickling (a Dask transfer) sends: the pool without its spare room."""
        state = dict(vars(self))
        state["pool"] = self.pool[: self.pool_used].copy()
        return state

    # -- combining -----------------------------------------------------------------------------
    @classmethod
    def concat(cls, parts: list[EnsembleFleet]) -> EnsembleFleet:
        """One fleet holding the rows of `parts` in order (warmed apart, on Dask workers)."""
        if not parts:
            raise InvalidInputError("concat needs at least one fleet")
        if any(p.params != parts[0].params for p in parts):
            raise InvalidInputError("fleets with different detector parameters cannot be joined")
        whole = cls(**parts[0].params)
        pools, warms, pool_at, warm_at = [], [], 0, 0
        for part in parts:
            state = dict(part.state)
            state["s_offset"] = np.where(state["s_size"] > 0, state["s_offset"] + pool_at, 0)
            slots = state["warm_slot"]
            state["warm_slot"] = np.where(slots >= 0, slots + warm_at, -1)
            whole.free_slots.extend(slot + warm_at for slot in part.free_slots)
            whole._append(state)
            pools.append(part.pool[: part.pool_used])
            warms.append(part.warm_buffer)
            pool_at += part.pool_used
            warm_at += len(part.warm_buffer)
            whole.n += part.n
        whole.pool = np.concatenate(pools)
        whole.pool_used = len(whole.pool)
        whole.warm_buffer = np.concatenate(warms)
        return whole

    # -- saving ---------------------------------------------------------------------------------
    def save(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        """Write the whole state to `path` (numpy's .npz), atomically, with `meta` (JSON:
        what the caller needs to know about the rows; `load` gives it back as `.meta`)."""
        arrays = {f"state.{k}": v for k, v in self.state.items()}
        arrays["pool"] = self.pool[: self.pool_used]
        arrays["warm_buffer"] = self.warm_buffer
        header = {
            "params": self.params,
            "n": self.n,
            "free_slots": self.free_slots,
            "meta": meta or {},
        }
        arrays["header"] = np.array(json.dumps(header))
        write: Callable[..., None] = np.savez  # (numpy's stub mistakes **arrays for flags)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as file:  # streamed: a large fleet is not held twice in memory
            write(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Self:
        """The fleet `save` wrote; its configuration comes with it."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                header = json.loads(str(saved["header"]))
                params = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in header["params"].items()
                }
                fleet = cls(**params)
                fleet.state = {k[6:]: saved[k] for k in saved.files if k.startswith("state.")}
                fleet.pool = saved["pool"].copy()
                fleet.warm_buffer = saved["warm_buffer"]
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"{path}: not a saved detector fleet ({exc})") from exc
        fleet.pool_used = len(fleet.pool)
        fleet.n = int(header["n"])
        fleet.free_slots = list(header["free_slots"])
        fleet.meta = dict(header.get("meta", {}))
        return fleet
