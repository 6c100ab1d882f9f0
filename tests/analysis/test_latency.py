"""Kaplan-Meier on binned aggregates against hand computation and lifelines on raw data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from rbmtools.analysis.latency import kaplan_meier, product_limit, weighted_quantile
from rbmtools.analysis.schema import BIN_FLOOR_SECONDS, bin_index, bin_seconds


def _bins(durations: np.ndarray, delivered: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"bin": bin_index(durations), "d": delivered.astype(int)})
    grouped = frame.groupby("bin").d.agg(delivered="sum", total="count").reset_index()
    grouped["censored"] = grouped.total - grouped.delivered
    return grouped[["bin", "delivered", "censored"]]


def test_hand_computed_small_case():
    # 10 messages: deliveries at 1, 2, 2, 4 s; censored at 3 (x2) and 5 (x4) s.
    durations = np.array([1, 2, 2, 3, 3, 4, 5, 5, 5, 5], dtype=float)
    delivered = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    curve = kaplan_meier(_bins(durations, delivered), min_at_risk=1)
    # S(1) = 9/10; S(2) = 9/10 * 7/9 = 0.7; S(4) = 0.7 * 4/5 = 0.56
    # bins are 0.46 % wide: just after each time the step has happened
    assert curve.survival_at([1.005, 2.01, 3.5, 4.02]) == pytest.approx([0.9, 0.7, 0.7, 0.56])
    assert curve.quantile(0.3)[0] == pytest.approx(2.0, rel=3e-3)
    assert curve.quantile(0.5)[0] is None  # S never drops to 0.5: not estimable
    assert curve.never_delivered[0] == pytest.approx(0.56)
    assert curve.messages == 10 and curve.deliveries == 4


@pytest.mark.filterwarnings("ignore::lifelines.exceptions.ApproximationWarning")
def test_binned_estimate_matches_exact_lifelines_within_half_a_percent():
    rng = np.random.default_rng(5)
    n = 20_000
    latency = rng.lognormal(np.log(4.0), 1.5, n)
    censor = rng.choice([30.0, 300.0, np.inf], n)
    observed = np.minimum(latency, censor)
    delivered = latency <= censor
    exact = KaplanMeierFitter().fit(observed, delivered)
    curve = kaplan_meier(_bins(observed, delivered), min_at_risk=30)
    for p in (0.5, 0.9, 0.95):
        mine = curve.quantile(p)[0]
        theirs = exact.percentile(1 - p)
        assert mine == pytest.approx(theirs, rel=5e-3), p
    grid = np.geomspace(0.1, curve.supported_until, 50)
    assert curve.survival_at(grid) == pytest.approx(
        exact.survival_function_at_times(grid).to_numpy(), abs=3e-3
    )


def test_curve_is_cut_where_too_few_remain_at_risk():
    durations = np.arange(1, 101, dtype=float)  # one delivery per second, 100 messages
    curve = kaplan_meier(_bins(durations, np.ones(100)), min_at_risk=30)
    assert curve.supported_until == pytest.approx(71.0, rel=3e-3)  # 30 still at risk at 71 s
    assert curve.at_risk.min() >= 30
    assert curve.quantile(0.5)[0] == pytest.approx(50.0, rel=3e-3)
    assert curve.quantile(0.9)[0] is None  # needs t = 90 s, beyond the cut
    assert np.isnan(curve.survival_at(80.0)[0])
    assert not kaplan_meier(_bins(durations[:10], np.ones(10)), min_at_risk=30).estimable


def test_confidence_band_contains_the_estimate_and_quantile_intervals_bracket_it():
    rng = np.random.default_rng(1)
    durations = rng.exponential(10.0, 2_000)
    curve = kaplan_meier(_bins(durations, np.ones(2_000)))
    assert np.all(curve.lower <= curve.survival + 1e-12)
    assert np.all(curve.survival <= curve.upper + 1e-12)
    estimate, lo, hi = curve.quantile(0.5)
    assert lo <= estimate <= hi
    assert estimate == pytest.approx(10.0 * np.log(2), rel=0.08)


def test_product_limit_is_lifelines_kaplan_meier():
    rng = np.random.default_rng(2)
    delivered = rng.integers(0, 20, 40)
    censored = rng.integers(0, 5, 40)
    times = np.arange(1, 41, dtype=float)
    weights = np.concatenate([delivered, censored])
    keep = weights > 0
    fitter = KaplanMeierFitter().fit(
        np.concatenate([times, times])[keep],
        np.concatenate([np.ones(40), np.zeros(40)])[keep],
        weights=weights[keep],
    )
    expected = fitter.survival_function_at_times(times).to_numpy()
    assert product_limit(delivered, censored) == pytest.approx(expected, rel=1e-9)
    many = product_limit(np.stack([delivered, delivered]), np.stack([censored, censored]))
    assert many.shape == (2, 40) and many[1] == pytest.approx(expected, rel=1e-9)


def test_bins_round_trip_and_floor():
    seconds = np.array([0.0, BIN_FLOOR_SECONDS, 0.5, 3.0, 86_400.0])
    index = bin_index(seconds)
    assert index[0] == index[1] == 0
    centres = bin_seconds(index)
    assert centres[2:] == pytest.approx(seconds[2:], rel=2.4e-3)
    frame = pd.DataFrame({"bin": bin_index([1.0, 2.0, 3.0, 4.0]), "read": [1, 1, 1, 1]})
    assert weighted_quantile(frame, "read", 0.5) == pytest.approx(2.0, rel=3e-3)
    assert weighted_quantile(frame.iloc[0:0], "read", 0.5) is None


def _lifelines_curve(bins: pd.DataFrame, alpha: float) -> tuple[np.ndarray, ...]:
    """The curve lifelines fits on the bins' counts as weights: the reference the numpy
    Kaplan-Meier of ``kaplan_meier`` must equal (it replaced this code, to start faster)."""
    times = bin_seconds(bins["bin"].to_numpy())
    delivered = bins["delivered"].to_numpy(dtype=float)
    censored = bins["censored"].to_numpy(dtype=float)
    durations = np.concatenate([times, times])
    observed = np.concatenate([np.ones(len(times)), np.zeros(len(times))])
    weights = np.concatenate([delivered, censored])
    keep = weights > 0
    fitter = KaplanMeierFitter(alpha=alpha).fit(
        durations[keep], event_observed=observed[keep], weights=weights[keep]
    )
    timeline = fitter.event_table.index.to_numpy(dtype=float)
    band = fitter.confidence_interval_survival_function_
    return (
        timeline,
        fitter.event_table["at_risk"].to_numpy(dtype=float),
        fitter.survival_function_.iloc[:, 0].reindex(timeline).to_numpy(),
        band.iloc[:, 0].reindex(timeline).to_numpy(),
        band.iloc[:, 1].reindex(timeline).to_numpy(),
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_numpy_kaplan_meier_is_lifelines_on_the_same_counts(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 60))
    bins = pd.DataFrame(
        {
            "bin": np.sort(rng.choice(np.arange(0, 4000), size, replace=False)),
            "delivered": rng.integers(0, 30, size) * (rng.random(size) < 0.8),
            "censored": rng.integers(0, 20, size) * (rng.random(size) < 0.5),
        }
    )
    if seed == 0:  # everything delivered at the end: survival reaches 0
        bins.loc[bins.index[-1], ["delivered", "censored"]] = [50, 0]
    alpha = (0.05, 0.1, 0.2)[seed % 3]
    curve = kaplan_meier(bins, min_at_risk=1, alpha=alpha)
    times, at_risk, survival, lower, upper = _lifelines_curve(bins, alpha)
    cut = len(curve.times)
    np.testing.assert_allclose(curve.times, times[:cut])
    np.testing.assert_allclose(curve.at_risk, at_risk[:cut])
    np.testing.assert_allclose(curve.survival, survival[:cut], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(curve.lower, np.nan_to_num(lower[:cut], nan=0.0), atol=1e-12)
    np.testing.assert_allclose(curve.upper, np.nan_to_num(upper[:cut], nan=1.0), atol=1e-12)
