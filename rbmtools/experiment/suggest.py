"""The next experiment: a spec whose arms bracket the best TTL's interval, sized by power.

From an analysis document (``rbmtools analyze --json``) and a use case, ``suggest_spec`` writes
a TTL experiment with arms at the low end of the best TTL's bootstrap interval, at the best TTL
and at the high end (an end stuck at the edge of what the data supports, or at the shortest TTL
considered, is pushed outward: that is where the interval needs data), plus the active TTL
policy's rule as the control arm. Each arm gets the messages a two-sided comparison with the
control needs to detect a stated difference in expected cost per message (``statsmodels``
normal power, Bonferroni over the comparisons). The standard deviation of the cost per message
is estimated from the analysis as a two-point mix: a delivery costs about ``rcs_cost``, a
message not delivered in time its fallback (or loss) cost, in the proportion that reproduces
the best TTL's expected cost. The arithmetic is written into the spec's description.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.experiment.spec import ExperimentSpec
from rbmtools.wire import duration_seconds
from rbmtools.wire.ttl_policy import FallbackPolicy, FallbackRule, UseCaseRule

__all__ = ["Suggestion", "cost_spread", "per_arm_size", "suggest_spec"]

#: The widening of an interval end stuck at an edge (the support limit, the 10 s floor).
_WIDEN = 2.0
_MIN_TTL = 10.0
_MAX_TTL = 15 * 86_400.0


@dataclass(frozen=True)
class Suggestion:
    """A suggested spec and the numbers behind its size."""

    spec: ExperimentSpec
    per_arm: int
    cost_sd: float
    difference_per_1000: float
    alpha: float
    power: float
    comparisons: int


def _group(document: Mapping[str, Any], use_case: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping) or "groups" not in document:
        raise ValidationError("--from", type(document).__name__, "is not an analysis document")
    found = [g for g in document["groups"] if g.get("key", {}).get("useCase") == use_case]
    if len(found) != 1:
        known = sorted({str(g.get("key", {}).get("useCase")) for g in document["groups"]})
        problem = "is in several groups: analyse by useCase alone" if found else "is not in it"
        raise ValidationError("use_case", use_case, f"{problem} (use cases: {', '.join(known)})")
    best = found[0].get("best_ttl") or {}
    if best.get("seconds") is None:
        raise ValidationError(
            "use_case", use_case, "has no best TTL in this analysis (no cost policy, or too "
            "little data): nothing to bracket",
        )  # fmt: skip
    return found[0]


def cost_spread(cost_policy: Mapping[str, Any], best_seconds: float, expected_cost: float) -> float:
    """The standard deviation of the cost per message near the best TTL (see the module doc)."""
    rcs = float(cost_policy["rcs_cost"])
    if cost_policy.get("fallback", True):
        latency = duration_seconds(cost_policy.get("sms_latency", 0), "sms_latency")
        wait = float(cost_policy.get("wait_cost_per_hour", 0.0)) * (best_seconds + latency) / 3600
        late = float(cost_policy["sms_cost"]) + wait
    else:
        late = float(cost_policy.get("lost_cost", 0.0))
    gap = abs(late - rcs)
    if gap == 0:
        return 0.0
    share = min(0.99, max(0.01, (expected_cost - rcs) / (late - rcs)))
    return gap * math.sqrt(share * (1 - share))


def per_arm_size(
    cost_sd: float, difference_per_1000: float, *, alpha: float, power: float, comparisons: int
) -> int:
    """Messages per arm for a two-sided test of a cost difference against the control."""
    from statsmodels.stats.power import NormalIndPower

    if not difference_per_1000 > 0:
        raise ValidationError("difference", difference_per_1000, "must be a positive cost")
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValidationError(name, value, "must lie strictly between 0 and 1")
    if cost_sd <= 0:
        return 1
    effect = (difference_per_1000 / 1000.0) / cost_sd
    size = NormalIndPower().solve_power(
        effect_size=effect,
        alpha=alpha / max(1, comparisons),
        power=power,
        ratio=1.0,
        alternative="two-sided",
    )
    return max(1, math.ceil(float(size)))


def _round(seconds: float) -> float:
    from rbmtools.analysis.ttl_policy import round_ttl

    return round_ttl(seconds)


def _bracket(best: Mapping[str, Any]) -> dict[str, float]:
    """Low, best and high TTLs: the interval's ends, pushed outward when stuck at an edge."""
    seconds = float(best["seconds"])
    lo = float(best["lo"] if best.get("lo") is not None else seconds / _WIDEN)
    hi = float(best["hi"] if best.get("hi") is not None else seconds * _WIDEN)
    stops = best.get("curve_stops_at_seconds")
    if stops is not None and hi >= float(stops) * (1 - 1e-9):
        hi = float(stops) * _WIDEN  # the data stops here: look beyond it
    if math.isclose(lo, seconds, rel_tol=1e-9):  # the best is the shortest TTL considered
        lo = seconds / _WIDEN
    if math.isclose(hi, seconds, rel_tol=1e-9):
        hi = seconds * _WIDEN
    values = {"low": lo, "best": seconds, "high": hi}
    return {k: min(_MAX_TTL, max(_MIN_TTL, _round(v))) for k, v in values.items()}


