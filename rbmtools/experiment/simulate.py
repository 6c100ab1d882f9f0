"""Stopping experiments simulated on the emulator's pure platform model, many side by side.

``potential_outcomes`` runs a population of recipients through ``PlatformModel`` once per arm,
with the same message ids (so the same random draws): each recipient's latency to DELIVERED,
revoke race and SMS fallback under every arm, with no HTTP. ``simulate_stopping`` then runs
many experiments at once: recipients drawn at random from the population, sent at a fixed rate,
each batch split evenly among the running arms (``allocation.batch_arms``), a look after every
batch with ``analysis.stopping.decide``, a stop on Ready or once the maximum has been sent and
has settled. Tallies are kept incrementally over the runs (numpy); ``tally_arms`` on the same
messages gives the same numbers. ``simulate_fixed`` is the fixed-size equal-split design on the
same population: every message sent, one analysis at the end with fixed intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from tqdm.auto import tqdm

from rbmtools.analysis.policy import CostPolicy
from rbmtools.analysis.stopping import (
    ArmTally,
    Decision,
    StoppingRule,
    decide,
    floor_cost,
    floor_seconds,
    settled_before,
)
from rbmtools.experiment.allocation import batch_arms
from rbmtools.wire import format_timestamp

__all__ = [
    "Population",
    "SimulatedArm",
    "Simulation",
    "SimulationSettings",
    "potential_outcomes",
    "simulate_fixed",
    "simulate_stopping",
]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_API_METHODS = ("api_after", "api_after_unless_delivered")


@dataclass(frozen=True)
class SimulatedArm:
    """An arm as the simulation needs it: a name, a revoke method, a duration in seconds."""

    name: str
    method: str
    seconds: float


@dataclass(frozen=True)
class Population:
    """Potential outcomes of ``units`` reachable recipients under each arm (arrays arm x unit):
    latency to DELIVERED (NaN: never), a successful revoke followed by DELIVERED, an SMS."""

    arms: tuple[SimulatedArm, ...]
    latency: np.ndarray
    raced: np.ndarray
    fallback: np.ndarray

    @property
    def units(self) -> int:
        return self.latency.shape[1]

    def cost_at(self, policy: CostPolicy, seconds: float, arm: int) -> np.ndarray:
        """Each unit's cost at TTL ``seconds`` (no race term) as arm ``arm`` observed it."""
        latency = self.latency[arm]
        delivered = latency <= seconds
        late = policy.undelivered_cost(seconds, 0.0)
        return np.where(delivered, policy.delivery_cost(np.nan_to_num(latency)), late)

    def true_costs(self, policy: CostPolicy) -> np.ndarray:
        """Each arm's expected cost per message over the population (what an experiment
        estimates): its own cost at its duration plus the race term."""
        race = policy.rcs_cost + policy.duplicate_cost if policy.fallback else 0.0
        return np.array(
            [
                self.cost_at(policy, arm.seconds, k).mean() + race * self.raced[k].mean()
                for k, arm in enumerate(self.arms)
            ]
        )

    def best(self, policy: CostPolicy, tolerance: float = 1e-12) -> int | None:
        """The arm with the lowest true cost; None when two tie (no arm is best)."""
        costs = self.true_costs(policy)
        order = np.argsort(costs)
        if costs[order[1]] - costs[order[0]] <= tolerance:
            return None
        return int(order[0])

    def messages(self, units: np.ndarray, arms: np.ndarray, send_rate: float) -> pd.DataFrame:
        """The per-message facts (``analysis.stopping.MESSAGE_COLUMNS``) of one simulated
        experiment: message i went to recipient ``units[i]`` in arm ``arms[i]`` (an index;
        out of range: never sent) at platform second ``i / send_rate``."""
        sent = np.arange(len(units)) / send_rate
        keep = arms < len(self.arms)
        arm, unit = arms[keep], units[keep]
        return pd.DataFrame(
            {
                "arm": [self.arms[k].name for k in arm],
                "sent": sent[keep],
                "latency": self.latency[arm, unit],
                "raced": self.raced[arm, unit],
                "fallback": self.fallback[arm, unit],
                "reachable": np.ones(len(arm), dtype=bool),
            }
        )

    def nesting_agreement(self) -> float:
        """The share of (shorter arm, longer arm, unit) triples in which the longer arm's
        observation says what the shorter arm saw: delivered by the shorter duration or not
        (the nesting assumption, checked on the model)."""
        agree = total = 0
        for k, short in enumerate(self.arms):
            for j, long in enumerate(self.arms):
                if long.seconds < short.seconds or j == k:
                    continue
                by_short = self.latency[k] <= short.seconds
                agree += int((by_short == (self.latency[j] <= short.seconds)).sum())
                total += self.units
        return agree / total if total else 1.0


