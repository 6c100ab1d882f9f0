"""Always-valid intervals: confidence sequences for rates, means and their differences.

A fixed interval (Wilson, Newcombe, the t-interval) holds at one sample size chosen in advance.
Read at every look of a running experiment, it misses the truth at some look far more often
than it says (about a third of runs over 50 looks of a 95 % Wilson interval). A confidence
sequence holds at every sample size at once: the chance that the truth ever leaves it, however
often it is read and whenever the reading stops, is at most ``alpha``.

The boundary is the two-sided normal mixture of Howard, Ramdas, McAuliffe and Sekhon (2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49(2)):
a sum of centred observations S with variance process V stays within
``sqrt((V + rho) * log((V + rho) / (rho * alpha**2)))`` at every sample size with probability
``1 - alpha``. Its one constant ``rho`` makes it narrowest at one size; it is tuned for the
planned size (``rho = V* / (-W_{-1}(-alpha**2 / e) - 1)``, W the Lambert function), where the
interval is about 1.55 times as wide as the fixed 95 % one, and it widens slowly beyond. In units
of the estimate's standard error the boundary is a multiplier that replaces the fixed ``z`` and
depends only on the information fraction (sample size over planned size), so each interval here
is its fixed counterpart with ``z`` replaced:

- rates: Wilson's score interval (variance under the tested rate, so it never collapses at 0 or
  1), beside ``metrics.wilson``;
- means of bounded values (the cost per message): the plug-in standard error plus the
  empirical-Bernstein term ``range * z**2 / (6 n)``, which keeps rare large values (long waits)
  from making early intervals too narrow;
- differences between two independent arms: Newcombe's square-and-add of the two rates' limits
  (beside ``metrics.compare_arms``), and the two means' variances added.

With an estimated variance the guarantee is asymptotic (Waudby-Smith et al. 2024, "Time-uniform
central limit theory and asymptotic confidence sequences", Annals of Statistics 52(6)); the tests
check coverage under continuous monitoring by simulation. Every function takes numbers or numpy
arrays (broadcast together); a scalar answer is a float, or None where there is no data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import lambertw

from rbmtools.errors import ValidationError

__all__ = [
    "always_valid_mean",
    "always_valid_mean_difference",
    "always_valid_rate",
    "always_valid_rate_difference",
    "boundary_multiplier",
    "mixture_ratio",
]

Interval = tuple[Any, Any, Any]


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValidationError("alpha", alpha, "must be between 0 and 1 (exclusive)")
    return float(alpha)


@lru_cache(maxsize=64)
def mixture_ratio(alpha: float = 0.05) -> float:
    """``rho / V*``: the mixture constant, in units of the planned variance, that makes the
    normal-mixture boundary narrowest at the planned size (about 0.122 at ``alpha`` 0.05)."""
    alpha = _check_alpha(alpha)
    w = float(np.real(lambertw(-(alpha**2) / np.e, k=-1)))
    return 1.0 / (-w - 1.0)


def boundary_multiplier(information: Any, alpha: float = 0.05) -> Any:
    """The multiplier of the standard error at information fraction ``information`` (sample
    size over planned size): 3.04 at the planned size for ``alpha`` 0.05, where a fixed
    interval uses 1.96; infinite without information."""
    r = mixture_ratio(alpha)
    f = np.asarray(information, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt((1.0 + r / f) * np.log((f + r) / (r * alpha**2)))
    return np.where(f > 0, value, np.inf)


def _planned(planned: Any) -> np.ndarray:
    value = np.asarray(planned, dtype=float)
    if np.any(~(value > 0)):
        raise ValidationError("planned", planned, "must be a positive sample size")
    return value


def _out(*arrays: np.ndarray) -> Interval:
    """Scalars as floats (None for NaN), arrays as they are."""
    if all(np.ndim(a) == 0 for a in arrays):
        return tuple(None if np.isnan(a) else float(a) for a in arrays)  # type: ignore[return-value]
    return tuple(np.asarray(a, dtype=float) for a in arrays)  # type: ignore[return-value]


def _rate_limits(successes: Any, trials: Any, planned: Any, alpha: float) -> Interval:
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = boundary_multiplier(n / _planned(planned), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = k / n
        z2n = z * z / n
        centre = (rate + z2n / 2.0) / (1.0 + z2n)
        half = z / (1.0 + z2n) * np.sqrt(rate * (1.0 - rate) / n + z2n / (4.0 * n))
    empty = ~(n > 0)
    rate = np.where(empty, np.nan, rate)
    lo = np.where(empty, np.nan, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(empty, np.nan, np.clip(centre + half, 0.0, 1.0))
    return rate, lo, hi


def always_valid_rate(successes: Any, trials: Any, planned: Any, alpha: float = 0.05) -> Interval:
    """``(rate, lo, hi)``: the share and its confidence sequence, Wilson's interval with the
    normal-mixture multiplier tuned for ``planned`` trials; None (NaN) without trials."""
    return _out(*_rate_limits(successes, trials, planned, _check_alpha(alpha)))


def _mean_half_width(
    count: np.ndarray, variance: np.ndarray, spread: Any, planned: Any, alpha: float
) -> np.ndarray:
    z = boundary_multiplier(count / _planned(planned), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return z * np.sqrt(variance / count) + np.asarray(spread) * z * z / (6.0 * count)


def _mean_and_variance(count: Any, total: Any, total_squares: Any) -> tuple[np.ndarray, ...]:
    n = np.asarray(count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.asarray(total, dtype=float) / n
        squares = np.asarray(total_squares, dtype=float) / n - mean * mean
        variance = np.maximum(squares, 0.0) * n / np.maximum(n - 1.0, 1.0)
    return n, mean, variance


def always_valid_mean(
    count: Any,
    total: Any,
    total_squares: Any,
    planned: Any,
    *,
    low: Any,
    high: Any,
    alpha: float = 0.05,
) -> Interval:
    """``(mean, lo, hi)`` of values known to lie in ``[low, high]``, from their ``count``, sum
    and sum of squares; the interval is clipped to ``[low, high]``. None (NaN) without values."""
    alpha = _check_alpha(alpha)
    n, mean, variance = _mean_and_variance(count, total, total_squares)
    spread = np.asarray(high, dtype=float) - np.asarray(low, dtype=float)
    if np.any(spread < 0):
        raise ValidationError("high", high, f"must not be below low ({low})")
    half = _mean_half_width(n, variance, spread, planned, alpha)
    empty = ~(n > 0)
    lo = np.where(empty, np.nan, np.clip(mean - half, low, high))
    hi = np.where(empty, np.nan, np.clip(mean + half, low, high))
    return _out(np.where(empty, np.nan, mean), lo, hi)


def always_valid_rate_difference(
    successes: Any,
    trials: Any,
    reference_successes: Any,
    reference_trials: Any,
    planned: Any,
    reference_planned: Any,
    alpha: float = 0.05,
) -> Interval:
    """``(difference, lo, hi)``: arm rate minus reference rate, with Newcombe's square-and-add
    of the two arms' always-valid limits (each at ``alpha``), as ``metrics.compare_arms`` does
    with Wilson's."""
    alpha = _check_alpha(alpha)
    p1, l1, u1 = _rate_limits(successes, trials, planned, alpha)
    p0, l0, u0 = _rate_limits(reference_successes, reference_trials, reference_planned, alpha)
    diff = p1 - p0
    lo = diff - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = diff + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return _out(diff, np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0))


