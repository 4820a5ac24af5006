"""The default detector on what real metrics do and NAB's files rarely show: large offsets
and scales, steps that become the new normal, gaps, low counts, flat series with blips.

One configuration throughout (the defaults), as users run it. Alarms are points scoring at
or above 0.9, the scheduler's default threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

import detectors

N = 3000
rng = np.random.default_rng(7)
DAILY = 100 * np.sin(2 * np.pi * np.arange(N) / 288) + rng.normal(0, 1, N)
DAILY[2000] += 25  # inside the series' range, far from its phase


def alarms(values: np.ndarray) -> np.ndarray:
    return np.flatnonzero(detectors.make().fit_score(values) >= 0.9)


@pytest.mark.parametrize("offset", [1e6, -1e6, 1e9])
def test_an_offset_changes_no_alarm(offset):
    """A minimum effect size relative to the level would hide the change at 2000 on a series
    sitting at 1e6 (the former default did); measured from the series' lowest value it is the
    same whatever the offset."""
    assert 2000 in alarms(DAILY)
    assert list(alarms(DAILY + offset)) == list(alarms(DAILY))


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_a_unit_changes_no_alarm(scale):
    assert list(alarms(DAILY * scale)) == list(alarms(DAILY))


def test_a_step_alarms_at_its_onset_then_becomes_the_new_normal():
    values = 10 + rng.normal(0, 1, N)
    values[1500:] += 20
    after = alarms(values)
    after = after[after >= 1500]
    assert after[0] <= 1502
    # Once the new level's own range is explored the series is quiet again.
    assert len(after[after > 1510]) <= 1
    assert not len(after[after > 1800])


def test_a_gap_is_not_an_anomaly_when_the_data_comes_back_as_before():
    values = DAILY.copy()
    values[1200:1500] = np.nan
    found = alarms(values)
    assert not len(found[(found >= 1200) & (found < 1900)])
    assert 2000 in found


def test_a_burst_on_a_low_count_series_is_found_and_its_noise_mostly_is_not():
    values = rng.poisson(0.5, N).astype(float)
    values[2500:2510] += 10
    found = alarms(values)
    assert 2500 in found
    assert len(found[(found > 300) & (found < 2500)]) <= 10  # one in 200 points at most


def test_a_flat_series_alarms_on_its_largest_blip_not_on_its_usual_ones():
    values = np.full(N, 5.0)
    values[rng.integers(0, N, 60)] = 6.0
    values[2700] = 9.0
    found = alarms(values)
    assert list(found[found > 300]) == [2700]
