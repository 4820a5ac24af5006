"""The shared detector contract, run over every entry of detectors.REGISTRY.

Registering a detector is what gets it tested: range, causality, streaming == batch,
score_samples leaves the model alone, determinism, NaN and gaps, constant series, bad params.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detectors
from controlplane.config import DetectionSettings
from controlplane.domain.errors import InvalidInputError, NotFittedError

N = 1400  # past the seasonal warm-up (1000) so every code path runs
FAST = [n for n in detectors.REGISTRY if n != "isolation_forest"]


def series(n: int = N, seed: int = 0, width: int = 1) -> np.ndarray:
    """A daily-ish cycle with noise, a spike and a level shift; error ratios for the SLO one."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 10 + 3 * np.sin(2 * np.pi * t / 96) + rng.normal(0, 0.3, (width, n))
    x[:, n // 2] += 8
    x[:, 3 * n // 4 :] += 4
    return x[0] if width == 1 else x.T


def data_for(name: str, x: np.ndarray) -> np.ndarray:
    return np.abs(x) / 1e6 if name == "slo_burn_rate" else x  # healthy: under the budget


@pytest.fixture(params=sorted(detectors.REGISTRY))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_scores_are_in_unit_range_one_per_point(name):
    scores = detectors.make(name).fit_score(data_for(name, series()))
    assert scores.shape == (N,)
    assert np.isfinite(scores).all()
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0


def test_causal_earlier_scores_do_not_change_when_points_are_appended(name):
    x = data_for(name, series())
    full = detectors.make(name).fit_score(x)
    for k in (50, N // 2 + 1, N - 7):
        np.testing.assert_array_equal(detectors.make(name).fit_score(x[:k]), full[:k])


def test_streaming_update_matches_batch(name):
    x = data_for(name, series(n=1100 if name != "isolation_forest" else 400))
    batch = detectors.make(name).fit_score(x)
    streaming = detectors.make(name).fit(x[:0])
    np.testing.assert_allclose([streaming.update(v) for v in x], batch, rtol=0, atol=1e-12)


def test_score_samples_continues_the_fit_without_changing_it(name):
    x = data_for(name, series())
    model = detectors.make(name).fit(x[:1100])
    first = model.score_samples(x[1100:])
    again = model.score_samples(x[1100:])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, detectors.make(name).fit_score(x)[1100:])


def test_deterministic(name):
    x = data_for(name, series(seed=3))
    np.testing.assert_array_equal(
        detectors.make(name).fit_score(x), detectors.make(name).fit_score(x)
    )


def test_nan_and_gaps_are_data_not_errors(name):
    x = data_for(name, series()).copy()
    x[200:260] = np.nan  # a gap
    x[::97] = np.nan  # scattered missing points
    scores = detectors.make(name).fit_score(x)
    assert np.isfinite(scores).all()
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert (scores[np.isnan(x)] == 0.0).all()


@pytest.mark.parametrize("level", [0.0, 1.0, 250.0])
def test_constant_series_raises_no_alarm(name, level):
    x = np.full(N, data_for(name, np.array([level]))[0])
    detector = detectors.make(name)
    assert detector.fit_score(x).max() < detector.alarm_threshold


def test_use_before_fit_is_an_error(name):
    detector = detectors.make(name)
    with pytest.raises(NotFittedError, match="call fit"):
        detector.update(1.0)
    with pytest.raises(NotFittedError):
        detector.score_samples([1.0, 2.0])


def test_get_params_round_trips(name):
    detector = detectors.make(name)
    clone = detectors.make(name, **detector.get_params())
    assert clone.get_params() == detector.get_params()
    first = next(iter(detector.get_params()))
    assert repr(detector).startswith(f"{type(detector).__name__}({first}=")


def test_infinite_values_are_rejected(name):
    with pytest.raises(InvalidInputError, match="infinity"):
        detectors.make(name).fit_score([1.0, np.inf])


def test_unknown_detector_and_parameter_are_named():
    with pytest.raises(InvalidInputError, match="'nope'"):
        detectors.make("nope")
    with pytest.raises(InvalidInputError, match=r"robust_zscore.*bogus"):
        detectors.make("robust_zscore", bogus=1)
    with pytest.raises(InvalidInputError, match=r"window must be in \[16, 255\], got 3"):
        detectors.make("robust_zscore", window=3).fit([])
    with pytest.raises(InvalidInputError, match="members"):
        detectors.make("ensemble", members=("robust_zscore", "nope")).fit([])


def test_detectors_find_the_injected_faults():
    """Not a quality benchmark (that is NAB): the spike and the shift stand out everywhere."""
    x = series()
    scores = detectors.make().fit_score(x)
    threshold = detectors.make().alarm_threshold
    assert scores[N // 2] >= threshold
    assert scores[3 * N // 4 : 3 * N // 4 + 5].max() >= threshold
    quiet = np.r_[300 : N // 2 - 2, N // 2 + 60 : 3 * N // 4 - 2]
    assert (scores[quiet] >= threshold).mean() < 0.01


def test_seasonal_profile_tolerates_a_step_that_comes_a_little_late():
    """A daily step (period 200) that starts 2 points late once is not the size of the step."""
    rng = np.random.default_rng(5)
    phase = np.arange(3000) % 200
    x = np.where(phase < 100, 1.0, 5.0) + rng.normal(0, 0.05, 3000)
    late = 2400 + 100  # the step of the 13th cycle comes at phase 102
    x[late : late + 2] = 1.0 + rng.normal(0, 0.05, 2)

    def raw_at_late_step(jitter: float) -> float:
        detector = detectors.make("seasonal", jitter=jitter).fit([])
        return float(np.nanmax(detector._raw(x)[late : late + 3]))

    assert raw_at_late_step(0.01) < raw_at_late_step(0.0) / 10


@pytest.mark.parametrize("seed", range(6))
def test_default_detector_stays_quiet_on_noise(seed):
    """Three days of white noise at one point a minute, scored as the scheduler does (held-off
    scores kept): no 3 points in a row reach the scheduler's default threshold."""
    defaults = DetectionSettings()
    x = np.random.default_rng(seed).normal(0.2, 1.0, 3 * 24 * 60)
    anomalous = detectors.make(damping=1.0).fit_score(x)[200:] >= defaults.threshold
    runs = np.convolve(anomalous, np.ones(defaults.sustain_points), mode="valid")
    assert runs.max() < defaults.sustain_points


def test_isolation_forest_is_multivariate():
    rng = np.random.default_rng(1)
    x = 10 + np.sin(np.arange(900) / 15)[:, None] + rng.normal(0, 0.2, (900, 3))
    x[600, 1] += 3  # one signal of the service misbehaves; each column alone looks ordinary
    scores = detectors.make("isolation_forest", novelty_window=1).fit_score(x)
    assert scores.shape == (900,)
    assert (scores[300:] > scores[600]).sum() <= 3  # in the top 1% of the 600 scored points


def test_slo_burn_rate_follows_the_sre_workbook():
    detector = detectors.make("slo_burn_rate", objective=0.999, step_seconds=60)
    healthy = np.full(4 * 24 * 60, 0.0005)  # burning at 0.5x for four days
    assert detector.fit_score(healthy).max() < 0.5
    fast = np.r_[healthy, np.full(60, 0.02)]  # 20x for an hour: page (fast burn)
    assert detector.fit_score(fast)[-1] == 1.0
    brief = np.r_[healthy, np.full(4, 0.02)]  # a 4-minute blip: the 1h window is not burning
    assert detector.fit_score(brief)[-1] < 0.5
    slow = np.r_[healthy, np.full(6 * 60, 0.008)]  # 8x for six hours: slow-burn page
    assert detector.fit_score(slow)[-1] == 0.9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
        min_size=1,
        max_size=300,
    ),
    cut=st.integers(0, 300),
    name=st.sampled_from(FAST),
)
def test_causality_and_range_hold_for_any_series(values, cut, name):
    x = data_for(name, np.array(values))
    full = detectors.make(name).fit_score(x)
    assert ((full >= 0) & (full <= 1)).all()
    k = min(cut, len(x))
    np.testing.assert_array_equal(detectors.make(name).fit_score(x[:k]), full[:k])


@pytest.mark.parametrize("name", sorted(detectors.REGISTRY))
def test_an_explanation_is_words_or_nothing(name):
    detector = detectors.make(name)
    assert detector.explain() is None or isinstance(detector.explain(), str)
    values = np.concatenate([np.random.default_rng(0).normal(10, 1, 400), [40.0]])
    if detector.multivariate:
        values = np.column_stack([values, values])
    detector.fit_score(values)
    why = detector.explain()
    assert why is None or (isinstance(why, str) and why.strip())


def test_the_ensemble_says_why_in_words():
    rng = np.random.default_rng(3)
    detector = detectors.make("ensemble").fit(rng.normal(10, 1, 1500))
    assert detector.update_many([30.0])[0] == 1.0
    assert detector.explain().startswith("the value left the range this series had shown (")
    detector.update_many(rng.normal(10, 1, 200))
    detector.update_many([13.5])
    assert detector.explain().startswith("far from its recent median (rarity, 1 = the rarest")
