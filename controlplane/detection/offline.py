"""Offline detection over files: `aiops detect` (one file) and `aiops bench nab` (a corpus).

Both score every row as one causal stream with ONE detector configuration: the same for every
file, whatever its category, and labels are never read. Output rows keep the input's order and
its timestamp and value text unchanged, plus `anomaly_score`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import detectors
from controlplane.collectors.file import read_series
from controlplane.domain.errors import InvalidInputError


@dataclass(frozen=True)
class DetectJob:
    source: Path
    target: Path
    detector: str
    params: tuple[tuple[str, Any], ...] = ()


def detect_file(job: DetectJob) -> int:
    """Score one file into `job.target`; returns the number of rows written."""
    loaded = read_series(job.source)
    scores = detectors.make(job.detector, **dict(job.params)).fit_score(loaded.series.values)
    out = pd.DataFrame(
        {
            "timestamp": loaded.raw["timestamp"],
            "value": loaded.raw["value"],
            "anomaly_score": np.round(scores, 6),
        }
    )
    job.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.target.with_suffix(job.target.suffix + ".tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(job.target)  # never leave a half-written result behind
    return len(out)


def nab_jobs(data: Path, output: Path, detector: str) -> list[DetectJob]:
    """One job per `data/data/<category>/<file>.csv`, written to `output/<category>/<file>.csv`."""
    root = data / "data"
    if not root.is_dir():
        raise InvalidInputError(f"--data: {data} has no data/ folder (expected data/<category>/)")
    files = sorted(root.glob("*/*.csv"))
    if not files:
        raise InvalidInputError(f"--data: no data/<category>/<file>.csv under {data}")
    return [DetectJob(f, output / f.parent.name / f.name, detector) for f in files]


def run_jobs(
    jobs: list[DetectJob],
    *,
    workers: int | None = None,
    on_done: Callable[[DetectJob, int], None] = lambda job, rows: None,
) -> int:
    """Run jobs over a process pool (one per core by default); returns total rows."""
    workers = workers or os.cpu_count() or 1
    total = 0
    if workers == 1:
        for job in jobs:
            rows = detect_file(job)
            total += rows
            on_done(job, rows)
        return total
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(detect_file, job): job for job in jobs}
        for future, job in futures.items():
            rows = future.result()
            total += rows
            on_done(job, rows)
    return total
