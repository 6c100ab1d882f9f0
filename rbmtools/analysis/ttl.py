"""The best TTL under a cost policy: expected cost per message as a function of the TTL.

With F the delivery-time distribution (Kaplan-Meier, so messages never delivered are part of
it) and w(t) = wait_cost_per_hour * t, a message costs ``rcs_cost + w(t)`` (plus ``stale_cost``
when t > deadline) if delivered at t <= T; otherwise, with fallback, ``sms_cost + w(T +
sms_latency) + p_race * (rcs_cost + duplicate_cost)`` (p_race: the observed share of successful
revokes later followed by DELIVERED), and without fallback ``lost_cost``. The curve is evaluated on
log-spaced TTLs from 10 s to 15 days but never beyond the longest time the data supports; the
minimum gets a bootstrap interval (messages resampled from the binned aggregates), and the
coverage rule gives the smallest T delivering a share q of the messages that are delivered.

A flat curve makes the optimum look more precise than the choice is: beside it comes the
near-optimal range, the contiguous TTLs around the optimum whose expected cost is within a
relative ``tolerance`` (0.5 %) of the best, so a reader sees whether the choice is free or sharp.
``at_support_edge`` says that range reaches the longest TTL the data supports (a longer TTL may
be as cheap or cheaper): a property of the curve alone, not of the bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbmtools.analysis.latency import SurvivalCurve, product_limit
from rbmtools.analysis.policy import CostPolicy
from rbmtools.analysis.schema import bin_seconds

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "TtlChoice",
    "best_ttl",
    "candidate_ttls",
    "coverage_ttl",
    "expected_cost",
    "near_optimal_range",
]

MIN_TTL_SECONDS = 10.0
MAX_TTL_SECONDS = 15 * 86_400.0
_GRID_POINTS = 241  # about 58 candidates per factor of ten
#: Costs within this relative distance of the best count as near-optimal (0.5 %).
DEFAULT_TOLERANCE = 0.005


def candidate_ttls(supported_until: float | None) -> np.ndarray:
    """Log-spaced TTLs from 10 s to 15 days, cut at the longest time the data supports."""
    grid = np.geomspace(MIN_TTL_SECONDS, MAX_TTL_SECONDS, _GRID_POINTS)
    if supported_until is None:
        return grid[:0]
    return grid[grid <= supported_until * (1 + 1e-12)]


def expected_cost(
    times: np.ndarray,
    survival: np.ndarray,
    ttls: np.ndarray,
    policy: CostPolicy,
    p_race: float | np.ndarray,
) -> np.ndarray:
    """Expected cost per message for each TTL. ``survival`` is S after each of ``times`` (its
    last axis; leading axes are bootstrap replicates); ``p_race`` a scalar or one per replicate."""
    times = np.asarray(times, dtype=float)
    survival = np.asarray(survival, dtype=float)
    previous = np.concatenate([np.ones((*survival.shape[:-1], 1)), survival[..., :-1]], axis=-1)
    mass = previous - survival  # share delivered at each time
    delivered_cost = np.cumsum(mass * policy.delivery_cost(times), axis=-1)
    index = np.searchsorted(times, ttls, side="right") - 1
    safe = np.clip(index, 0, None)
    cost_so_far = np.where(index >= 0, delivered_cost[..., safe], 0.0)
    undelivered = np.where(index >= 0, survival[..., safe], 1.0)
    race = np.asarray(p_race, dtype=float)
    if race.ndim:
        race = race[..., None]
    return cost_so_far + undelivered * policy.undelivered_cost(ttls, race)


def coverage_ttl(curve: SurvivalCurve, share: float = 0.95) -> float | None:
    """The smallest T (a bin time) that delivers ``share`` of the messages delivered by the end
    of the supported curve; None without deliveries."""
    if not curve.estimable:
        return None
    delivered = 1.0 - curve.survival
    eventually = delivered[-1]
    if eventually <= 0:
        return None
    hits = np.nonzero(delivered >= share * eventually - 1e-12)[0]
    return float(curve.times[hits[0]])


def near_optimal_range(
    ttls: np.ndarray, costs: np.ndarray, best: int, tolerance: float
) -> tuple[float, float]:
    """The contiguous TTLs around ``ttls[best]`` whose cost is within ``tolerance`` (relative)
    of the best cost: ``(shortest, longest)``."""
    limit = costs[best] + tolerance * abs(costs[best]) + 1e-15
    within = costs <= limit
    lo = best
    while lo > 0 and within[lo - 1]:
        lo -= 1
    hi = best
    while hi < len(costs) - 1 and within[hi + 1]:
        hi += 1
    return float(ttls[lo]), float(ttls[hi])


@dataclass(frozen=True)
class TtlChoice:
    """The cost curve and its minimum for one group under one policy, the bootstrap interval
    of the minimum (``lo``, ``hi``) and the near-optimal range (``near_lo``, ``near_hi``)."""

    policy_name: str | None
    policy: CostPolicy | None
    curve: pd.DataFrame = field(repr=False)
    seconds: float | None
    lo: float | None
    hi: float | None
    expected_cost: float | None
    coverage_seconds: float | None
    coverage_share: float
    supported_until: float | None
    p_race: float
    race_revokes: int
    bootstrap: int
    tolerance: float = DEFAULT_TOLERANCE
    near_lo: float | None = None
    near_hi: float | None = None

    @property
    def at_support_edge(self) -> bool:
        """The near-optimal range reaches the longest supported TTL: a longer TTL, which the
        data cannot price, may be as cheap or cheaper."""
        return self.near_hi is not None and self.near_hi >= (self.stops_at or 0.0)

    @property
    def at_shortest(self) -> bool:
        """The near-optimal range starts at the shortest TTL considered (10 s)."""
        return self.near_lo is not None and self.near_lo <= MIN_TTL_SECONDS * (1 + 1e-9)

    @property
    def stops_at(self) -> float | None:
        """The longest TTL on the curve (the data supports nothing beyond)."""
        return float(self.curve["ttl_seconds"].iloc[-1]) if len(self.curve) else None

    def to_dict(self) -> dict:
        """The ``best_ttl`` block of the analysis document."""
        return {
            "seconds": self.seconds,
            "lo": self.lo,
            "hi": self.hi,
            "expected_cost": self.expected_cost,
            "coverage_95_seconds": self.coverage_seconds,
            "near_optimal": None
            if self.near_lo is None
            else {"lo": self.near_lo, "hi": self.near_hi, "tolerance": self.tolerance},
            "at_support_edge": self.at_support_edge if self.seconds is not None else None,
            "policy": self.policy_name,
            "curve_stops_at_seconds": self.stops_at,
            "supported_until_seconds": self.supported_until,
            "p_race": self.p_race,
            "bootstrap": self.bootstrap,
        }


def best_ttl(
    curve: SurvivalCurve,
    bins: pd.DataFrame,
    policy: CostPolicy | None,
    *,
    policy_name: str | None = None,
    race_delivered: int = 0,
    race_revokes: int = 0,
    bootstrap: int = 200,
    seed: int = 0,
    coverage: float = 0.95,
    tolerance: float = DEFAULT_TOLERANCE,
) -> TtlChoice:
    """Minimise the expected cost over the supported TTLs, with a bootstrap percentile interval
    and the near-optimal range (costs within ``tolerance`` of the best, relative).

    ``bins`` are the group's latency bins (``bin``, ``delivered``, ``censored``) the ``curve``
    was fitted on; ``race_delivered`` of ``race_revokes`` successful revokes were followed by a
    DELIVERED (p_race). The bootstrap resamples messages (multinomially over the bins) and the
    race share (binomially), refits Kaplan-Meier and takes the minimising TTL of each replicate.
    """
    p_race = race_delivered / race_revokes if race_revokes else 0.0
    ttls = candidate_ttls(curve.supported_until)
    cover = coverage_ttl(curve, coverage)
    empty = pd.DataFrame({"ttl_seconds": [], "expected_cost": [], "delivered_share": []})
    if policy is None or not len(ttls):
        return TtlChoice(
            policy_name, policy, empty, None, None, None, None, cover, coverage,
            curve.supported_until, p_race, race_revokes, 0, tolerance,
        )  # fmt: skip
    costs = expected_cost(curve.times, curve.survival, ttls, policy, p_race)
    best = int(np.argmin(costs))
    near_lo, near_hi = near_optimal_range(ttls, costs, best, tolerance)
    frame = pd.DataFrame(
        {
            "ttl_seconds": ttls,
            "expected_cost": costs,
            "delivered_share": 1.0 - curve.survival_at(ttls),
        }
    )
    lo = hi = None
    if bootstrap > 0:
        picks = _bootstrap_minima(bins, ttls, policy, p_race, race_revokes, bootstrap, seed)
        lo, hi = (float(v) for v in np.percentile(picks, [2.5, 97.5]))
    return TtlChoice(
        policy_name=policy_name,
        policy=policy,
        curve=frame,
        seconds=float(ttls[best]),
        lo=lo,
        hi=hi,
        expected_cost=float(costs[best]),
        coverage_seconds=cover,
        coverage_share=coverage,
        supported_until=curve.supported_until,
        p_race=p_race,
        race_revokes=race_revokes,
        bootstrap=bootstrap,
        tolerance=tolerance,
        near_lo=near_lo,
        near_hi=near_hi,
    )


def _bootstrap_minima(
    bins: pd.DataFrame,
    ttls: np.ndarray,
    policy: CostPolicy,
    p_race: float,
    race_revokes: int,
    replicates: int,
    seed: int,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ordered = bins.sort_values("bin")
    times = bin_seconds(ordered["bin"].to_numpy())
    cells = np.concatenate(
        [ordered["delivered"].to_numpy(dtype=float), ordered["censored"].to_numpy(dtype=float)]
    )
    total = int(cells.sum())
    draws = rng.multinomial(total, cells / total, size=replicates)
    width = len(times)
    survival = product_limit(draws[:, :width], draws[:, width:])
    if race_revokes:
        races = rng.binomial(race_revokes, p_race, size=replicates) / race_revokes
    else:
        races = np.zeros(replicates)
    costs = expected_cost(times, survival, ttls, policy, races)
    return ttls[np.argmin(costs, axis=-1)]
