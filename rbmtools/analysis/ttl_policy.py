"""TTL policies from the analysis: write one from the best TTLs, check that one still holds
(drift), and say what a change does (diff).

A TTL policy (``rbmtools.wire.ttl_policy``) is what the client sends by: per use case a revoke
method, a duration, a traffic type and a fallback rule. ``ttl_policy_from_analysis`` proposes
one from an analysis grouped by ``useCase``: the duration is the best TTL under the group's
*cost* policy (``policy.py``; rounded to two significant figures), and the evidence keeps what
it was chosen on, including a coarse copy of the cost curve, so that ``diff_ttl_policies`` can
price a change from the files alone. ``ttl_policy_drift`` compares an active policy with a
window's best TTLs: per use case the policy's duration, the best TTL and its interval, what
switching would save per 1,000 messages, and whether the policy lies outside the interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from rbmtools.analysis import humanize as h
from rbmtools.analysis.report import SCHEMA, Analysis, GroupResult
from rbmtools.analysis.ttl import MAX_TTL_SECONDS, MIN_TTL_SECONDS, expected_cost
from rbmtools.errors import ValidationError
from rbmtools.wire import format_timestamp, utc_now
from rbmtools.wire.ttl_policy import (
    FallbackPolicy,
    FallbackRule,
    RevokeMethod,
    TtlPolicy,
    UseCaseRule,
    load_ttl_policy,
)

__all__ = [
    "DRIFT_COST_TOLERANCE",
    "DRIFT_TOLERANCE",
    "PolicyProposal",
    "check_ttl_policy",
    "cost_at",
    "diff_ttl_policies",
    "drift_headline",
    "policy_cost",
    "round_ttl",
    "traffic_types",
    "ttl_policy_drift",
    "ttl_policy_from_analysis",
]

#: A policy counts as outside the best TTL's interval only beyond this relative margin: a
#: written duration is the best TTL rounded to two significant figures (up to 5 % off).
DRIFT_TOLERANCE = 0.05
#: A policy outside the interval drifts only when the best TTL is cheaper by more than this
#: share of its cost (0.5 %, the analysis's "near-optimal" tolerance): on a flat cost curve
#: the optimum wanders without anything to gain.
DRIFT_COST_TOLERANCE = 0.005
#: Points of the cost curve kept in a policy's evidence (plus the optimum and the last point).
_CURVE_POINTS = 16


def round_ttl(seconds: float) -> float:
    """A TTL a person can read: two significant figures, from 10 s to 15 days."""
    if seconds <= MIN_TTL_SECONDS:
        return MIN_TTL_SECONDS
    digits = 1 - math.floor(math.log10(seconds))
    return min(MAX_TTL_SECONDS, max(MIN_TTL_SECONDS, float(round(seconds, digits))))


def cost_at(points: Iterable[Iterable[float]], seconds: float) -> float | None:
    """The expected cost per message at ``seconds`` on a cost curve given as (TTL seconds,
    cost) points, interpolated linearly in log(TTL); None outside the curve (nothing is
    extrapolated: beyond its last point the data says nothing)."""
    pairs = sorted((float(t), float(c)) for t, c in points)
    if not pairs or seconds <= 0:
        return None
    times = np.log([t for t, _ in pairs])
    costs = np.array([c for _, c in pairs])
    where = math.log(seconds)
    if where < times[0] - 1e-9 or where > times[-1] + 1e-9:
        return None
    return float(np.interp(where, times, costs))


def _curve_points(group: GroupResult) -> list[list[float]]:
    """A coarse copy of the group's cost curve: about 16 log-spaced points, the optimum and
    the last point, as [TTL seconds, expected cost]."""
    curve = group.ttl.curve
    if not len(curve):
        return []
    step = max(1, math.ceil(len(curve) / _CURVE_POINTS))
    keep = set(range(0, len(curve), step)) | {len(curve) - 1}
    keep.add(int(curve["expected_cost"].to_numpy().argmin()))
    return [
        [
            round(float(curve["ttl_seconds"].iloc[i]), 3),
            round(float(curve["expected_cost"].iloc[i]), 6),
        ]
        for i in sorted(keep)
    ]


def _use_case_groups(analysis: Analysis) -> list[tuple[str, GroupResult]]:
    if tuple(analysis.by) != ("useCase",):
        raise ValidationError(
            "by", list(analysis.by), "a TTL policy is per use case: analyse by useCase alone"
        )
    return [(str(g.key["useCase"]), g) for g in analysis.groups if g.key.get("useCase")]


def _at_support_limit(group: GroupResult) -> bool:
    choice = group.ttl
    stops = choice.stops_at
    return bool(
        choice.seconds is not None
        and stops is not None
        and math.isclose(choice.seconds, stops, rel_tol=1e-9)
    )


def _evidence(
    use_case: str,
    group: GroupResult,
    analysis: Analysis,
    window: tuple[datetime | None, datetime | None],
    version: str,
) -> dict[str, Any]:
    choice = group.ttl
    start, end = window
    assert choice.policy is not None
    return {
        "window": {
            "start": None if start is None else format_timestamp(start),
            "end": None if end is None else format_timestamp(end),
        },
        "messages": group.counts["messages"],
        "best_ttl": {
            "seconds": _round(choice.seconds),
            "lo": _round(choice.lo),
            "hi": _round(choice.hi),
        },
        "expected_cost_per_message": _round(choice.expected_cost, 6),
        "supported_until_seconds": _round(choice.supported_until),
        "at_support_limit": _at_support_limit(group),
        "cost_policy": {"name": choice.policy_name, **choice.policy.to_dict()},
        "cost_curve": _curve_points(group),
        "analysis": {
            "schema": SCHEMA,
            "rbmtools": version,
            "bootstrap": analysis.settings.get("bootstrap"),
            "seed": analysis.settings.get("seed"),
            "min_at_risk": analysis.settings.get("min_at_risk"),
        },
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def traffic_types(dataset: Any) -> dict[str, str]:
    """The traffic type most of each use case's messages carried, from a loaded ``Dataset``."""
    frame = dataset.summary(by=("useCase", "trafficType"))
    frame = frame[frame["trafficType"].notna() & frame["useCase"].notna()]
    frame = frame.sort_values("messages", ascending=False, kind="stable")
    return {str(u): str(t) for u, t in frame.groupby("useCase")["trafficType"].first().items()}


