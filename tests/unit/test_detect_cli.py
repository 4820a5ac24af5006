"""`aiops detect` and `aiops bench nab`: the stable contracts the benchmarks rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import detectors
from controlplane.cli import app

runner = CliRunner()


def _write(path, text):
    path.write_text(text)
    return path


def _csv(path, n=300, nan_at=(50, 51)):
    rng = np.random.default_rng(0)
    values = [f"{v:.4f}" for v in 10 + rng.normal(0, 1, n)]
    for i in nan_at:
        values[i] = ""
    stamps = pd.date_range("2026-01-01", periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    rows = [f"{t},{v}" for t, v in zip(stamps, values, strict=True)]
    return _write(path, "timestamp,value\n" + "\n".join(rows) + "\n")


def test_detect_writes_same_rows_with_causal_scores(tmp_path):
    source = _csv(tmp_path / "in.csv")
    result = runner.invoke(
        app, ["detect", "--input", str(source), "--output", str(tmp_path / "out.csv")]
    )
    assert result.exit_code == 0, result.output
    original = pd.read_csv(source, dtype=str, keep_default_na=False)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
    assert (out["timestamp"] == original["timestamp"]).all()
    assert (out["value"] == original["value"]).all()
    scores = out["anomaly_score"].astype(float).to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    values = pd.to_numeric(original["value"]).to_numpy()
    np.testing.assert_allclose(scores, np.round(detectors.make().fit_score(values), 6))


def test_detect_reads_parquet(tmp_path):
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2026-01-01", periods=50, freq="1min"), "value": range(50)}
    )
    frame.to_parquet(tmp_path / "in.parquet")
    result = runner.invoke(
        app,
        [
            "detect",
            "-i",
            str(tmp_path / "in.parquet"),
            "-o",
            str(tmp_path / "o.csv"),
            "--detector",
            "robust_zscore",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "o.csv")) == 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2026-01-01,1\n", "missing column 'timestamp'"),
        ("timestamp,v\n2026-01-01,1\n", "missing column 'value'"),
        ("timestamp,value\n2026-01-01,1\nyesterday,2\n", "line 3, column 'timestamp'"),
        ("timestamp,value\n2026-01-01,1\n2026-01-02,abc\n", "line 3, column 'value'"),
        ("timestamp,value\n2026-01-01,inf\n", "line 2, column 'value'"),
        ("timestamp,value\n", "no data rows"),
        ("", "empty"),
    ],
)
def test_detect_bad_input_names_file_line_and_column(tmp_path, content, message):
    source = _write(tmp_path / "bad.csv", content)
    target = tmp_path / "out.csv"
    result = runner.invoke(app, ["detect", "--input", str(source), "--output", str(target)])
    assert result.exit_code == 2
    assert message in result.output
    assert "bad.csv" in result.output
    assert not target.exists()


def test_detect_unknown_detector_is_named(tmp_path):
    source = _csv(tmp_path / "in.csv")
    result = runner.invoke(
        app, ["detect", "-i", str(source), "-o", str(tmp_path / "o.csv"), "-d", "magic"]
    )
    assert result.exit_code == 2
    assert "'magic'" in result.output


def test_bench_nab_mirrors_the_corpus_layout(tmp_path):
    for category, name in (("realA", "one.csv"), ("realB", "two.csv")):
        (tmp_path / "corpus" / "data" / category).mkdir(parents=True)
        _csv(tmp_path / "corpus" / "data" / category / name, n=120, nan_at=())
    result = runner.invoke(
        app,
        [
            "bench",
            "nab",
            "--data",
            str(tmp_path / "corpus"),
            "--output",
            str(tmp_path / "res"),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 files, 240 rows" in result.output
    for path in ("realA/one.csv", "realB/two.csv"):
        out = pd.read_csv(tmp_path / "res" / path)
        assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
        assert len(out) == 120
    missing = runner.invoke(
        app, ["bench", "nab", "--data", str(tmp_path), "--output", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2
    assert "no data/ folder" in missing.output
