"""Always-valid intervals against independent computations, and their coverage when a running
experiment is looked at after every batch (simulated, seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from rbmtools.analysis.confseq import (
    always_valid_mean,
    always_valid_mean_difference,
    always_valid_rate,
    always_valid_rate_difference,
    boundary_multiplier,
    mixture_ratio,
)
from rbmtools.analysis.metrics import wilson
from rbmtools.errors import ValidationError


def _log_mixture(s: float, v: float, rho: float) -> float:
    """Log of the normal-mixture martingale at sum ``s`` and variance ``v``: exp(l*s - l^2*v/2)
    averaged over l ~ N(0, 1/rho), by numerical integration (not the closed form). The
    exponent's peak is taken out before integrating, so nothing overflows."""
    width = v + rho
    peak_at = s / width
    peak = s * s / (2 * width)
    reach = 12 / math.sqrt(width)
    value, _ = integrate.quad(
        lambda lam: math.exp(lam * s - lam * lam * width / 2 - peak),
        peak_at - reach, peak_at + reach, limit=200,
    )  # fmt: skip
    return peak + math.log(value * math.sqrt(rho / (2 * math.pi)))


def test_mixture_constant_minimises_the_boundary_at_the_planned_size():
    # the boundary at the planned size, in units of sqrt(V*): sqrt((1+r) log((1+r)/(r a^2)))
    alpha = 0.05
    found = optimize.minimize_scalar(
        lambda r: (1 + r) * math.log((1 + r) / (r * alpha**2)), bounds=(1e-4, 10), method="bounded"
    )
    assert mixture_ratio(alpha) == pytest.approx(found.x, rel=1e-3)
    assert float(boundary_multiplier(1.0, alpha)) == pytest.approx(math.sqrt(found.fun), rel=1e-6)
    assert float(boundary_multiplier(1.0, alpha)) == pytest.approx(3.035, abs=1e-3)
    assert float(boundary_multiplier(0.0, alpha)) == math.inf
    assert boundary_multiplier(0.3) > boundary_multiplier(1.0) < boundary_multiplier(3.0)


@pytest.mark.parametrize(("k", "n", "planned"), [(90, 100, 1000), (900, 1000, 1000), (3, 40, 200)])
def test_rate_is_wilson_with_the_mixture_multiplier(k, n, planned):
    z = float(boundary_multiplier(n / planned))
    expected = proportion_confint(k, n, alpha=2 * norm.sf(z), method="wilson")
    rate, lo, hi = always_valid_rate(k, n, planned)
    assert rate == k / n
    assert (lo, hi) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("k", "n", "planned"), [(90, 100, 1000), (430, 500, 500), (12, 300, 600)])
def test_rate_limits_are_where_the_mixture_martingale_reaches_one_over_alpha(k, n, planned):
    alpha = 0.05
    r = mixture_ratio(alpha)

    def excess(p: float) -> float:
        variance = p * (1 - p)
        return _log_mixture(k - n * p, n * variance, r * planned * variance) + math.log(alpha)

    _, lo, hi = always_valid_rate(k, n, planned, alpha)
    rate = k / n
    assert optimize.brentq(excess, 1e-6, rate) == pytest.approx(lo, abs=1e-6)
    assert optimize.brentq(excess, rate, 1 - 1e-6) == pytest.approx(hi, abs=1e-6)


def test_mean_is_the_mixture_boundary_plus_the_bernstein_term():
    rng = np.random.default_rng(3)
    values = rng.choice([0.02, 0.05, 0.4], p=[0.85, 0.12, 0.03], size=400)
    n, total, squares = len(values), values.sum(), (values**2).sum()
    mean, lo, hi = always_valid_mean(n, total, squares, 1000, low=0.02, high=0.4)
    s = values.std(ddof=1)
    r, alpha = mixture_ratio(0.05), 0.05
    # the mixture's own limit, by integration: |sum - n*mu| where the martingale hits 1/alpha
    v, rho = n * s * s, r * 1000 * s * s
    edge = optimize.brentq(lambda x: _log_mixture(x, v, rho) + math.log(alpha), 0, n)
    bernstein = 0.38 * float(boundary_multiplier(n / 1000)) ** 2 / (6 * n)
    assert mean == pytest.approx(values.mean())
    assert hi - mean == pytest.approx(edge / n + bernstein, rel=1e-6)
    assert mean - lo == pytest.approx(edge / n + bernstein, rel=1e-6)


def test_differences_combine_the_two_arms():
    diff, lo, hi = always_valid_rate_difference(450, 500, 400, 500, 1000, 1000)
    p1, l1, u1 = always_valid_rate(450, 500, 1000)
    p0, l0, u0 = always_valid_rate(400, 500, 1000)
    assert diff == pytest.approx(0.1)
    assert lo == pytest.approx(diff - math.hypot(p1 - l1, u0 - p0))
    assert hi == pytest.approx(diff + math.hypot(u1 - p1, p0 - l0))
    diff, lo, hi = always_valid_mean_difference(
        (400, 400 * 0.05, 400 * 0.0029), (400, 400 * 0.04, 400 * 0.0020), 400, 400, low=0, high=1
    )
    z = float(boundary_multiplier(1.0))
    spread_term = z * z * (2 / 400) / 6
    variances = [(0.0029 - 0.05**2) * 400 / 399, (0.0020 - 0.04**2) * 400 / 399]
    half = z * math.sqrt(sum(v / 400 for v in variances))
    assert diff == pytest.approx(0.01)
    assert (lo, hi) == pytest.approx((diff - half - spread_term, diff + half + spread_term))