def _message_body(arm: SimulatedArm, sent: float) -> dict[str, Any]:
    body: dict[str, Any] = {"contentMessage": {"text": "simulated"}}
    if arm.method == "ttl":
        body["ttl"] = f"{arm.seconds:g}s"
    elif arm.method == "expire_time":
        body["expireTime"] = format_timestamp(_EPOCH + timedelta(seconds=sent + arm.seconds))
    return body


def _run_arm(
    model: Any, arm: SimulatedArm, units: int, spacing: float, grace: float
) -> tuple[np.ndarray, ...]:
    """One arm over the population on its own model: sends, API revokes when due, outcomes."""
    from rbmtools.emulator import DEFAULT_AGENT_ID

    actions = [(u * spacing, 0, u) for u in range(units)]
    if arm.method in _API_METHODS:
        actions += [(u * spacing + arm.seconds, 1, u) for u in range(units)]
    actions.sort()
    reachable = np.zeros(units, dtype=bool)
    for at, kind, u in actions:
        model.advance(at)
        phone, message_id = f"+1555{u:07d}", f"unit-{u}"
        if kind == 0:
            answer = model.send(DEFAULT_AGENT_ID, phone, message_id, _message_body(arm, at), at)
            reachable[u] = answer.status == 200
            continue
        message = model.message(DEFAULT_AGENT_ID, message_id)
        if message is None:
            continue
        if arm.method == "api_after_unless_delivered" and message.delivered_at is not None:
            continue
        model.revoke(DEFAULT_AGENT_ID, phone, message_id, at)
    model.advance(units * spacing + arm.seconds + grace + 1.0)
    latency = np.full(units, np.nan)
    raced = np.zeros(units, dtype=bool)
    fallback = np.zeros(units, dtype=bool)
    for u in np.nonzero(reachable)[0]:
        message = model.message(DEFAULT_AGENT_ID, f"unit-{u}")
        if message.delivered_at is not None:
            latency[u] = message.delivered_at - message.send_at
        revoked = [at for at, status in message.revokes if status == 200]
        raced[u] = bool(revoked) and message.delivered_at is not None
        fallback[u] = np.isnan(latency[u]) or latency[u] > arm.seconds + grace
    return reachable, latency, raced, fallback


def potential_outcomes(
    arms: Sequence[SimulatedArm],
    *,
    profile: Any = "commuters",
    units: int = 20_000,
    seed: int = 1,
    grace: float = 30.0,
    spacing: float = 1.0,
) -> Population:
    """Every arm's outcome for each of ``units`` recipients (sent ``spacing`` seconds apart)
    on the emulator's model with ``profile`` and ``seed``; unreachable numbers are left out."""
    from rbmtools.emulator import PlatformModel, load_profile

    loaded = load_profile(profile)
    results = [
        _run_arm(PlatformModel(loaded, seed=seed, epoch=_EPOCH), arm, units, spacing, grace)
        for arm in arms
    ]
    reachable = results[0][0]
    return Population(
        arms=tuple(arms),
        latency=np.array([r[1][reachable] for r in results]),
        raced=np.array([r[2][reachable] for r in results]),
        fallback=np.array([r[3][reachable] for r in results]),
    )


@dataclass(frozen=True)
class SimulationSettings:
    """How simulated experiments run: the stopping ``rule`` and cost ``policy``, sends per
    platform second, messages per batch (a look after each), the grace period after which a
    message counts as settled, how many experiments, the seed, and whether the decisions use
    the nesting of TTL arms (False: each arm's cost from its own messages only)."""

    rule: StoppingRule
    policy: CostPolicy
    send_rate: float = 2.0
    batch: int = 200
    settle_after: float = 30.0
    runs: int = 400
    seed: int = 0
    nesting: bool = True


