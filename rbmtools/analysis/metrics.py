"""Rates and latencies per group, computed from the compact aggregates.

Revoke success is ``revoked`` over the messages whose revoke was tried (log-format section 3),
split by method (API DELETE or TTL expiry), with Wilson 95 % intervals and the
outcome breakdown. Latency quantiles come from Kaplan-Meier (``latency.py``). Read rate is READ
over delivered; stale deliveries came after the message's expireTime; double deliveries came
after a fallback was sent. Arms are compared by differences of rates with Newcombe intervals.
Every function takes a ``Dataset`` and ``by``, or ready ``Aggregates``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from rbmtools.analysis.aggregates import Aggregates
from rbmtools.analysis.latency import (
    DEFAULT_MIN_AT_RISK,
    QUANTILES,
    kaplan_meier,
    weighted_quantile,
)
from rbmtools.analysis.schema import OUTCOMES, REVOKE_METHODS, validate_by
from rbmtools.errors import ValidationError

__all__ = [
    "RATES",
    "compare_arms",
    "delivery_latency",
    "outcome_counts",
    "read_rate",
    "revoke_success",
    "stale_and_double_deliveries",
    "wilson",
]


def wilson(
    successes: int, trials: int, alpha: float = 0.05
) -> tuple[float | None, float | None, float | None]:
    """``(rate, lo, hi)``: the share and its Wilson score interval; all None when no trials.
    (statsmodels' ``proportion_confint(method="wilson")``, which the tests hold it equal to,
    without importing statsmodels at run time.)"""
    if trials <= 0:
        return None, None, None
    rate = successes / trials
    z = NormalDist().inv_cdf(1 - alpha / 2)
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    spread /= denominator
    return rate, min(max(centre - spread, 0.0), 1.0), min(max(centre + spread, 0.0), 1.0)


def newcombe(k1: int, n1: int, k0: int, n0: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of two rates k1/n1 - k0/n0 (from
    their Wilson intervals; statsmodels' ``confint_proportions_2indep(method="newcomb")``)."""
    p1, p0 = k1 / n1, k0 / n0
    _, low1, upp1 = wilson(k1, n1, alpha)
    _, low0, upp0 = wilson(k0, n0, alpha)
    d_low = math.sqrt((p1 - low1) ** 2 + (upp0 - p0) ** 2)
    d_upp = math.sqrt((p0 - low0) ** 2 + (upp1 - p1) ** 2)
    return p1 - p0 - d_low, p1 - p0 + d_upp


def _aggregates(source: Any, by: str | Iterable[str] | None) -> Aggregates:
    if isinstance(source, Aggregates):
        if by is not None and tuple(validate_by(by)) != source.by:
            raise ValidationError(
                "by", by, f"differs from the aggregates' grouping {list(source.by)}"
            )
        return source
    return source.aggregates(by)


def _delivered(counts: dict[str, int]) -> int:
    return counts["delivered"] + counts["delivered_after_revoke"]


