"""Sequential decisions for a revoke experiment: which arms to drop, and when to stop.

At every look the runner hands over what each arm has seen so far (``tally_arms`` makes the
tallies from per-message facts); ``decide`` returns the look: each arm's always-valid interval
of its expected cost per message, the arms eliminated, and the use case's decision — Ready (one
arm is best), Keep running, Inconclusive (the maximum size is reached), Not enough data.

**The cost of an arm** with TTL T is the expected cost per message of ``ttl.py`` at T: a message
delivered at t <= T costs ``policy.delivery_cost(t)``, one not delivered by T costs
``policy.undelivered_cost(T, p_race)``. So C(T) = A(T) + k * q(T): A(T) the mean cost of a
message at T without the race, k = rcs_cost + duplicate_cost, and q(T) the share of the arm's
messages whose revoke succeeded and which were delivered all the same (revoked * p_race).

**Nesting.** A message held under a TTL T' >= T shows what T would have done with it: delivered
before T, or not. So A(T) is estimated from every settled message of every arm of the use case
whose duration is at least T, and a long arm informs every shorter arm's cost; q(T), the revoke
race, is read from arm T's own messages only. The assumption: the platform delivers a message at
the same moment whatever its TTL, until the TTL runs out (a TTL or an API revoke decides only
the fate of a message still undelivered when it runs out). A message counts for T once its send
is at least T + ``settle_after`` (the grace period) before the look, whatever happened to it, so
the settled messages are a fair sample.

**The floor.** A long arm says nothing about its own cost until its messages are T old, but a
quarter of the way it already shows a lower bound: a message delivered by then costs what it
costs, one still waiting costs at least a delivery at that moment (or the SMS, if less).
``floor_cost`` prices each message so, from every arm at least T/4 long; the floor sample's
lower limit raises the arm's, so a long TTL whose waits are dear is dropped long before its
messages settle.

**The guarantee.** Each arm of K gets ``alpha / K`` of the error budget: ``RACE_SHARE`` of it
for its race interval (when the policy falls back), ``FLOOR_SHARE`` for its floor, the rest for
its cost sample; each interval is an always-valid one (``confseq``) at its share, so with
chance at least 1 - alpha every interval holds at every look at once. An arm is eliminated
when its interval lies wholly above the lowest upper limit of the arms still running, so the
truly best arm is dropped, and a wrong arm declared best, in at most alpha of experiments.
Until an arm has ``min_per_arm`` settled messages of its own, its interval is the whole range a
message can cost (always true, raised only by its floor): it cannot be declared best, and the
use case's decision is Not enough data, while clearly dearer arms may already be dropped. The
delivered share beside each arm is an always-valid interval at ``alpha`` itself: for reading,
not for deciding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from rbmtools.analysis.confseq import always_valid_mean, always_valid_rate
from rbmtools.analysis.policy import CostPolicy
from rbmtools.errors import ValidationError

__all__ = [
    "FLOOR_FRACTION",
    "FLOOR_SHARE",
    "MESSAGE_COLUMNS",
    "RACE_SHARE",
    "ArmLook",
    "ArmTally",
    "Decision",
    "Look",
    "StoppingRule",
    "cost_bounds",
    "decide",
    "eliminated_arms",
    "floor_bounds",
    "floor_cost",
    "floor_seconds",
    "settled_before",
    "tally_arms",
]

#: The per-message facts ``tally_arms`` reads: the arm, the send (platform seconds), the
#: latency to DELIVERED (NaN if none was seen), whether a successful revoke was followed by a
#: DELIVERED, whether the SMS fallback was sent, and whether the phone was RCS-reachable.
MESSAGE_COLUMNS = ("arm", "sent", "latency", "raced", "fallback", "reachable")
#: The share of an arm's error budget spent on its revoke-race interval: the race moves the
#: cost by at most rcs_cost + duplicate_cost times a small share, so it needs little.
RACE_SHARE = 0.1
#: The share spent on its floor (see ``floor_cost``).
FLOOR_SHARE = 0.1
#: The floor of an arm with duration T is read at T * FLOOR_FRACTION.
FLOOR_FRACTION = 0.25


class Decision(StrEnum):
    """What a look says about a use case."""

    READY = "ready"  # one arm is best at the stated error rate
    KEEP_RUNNING = "keep_running"
    INCONCLUSIVE = "inconclusive"  # the maximum size is reached and no arm stands out
    NOT_ENOUGH_DATA = "not_enough_data"  # fewer than min_per_arm settled messages somewhere


@dataclass(frozen=True)
class StoppingRule:
    """When to decide: ``alpha`` the error rate (an arm wrongly declared best, or the best arm
    dropped), ``min_per_arm`` settled messages an arm needs before any decision, and
    ``max_messages`` the most the experiment sends (the intervals are tuned for it, split
    evenly among the arms)."""

    alpha: float = 0.05
    min_per_arm: int = 100
    max_messages: int = 10_000

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValidationError("alpha", self.alpha, "must be between 0 and 0.5")
        if isinstance(self.min_per_arm, bool) or not (
            isinstance(self.min_per_arm, int) and self.min_per_arm >= 1
        ):
            raise ValidationError("min_per_arm", self.min_per_arm, "must be a whole number >= 1")
        if isinstance(self.max_messages, bool) or not (
            isinstance(self.max_messages, int) and self.max_messages >= 1
        ):
            raise ValidationError("max_messages", self.max_messages, "must be a whole number >= 1")


@dataclass(frozen=True)
class ArmTally:
    """What one arm has seen at a look (see ``tally_arms``).

    Its own messages: ``assigned`` (every recipient given the arm), ``settled`` (reachable
    messages whose fate at the arm's duration is known), ``delivered`` (of those, delivered by
    then), ``raced`` (of those, revoked successfully and delivered all the same), ``fallbacks``
    (SMS sent so far). The nested cost sample at its duration: ``cost_count`` messages (its
    own and those of longer arms), their cost sum and sum of squares. The floor sample, the
    same at ``floor_seconds`` (see ``floor_cost``).
    """

    arm: str
    seconds: float
    assigned: int = 0
    settled: int = 0
    delivered: int = 0
    raced: int = 0
    fallbacks: int = 0
    cost_count: int = 0
    cost_sum: float = 0.0
    cost_squares: float = 0.0
    floor_count: int = 0
    floor_sum: float = 0.0
    floor_squares: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArmLook:
    """One arm at a look: its tally, its cost estimate with the always-valid interval, its
    delivery share by its duration (own settled messages) with the same kind of interval, and
    whether it is eliminated (``eliminated_at``: the look that dropped it)."""

    tally: ArmTally
    cost: float | None
    cost_lo: float
    cost_hi: float
    delivered_share: float | None
    delivered_lo: float | None
    delivered_hi: float | None
    eliminated_at: int | None = None

    @property
    def arm(self) -> str:
        return self.tally.arm

    @property
    def running(self) -> bool:
        return self.eliminated_at is None

    def to_dict(self) -> dict[str, Any]:
        out = {key: value for key, value in asdict(self).items() if key != "tally"}
        return {**self.tally.to_dict(), **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmLook:
        """The arm as ``to_dict`` wrote it (a run folder's record of a look)."""
        tally = ArmTally(**{f.name: data[f.name] for f in fields(ArmTally) if f.name in data})
        return cls(tally, **{f.name: data[f.name] for f in fields(cls) if f.name != "tally"})


@dataclass(frozen=True)
class Look:
    """The decision of one look for one use case (``index`` counts looks from 1)."""

    index: int
    decision: Decision
    arms: tuple[ArmLook, ...]
    alpha: float
    cost_alpha: float
    race_alpha: float
    floor_alpha: float = 0.0
    best: str | None = None
    messages_left: int | None = None
    saving_per_1000: float | None = None
    saving_per_1000_lo: float | None = None
    assigned: int = field(default=0)
    min_per_arm: int = 0

    @property
    def eliminated(self) -> tuple[str, ...]:
        return tuple(a.arm for a in self.arms if not a.running)

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(a.arm for a in self.arms if a.running)

    def arm(self, name: str) -> ArmLook:
        for look in self.arms:
            if look.arm == name:
                return look
        raise ValidationError("arm", name, f"is not an arm ({', '.join(a.arm for a in self.arms)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "look": self.index,
            "decision": self.decision.value,
            "best": self.best,
            "messages_left": self.messages_left,
            "saving_per_1000": self.saving_per_1000,
            "saving_per_1000_lo": self.saving_per_1000_lo,
            "assigned": self.assigned,
            "alpha": self.alpha,
            "cost_alpha": self.cost_alpha,
            "race_alpha": self.race_alpha,
            "floor_alpha": self.floor_alpha,
            "min_per_arm": self.min_per_arm,
            "arms": [a.to_dict() for a in self.arms],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Look:
        """The look as ``to_dict`` wrote it."""
        names = {"look": "index", "arms": None, "decision": None}
        values = {names.get(k, k): v for k, v in data.items() if names.get(k, k) is not None}
        return cls(
            decision=Decision(data["decision"]),
            arms=tuple(ArmLook.from_dict(a) for a in data["arms"]),
            **values,
        )


def cost_bounds(policy: CostPolicy, seconds: float) -> tuple[float, float]:
    """The cheapest and the dearest a message can be at TTL ``seconds`` (without the race)."""
    late = float(policy.undelivered_cost(seconds, 0.0))
    dearest_delivery = float(policy.delivery_cost(seconds))
    return min(policy.rcs_cost, late), max(dearest_delivery, late)


def floor_seconds(seconds: float) -> float:
    """When an arm of duration ``seconds`` is first read from below: a quarter of the way."""
    return seconds * FLOOR_FRACTION


def floor_cost(policy: CostPolicy, seconds: float, latency: Any) -> Any:
    """A lower bound of what a message costs at TTL ``seconds``, known once it is
    ``floor_seconds`` old: its cost if delivered by then, otherwise the least it can still
    cost (a later delivery costs at least a delivery at the floor, or it is undelivered). A
    long TTL whose waits are dear is seen to lose long before its own messages settle."""
    at = floor_seconds(seconds)
    latency = np.asarray(latency, dtype=float)
    least = min(float(policy.delivery_cost(at)), float(policy.undelivered_cost(seconds, 0.0)))
    return np.where(latency <= at, policy.delivery_cost(np.nan_to_num(latency)), least)


def floor_bounds(policy: CostPolicy, seconds: float) -> tuple[float, float]:
    """The least and the most ``floor_cost`` can be for a TTL of ``seconds``."""
    at = floor_seconds(seconds)
    least = min(float(policy.delivery_cost(at)), float(policy.undelivered_cost(seconds, 0.0)))
    return min(policy.rcs_cost, least), float(policy.delivery_cost(at))


def settled_before(now: float, seconds: float, settle_after: float) -> float:
    """The latest send (platform second) whose fate at duration ``seconds`` is known at
    ``now``: a message counts for that duration once it has waited the duration and the
    grace period after it."""
    return now - seconds - settle_after


def _message_frame(messages: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in MESSAGE_COLUMNS if c not in messages.columns]
    if missing:
        raise ValidationError("messages", list(messages.columns), f"lack {', '.join(missing)}")
    return messages


def tally_arms(
    messages: pd.DataFrame,
    arms: Mapping[str, float],
    policy: CostPolicy,
    *,
    now: float,
    settle_after: float,
) -> list[ArmTally]:
    """The tallies of ``arms`` (name -> duration in seconds, one use case) at platform second
    ``now`` from per-message facts (``MESSAGE_COLUMNS``). A message is settled for a duration
    T once it was sent by ``settled_before(now, T, settle_after)``; unreachable phones (not
    RCS) count as assigned only. Messages of other arms are ignored."""
    frame = _message_frame(messages)
    frame = frame[frame["arm"].isin(list(arms))]
    duration = frame["arm"].map(arms).to_numpy(dtype=float)
    sent = frame["sent"].to_numpy(dtype=float)
    latency = frame["latency"].to_numpy(dtype=float)
    reachable = frame["reachable"].to_numpy(dtype=bool)
    raced = frame["raced"].to_numpy(dtype=bool)
    fallback = frame["fallback"].to_numpy(dtype=bool)
    names = frame["arm"].to_numpy()
    tallies = []
    for name, seconds in arms.items():
        own = names == name
        known = sent <= settled_before(now, seconds, settle_after)
        settled = own & reachable & known
        delivered_by = latency <= seconds  # NaN compares False: not delivered
        nested = reachable & (duration >= seconds) & known
        cost = np.where(
            delivered_by[nested],
            policy.delivery_cost(np.nan_to_num(latency[nested])),
            policy.undelivered_cost(seconds, 0.0),
        )
        early = floor_seconds(seconds)
        floor_known = sent <= settled_before(now, early, settle_after)
        floored = reachable & (duration >= early) & floor_known
        floor = floor_cost(policy, seconds, latency[floored])
        tallies.append(
            ArmTally(
                arm=name,
                seconds=float(seconds),
                assigned=int(own.sum()),
                settled=int(settled.sum()),
                delivered=int((settled & delivered_by).sum()),
                raced=int((settled & raced).sum()),
                fallbacks=int((own & fallback).sum()),
                cost_count=int(nested.sum()),
                cost_sum=float(cost.sum()),
                cost_squares=float((cost * cost).sum()),
                floor_count=int(floored.sum()),
                floor_sum=float(floor.sum()),
                floor_squares=float((floor * floor).sum()),
            )
        )
    return tallies


def _planned_sizes(tallies: Sequence[ArmTally], rule: StoppingRule) -> list[tuple[float, ...]]:
    """Per arm, the planned sizes of its own messages, of its cost sample and of its floor
    sample (the planned size times the number of arms long enough for each)."""
    per_arm = rule.max_messages / len(tallies)

    def long_enough(seconds: float) -> float:
        return per_arm * sum(o.seconds >= seconds for o in tallies)

    return [
        (per_arm, long_enough(t.seconds), long_enough(floor_seconds(t.seconds))) for t in tallies
    ]


def _error_budget(tallies: Sequence[ArmTally], policy: CostPolicy, alpha: float) -> tuple:
    """The error rates of each arm's cost interval, race interval (0: none) and floor."""
    per_arm = alpha / len(tallies)
    race = RACE_SHARE if policy.fallback else 0.0
    return per_arm * (1.0 - race - FLOOR_SHARE), per_arm * race, per_arm * FLOOR_SHARE


def _arm_interval(
    tally: ArmTally,
    policy: CostPolicy,
    planned: tuple[float, ...],
    budget: tuple[float, ...],
    minimum: int,
) -> tuple[float | None, float, float]:
    """The arm's cost estimate and interval: A(T) from the nested sample plus k * q(T) from
    its own messages (without fallback there is no race term). Before the arm has ``minimum``
    settled messages of its own the interval is what any message can cost (always true); the
    lower limit is raised by the floor sample once it holds ``minimum`` messages."""
    (per_arm, nested, early), (cost_alpha, race_alpha, floor_alpha) = planned, budget
    low, high = cost_bounds(policy, tally.seconds)
    mean, lo, hi = always_valid_mean(
        tally.cost_count, tally.cost_sum, tally.cost_squares, nested,
        low=low, high=high, alpha=cost_alpha,
    )  # fmt: skip
    floor = low
    if tally.floor_count >= minimum:
        floor_low, floor_high = floor_bounds(policy, tally.seconds)
        _, floor, _ = always_valid_mean(
            tally.floor_count, tally.floor_sum, tally.floor_squares, early,
            low=floor_low, high=floor_high, alpha=floor_alpha,
        )  # fmt: skip
    settled = mean is not None and tally.settled >= minimum
    lo, hi = (max(lo, floor), hi) if settled else (max(low, floor), high)  # type: ignore[type-var]
    if not policy.fallback:
        return mean, lo, hi  # type: ignore[return-value]
    k = policy.rcs_cost + policy.duplicate_cost
    race, race_lo, race_hi = always_valid_rate(tally.raced, tally.settled, per_arm, race_alpha)
    if not settled:  # the race could be anything
        race, race_lo, race_hi = race or 0.0, 0.0, 1.0
    estimate = None if mean is None else mean + k * race
    return estimate, lo + k * race_lo, hi + k * race_hi  # type: ignore[operator]


def _arm_look(
    tally: ArmTally,
    policy: CostPolicy,
    rule: StoppingRule,
    planned: tuple[float, ...],
    budget: tuple[float, ...],
    eliminated_at: int | None,
) -> ArmLook:
    cost = _arm_interval(tally, policy, planned, budget, rule.min_per_arm)
    share = always_valid_rate(tally.delivered, tally.settled, planned[0], rule.alpha)
    return ArmLook(tally, *cost, *share, eliminated_at=eliminated_at)


def _messages_left(running: Sequence[ArmLook], rule: StoppingRule, assigned: int) -> int:
    """About how many more messages it takes: enough for every running arm to reach the
    minimum, then enough to separate the leader from every other running arm (interval
    half-widths shrink like one over the square root of the messages)."""
    room = max(rule.max_messages - assigned, 0)
    short = [a for a in running if a.tally.settled < rule.min_per_arm or a.cost is None]
    if short:
        lacking = max(rule.min_per_arm - a.tally.assigned for a in short)
        return min(room, max(lacking, 0) * len(running))
    leader = min(running, key=lambda a: a.cost)  # type: ignore[arg-type, return-value]
    factor = 1.0
    for other in running:
        if other is leader:
            continue
        gap = other.cost - leader.cost  # type: ignore[operator]
        halves = (leader.cost_hi - leader.cost_lo + other.cost_hi - other.cost_lo) / 2  # type: ignore[operator]
        if gap <= 0:
            return room
        factor = max(factor, (halves / gap) ** 2)
    settled = sum(a.tally.settled for a in running)
    return min(room, math.ceil((factor - 1.0) * settled))


def _ready(index: int, looks: list[ArmLook], assigned: int, **common: Any) -> Look:
    best = next(a for a in looks if a.running)
    priced = [a for a in looks if a is not best and a.cost is not None]
    saving = saving_lo = None
    if best.cost is not None and priced:
        runner_up = min(priced, key=lambda a: a.cost)  # type: ignore[arg-type, return-value]
        saving = 1000.0 * (runner_up.cost - best.cost)  # type: ignore[operator]
        saving_lo = 1000.0 * (runner_up.cost_lo - best.cost_hi)  # type: ignore[operator]
    return Look(
        index, Decision.READY, best=best.arm, messages_left=0, assigned=assigned,
        saving_per_1000=saving, saving_per_1000_lo=saving_lo, **common,
    )  # fmt: skip


def decide(
    tallies: Sequence[ArmTally],
    policy: CostPolicy,
    rule: StoppingRule,
    *,
    index: int = 1,
    eliminated: Mapping[str, int] | None = None,
    final: bool = False,
) -> Look:
    """The look ``index`` of one use case. ``eliminated`` maps arms dropped at earlier looks to
    the look that dropped them (they stay dropped); ``final`` says no more messages will come
    (the maximum was sent and everything has settled), so a look without a best arm is
    Inconclusive rather than Keep running."""
    if len({t.arm for t in tallies}) != len(tallies) or len(tallies) < 2:
        raise ValidationError("tallies", [t.arm for t in tallies], "need two or more arms")
    dropped = dict(eliminated or {})
    budget = _error_budget(tallies, policy, rule.alpha)
    looks = [
        _arm_look(tally, policy, rule, planned, budget, dropped.get(tally.arm))
        for tally, planned in zip(tallies, _planned_sizes(tallies, rule), strict=True)
    ]
    lowest_hi = min(a.cost_hi for a in looks if a.running)  # type: ignore[type-var]
    looks = [
        replace(a, eliminated_at=index) if a.running and a.cost_lo > lowest_hi else a  # type: ignore[operator]
        for a in looks
    ]
    running = [a for a in looks if a.running]
    assigned = sum(t.assigned for t in tallies)
    common = {"arms": tuple(looks), "alpha": rule.alpha, "cost_alpha": budget[0],
              "race_alpha": budget[1], "floor_alpha": budget[2],
              "min_per_arm": rule.min_per_arm}  # fmt: skip
    if len(running) == 1:
        return _ready(index, looks, assigned, **common)
    if any(a.tally.settled < rule.min_per_arm or a.cost is None for a in running):
        decision = Decision.NOT_ENOUGH_DATA
    else:
        decision = Decision.INCONCLUSIVE if final else Decision.KEEP_RUNNING
    left = 0 if final else _messages_left(running, rule, assigned)
    return Look(index, decision, messages_left=left, assigned=assigned, **common)


def eliminated_arms(looks: Iterable[Look]) -> dict[str, int]:
    """Arm -> the look that dropped it, over a run's looks (for the next look, or a resume)."""
    out: dict[str, int] = {}
    for look in looks:
        for arm in look.arms:
            if arm.eliminated_at is not None:
                out.setdefault(arm.arm, arm.eliminated_at)
    return out