def _control(document: Mapping[str, Any], use_case: str, active: UseCaseRule | None):
    """The active policy's rule: given, or the analysis's drift entry for the use case."""
    if active is not None:
        return active.method, active.duration, active.traffic_type, active.fallback
    for entry in document.get("drift") or []:
        if entry.get("useCase") == use_case and entry.get("policy_seconds") is not None:
            return entry["method"], f"{entry['policy_seconds']:g}s", None, None
    return None


def suggest_spec(
    document: Mapping[str, Any],
    use_case: str,
    *,
    active: UseCaseRule | None = None,
    difference_per_1000: float = 5.0,
    alpha: float = 0.05,
    power: float = 0.8,
    audience: Mapping[str, Any] | None = None,
    profile: str = "default",
    name: str | None = None,
    template: str | None = None,
    seed: int = 0,
) -> Suggestion:
    """A TTL experiment spec for ``use_case`` from an analysis ``document`` (see the module).

    ``active`` is the active TTL policy's rule (else the document's ``drift`` entry names it;
    without either there is no control arm). ``audience`` defaults to synthetic numbers of the
    emulator ``profile`` (a rehearsal: give ``{"phones_file": ...}`` to run live).
    """
    group = _group(document, use_case)
    best = group["best_ttl"]
    cost_policy = (document.get("policies") or {}).get(best.get("policy") or use_case)
    if cost_policy is None:
        raise ValidationError("use_case", use_case, "has no cost policy in the document")
    labels: dict[tuple[str, float], list[str]] = {}  # one arm per (method, TTL), all its roles
    control = _control(document, use_case, active)
    traffic_type, fallback = None, None
    if control is not None:
        method, duration, traffic_type, fallback = control
        labels[(str(method), duration_seconds(duration, "duration"))] = ["control"]
    for label, seconds in _bracket(best).items():
        labels.setdefault(("ttl", seconds), []).append(label)
    arms = [
        {"name": f"{'/'.join(roles)} {method}={seconds:g}s", "method": method,
         "duration": f"{seconds:g}s"}
        for (method, seconds), roles in labels.items()
    ]  # fmt: skip
    comparisons = max(1, len(arms) - 1)
    sd = cost_spread(cost_policy, float(best["seconds"]), float(best["expected_cost"]))
    size = per_arm_size(sd, difference_per_1000, alpha=alpha, power=power, comparisons=comparisons)
    if fallback is None:
        falls_back = bool(cost_policy.get("fallback", True))
        fallback = FallbackRule(
            FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE if falls_back else FallbackPolicy.NONE,
            not_rcs=falls_back,
        )
    from rbmtools.analysis import humanize as h

    description = (
        f"Suggested from the analysis of {use_case}: best TTL {h.duration(best['seconds'])}, "
        f"interval {h.duration_range(best.get('lo'), best.get('hi'))}. {size:,} messages per arm "
        f"detect a difference of {difference_per_1000:g} per 1,000 messages in expected cost "
        f"(cost SD about {sd:.4f} per message) at power {power:g}, two-sided alpha {alpha:g} "
        f"over {comparisons} comparison(s) with the first arm."
    )
    plain: dict[str, Any] = {
        "name": name or f"{use_case}-ttl-next",
        "description": description,
        "use_case": use_case,
        "template": template or "Your code is {code}",
        "audience": dict(audience or {"synthetic": size * len(arms), "profile": profile}),
        "arms": arms,
        "per_arm": size,
        "seed": seed,
        "fallback": FallbackRule.parse(fallback).to_plain(),
    }
    if traffic_type is not None:
        plain["traffic_type"] = traffic_type
    spec = ExperimentSpec.from_dict(plain)
    return Suggestion(spec, size, sd, difference_per_1000, alpha, power, comparisons)
