"""The scheduler's ensemble signals as rows of detector fleets, saved across restarts.

Every signal watched by the default `ensemble` detector is one row of an `EnsembleFleet`
(one fleet per distinct parameter set), so a cycle over many signals costs one compiled call
per fleet and number of new points, not one detector object per signal. Other detectors stay
objects (see `compute.py`).

Each fleet is written to `detection.state_dir` (one .npz a fleet, atomically, with the rows'
signals and the last point each has seen), at most every `detection.snapshot_seconds` and when
the scheduler stops. At start the saved rows are taken back for the signals whose detector,
parameters, query and step have not changed: those resume after their last point instead of
warming up on the whole history again. A file that cannot be read is logged and set aside
(renamed `.unreadable`), never fatal: detection then warms up as on a first start; a state
that cannot be written (a full or read-only disk) is logged and detection carries on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.config import SignalSettings
from controlplane.domain.errors import InvalidInputError
from detectors.ensemble import EnsembleDetector
from detectors.fleet import EnsembleFleet

log = logging.getLogger(__name__)


def identity(signal: SignalSettings, params: dict[str, Any]) -> dict[str, Any]:
    """What must be unchanged for a saved row to be this signal's state."""
    return {"query": signal.query, "step": signal.step_seconds, "params": params}


def digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Placed:
    """Where a signal's state lives: its fleet and row, and the last point that row saw."""

    fleet: str
    row: int
    last_ts: np.datetime64 | None = None


@dataclass
class SignalFleets:
    """One fleet per ensemble parameter set; rows by signal name."""

    directory: Path | None
    fleets: dict[str, EnsembleFleet] = field(default_factory=dict)
    placed: dict[str, Placed] = field(default_factory=dict)
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)

    @staticmethod
    def handles(signal: SignalSettings) -> bool:
        return signal.detector == EnsembleDetector.name

    def place(self, signals: list[tuple[SignalSettings, dict[str, Any]]]) -> list[Placed]:
        """Each signal's row, added (fresh state) on first use: the new rows of a fleet are
        added at once (adding them one by one copies the whole fleet each time)."""
        new: dict[str, list[tuple[SignalSettings, dict[str, Any]]]] = defaultdict(list)
        for signal, params in signals:
            if signal.name not in self.placed:
                new[digest(EnsembleDetector(**params).get_params())].append((signal, params))
        for key, group in new.items():
            if key not in self.fleets:
                self.fleets[key] = EnsembleFleet(**group[0][1])
            rows = self.fleets[key].add(len(group))
            for (signal, params), row in zip(group, rows, strict=True):
                self.placed[signal.name] = Placed(key, int(row))
                self.identities[signal.name] = identity(signal, params)
        return [self.placed[signal.name] for signal, _ in signals]

    def score(self, work: list[tuple[Placed, np.ndarray]]) -> list[np.ndarray]:
        """Each (row, new values) scored and learnt: one call per fleet and chunk length."""
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for index, (placed, values) in enumerate(work):
            groups[(placed.fleet, len(values))].append(index)
        out: list[np.ndarray] = [np.zeros(0)] * len(work)
        for (key, length), members in groups.items():
            rows = np.array([work[i][0].row for i in members], np.int64)
            chunk = np.array([work[i][1] for i in members], np.float64).reshape(-1, length)
            for i, scores in zip(members, self.fleets[key].update(chunk, rows), strict=True):
                out[i] = scores
        return out

    def params(self, placed: Placed) -> dict[str, Any]:
        return dict(self.fleets[placed.fleet].params)

    def explain(self, placed: Placed) -> str | None:
        return self.fleets[placed.fleet].explain(placed.row)

    # -- across restarts ------------------------------------------------------------------------
    def save(self) -> None:
        """Write every fleet with its signals (one file each, atomically)."""
        if self.directory is None or not self.fleets:
            return
        try:
            self._write(self.directory)
        except OSError as exc:  # a full or read-only disk must not stop detection
            log.warning("detector state not saved to %s: %s", self.directory, exc)

    def _write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for key, fleet in self.fleets.items():
            signals = {
                name: {
                    "row": placed.row,
                    "last_ts": None if placed.last_ts is None else str(placed.last_ts),
                    **self.identities[name],
                }
                for name, placed in self.placed.items()
                if placed.fleet == key
            }
            fleet.save(directory / f"fleet-{key}.npz", meta={"signals": signals})

    def restore(self, wanted: dict[str, dict[str, Any]]) -> dict[str, Placed]:
        """Take back the saved rows of the signals in `wanted` (name -> identity) whose
        identity is unchanged; returns them by name."""
        if self.directory is None or not self.directory.is_dir():
            return {}
        for path in sorted(self.directory.glob("fleet-*.npz")):
            try:
                fleet = EnsembleFleet.load(path)
            except InvalidInputError as exc:
                log.warning("detector state %s set aside: %s", path, exc)
                path.replace(path.with_suffix(".unreadable"))
                continue
            key = digest(fleet.params)
            for name, saved in fleet.meta.get("signals", {}).items():
                mine = {k: saved.get(k) for k in ("query", "step", "params")}
                if name in wanted and _same(mine, wanted[name]):
                    last = saved.get("last_ts")
                    at = None if last is None else np.datetime64(last)
                    self.placed[name] = Placed(key, int(saved["row"]), at)
                    self.identities[name] = wanted[name]
            self.fleets[key] = fleet
        return dict(self.placed)


def _same(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal once both went through JSON (tuples come back as lists)."""
    return bool(json.dumps(saved, sort_keys=True) == json.dumps(wanted, sort_keys=True))