def always_valid_mean_difference(
    arm: tuple[Any, Any, Any],
    reference: tuple[Any, Any, Any],
    planned: Any,
    reference_planned: Any,
    *,
    low: Any,
    high: Any,
    alpha: float = 0.05,
) -> Interval:
    """``(difference, lo, hi)``: arm mean minus reference mean, for two independent samples of
    values in ``[low, high]``, each given as ``(count, total, total_squares)``. The variances
    add; the multiplier is tuned for the planned sizes' combined information."""
    alpha = _check_alpha(alpha)
    n1, m1, v1 = _mean_and_variance(*arm)
    n0, m0, v0 = _mean_and_variance(*reference)
    p1, p0 = _planned(planned), _planned(reference_planned)
    spread = np.asarray(high, dtype=float) - np.asarray(low, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_n = 1.0 / n1 + 1.0 / n0
        information = (1.0 / p1 + 1.0 / p0) / inverse_n
        z = boundary_multiplier(information, alpha)
        half = z * np.sqrt(v1 / n1 + v0 / n0) + spread * z * z * inverse_n / 6.0
    diff = m1 - m0
    empty = ~((n1 > 0) & (n0 > 0))
    return _out(
        np.where(empty, np.nan, diff),
        np.where(empty, np.nan, np.maximum(diff - half, -spread)),
        np.where(empty, np.nan, np.minimum(diff + half, spread)),
    )