class _Sample:
    """One running sample per run and arm (count, sum, sum of squares) of the values in
    ``values[k][j][u]`` (arm k's value for a message of arm j to recipient u; NaN: it does not
    count), taken from the messages in send order up to ``upto[k]``."""

    def __init__(self, values: np.ndarray, runs: int) -> None:
        arms = values.shape[0]
        self.values = values
        self.count = np.zeros((runs, arms), dtype=np.int64)
        self.sum = np.zeros((runs, arms))
        self.squares = np.zeros((runs, arms))
        self.upto = np.zeros(arms, dtype=np.int64)

    def add(self, k: int, upto: int, arm_of: np.ndarray, units: np.ndarray) -> None:
        start = self.upto[k]
        if upto <= start:
            return
        values = self.values[k][arm_of[:, start:upto], units[:, start:upto]]
        counted = ~np.isnan(values)
        values = np.where(counted, values, 0.0)
        self.count[:, k] += counted.sum(axis=1)
        self.sum[:, k] += values.sum(axis=1)
        self.squares[:, k] += (values * values).sum(axis=1)
        self.upto[k] = upto


class _Tallies:
    """Running tallies of every run and arm (arrays runs x arms), updated as messages settle:
    each arm's own counts, its nested cost sample and its floor sample."""

    FIELDS = ("assigned", "settled", "delivered", "raced", "fallbacks")

    def __init__(self, population: Population, settings: SimulationSettings, runs: int) -> None:
        arms = population.arms
        self.counts = {name: np.zeros((runs, len(arms)), dtype=np.int64) for name in self.FIELDS}
        self.population = population
        policy = settings.policy
        cost = np.full((len(arms), len(arms) + 1, population.units), np.nan)  # last: not sent
        floor = np.full_like(cost, np.nan)
        for k, arm in enumerate(arms):
            for j, other in enumerate(arms):
                if j != k and not settings.nesting:
                    continue
                if other.seconds >= arm.seconds:
                    cost[k, j] = population.cost_at(policy, arm.seconds, j)
                if other.seconds >= floor_seconds(arm.seconds):
                    floor[k, j] = floor_cost(policy, arm.seconds, population.latency[j])
        self.cost = _Sample(cost, runs)
        self.floor = _Sample(floor, runs)
        self.delivered_by = np.array(
            [population.latency[k] <= arm.seconds for k, arm in enumerate(arms)]
        )

    @property
    def settled_up_to(self) -> np.ndarray:
        return self.cost.upto

    def send(self, arm_of: np.ndarray, units: np.ndarray) -> None:
        for k in range(len(self.population.arms)):
            own = arm_of == k
            self.counts["assigned"][:, k] += own.sum(axis=1)
            fallback = self.population.fallback[k][units] & own
            self.counts["fallbacks"][:, k] += fallback.sum(axis=1)

    def settle(self, k: int, upto: int, arm_of: np.ndarray, units: np.ndarray) -> None:
        """Messages up to ``upto`` are settled for arm k's duration: its own counts and its
        cost sample take them in."""
        start = self.cost.upto[k]
        if upto > start:
            arm, unit = arm_of[:, start:upto], units[:, start:upto]
            own = arm == k
            self.counts["settled"][:, k] += own.sum(axis=1)
            self.counts["delivered"][:, k] += (own & self.delivered_by[k][unit]).sum(axis=1)
            self.counts["raced"][:, k] += (own & self.population.raced[k][unit]).sum(axis=1)
        self.cost.add(k, upto, arm_of, units)

    def of_run(self, run: int) -> list[ArmTally]:
        tallies = []
        for k, arm in enumerate(self.population.arms):
            counts = {name: int(self.counts[name][run, k]) for name in self.FIELDS}
            tallies.append(
                ArmTally(
                    arm=arm.name,
                    seconds=arm.seconds,
                    cost_count=int(self.cost.count[run, k]),
                    cost_sum=float(self.cost.sum[run, k]),
                    cost_squares=float(self.cost.squares[run, k]),
                    floor_count=int(self.floor.count[run, k]),
                    floor_sum=float(self.floor.sum[run, k]),
                    floor_squares=float(self.floor.squares[run, k]),
                    **counts,
                )
            )
        return tallies


