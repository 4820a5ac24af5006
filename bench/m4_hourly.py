"""M4 hourly: forecast the competition's 414 series 48 hours ahead and score them by M4's rules.

Every series is fitted on its training part with ONE configuration of `--model` (default
`auto`), forecast 48 steps with 80% and 95% intervals, written to `--output` as the file
`../shared/tools/m4_score.py` reads, and scored by that scorer (which reproduces M4's
published seasonal-naive figures exactly). The same rules are also applied here to the odd-
and the even-numbered series apart (H1, H3, ... and H2, H4, ...): a constant chosen on one
half is then judged on the other (the leave-one-half-out protocol of issue 16). Beside the
means: the geometric mean of each series' MASE over seasonal naive's, and the worst ratio.

    .venv/bin/python bench/m4_hourly.py --data ../shared/datasets/m4-hourly \
        --scorer ../shared/tools/m4_score.py [--model auto] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _options import parameter
from rich.progress import Progress

import forecasters
from controlplane.domain.series import MetricSeries

SEASON, HORIZON = 24, 48
START = np.datetime64("2026-01-01T00:00", "ns")
HOUR = np.timedelta64(3600, "s")


def load(data: Path, part: str) -> dict[str, np.ndarray]:
    frame = pd.read_csv(data / f"Hourly-{part}.csv", index_col=0)
    return {sid: frame.loc[sid].dropna().to_numpy(float) for sid in frame.index}


def forecast(job: tuple[str, np.ndarray, str, dict[str, Any]]) -> pd.DataFrame:
    """One series' 48 steps: mean and the 80% and 95% bands."""
    sid, values, model, params = job
    stamps = START + HOUR * np.arange(len(values))
    fitted = forecasters.make(model, **params).fit(
        MetricSeries(sid, stamps, values), horizon=HORIZON
    )
    result = fitted.predict(HORIZON, levels=(80, 95))
    return pd.DataFrame(
        {
            "id": sid,
            "step": np.arange(1, HORIZON + 1),
            "mean": result.mean,
            "lo-80": result.lo(80),
            "hi-80": result.hi(80),
            "lo-95": result.lo(95),
            "hi-95": result.hi(95),
            "model": result.model,
        }
    )


def per_series(train: dict[str, np.ndarray], test: dict[str, np.ndarray], f: pd.DataFrame):
    """M4's per-series measures (the scorer's formulas), for the halves."""
    rows = []
    for sid, group in f.groupby("id"):
        y, actual = train[sid], test[sid]
        scale = np.mean(np.abs(y[SEASON:] - y[:-SEASON]))
        naive = np.array([y[len(y) - SEASON + (k % SEASON)] for k in range(HORIZON)])
        mean, lo, hi = (group[c].to_numpy(float) for c in ("mean", "lo-95", "hi-95"))
        penalty = (2 / 0.05) * ((lo - actual) * (actual < lo) + (actual - hi) * (actual > hi))
        rows.append(
            {
                "id": sid,
                "number": int(str(sid)[1:]),
                "mase": np.mean(np.abs(actual - mean)) / scale,
                "ratio": np.mean(np.abs(actual - mean)) / np.mean(np.abs(actual - naive)),
                "smape": np.mean(200 * np.abs(actual - mean) / (np.abs(actual) + np.abs(mean))),
                "msis": np.mean(hi - lo + penalty) / scale,
                "cov95": np.mean((actual >= lo) & (actual <= hi)),
                "cov80": np.mean(
                    (actual >= group["lo-80"].to_numpy()) & (actual <= group["hi-80"].to_numpy())
                ),
            }
        )
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> str:
    ratio = rows.ratio.clip(lower=1e-12)
    worst = rows.loc[ratio.idxmax()]
    return (
        f"MASE {rows.mase.mean():.3f}  sMAPE {rows.smape.mean():.2f}  MSIS {rows.msis.mean():.2f}"
        f"  cover 95 {100 * rows.cov95.mean():.1f}%  cover 80 {100 * rows.cov80.mean():.1f}%"
        f"  MASE / seasonal naive: geometric mean {np.exp(np.log(ratio).mean()):.3f}, median "
        f"{ratio.median():.3f}, worst {ratio.max():.2f} ({worst.id})"
    )


def by_lead(test: dict[str, np.ndarray], f: pd.DataFrame) -> str:
    """Coverage of the 80% and 95% bands by lead time (a band can be right on average and
    wrong at the first or the last hours)."""
    actual = np.concatenate([test[sid] for sid in f.id.unique()])
    ordered = f.set_index("id").loc[f.id.unique()]
    lead = ordered.step.to_numpy()
    parts = []
    for first in range(1, HORIZON + 1, 12):
        chosen = (lead >= first) & (lead < first + 12)
        cover = {
            level: 100
            * np.mean(
                (actual[chosen] >= ordered[f"lo-{level}"].to_numpy()[chosen])
                & (actual[chosen] <= ordered[f"hi-{level}"].to_numpy()[chosen])
            )
            for level in (80, 95)
        }
        parts.append(f"{first}-{first + 11}: {cover[80]:.1f} / {cover[95]:.1f}")
    return "cover 80 / 95 by lead  " + ",  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/m4-hourly"))
    parser.add_argument("--scorer", type=Path, default=Path("../shared/tools/m4_score.py"))
    parser.add_argument("--model", default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=Path("out/m4"))
    parser.add_argument("--set", type=parameter, action="append", default=[], help="k=v")
    args = parser.parse_args()
    train, test = load(args.data, "train"), load(args.data, "test")
    params = dict(args.set)
    jobs = [(sid, values, args.model, params) for sid, values in train.items()]
    started = time.perf_counter()
    with Progress(transient=True) as progress, ProcessPoolExecutor(args.workers) as pool:
        task = progress.add_task(f"{len(jobs)} M4 hourly series, {args.model}", total=len(jobs))
        parts = []
        for part in pool.map(forecast, jobs, chunksize=4):
            parts.append(part)
            progress.advance(task)
    took = time.perf_counter() - started
    frame = pd.concat(parts, ignore_index=True)
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / f"{args.model}.csv"
    frame.drop(columns="model").to_csv(target, index=False)
    chosen = " ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    print(f"{len(jobs)} series, {args.model} ({chosen}), {args.workers} processes: {took:.1f} s")
    print("served models:", dict(frame.groupby("id").model.first().value_counts()))
    command = [sys.executable, str(args.scorer), "--data", str(args.data), "--forecasts"]
    scored = subprocess.run([*command, str(target)], check=True, text=True, capture_output=True)
    print("scorer:", scored.stdout.strip().replace("\n", "; "))
    rows = per_series(train, test, frame)
    print(f"all   {summary(rows)}")
    print(f"odd   {summary(rows[rows.number % 2 == 1])}")
    print(f"even  {summary(rows[rows.number % 2 == 0])}")
    print(by_lead(test, frame))


if __name__ == "__main__":
    main()