def test_no_data_gives_none_and_bad_settings_are_refused():
    assert always_valid_rate(0, 0, 100) == (None, None, None)
    assert always_valid_mean(0, 0.0, 0.0, 100, low=0, high=1) == (None, None, None)
    rate, lo, hi = always_valid_rate(np.array([0, 5]), np.array([0, 10]), 100)
    assert np.isnan(rate[0]) and lo[1] < 0.5 < hi[1]
    with pytest.raises(ValidationError, match="alpha"):
        always_valid_rate(1, 2, 10, alpha=1.5)
    with pytest.raises(ValidationError, match="planned"):
        always_valid_rate(1, 2, 0)
    with pytest.raises(ValidationError, match="high"):
        always_valid_mean(2, 1.0, 1.0, 10, low=1, high=0)


def test_width_at_the_planned_size_is_under_1_6_times_wilson():
    for k, n in [(900, 1000), (4500, 5000), (150, 3000), (1500, 3000)]:
        _, lo, hi = always_valid_rate(k, n, n)
        _, wlo, whi = wilson(k, n)
        assert 1.5 < (hi - lo) / (whi - wlo) <= 1.6


def _misses_at_some_look(estimates: np.ndarray, lo: np.ndarray, hi: np.ndarray, truth) -> float:
    return float(((truth < lo) | (truth > hi)).any(axis=1).mean())


def test_rate_holds_at_every_look_where_wilson_does_not():
    # the experiment: true rate 0.9, 50 looks of 100 messages, 2,000 runs
    rng = np.random.default_rng(18)
    successes = np.cumsum(rng.random((2000, 5000)) < 0.9, axis=1)[:, 99::100]
    trials = np.arange(100, 5001, 100)
    _, lo, hi = always_valid_rate(successes, trials, 5000)
    always = _misses_at_some_look(successes, lo, hi, 0.9)
    wlo, whi = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    fixed = _misses_at_some_look(successes, wlo, whi, 0.9)
    assert always <= 0.05
    assert fixed > 0.2  # about a third of runs, as the issue measured


def test_rate_holds_at_every_look_near_the_edge():
    rng = np.random.default_rng(19)
    successes = np.cumsum(rng.random((2000, 3000)) < 0.99, axis=1)[:, 49::50]
    trials = np.arange(50, 3001, 50)
    _, lo, hi = always_valid_rate(successes, trials, 3000)
    assert _misses_at_some_look(successes, lo, hi, 0.99) <= 0.05


def test_mean_of_skewed_costs_holds_at_every_look():
    # costs of the otp kind: mostly an RCS message, sometimes an SMS, rarely a long wait
    rng = np.random.default_rng(20)
    kinds = rng.random((2000, 3000))
    waits = rng.uniform(0.1, 1.5, size=kinds.shape)
    values = np.where(kinds < 0.9, 0.021, np.where(kinds < 0.98, 0.06, waits))
    truth = 0.9 * 0.021 + 0.08 * 0.06 + 0.02 * 0.8
    looks = np.arange(100, 3001, 100)
    total = np.cumsum(values, axis=1)[:, looks - 1]
    squares = np.cumsum(values**2, axis=1)[:, looks - 1]
    _, lo, hi = always_valid_mean(looks, total, squares, 3000, low=0.021, high=1.5)
    assert _misses_at_some_look(total, lo, hi, truth) <= 0.05


def test_differences_hold_at_every_look():
    rng = np.random.default_rng(21)
    a = np.cumsum(rng.random((2000, 2000)) < 0.85, axis=1)[:, 99::100]
    b = np.cumsum(rng.random((2000, 2000)) < 0.80, axis=1)[:, 99::100]
    n = np.arange(100, 2001, 100)
    _, lo, hi = always_valid_rate_difference(a, n, b, n, 2000, 2000)
    assert _misses_at_some_look(a, lo, hi, 0.05) <= 0.05
    x = rng.exponential(0.03, size=(2000, 2000)).clip(max=0.5)
    y = rng.exponential(0.02, size=(2000, 2000)).clip(max=0.5)
    truth = 0.03 * (1 - math.exp(-0.5 / 0.03)) - 0.02 * (1 - math.exp(-0.5 / 0.02))
    stats = [(n, np.cumsum(s, 1)[:, n - 1], np.cumsum(s * s, 1)[:, n - 1]) for s in (x, y)]
    _, lo, hi = always_valid_mean_difference(*stats, 2000, 2000, low=0, high=0.5)
    assert _misses_at_some_look(x, lo, hi, truth) <= 0.05