@dataclass(frozen=True)
class PolicyProposal:
    """A TTL policy proposed by ``ttl_policy_from_analysis`` and what it could not cover.

    ``skipped`` maps each use case left out (or kept from the previous version) to why.
    """

    policy: TtlPolicy
    skipped: dict[str, str]


def ttl_policy_from_analysis(
    analysis: Analysis,
    *,
    traffic_types: Mapping[str, str] | None = None,
    window: tuple[datetime | None, datetime | None] | None = None,
    previous: TtlPolicy | None = None,
    method: RevokeMethod | str = RevokeMethod.TTL,
    version: str | None = None,
    written: datetime | None = None,
) -> PolicyProposal:
    """Propose a TTL policy from ``analysis`` (grouped by ``useCase``).

    Each use case with a best TTL gets a rule: ``method`` (default ``ttl``) with the best TTL
    rounded to two significant figures, its traffic type (``traffic_types``: the one its
    messages carried), and a fallback rule from its cost policy (SMS on revoked or
    inconclusive messages and for phones without RCS when the cost policy falls back; none
    otherwise). With a ``previous`` policy, a use case keeps the method, traffic type and
    fallback someone reviewed there and only its duration and evidence change; a use case the
    analysis cannot estimate keeps its previous rule; the version counts on from it.
    ``window`` (start, end) names the traffic the evidence comes from (default: the logs' span).
    """
    from rbmtools import __version__

    groups = _use_case_groups(analysis)
    traffic_types = dict(traffic_types or {})
    report = analysis.report
    span = window or (report.span_start, report.span_end)
    rules: dict[str, UseCaseRule] = {}
    skipped: dict[str, str] = {}
    for use_case, group in groups:
        choice = group.ttl
        before = previous.use_cases.get(use_case) if previous is not None else None
        if choice.policy is None or choice.seconds is None:
            why = "no cost policy" if choice.policy is None else "best TTL not estimable"
            if before is not None:
                rules[use_case] = before
                skipped[use_case] = f"{why}; kept the rule of version {previous.version}"
            else:
                skipped[use_case] = why
            continue
        fallback = FallbackRule(
            FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE
            if choice.policy.fallback
            else FallbackPolicy.NONE,
            not_rcs=choice.policy.fallback,
        )
        rules[use_case] = UseCaseRule(
            method=before.method if before is not None else method,
            duration=f"{round_ttl(choice.seconds):g}s",
            traffic_type=before.traffic_type if before else traffic_types.get(use_case),
            fallback=before.fallback if before is not None else fallback,
            evidence=_evidence(use_case, group, analysis, span, __version__),
        )
    if previous is not None:
        for use_case, rule in previous.use_cases.items():
            if use_case not in rules:
                rules[use_case] = rule
                skipped.setdefault(
                    use_case, f"not in these logs; kept the rule of version {previous.version}"
                )
    if not rules:
        raise ValidationError(
            "use_cases", skipped, "no use case has a best TTL to write (see why per use case)"
        )
    if version is None:
        version = previous.next_version() if previous is not None else "1"
    written = written or utc_now().replace(microsecond=0)
    policy = TtlPolicy(version=version, use_cases=rules, written=written)
    return PolicyProposal(policy, skipped)


