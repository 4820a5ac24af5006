"""File source: CSV (`timestamp,value[,...]`) and Parquet series for backtests and offline runs.

Used by `aiops detect`, `aiops bench nab` and file-backed signals. Rows are kept in file order
(NAB files repeat or step back in time around daylight-saving changes: position is the key).
An empty value cell is NaN, i.e. data; anything unparsable is an `InvalidInputError` naming
the file, the line and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.series import MetricSeries

REQUIRED = ("timestamp", "value")


@dataclass(frozen=True)
class FileSeries:
    """A series read from a file plus the raw text of its columns, to write back unchanged."""

    path: Path
    raw: pd.DataFrame
    series: MetricSeries


def read_series(path: Path) -> FileSeries:
    """Read and validate a CSV or Parquet file with at least `timestamp` and `value`."""
    raw = _read_raw(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InvalidInputError(
            f"{path}: missing column {missing[0]!r} (columns: {', '.join(map(str, raw.columns))})"
        )
    if raw.empty:
        raise InvalidInputError(f"{path}: no data rows")
    timestamps = _parse_timestamps(path, raw["timestamp"])
    values = _parse_values(path, raw["value"])
    return FileSeries(path, raw, MetricSeries(path.stem, timestamps, values))


def _read_raw(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
            return frame.astype({c: str for c in frame.columns if c == "timestamp"})
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise InvalidInputError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read: {exc}") from None


def _line(position: int) -> int:
    return position + 2  # 1-based, after the header line


def _parse_timestamps(path: Path, column: pd.Series) -> np.ndarray:
    text = column.astype(str).str.strip()
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InvalidInputError(
            f"{path}: line {_line(i)}, column 'timestamp': not a timestamp: {text.iloc[i]!r}"
        )
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _parse_values(path: Path, column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    text = column.astype(str).str.strip()
    empty = text.isin(["", "nan", "NaN", "NA", "null"])
    numbers = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = np.flatnonzero((numbers.isna() & ~empty).to_numpy() | np.isinf(numbers.to_numpy()))
    if len(bad):
        i = int(bad[0])
        raise InvalidInputError(
            f"{path}: line {_line(i)}, column 'value': not a number: {text.iloc[i]!r}"
        )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)