def outcome_counts(source: Any, by: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Messages and the count of each outcome, per group."""
    agg = _aggregates(source, by)
    return agg.groups[[*agg.by, "messages", *OUTCOMES]].copy()


def revoke_success(
    source: Any, by: str | Iterable[str] | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Per group and method (``all``, ``api``, ``ttl``): revokes tried, succeeded, the rate with
    its Wilson interval, and the outcomes of the tried messages."""
    agg = _aggregates(source, by)
    rows = []
    for group in agg:
        c = group.counts
        for method in ("all", *REVOKE_METHODS):
            if method == "all":
                outcomes = {o: sum(c[f"{m}_outcome_{o}"] for m in REVOKE_METHODS) for o in OUTCOMES}
            else:
                outcomes = {o: c[f"{method}_outcome_{o}"] for o in OUTCOMES}
            tried = sum(outcomes.values())
            rate, lo, hi = wilson(outcomes["revoked"], tried, alpha)
            breakdown = {f"outcome_{o}": n for o, n in outcomes.items()}
            rows.append(
                {**group.key, "method": method, "n": tried, "revoked": outcomes["revoked"],
                 "rate": rate, "lo": lo, "hi": hi, **breakdown}
            )  # fmt: skip
    return pd.DataFrame(rows)


def delivery_latency(
    source: Any,
    by: str | Iterable[str] | None = None,
    *,
    min_at_risk: int = DEFAULT_MIN_AT_RISK,
    quantiles: Iterable[float] = QUANTILES,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Kaplan-Meier delivery latency per group: quantiles with intervals (None where the cut
    curve never gets there), the share never delivered by the end of the group's follow-up
    (``never_delivered_at_seconds``), and where the curve stops."""
    agg = _aggregates(source, by)
    rows = []
    for group in agg:
        curve = kaplan_meier(group.latency_bins, min_at_risk=min_at_risk, alpha=alpha)
        row = {**group.key, "messages": curve.messages, "deliveries": curve.deliveries}
        for p in quantiles:
            name = f"p{round(p * 100):d}"
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = curve.quantile(p)
        never, never_lo, never_hi = curve.never_delivered
        row.update(
            never_delivered_share=never,
            never_delivered_lo=never_lo,
            never_delivered_hi=never_hi,
            never_delivered_at_seconds=curve.never_delivered_at,
            supported_until_seconds=curve.supported_until,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def read_rate(
    source: Any, by: str | Iterable[str] | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Per group: delivered, read, the read rate with its Wilson interval, and the median and
    90th percentile of the time from DELIVERED to READ (among messages read)."""
    agg = _aggregates(source, by)
    rows = []
    for group in agg:
        delivered = _delivered(group.counts)
        rate, lo, hi = wilson(group.counts["read"], delivered, alpha)
        rows.append(
            {**group.key, "delivered": delivered, "read": group.counts["read"], "rate": rate,
             "lo": lo, "hi": hi,
             "median_seconds": weighted_quantile(group.read_bins, "read", 0.5),
             "p90_seconds": weighted_quantile(group.read_bins, "read", 0.9)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def stale_and_double_deliveries(
    source: Any, by: str | Iterable[str] | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Per group: deliveries after expireTime (stale) and after a fallback (double), as counts
    and as shares of delivered messages with Wilson intervals; plus the revoke race share."""
    agg = _aggregates(source, by)
    rows = []
    for group in agg:
        c = group.counts
        delivered = _delivered(c)
        stale = wilson(c["stale_deliveries"], delivered, alpha)
        double = wilson(c["double_deliveries"], delivered, alpha)
        succeeded = c["revoked"] + c["delivered_after_revoke"]
        race = wilson(c["delivered_after_revoke"], succeeded, alpha)
        rows.append(
            {**group.key, "delivered": delivered,
             "stale": c["stale_deliveries"], "stale_rate": stale[0], "stale_lo": stale[1],
             "stale_hi": stale[2],
             "double": c["double_deliveries"], "double_rate": double[0],
             "double_lo": double[1], "double_hi": double[2],
             "revokes_succeeded": succeeded, "raced": c["delivered_after_revoke"],
             "race_rate": race[0], "race_lo": race[1], "race_hi": race[2]}
        )  # fmt: skip
    return pd.DataFrame(rows)


#: The rates ``compare_arms`` compares: name -> (successes, trials) from a group's counts.
RATES: dict[str, Any] = {
    "delivered": lambda c: (_delivered(c), c["messages"] - c["not_rcs"]),
    "revoke_success": lambda c: (c["revoked"], c["revoke_tried"]),
    "read": lambda c: (c["read"], _delivered(c)),
    "stale": lambda c: (c["stale_deliveries"], _delivered(c)),
    "double_delivery": lambda c: (c["double_deliveries"], _delivered(c)),
    # messages taken back and sent by SMS (an SMS for want of RCS is not a revoke's)
    "fallback": lambda c: (c["fallbacks"] - c["not_rcs_fallbacks"], c["messages"] - c["not_rcs"]),
}


def _arm_order(arms: list[Any], reference: str | Sequence[str] | None) -> list[Any]:
    """``arms`` in the order the reference gives: a sequence of names is the spec's order
    (its first arm present is the reference), a name puts that arm first; arms the order does
    not name follow in sort order."""
    if reference is None:
        order: list[str] = []
    elif isinstance(reference, str):
        order = [reference]
    else:
        order = [str(name) for name in reference]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(arms, key=lambda arm: (rank.get(str(arm), len(rank)), str(arm)))


def _difference(k1: int, n1: int, k0: int, n0: int, alpha: float) -> dict[str, Any]:
    """Arm minus reference: the difference (exact for equal rates, never 8.7e-19), its Newcombe
    interval, the same in percentage points, and whether the interval excludes zero."""
    if not (n1 > 0 and n0 > 0):
        return dict.fromkeys(
            ("difference", "lo", "hi", "difference_pp", "lo_pp", "hi_pp", "significant")
        )
    diff = (k1 * n0 - k0 * n1) / (n1 * n0)
    lo, hi = newcombe(k1, n1, k0, n0, alpha)
    return {
        "difference": diff, "lo": lo, "hi": hi,
        "difference_pp": 100.0 * diff, "lo_pp": 100.0 * lo, "hi_pp": 100.0 * hi,
        "significant": bool(lo > 0 or hi < 0),
    }  # fmt: skip


def compare_arms(
    source: Any,
    by: str | Iterable[str] | None = None,
    *,
    reference: str | Sequence[str] | None = None,
    rates: Iterable[str] = tuple(RATES),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Each arm against a reference arm, within every stratum of the other ``by`` columns:
    difference of rates (arm minus reference) with a Newcombe (Wilson-based) interval, in
    shares and in percentage points (``*_pp``), and ``significant`` when it excludes zero.

    ``by`` must include ``arm``. ``reference`` is the arms in the spec's order (the first one a
    stratum holds is its reference), or one arm's name (strata without it are skipped); by
    default the first arm in sort order.
    """
    agg = _aggregates(source, by)
    if "arm" not in agg.by:
        raise ValidationError("by", list(agg.by), "must include 'arm' to compare arms")
    for name in rates:
        if name not in RATES:
            raise ValidationError("rates", name, f"must be one of {', '.join(RATES)}")
    groups = [g for g in agg if g.key["arm"] is not None]
    if isinstance(reference, str) and all(g.key["arm"] != reference for g in groups):
        known = sorted({str(g.key["arm"]) for g in groups})
        raise ValidationError("reference", reference, f"is not an arm ({', '.join(known)})")
    strata_cols = [c for c in agg.by if c != "arm"]
    strata: dict[tuple, dict[Any, Any]] = {}
    for group in groups:
        strata.setdefault(tuple(group.key[c] for c in strata_cols), {})[group.key["arm"]] = group
    rows = []
    for stratum, members in strata.items():
        arms = _arm_order(list(members), reference)
        if len(arms) < 2 or (isinstance(reference, str) and arms[0] != reference):
            continue
        ref = members[arms[0]]
        for arm in arms[1:]:
            group = members[arm]
            for name in rates:
                k1, n1 = RATES[name](group.counts)
                k0, n0 = RATES[name](ref.counts)
                rows.append(
                    {**dict(zip(strata_cols, stratum, strict=True)), "rate": name,
                     "arm": arm, "reference": arms[0],
                     "arm_rate": k1 / n1 if n1 else None, "arm_n": n1,
                     "reference_rate": k0 / n0 if n0 else None, "reference_n": n0,
                     **_difference(k1, n1, k0, n0, alpha)}
                )  # fmt: skip
    return pd.DataFrame(rows)


def _finite(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else value
