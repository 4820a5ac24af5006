"""`aiops forecast`: the stable contract the forecast benchmarks rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from controlplane.cli import app

runner = CliRunner()
COLUMNS = ["timestamp", "mean", "lo-80", "hi-80", "lo-95", "hi-95"]


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def _hourly(path: Path, days: int = 5) -> Path:
    stamps = pd.date_range("2026-02-01", periods=days * 24, freq="h")
    values = 40 + 10 * np.sin(2 * np.pi * np.arange(len(stamps)) / 24)
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{v:.3f}" for t, v in zip(stamps, values, strict=True)]
    rows[30] = f"{stamps[30]:%Y-%m-%d %H:%M:%S},"  # NaN
    del rows[50:55]  # a gap
    return _csv(path, rows)


@pytest.mark.parametrize("model", ["auto", "seasonal_naive", "ets"])
def test_forecast_writes_the_next_h_steps(tmp_path: Path, model: str) -> None:
    source, target = _hourly(tmp_path / "in.csv"), tmp_path / "out.csv"
    args = ["forecast", "-i", str(source), "--horizon", "12", "-o", str(target), "-m", model]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 steps with" in result.output
    out = pd.read_csv(target)
    assert out.columns.tolist() == COLUMNS
    assert out["timestamp"].iloc[0] == "2026-02-06 00:00:00"
    assert out["timestamp"].iloc[-1] == "2026-02-06 11:00:00"
    bands = out[["lo-95", "lo-80", "mean", "hi-80", "hi-95"]].to_numpy()
    assert (np.diff(bands, axis=1) >= 0).all()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["2026-01-01 00:00:00,1", "2026-01-01 01:00:00,abc"], "line 3, column 'value'"),
        (["2026-01-01 00:00:00,1", "yesterday,2"], "line 3, column 'timestamp'"),
        (["2026-01-01 00:00:00,1"], "at least 2 numeric values, got 1"),
    ],
)
def test_bad_input_names_file_row_and_column(tmp_path: Path, rows: list[str], message: str) -> None:
    source = _csv(tmp_path / "bad.csv", rows)
    target = tmp_path / "out.csv"
    result = runner.invoke(app, ["forecast", "-i", str(source), "-H", "3", "-o", str(target)])
    assert result.exit_code == 2
    assert str(source) in result.output
    assert message in result.output
    assert not target.exists()


def test_missing_column_bad_horizon_and_model(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("time,value\n2026-01-01,1\n")
    target = str(tmp_path / "o.csv")
    result = runner.invoke(app, ["forecast", "-i", str(source), "-H", "3", "-o", target])
    assert result.exit_code == 2
    assert "missing column 'timestamp'" in result.output
    good = _hourly(tmp_path / "good.csv")
    result = runner.invoke(app, ["forecast", "-i", str(good), "-H", "0", "-o", target])
    assert result.exit_code == 2
    assert "--horizon must be in [1, 100000], got 0" in result.output
    result = runner.invoke(app, ["forecast", "-i", str(good), "-H", "3", "-o", target, "-m", "x"])
    assert result.exit_code == 2
    assert "model must be one of" in result.output