def _assign(
    settings: SimulationSettings, run: int, batch: int, size: int, running: list[int]
) -> np.ndarray:
    names = [str(k) for k in running]
    return np.array([int(k) for k in batch_arms(settings.seed + run, batch, size, names)])


@dataclass(frozen=True)
class Simulation:
    """What ``simulate_stopping`` did. ``runs``: one row per experiment — its decision, the
    arm declared best, whether that is the truly best arm (``correct``) or not (``wrong``),
    whether the truly best arm was dropped, its looks, messages, SMS and the platform second
    it stopped. ``units`` and ``arms`` (runs x messages): each message's recipient and arm
    index (``len(population.arms)``: never sent); ``tallies``: each run's last tallies."""

    runs: pd.DataFrame
    units: np.ndarray
    arms: np.ndarray
    tallies: list[list[ArmTally]]


def simulate_stopping(
    population: Population, settings: SimulationSettings, *, progress: bool = False
) -> Simulation:
    """Run ``settings.runs`` stopping experiments side by side (see the module doc)."""
    rule, runs, size = settings.rule, settings.runs, settings.batch
    count = rule.max_messages
    arms = population.arms
    rng = np.random.default_rng(settings.seed)
    units = rng.integers(population.units, size=(runs, count))
    arm_of = np.full((runs, count), len(arms), dtype=np.int64)
    tallies = _Tallies(population, settings, runs)
    truth = population.best(settings.policy)
    active = np.ones(runs, dtype=bool)
    dropped: list[dict[str, int]] = [{} for _ in range(runs)]
    rows: list[dict[str, Any] | None] = [None] * runs
    last: list[list[ArmTally]] = [[] for _ in range(runs)]
    sent_at = np.arange(count) / settings.send_rate
    sent, batch, look = 0, 0, 0
    bar = tqdm(total=runs, desc="experiments", disable=not progress, leave=False)
    while active.any():
        upto = min(count, sent + size)
        if upto > sent:
            for run in np.nonzero(active)[0]:
                running = [k for k, a in enumerate(arms) if a.name not in dropped[run]]
                arm_of[run, sent:upto] = _assign(settings, int(run), batch, upto - sent, running)
            tallies.send(arm_of[:, sent:upto], units[:, sent:upto])
            batch += 1
        look += 1
        now = look * size / settings.send_rate
        sent = upto
        for k, arm in enumerate(arms):
            due = settled_before(now, arm.seconds, settings.settle_after)
            settled = min(sent, int(np.searchsorted(sent_at, due, side="right")))
            tallies.settle(k, settled, arm_of, units)
            due = settled_before(now, floor_seconds(arm.seconds), settings.settle_after)
            early = min(sent, int(np.searchsorted(sent_at, due, side="right")))
            tallies.floor.add(k, early, arm_of, units)
        final = sent == count and bool((tallies.settled_up_to == count).all())
        for run in np.nonzero(active)[0]:
            last[run] = tallies.of_run(run)
            result = decide(
                last[run], settings.policy, rule,
                index=look, eliminated=dropped[run], final=final,
            )  # fmt: skip
            dropped[run] = {a.arm: a.eliminated_at for a in result.arms if not a.running}  # type: ignore[misc]
            if result.decision is Decision.READY or final:
                active[run] = False
                rows[run] = _row(result, tallies, run, truth, arms, now)
                bar.update()
    bar.close()
    return Simulation(pd.DataFrame(rows), units, arm_of, last)