# ------------------------------------------------------------------------------ drift


def _outside(seconds: float, lo: float | None, hi: float | None) -> bool | None:
    if lo is None or hi is None:
        return None
    return seconds < lo / (1 + DRIFT_TOLERANCE) or seconds > hi * (1 + DRIFT_TOLERANCE)


def policy_cost(group: GroupResult, seconds: float) -> float | None:
    """The expected cost per message of a TTL of ``seconds`` for ``group``, by the same formula
    as its cost curve (``ttl.expected_cost``); None beyond what the data supports. Traffic sent
    under a TTL is censored at that TTL, so its curve ends there: a TTL within
    ``DRIFT_TOLERANCE`` of the support's end is priced at that end."""
    choice, curve = group.ttl, group.curve
    stops = curve.supported_until
    if choice.policy is None or stops is None or seconds > stops * (1 + DRIFT_TOLERANCE):
        return None
    at = np.array([min(seconds, stops)])
    cost = expected_cost(curve.times, curve.survival, at, choice.policy, choice.p_race)
    return float(cost[0])


def _drift_entry(use_case: str, group: GroupResult, policy: TtlPolicy) -> dict[str, Any]:
    rule = policy.rule(use_case)
    choice = group.ttl
    cost = policy_cost(group, rule.seconds) if choice.expected_cost is not None else None
    outside = None if choice.seconds is None else _outside(rule.seconds, choice.lo, choice.hi)
    saving = material = None
    if cost is not None and choice.expected_cost is not None:
        saving = max(0.0, (cost - choice.expected_cost) * 1000.0)
        material = saving > DRIFT_COST_TOLERANCE * choice.expected_cost * 1000.0
    if choice.seconds is None:
        note = "no best TTL in this window (no cost policy, or the data supports < 10 s)"
    elif cost is None:
        note = (
            f"the data stops at {h.duration(group.curve.supported_until)}: the policy's "
            f"{h.duration(rule.seconds)} is "
            "beyond what this window can price"
        )
    elif outside and not material:
        note = "outside the best TTL's interval, but within 0.5 % of its cost: nothing to gain"
    elif outside:
        note = "the policy lies outside the best TTL's interval"
    elif _at_support_limit(group):
        note = "the best TTL is where the data stops: a longer TTL may be cheaper"
    else:
        note = ""
    return {
        "useCase": use_case,
        "policy_version": policy.version,
        "method": rule.method.value,
        "policy_seconds": rule.seconds,
        "best_seconds": choice.seconds,
        "lo": choice.lo,
        "hi": choice.hi,
        "expected_cost_policy": cost,
        "expected_cost_best": choice.expected_cost,
        "saving_per_1000": saving,
        "outside_interval": outside,
        "drift": bool(outside and material),
        "messages": group.counts["messages"],
        "note": note,
    }


def drift_headline(entry: Mapping[str, Any]) -> str:
    """The report's headline line for one drift entry."""
    saving = entry["saving_per_1000"]
    priced = "" if saving is None else f"; the best TTL saves {saving:,.2f} per 1,000 messages"
    return (
        f"TTL policy {entry['policy_version']} no longer holds for {entry['useCase']}: its "
        f"{h.duration(entry['policy_seconds'])} lies outside the best TTL's interval "
        f"{h.duration_range(entry['lo'], entry['hi'])} (best {h.duration(entry['best_seconds'])})"
        f"{priced}"
    )


