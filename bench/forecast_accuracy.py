"""Rolling-origin forecast accuracy on real NAB series: MASE, sMAPE and interval coverage.

For every series of realAWSCloudwatch, realTraffic and realAdExchange (put on its regular
grid), the last ORIGINS cuts, one day of steps apart, are each forecast one day ahead from the
history before the cut. Scores use only slots that held a measured value (gaps filled by the
grid are not scored). MASE is scaled by the in-sample seasonal-naive error with a one-day
season, as in M4. Per model: the median over series of the mean MASE over origins, the mean
sMAPE, and the share of actual points inside the 80% and 95% intervals; and each series' MASE
over seasonal naive's (run with `seasonal_naive` among the models): their geometric mean and
the worst, which a median hides.

    .venv/bin/python bench/forecast_accuracy.py [--data ../shared/datasets/nab] [--models ...]

A model is a registry name, with parameters after a colon: `auto:top=1;guard=false`.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _options import model_spec
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import forecasters
from controlplane.collectors.file import read_series
from controlplane.domain.series import MetricSeries
from forecasters._grid import candidate_periods, mase_scale, regularize
from forecasters.base import smape

CATEGORIES = ("realAWSCloudwatch", "realTraffic", "realAdExchange")
ORIGINS = 4
MODELS = ("seasonal_naive", "seasonal_profile", "ets", "mstl", "prophet", "auto")


@dataclass
class Score:
    model: str
    series: str
    mase: float
    smape: float
    inside: dict[int, int]
    points: int
    seconds: float


def evaluate(path: Path, model: str, origins: int = ORIGINS) -> Score:
    grid = regularize(read_series(path).series)
    day = candidate_periods(grid.step_seconds)[0]
    stamps = grid.timestamps()
    n = len(grid.values)
    mases, smapes, inside, points = [], [], {80: 0, 95: 0}, 0
    started = time.perf_counter()
    for k in range(origins, 0, -1):
        cut = n - k * day
        history = MetricSeries(path.stem, stamps[:cut], grid.values[:cut])
        name, params = model_spec(model)
        forecast = forecasters.make(name, **params).fit(history, horizon=day).predict(day)
        measured = grid.measured[cut : cut + day]
        actual = grid.values[cut : cut + day][measured]
        mean = forecast.mean[measured]
        mases.append(float(np.abs(actual - mean).mean()) / mase_scale(grid.values[:cut], day))
        smapes.append(smape(actual, mean))
        for level in inside:
            lo, hi = forecast.lo(level)[measured], forecast.hi(level)[measured]
            inside[level] += int(((actual >= lo) & (actual <= hi)).sum())
        points += len(actual)
    elapsed = time.perf_counter() - started
    return Score(
        model, path.stem, float(np.mean(mases)), float(np.mean(smapes)), inside, points, elapsed
    )


def _evaluate(args: tuple[Path, str]) -> Score:
    return evaluate(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/nab"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    files = sorted(f for c in CATEGORIES for f in (args.data / "data" / c).glob("*.csv"))
    jobs = [(f, m) for m in args.models for f in files]
    scores: list[Score] = []
    with Progress(transient=True) as progress, ProcessPoolExecutor(args.workers) as pool:
        task = progress.add_task(
            f"{len(files)} series x {len(args.models)} models", total=len(jobs)
        )
        for score in pool.map(_evaluate, jobs):
            scores.append(score)
            progress.advance(task)
    report(scores, args.models, len(files))


def report(scores: list[Score], models: list[str], files: int) -> None:
    table = Table(title=f"{files} NAB series, {ORIGINS} origins, horizon one day")
    for column in (
        "model",
        "median MASE",
        "mean MASE",
        "/ naive: geo. mean",
        "worst",
        "sMAPE %",
        "cover 80",
        "cover 95",
        "s / forecast",
    ):
        table.add_column(column, justify="right")
    naive = {s.series: s.mase for s in scores if s.model == "seasonal_naive"}
    worst: dict[str, str] = {}
    for model in models:
        rows = [s for s in scores if s.model == model]
        points = sum(s.points for s in rows)
        # Each series' MASE over seasonal naive's on the same origins (a median hides the
        # series where a model blows up; the geometric mean and the worst do not).
        ratios = np.array([s.mase / naive[s.series] for s in rows if naive.get(s.series)])
        if len(ratios):
            worst[model] = max(rows, key=lambda s: s.mase / naive.get(s.series, np.inf)).series
        table.add_row(
            model if len(models) < 2 or len(model) <= 24 else f"#{models.index(model) + 1}",
            f"{np.median([s.mase for s in rows]):.3f}",
            f"{np.mean([s.mase for s in rows]):.3f}",
            f"{np.exp(np.log(ratios).mean()):.3f}" if len(ratios) else "-",
            f"{ratios.max():.2f}" if len(ratios) else "-",
            f"{np.mean([s.smape for s in rows]):.1f}",
            f"{100 * sum(s.inside[80] for s in rows) / points:.1f}",
            f"{100 * sum(s.inside[95] for s in rows) / points:.1f}",
            f"{sum(s.seconds for s in rows) / (len(rows) * ORIGINS):.3f}",
        )
    Console().print(table)
    for number, model in enumerate(models, 1):
        if len(model) > 24:
            print(f"#{number}: {model}")
    for model, series in worst.items():
        print(f"{model}: worst series {series}")


if __name__ == "__main__":
    main()
