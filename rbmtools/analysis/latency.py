"""Delivery latency by Kaplan-Meier, from the binned aggregates.

Time to DELIVERED is right-censored at the revoke, the expiry or the end of the logs for messages
never delivered, so plain percentiles of observed latencies would be biased low. lifelines fits
the Kaplan-Meier estimate on the per-bin counts (as ``weights``); the curve is cut where fewer
than ``min_at_risk`` messages remain at risk, and a quantile the cut curve does not reach is
``None`` (not estimable), never extrapolated. The share never delivered is not read off the cut:
it is the estimate at the end of the group's follow-up (its last observed time, e.g. the TTL of
an arm), with its interval and that horizon, so a small group is not reported as about
``min_at_risk / n`` undelivered. ``product_limit`` is the same estimator in numpy for many
bootstrap replicates at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter

from rbmtools.analysis.schema import bin_seconds

__all__ = [
    "DEFAULT_MIN_AT_RISK",
    "QUANTILES",
    "SurvivalCurve",
    "kaplan_meier",
    "product_limit",
    "weighted_quantile",
]

DEFAULT_MIN_AT_RISK = 30
QUANTILES = (0.5, 0.9, 0.95, 0.99)
_EPS = 1e-12


@dataclass(frozen=True)
class SurvivalCurve:
    """The Kaplan-Meier curve of "not yet delivered", cut at ``supported_until``.

    ``times`` are bin times in seconds (ascending); ``survival``, ``lower`` and ``upper`` the
    estimate and its pointwise band (lifelines' log(-log) Greenwood interval); ``at_risk`` the
    messages still undelivered and observed just before each time. Arrays stop at the cut.
    ``never_delivered`` is the estimate (with its interval) at ``never_delivered_at``, the end of
    the follow-up: the last time any message of the group was observed, beyond the cut.
    """

    times: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at_risk: np.ndarray
    messages: int
    deliveries: int
    min_at_risk: int
    alpha: float
    never_delivered: tuple[float | None, float | None, float | None] = (None, None, None)
    never_delivered_at: float | None = None

    @property
    def estimable(self) -> bool:
        return len(self.times) > 0

    @property
    def supported_until(self) -> float | None:
        """The longest time the data supports (last time with enough messages at risk)."""
        return float(self.times[-1]) if self.estimable else None

    def survival_at(self, seconds: float | np.ndarray) -> np.ndarray:
        """S(t) as a step function (1 before the first time); NaN beyond the support."""
        t = np.atleast_1d(np.asarray(seconds, dtype=float))
        if not self.estimable:
            return np.full(t.shape, np.nan)
        index = np.searchsorted(self.times, t, side="right") - 1
        values = np.where(index >= 0, self.survival[np.clip(index, 0, None)], 1.0)
        return np.where(t > self.times[-1] + _EPS, np.nan, values)

    def _first_time(self, curve: np.ndarray, level: float) -> float | None:
        hits = np.nonzero(curve <= level + _EPS)[0]
        return float(self.times[hits[0]]) if len(hits) else None

    def quantile(self, p: float) -> tuple[float | None, float | None, float | None]:
        """The time by which a share ``p`` of messages is delivered, with its interval:
        ``(estimate, lo, hi)``; each is None where the cut curve never gets there."""
        level = 1.0 - p
        return (
            self._first_time(self.survival, level),
            self._first_time(self.lower, level),
            self._first_time(self.upper, level),
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "seconds": self.times,
                "survival": self.survival,
                "lower": self.lower,
                "upper": self.upper,
                "at_risk": self.at_risk,
            }
        )


def _empty(
    messages: int, deliveries: int, min_at_risk: int, alpha: float, end: Any
) -> SurvivalCurve:
    nothing = np.array([], dtype=float)
    return SurvivalCurve(
        nothing, nothing, nothing, nothing, nothing, messages, deliveries, min_at_risk, alpha, *end
    )


def _end_of_follow_up(
    timeline: np.ndarray, survival: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[tuple[float, float, float], float]:
    """The share not delivered at the last observed time, with its interval, and that time.
    Where the estimate is 0 the log(-log) interval is undefined (lifelines gives 0 to 0): its
    upper end is then the last one defined, where the estimate was still above 0."""
    share, lo, hi = float(survival[-1]), float(lower[-1]), float(upper[-1])
    if share <= 0.0:
        positive = np.nonzero(survival > 0)[0]
        lo, hi = 0.0, float(upper[positive[-1]]) if len(positive) else 1.0
    return (share, min(lo, share), max(hi, share)), float(timeline[-1])


def kaplan_meier(
    bins: pd.DataFrame, *, min_at_risk: int = DEFAULT_MIN_AT_RISK, alpha: float = 0.05
) -> SurvivalCurve:
    """Fit Kaplan-Meier with lifelines on per-bin counts (columns ``bin``, ``delivered``,
    ``censored``) and cut it where fewer than ``min_at_risk`` messages remain at risk."""
    delivered = bins["delivered"].to_numpy(dtype=float) if len(bins) else np.array([])
    censored = bins["censored"].to_numpy(dtype=float) if len(bins) else np.array([])
    messages, deliveries = int(delivered.sum() + censored.sum()), int(delivered.sum())
    if messages == 0:
        return _empty(messages, deliveries, min_at_risk, alpha, ((None, None, None), None))
    times = bin_seconds(bins["bin"].to_numpy())
    durations = np.concatenate([times, times])
    observed = np.concatenate([np.ones(len(times)), np.zeros(len(times))])
    weights = np.concatenate([delivered, censored])
    keep = weights > 0
    fitter = KaplanMeierFitter(alpha=alpha).fit(
        durations[keep], event_observed=observed[keep], weights=weights[keep]
    )
    table = fitter.event_table
    band = fitter.confidence_interval_survival_function_
    timeline = table.index.to_numpy(dtype=float)
    at_risk = table["at_risk"].to_numpy(dtype=float)
    survival = fitter.survival_function_.iloc[:, 0].reindex(timeline).to_numpy()
    lower = band.iloc[:, 0].reindex(timeline).to_numpy()
    upper = band.iloc[:, 1].reindex(timeline).to_numpy()
    lower, upper = np.nan_to_num(lower, nan=0.0), np.nan_to_num(upper, nan=1.0)
    end = _end_of_follow_up(timeline, survival, lower, upper)
    supported = at_risk >= min_at_risk
    if messages < min_at_risk or not supported.any():
        return _empty(messages, deliveries, min_at_risk, alpha, end)
    cut = int(np.nonzero(supported)[0][-1]) + 1
    return SurvivalCurve(
        times=timeline[:cut],
        survival=survival[:cut],
        lower=lower[:cut],
        upper=upper[:cut],
        at_risk=at_risk[:cut],
        messages=messages,
        deliveries=deliveries,
        min_at_risk=min_at_risk,
        alpha=alpha,
        never_delivered=end[0],
        never_delivered_at=end[1],
    )


def product_limit(delivered: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival after each time, for counts of shape ``(..., times)`` sorted by
    time (deliveries before censorings at a tie, as lifelines does). Vectorised over replicates."""
    delivered = np.asarray(delivered, dtype=float)
    censored = np.asarray(censored, dtype=float)
    total = (delivered + censored).sum(axis=-1, keepdims=True)
    removed_before = np.cumsum(delivered + censored, axis=-1) - (delivered + censored)
    at_risk = total - removed_before
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - delivered / at_risk, 1.0)
    return np.cumprod(factor, axis=-1)


def weighted_quantile(bins: pd.DataFrame, count_column: str, p: float) -> float | None:
    """The ``p`` quantile of binned, uncensored durations (None without data)."""
    if not len(bins):
        return None
    counts = bins[count_column].to_numpy(dtype=float)
    total = counts.sum()
    if total <= 0:
        return None
    order = np.argsort(bins["bin"].to_numpy())
    cumulative = np.cumsum(counts[order]) / total
    index = int(np.searchsorted(cumulative, p - _EPS))
    return float(bin_seconds(bins["bin"].to_numpy()[order][min(index, len(order) - 1)]))
