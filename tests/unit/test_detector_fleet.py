"""The fleet (columnar state, one compiled call a round) scores exactly as the per-series
ensemble does, whatever the rounds, the configuration, a join or a save in between."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import detectors
from controlplane.collectors.file import read_series
from controlplane.domain.errors import InvalidInputError
from detectors.fleet import EnsembleFleet

NAB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nab" / "data"


def streamed(fleet: EnsembleFleet, series: list[np.ndarray], head: int, step: int) -> list:
    """Warm each series on its first `head` points, then feed the rest `step` points a round
    to the rows still running (rows in reverse order, so a row is not its position)."""
    scores = [list(s) for s in fleet.warm([s[:head] for s in series])]
    at = head
    while any(len(s) > at for s in series):
        live = np.array([i for i, s in enumerate(series) if len(s) >= at + step])[::-1]
        if len(live):
            chunk = np.array([series[i][at : at + step] for i in live])
            for i, row in zip(
                live, fleet.update(chunk if step > 1 else chunk[:, 0], live), strict=True
            ):
                scores[i].extend(np.atleast_1d(row))
        for i, s in enumerate(series):  # a tail shorter than a step goes alone
            if at < len(s) < at + step:
                scores[i].extend(fleet.update(np.array([s[at:]]), np.array([i]))[0])
        at += step
    return [np.array(s) for s in scores]


@pytest.mark.skipif(not NAB.is_dir(), reason="../shared/datasets/nab not found")
def test_the_fleet_scores_every_nab_file_as_the_per_series_ensemble_does(tmp_path):
    series = [read_series(f).series.values for f in sorted(NAB.glob("*/*.csv"))]
    expected = [detectors.make().fit_score(s) for s in series]
    # Warm-up ending before, inside and after the seasonal member's 1,000-point warm-up.
    for head, step in ((1, 1), (700, 1), (1500, 7)):
        got = streamed(EnsembleFleet(), series, head, step)
        mismatched = [
            i
            for i, (e, g) in enumerate(zip(expected, got, strict=True))
            if not np.array_equal(e, g)
        ]
        assert mismatched == [], (head, step)


def test_a_joined_and_reloaded_fleet_goes_on_as_if_nothing_happened(tmp_path):
    rng = np.random.default_rng(3)
    day = np.sin(2 * np.pi * np.arange(2600) / 96)
    series = [10 * day + rng.normal(0, 1 + i % 3, 2600) + 100 * (i % 2) for i in range(6)]
    series[2][1800:1810] += 30  # an anomaly after the hand-over
    series[4][300:900] = np.nan  # a gap across the seasonal warm-up
    expected = [detectors.make().fit_score(s) for s in series]
    left, right = EnsembleFleet(), EnsembleFleet()
    first = left.warm([s[:700] for s in series[:3]]) + right.warm([s[:700] for s in series[3:]])
    joined = EnsembleFleet.concat([left, right])
    joined.save(tmp_path / "fleet.npz")
    fleet = EnsembleFleet.load(tmp_path / "fleet.npz")
    rest = fleet.update(np.array([s[700:] for s in series]))
    for e, head, tail in zip(expected, first, rest, strict=True):
        assert np.array_equal(e, np.concatenate([head, tail]))
    assert fleet.explain(2) is not None


@settings(max_examples=25, deadline=None)
@given(
    members=st.sampled_from(
        [
            ("robust_zscore", "seasonal", "cusum"),
            ("cusum",),
            ("holt_winters", "seasonal"),
            ("robust_zscore", "holt_winters"),
        ]
    ),
    combine=st.sampled_from(["max", "mean"]),
    range_tolerance=st.sampled_from([None, 0.05]),
    floor_basis=st.sampled_from(["level", "above_low"]),
    seed=st.integers(0, 2**16),
)
def test_every_ensemble_configuration_scores_the_same_in_the_fleet(
    members, combine, range_tolerance, floor_basis, seed
):
    params = {
        "members": members,
        "combine": combine,
        "range_tolerance": range_tolerance,
        "floor_basis": floor_basis,
        "weights": tuple(1.0 + k for k in range(len(members))),
    }
    rng = np.random.default_rng(seed)
    series = [
        np.round(np.sin(np.arange(1300) / 7) * 5 + rng.normal(0, 1, 1300), 1) for _ in range(3)
    ]
    series[1][rng.integers(0, 1300, 40)] = np.nan
    expected = [detectors.make("ensemble", **params).fit_score(s) for s in series]
    got = streamed(EnsembleFleet(**params), series, 400, 5)
    for e, g in zip(expected, got, strict=True):
        assert np.array_equal(e, g)


def test_bad_rows_and_bad_files_are_named(tmp_path):
    fleet = EnsembleFleet()
    fleet.warm([np.arange(50.0)])
    with pytest.raises(InvalidInputError, match=r"rows must be in \[0, 1\), got 3"):
        fleet.update(np.array([1.0]), np.array([3]))
    with pytest.raises(InvalidInputError, match="rows must be distinct"):
        fleet.update(np.array([1.0, 2.0]), np.array([0, 0]))
    with pytest.raises(InvalidInputError, match="2 rows of values for 1 series"):
        fleet.update(np.array([1.0, 2.0]))
    with pytest.raises(InvalidInputError, match="floor_basis must be one of"):
        EnsembleFleet(floor_basis="median")
    broken = tmp_path / "fleet.npz"
    broken.write_bytes(b"not a fleet")
    with pytest.raises(InvalidInputError, match=r"fleet\.npz: not a saved detector fleet"):
        EnsembleFleet.load(broken)
    other = EnsembleFleet(floor=0.2)
    with pytest.raises(InvalidInputError, match="different detector parameters"):
        EnsembleFleet.concat([fleet, other])