def ttl_policy_drift(analysis: Analysis, policy: TtlPolicy) -> list[dict[str, Any]]:
    """Per use case of ``analysis`` (grouped by ``useCase``) that ``policy`` covers: the
    policy's duration against the window's best TTL and its interval, the expected cost of
    each, what switching would save per 1,000 messages, and ``drift``: the policy lies outside
    the interval (beyond ``DRIFT_TOLERANCE``) and the best TTL is cheaper by more than
    ``DRIFT_COST_TOLERANCE`` of its cost (a policy beyond what the window's data can price is
    no drift; its note says so). Use cases the policy does not cover are left out."""
    entries = []
    for use_case, group in _use_case_groups(analysis):
        try:
            entries.append(_drift_entry(use_case, group, policy))
        except ValidationError:  # a use case the policy does not cover
            continue
    return entries


# ------------------------------------------------------------------------------ diff


def _rule_fields(rule: UseCaseRule) -> dict[str, str]:
    return {
        "method": rule.method.value,
        "duration": rule.duration,
        "traffic_type": rule.traffic_type or "-",
        "fallback": str(rule.fallback),
    }


def _cost_change(old: UseCaseRule, new: UseCaseRule) -> tuple[float | None, str | None]:
    """The expected cost difference per 1,000 messages of moving from ``old`` to ``new``,
    priced on the newest evidence that covers both durations; (None, None) if none does."""
    for label, rule in (("new", new), ("old", old)):
        curve = (rule.evidence or {}).get("cost_curve") or []
        before, after = cost_at(curve, old.seconds), cost_at(curve, new.seconds)
        if before is not None and after is not None:
            return (after - before) * 1000.0, label
    return None, None


def diff_ttl_policies(old: TtlPolicy, new: TtlPolicy) -> list[dict[str, Any]]:
    """What changes from ``old`` to ``new``, per use case: ``status`` (added, removed,
    changed, unchanged), the fields that change as (old, new), and the expected cost
    difference per 1,000 messages (negative: the new policy is cheaper), priced on the new
    policy's evidence (else the old one's) when its cost curve covers both durations."""
    rows = []
    for use_case in sorted(set(old.use_cases) | set(new.use_cases)):
        before, after = old.use_cases.get(use_case), new.use_cases.get(use_case)
        row: dict[str, Any] = {"useCase": use_case, "changes": {}}
        if before is None or after is None:
            row["status"] = "added" if before is None else "removed"
            row["cost_difference_per_1000"] = None
            row["priced_on"] = None
            rows.append(row)
            continue
        old_fields, new_fields = _rule_fields(before), _rule_fields(after)
        row["changes"] = {
            k: [old_fields[k], new_fields[k]] for k in old_fields if old_fields[k] != new_fields[k]
        }
        row["status"] = "changed" if row["changes"] else "unchanged"
        difference, basis = _cost_change(before, after)
        row["cost_difference_per_1000"] = difference
        row["priced_on"] = basis
        rows.append(row)
    return rows


def check_ttl_policy(
    analysis: Analysis, policy: TtlPolicy | str | Any, dataset: Any = None
) -> Analysis:
    """Set ``analysis.drift`` for an active TTL ``policy`` (a ``TtlPolicy`` or its file).

    Drift is judged per use case; an analysis grouped otherwise needs its ``dataset`` to be
    analysed by use case as well (same cost policies and settings).
    """
    from rbmtools.analysis.report import build_analysis

    active = load_ttl_policy(policy)
    by_use_case = analysis
    if tuple(analysis.by) != ("useCase",):
        if dataset is None:
            raise ValidationError(
                "active_policy", list(analysis.by), "drift is per use case: give the dataset"
            )
        settings = analysis.settings
        by_use_case = build_analysis(
            dataset,
            "useCase",
            analysis.policies,
            min_at_risk=settings["min_at_risk"],
            bootstrap=settings["bootstrap"],
            seed=settings["seed"],
            coverage=settings["coverage"],
        )
    analysis.drift = ttl_policy_drift(by_use_case, active)
    return analysis
