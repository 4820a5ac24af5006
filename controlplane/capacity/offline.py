"""Offline forecasting of a series file: the `aiops forecast` contract.

Reads `timestamp,value` (CSV or Parquet, gaps and NaN allowed), fits the chosen model and
writes `timestamp,mean,lo-80,hi-80,lo-95,hi-95` for the `horizon` grid steps after the last
row. Errors name the file (and the line and column when one is at fault).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import forecasters
from controlplane.collectors.file import read_series
from controlplane.domain.errors import InvalidInputError
from forecasters.base import Forecast

MAX_HORIZON = 100_000


def forecast_file(source: Path, target: Path, horizon: int, model: str) -> Forecast:
    """Forecast one file into `target` (written atomically); returns the forecast."""
    if not 1 <= horizon <= MAX_HORIZON:
        raise InvalidInputError(f"--horizon must be in [1, {MAX_HORIZON}], got {horizon!r}")
    forecaster = forecasters.make(model)
    series = read_series(source).series
    try:
        forecast = forecaster.fit(series, horizon=horizon).predict(horizon)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc}") from None
    frame = forecast.frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    frame.round({c: 6 for c in frame.columns if c != "timestamp"}).to_csv(tmp, index=False)
    tmp.replace(target)  # never leave a half-written result behind
    return forecast


def describe(forecast: Forecast) -> str:
    """One line for the terminal: the model, why, and its own accuracy."""
    error = f"; {forecast.backtest.describe()}" if forecast.backtest else ""
    fallback = f" (fallback: {forecast.fallback})" if forecast.fallback else ""
    if forecast.guard:
        fallback += f" ({forecast.guard})"
    peak = float(np.max(forecast.mean))
    return f"{len(forecast)} steps with {forecast.model}{error}{fallback}; peak mean {peak:.6g}"