def _row(
    look: Any,
    tallies: _Tallies,
    run: int,
    truth: int | None,
    arms: Sequence[SimulatedArm],
    now: float,
) -> dict[str, Any]:
    best_name = None if truth is None else arms[truth].name
    return {
        "decision": look.decision.value,
        "best": look.best,
        "correct": look.best is not None and look.best == best_name,
        "wrong": look.best is not None and look.best != best_name,
        "best_dropped": best_name is not None and best_name in look.eliminated,
        "looks": look.index,
        "messages": int(tallies.counts["assigned"][run].sum()),
        "sms": int(tallies.counts["fallbacks"][run].sum()),
        "stopped_at_seconds": now,
        **{f"dropped {a.arm} at look": a.eliminated_at for a in look.arms},
    }


def _fixed_samples(
    population: Population, policy: CostPolicy, runs: int, largest: int, nesting: bool, seed: int
) -> tuple[list[np.ndarray], ...]:
    """Running sums per arm (runs x size) of the cost sample, its squares, the race and the SMS
    of ``largest`` messages per arm; with ``nesting`` an arm's cost sample takes the messages
    of every arm at least as long (its race stays its own)."""
    rng = np.random.default_rng(seed)
    drawn = [rng.integers(population.units, size=(runs, largest)) for _ in population.arms]
    cost_sums, cost_squares, races, sms = [], [], [], []
    for k, arm in enumerate(population.arms):
        sources = [
            j for j, other in enumerate(population.arms)
            if j == k or (nesting and other.seconds >= arm.seconds)
        ]  # fmt: skip
        values = sum(population.cost_at(policy, arm.seconds, j)[drawn[j]] for j in sources)
        squares = sum(population.cost_at(policy, arm.seconds, j)[drawn[j]] ** 2 for j in sources)
        cost_sums.append((np.cumsum(values, axis=1), len(sources)))
        cost_squares.append(np.cumsum(squares, axis=1))
        races.append(np.cumsum(population.raced[k][drawn[k]], axis=1))
        sms.append(np.cumsum(population.fallback[k][drawn[k]], axis=1))
    return cost_sums, cost_squares, races, sms


def simulate_fixed(
    population: Population,
    policy: CostPolicy,
    per_arm: Sequence[int],
    *,
    runs: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
    nesting: bool = False,
) -> pd.DataFrame:
    """The fixed-size equal-split design at each size in ``per_arm``: every message sent, one
    analysis at the end with fixed (CLT) intervals of each arm's cost at ``alpha / arms``
    (Bonferroni, the same guarantee as the stopping rule), an arm declared best when its
    interval lies below every other's; with ``nesting`` the analysis reads each arm's cost from
    the messages of every arm at least as long, as the stopping rule does. One row per size:
    the share of runs that declared the truly best arm, declared a wrong one, and the median
    SMS."""
    arms = len(population.arms)
    race = policy.rcs_cost + policy.duplicate_cost if policy.fallback else 0.0
    z = norm.isf(alpha / arms / 2.0)
    sums, squares, races, sms = _fixed_samples(
        population, policy, runs, max(per_arm), nesting, seed
    )
    truth = population.best(policy)
    rows = []
    for n in per_arm:
        columns = []
        for (total, sources), square, raced in zip(sums, squares, races, strict=True):
            m = n * sources
            mean = total[:, n - 1] / m
            var = np.maximum(square[:, n - 1] / m - mean**2, 0.0) * m / max(m - 1, 1)
            share = raced[:, n - 1] / n
            se = np.sqrt(var / m + race**2 * share * (1 - share) / n)
            columns.append((mean + race * share, se))
        mean = np.stack([c[0] for c in columns], axis=1)
        half = z * np.stack([c[1] for c in columns], axis=1)
        best = np.argmin(mean, axis=1)
        hi_best = np.take_along_axis(mean + half, best[:, None], axis=1)[:, 0]
        lo = np.where(np.eye(arms, dtype=bool)[best], np.inf, mean - half)
        decided = hi_best < lo.min(axis=1)
        right = decided & (best == truth) if truth is not None else np.zeros(runs, dtype=bool)
        spent = np.sum([s[:, n - 1] for s in sms], axis=0)
        rows.append(
            {"per_arm": n, "messages": n * arms, "correct": right.mean(),
             "wrong": (decided & ~right).mean(), "sms": float(np.median(spent))}
        )  # fmt: skip
    return pd.DataFrame(rows)
