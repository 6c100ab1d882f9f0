"""The whole analysis in one call, as a stable JSON document, readable text or an HTML page.

``analyze(events, outbox, by=..., policies=...)`` loads both logs, derives the lifecycles,
aggregates them per group, and computes revoke success (Wilson), delivery latency (Kaplan-Meier)
and the best TTL under each group's cost policy (chosen by its ``useCase``). The document's
layout is fixed (``SCHEMA``); a figure that cannot be estimated is ``null``, never invented.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from rbmtools.analysis import humanize as h
from rbmtools.analysis.aggregates import Aggregates, GroupAggregates
from rbmtools.analysis.dataset import Dataset, LoadReport, load
from rbmtools.analysis.latency import (
    DEFAULT_MIN_AT_RISK,
    QUANTILES,
    SurvivalCurve,
    kaplan_meier,
    weighted_quantile,
)
from rbmtools.analysis.metrics import compare_arms, wilson
from rbmtools.analysis.policy import CostPolicy, load_policies, resolve_policies
from rbmtools.analysis.schema import OUTCOMES, REVOKE_METHODS, validate_by
from rbmtools.analysis.ttl import DEFAULT_TOLERANCE, TtlChoice, best_ttl
from rbmtools.analysis.window import Window
from rbmtools.wire import format_timestamp

__all__ = ["SCHEMA", "Analysis", "GroupResult", "analyze", "build_analysis"]

SCHEMA = "rbmtools.analysis/1"
DEFAULT_BY = ("useCase",)


@dataclass(frozen=True)
class GroupResult:
    """Everything computed for one group."""

    aggregates: GroupAggregates = field(repr=False)
    curve: SurvivalCurve = field(repr=False)
    ttl: TtlChoice = field(repr=False)

    @property
    def key(self) -> dict[str, Any]:
        return self.aggregates.key

    @property
    def counts(self) -> dict[str, int]:
        return self.aggregates.counts

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "all messages"

    @cached_property
    def document(self) -> dict[str, Any]:
        """The group's block of the analysis document."""
        return group_document(self)

    @cached_property
    def reasons(self) -> dict[str, str]:
        """Why each null figure of ``document`` is null, by dotted path."""
        return not_estimable(self, self.document)


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Analysis:
    """The results of ``build_analysis``: ``to_dict()`` is the document of ``analyze``."""

    report: LoadReport
    by: tuple[str, ...]
    groups: list[GroupResult]
    comparisons: pd.DataFrame
    policies: dict[str, CostPolicy]
    settings: dict[str, Any]
    daily: Aggregates | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    window: Window | None = None
    #: Per use case, whether an active TTL policy still holds (``ttl_policy.ttl_policy_drift``).
    drift: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        used = sorted({g.ttl.policy_name for g in self.groups if g.ttl.policy_name})
        doc = {
            "schema": SCHEMA,
            "read": self.report.to_dict(),
            "by": list(self.by),
            "settings": self.settings,
            "policies": {name: self.policies[name].to_dict() for name in used},
            "groups": [_clean(g.document) for g in self.groups],
            "inputs": self.inputs,
            "window": _window_dict(self.window),
            "comparisons": self.comparisons.to_dict("records"),
        }
        if self.drift is not None:
            doc["drift"] = self.drift
        return _clean(doc)

    def to_text(self) -> str:
        return render_text(self)

    def to_html(self, figures: bool = True) -> str:
        return render_html(self, figures=figures)


def group_document(group: GroupResult) -> dict[str, Any]:
    """The ``groups`` entry of the analysis document for one group."""
    c = group.counts
    curve = group.curve
    latency: dict[str, Any] = {}
    ci: dict[str, Any] = {}
    for p in QUANTILES:
        name = f"p{round(p * 100):d}"
        estimate, lo, hi = curve.quantile(p)
        latency[name] = estimate
        ci[name] = [lo, hi]
    never, never_lo, never_hi = curve.never_delivered
    latency["never_delivered_share"] = never
    latency["never_delivered_at_seconds"] = curve.never_delivered_at
    ci["never_delivered_share"] = [never_lo, never_hi]
    latency.update(
        ci=ci,
        messages=curve.messages,
        deliveries=curve.deliveries,
        supported_until_seconds=curve.supported_until,
    )
    revoke = _rate_dict(c["revoked"], c["revoke_tried"])
    for method in REVOKE_METHODS:
        revoke[method] = _rate_dict(c[f"{method}_revoked"], c[f"{method}_tried"])
    delivered = c["delivered"] + c["delivered_after_revoke"]
    read = _rate_dict(c["read"], delivered)
    read["median_seconds"] = weighted_quantile(group.aggregates.read_bins, "read", 0.5)
    read["p90_seconds"] = weighted_quantile(group.aggregates.read_bins, "read", 0.9)
    succeeded = c["revoked"] + c["delivered_after_revoke"]
    doc = {
        "key": group.key,
        "messages": c["messages"],
        "outcomes": {o: c[o] for o in OUTCOMES},
        "revoke_success": revoke,
        "latency_seconds": latency,
        "read": read,
        "stale_deliveries": _rate_dict(c["stale_deliveries"], delivered),
        "double_deliveries": _rate_dict(c["double_deliveries"], delivered),
        "revoke_race": _rate_dict(c["delivered_after_revoke"], succeeded),
        "sms": _sms_dict(c, group.ttl.policy),
        "anomalies": {
            "clock_skew_messages": c["clock_skew"],
            "out_of_order_messages": c["out_of_order"],
            "duplicate_events": c["duplicate_events"],
            "implausible_time_messages": c.get("implausible_times", 0),
        },
        "best_ttl": group.ttl.to_dict(),
    }
    doc["not_estimable"] = not_estimable(group, doc)
    return doc


def _reason_candidates(group: GroupResult) -> dict[str, str]:
    """Why each figure of a group's document may be null, by its dotted path."""
    curve, choice = group.curve, group.ttl
    at_risk = f"fewer than {curve.min_at_risk} messages at risk"
    reasons: dict[str, str] = {}
    for p in QUANTILES:
        name = f"p{round(p * 100):d}"
        reasons[f"latency_seconds.{name}"] = (
            "no message reached RCS"
            if not curve.messages
            else f"{at_risk} before {100 * p:g} % were delivered"
            if curve.estimable
            else f"{at_risk} (the group has {curve.messages})"
        )
    reasons["latency_seconds.supported_until_seconds"] = reasons["latency_seconds.p50"]
    for path in ("never_delivered_share", "never_delivered_at_seconds"):
        reasons[f"latency_seconds.{path}"] = "no message reached RCS"
    reasons["revoke_success.rate"] = "no revokes tried"
    reasons["revoke_success.api.rate"] = "no API revokes tried"
    reasons["revoke_success.ttl.rate"] = "no TTL expiries"
    for path in ("read.rate", "stale_deliveries.rate", "double_deliveries.rate"):
        reasons[path] = "nothing delivered"
    reasons["read.median_seconds"] = reasons["read.p90_seconds"] = "nothing read"
    reasons["revoke_race.rate"] = "no revoke succeeded"
    if choice.policy is None:
        ttl_reason = "no cost policy for this use case"
    elif not curve.estimable:
        ttl_reason = reasons["latency_seconds.p50"]
    else:
        ttl_reason = "the data supports less than the shortest TTL considered (10 s)"
    for path in ("seconds", "expected_cost", "near_optimal", "at_support_edge"):
        reasons[f"best_ttl.{path}"] = ttl_reason
    bootstrap_reason = ttl_reason if choice.seconds is None else "bootstrap off (bootstrap=0)"
    reasons["best_ttl.lo"] = reasons["best_ttl.hi"] = bootstrap_reason
    reasons["best_ttl.coverage_95_seconds"] = (
        reasons["latency_seconds.p50"] if not curve.estimable else "nothing delivered"
    )
    reasons["best_ttl.curve_stops_at_seconds"] = ttl_reason
    reasons["best_ttl.supported_until_seconds"] = reasons["latency_seconds.p50"]
    return reasons


def not_estimable(group: GroupResult, doc: Mapping[str, Any]) -> dict[str, str]:
    """Every figure of the group's document that cannot be estimated (null), with why: the
    ``not_estimable`` block, and the footnotes of the pages' ``n/e``."""
    found = {}
    for path, reason in _reason_candidates(group).items():
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None or (isinstance(node, float) and not math.isfinite(node)):
            found[path] = reason
    return found


def _window_dict(window: Window | None) -> dict[str, str | None] | None:
    if window is None:
        return None
    return {
        "start": None if window.start is None else format_timestamp(window.start),
        "end": None if window.end is None else format_timestamp(window.end),
    }


def describe_files(files: Any) -> str:
    """The files of one log as a reader names them: the file, or the folder they share and how
    many there are (relative to the working directory when below it)."""
    paths = list(getattr(files, "all", ()))
    if not paths:
        return "none"
    where = paths[0] if len(paths) == 1 else os.path.commonpath(paths)
    relative = os.path.relpath(where)
    shown = where if relative.startswith("..") else relative
    return shown if len(paths) == 1 else f"{shown} ({len(paths):,} files)"


def _sms_dict(counts: Mapping[str, int], policy: CostPolicy | None) -> dict[str, Any]:
    """The SMS sent, split by why: a revoked or inconclusive message (``after_revoke``) or a
    phone without RCS (``not_rcs``, outside the TTL's cost model), each priced at the cost
    policy's ``sms_cost`` (null without a policy)."""
    not_rcs = counts["not_rcs_fallbacks"]
    after_revoke = counts["fallbacks"] - not_rcs
    price = None if policy is None else policy.sms_cost
    return {
        "after_revoke": after_revoke,
        "not_rcs": not_rcs,
        "after_revoke_cost": None if price is None else after_revoke * price,
        "not_rcs_cost": None if price is None else not_rcs * price,
    }


def _rate_dict(successes: int, trials: int) -> dict[str, Any]:
    rate, lo, hi = wilson(successes, trials)
    return {"rate": rate, "lo": lo, "hi": hi, "n": trials, "count": successes}


def _policy_for(
    key: Mapping[str, Any], policies: Mapping[str, CostPolicy], only_use_case: str | None
) -> tuple[str | None, CostPolicy | None]:
    use_case = key.get("useCase", only_use_case)
    if use_case is not None and use_case in policies:
        return use_case, policies[use_case]
    if "*" in policies:
        return "*", policies["*"]
    return None, None


def _only_use_cases(dataset: Dataset, columns: tuple[str, ...]) -> dict[tuple, str]:
    """For a grouping without ``useCase``: each group whose messages all share one use case,
    that use case (an experiment's arms usually each have one, so ``--by arm`` still gets each
    arm its use case's cost policy); groups mixing use cases are left out."""
    if "useCase" in columns:
        return {}
    found: dict[tuple, set[str | None]] = {}
    for group in dataset.aggregates((*columns, "useCase")):
        if group.counts["messages"] > 0:
            key = tuple(group.key.get(c) for c in columns)
            found.setdefault(key, set()).add(group.key.get("useCase"))
    return {key: next(iter(cases)) for key, cases in found.items() if len(cases) == 1}


def build_analysis(
    dataset: Dataset,
    by: str | Iterable[str] | None = DEFAULT_BY,
    policies: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    min_at_risk: int = DEFAULT_MIN_AT_RISK,
    bootstrap: int = 200,
    seed: int = 0,
    coverage: float = 0.95,
    daily: bool = False,
    reference: str | Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Analysis:
    """Compute every figure of the analysis document from a loaded ``Dataset``.

    ``policies`` maps useCase -> ``CostPolicy`` or policy fields (over the defaults for otp,
    transaction, promo and alert), or names a YAML/JSON file; key ``"*"`` applies to any other
    use case. A group gets the policy of its ``useCase`` (with ``useCase`` not in ``by``, the
    use case all its messages share, if they share one); without a policy its ``best_ttl`` is
    null.
    Arms are compared with ``reference``: the arms in the spec's order, or one arm's name
    (see ``compare_arms``). ``tolerance`` sets the near-optimal range of each best TTL.
    """
    columns = tuple(validate_by(by))
    if isinstance(policies, str | os.PathLike):
        resolved = load_policies(policies)
    else:
        resolved = resolve_policies(policies)
    if min_at_risk < 1:
        from rbmtools.errors import ValidationError

        raise ValidationError("min_at_risk", min_at_risk, "must be at least 1")
    aggregates = dataset.aggregates(columns)
    only_use_case = _only_use_cases(dataset, columns)
    results = []
    for index, group in enumerate(aggregates):
        curve = kaplan_meier(group.latency_bins, min_at_risk=min_at_risk)
        name, policy = _policy_for(
            group.key, resolved, only_use_case.get(tuple(group.key.get(c) for c in columns))
        )
        choice = best_ttl(
            curve,
            group.latency_bins,
            policy,
            policy_name=name,
            race_delivered=group.counts["delivered_after_revoke"],
            race_revokes=group.counts["revoked"] + group.counts["delivered_after_revoke"],
            bootstrap=bootstrap,
            seed=seed + index,
            coverage=coverage,
            tolerance=tolerance,
        )
        results.append(GroupResult(group, curve, choice))
    results = _in_arm_order(results, reference)
    comparisons = (
        compare_arms(aggregates, reference=reference) if "arm" in columns else pd.DataFrame()
    )
    daily_aggregates = None
    if daily:
        daily_aggregates = dataset.aggregates([c for c in columns if c != "day"] + ["day"])
    settings = {
        "min_at_risk": min_at_risk,
        "bootstrap": bootstrap,
        "seed": seed,
        "coverage": coverage,
        "confidence": 0.95,
        "tolerance": tolerance,
        "reference": reference
        if reference is None or isinstance(reference, str)
        else list(reference),
    }
    inputs = {
        "events": describe_files(dataset.event_files),
        "outbox": describe_files(dataset.outbox_files),
    }
    return Analysis(
        dataset.report,
        columns,
        results,
        comparisons,
        resolved,
        settings,
        daily_aggregates,
        inputs,
        getattr(dataset, "sent", None),
    )


def _in_arm_order(
    results: list[GroupResult], reference: str | Sequence[str] | None
) -> list[GroupResult]:
    """The groups with their arms in the spec's order (``reference`` a sequence of arms),
    each stratum keeping its place; as they came otherwise."""
    if reference is None or isinstance(reference, str):
        return results
    rank = {str(name): i for i, name in enumerate(reference)}

    def key(indexed: tuple[int, GroupResult]) -> tuple:
        index, group = indexed
        arm = group.key.get("arm")
        return (rank.get(str(arm), len(rank)) if arm is not None else len(rank), index)

    if not results or "arm" not in results[0].key:
        return results
    strata: dict[tuple, list[tuple[int, GroupResult]]] = {}
    for index, group in enumerate(results):
        stratum = tuple(str(v) for k, v in group.key.items() if k != "arm")
        strata.setdefault(stratum, []).append((index, group))
    return [g for members in strata.values() for _, g in sorted(members, key=key)]


def analyze(
    events: Any = None,
    outbox: Any = None,
    by: str | Iterable[str] | None = DEFAULT_BY,
    policies: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    min_at_risk: int = DEFAULT_MIN_AT_RISK,
    bootstrap: int = 200,
    seed: int = 0,
    quarantine: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    engine: Any = "duckdb",
    spark_master: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    sent: Any = None,
    reference: str | Sequence[str] | None = None,
    history: str | os.PathLike[str] | None = None,
    on_unreadable: str = "skip",
) -> dict[str, Any]:
    """Load the logs and return the analysis document (see the README, "Analysis");
    ``engine``, ``sent`` (a window of send times), ``history`` (a compacted history instead of
    the logs), ``on_unreadable`` and the rest as in ``load`` (``"duckdb"``, ``"spark"`` or a
    SparkSession), ``reference`` as in ``build_analysis``."""
    with load(
        events,
        outbox,
        history=history,
        on_unreadable=on_unreadable,
        quarantine=quarantine,
        threads=threads,
        memory_limit=memory_limit,
        engine=engine,
        spark_master=spark_master,
        spark_conf=spark_conf,
        sent=sent,
    ) as data:
        return build_analysis(
            data, by, policies, min_at_risk=min_at_risk, bootstrap=bootstrap, seed=seed,
            reference=reference,
        ).to_dict()  # fmt: skip


# ------------------------------------------------------------------------------ text


def _rate_text(block: Mapping[str, Any], notes: h.Footnotes, reason: str | None) -> str:
    if block["rate"] is None:
        return notes.mark(reason)
    return f"{h.percent(block['rate'])} ({h.percent_range(block['lo'], block['hi'])})"


def _ttl_text(group: GroupResult, why: Mapping[str, str], notes: h.Footnotes) -> str:
    choice = group.ttl
    if choice.seconds is None:
        return notes.mark(why.get("best_ttl.seconds"))
    interval = notes.value(h.duration_range(choice.lo, choice.hi), why.get("best_ttl.lo"))
    text = (
        f"{h.duration(choice.seconds)} (95 % interval {interval}); within "
        f"{100 * choice.tolerance:g} % of the best cost: "
        f"{h.duration_range(choice.near_lo, choice.near_hi)}; "
        f"{h.cost(choice.expected_cost)} / message (policy {choice.policy_name})"
    )
    if choice.at_support_edge:
        text += (
            f"; at the data's limit ({h.duration(choice.stops_at)}): a longer TTL may be as cheap"
        )
    return text


def _never_text(lat: Mapping[str, Any], reason: str | None, notes: h.Footnotes) -> str:
    if reason:
        return notes.mark(reason)
    interval = h.percent_range(*lat["ci"]["never_delivered_share"])
    within = h.duration(lat["never_delivered_at_seconds"])
    return f"{h.percent(lat['never_delivered_share'])} ({interval}) within {within}"


def _group_text(group: GroupResult, notes: h.Footnotes) -> list[str]:
    doc, why, c = group.document, group.reasons, group.counts
    lat, rs, read = doc["latency_seconds"], doc["revoke_success"], doc["read"]
    outcomes = ", ".join(
        f"{k.replace('_', ' ')} {h.count(v)}" for k, v in doc["outcomes"].items() if v
    )
    quantiles = ", ".join(
        f"{q} {notes.value(h.duration(lat[q]), why.get(f'latency_seconds.{q}'))}"
        for q in ("p50", "p90", "p95", "p99")
    )
    api = _rate_text(rs["api"], notes, why.get("revoke_success.api.rate"))
    ttl = _rate_text(rs["ttl"], notes, why.get("revoke_success.ttl.rate"))
    median = notes.value(h.duration(read["median_seconds"]), why.get("read.median_seconds"))
    never = _never_text(lat, why.get("latency_seconds.never_delivered_share"), notes)
    return [
        f"== {group.label()}: {h.count(c['messages'])} messages",
        f"   best TTL: {_ttl_text(group, why, notes)}",
        f"   revoke success: {_rate_text(rs, notes, why.get('revoke_success.rate'))} of "
        f"{h.count(rs['n'])} tried (API {api}, TTL expiry {ttl})",
        f"   latency: {quantiles}; never delivered {never}",
        f"   outcomes: {outcomes or 'none'}",
        f"   read: {_rate_text(read, notes, why.get('read.rate'))}, median {median} after "
        f"delivery; stale {h.count(c['stale_deliveries'])}, double "
        f"{h.count(c['double_deliveries'])}",
        f"   SMS: {_sms_text(doc['sms'])}",
        "",
    ]


def _sms_text(sms: Mapping[str, Any]) -> str:
    def cost(key: str) -> str:
        return "" if sms[key] is None else f" (cost {sms[key]:,.2f})"

    return (
        f"{h.count(sms['after_revoke'])} after revokes{cost('after_revoke_cost')}, "
        f"{h.count(sms['not_rcs'])} to phones without RCS{cost('not_rcs_cost')}"
    )


def drift_headlines(analysis: Analysis) -> list[str]:
    """One line per use case whose active TTL policy no longer holds (the report opens with
    them; see ``ttl_policy.ttl_policy_drift``)."""
    from rbmtools.analysis.ttl_policy import drift_headline

    return [drift_headline(entry) for entry in analysis.drift or () if entry["drift"]]


def _comparison_text(analysis: Analysis) -> list[str]:
    rows = [
        r
        for r in analysis.comparisons.to_dict("records")
        if r["difference"] is not None and h.estimable(r["difference"])
    ]
    if not rows:
        return []
    lines = ["== arm comparisons (arm minus reference, percentage points, Newcombe 95 % interval)"]
    for row in rows:
        stratum = ", ".join(f"{k}={row[k]}" for k in analysis.by if k != "arm" and k in row)
        interval = f"{h.percentage_points(row['lo_pp'])} – {h.percentage_points(row['hi_pp'])}"
        lines.append(
            f"   {stratum + ': ' if stratum else ''}{row['rate'].replace('_', ' ')}: "
            f"{row['arm']} vs {row['reference']} {h.percentage_points(row['difference_pp'])} "
            f"({interval}), {'significant' if row['significant'] else 'not significant'}"
        )
    return [*lines, ""]


def render_text(analysis: Analysis) -> str:
    """A readable summary: what was read, then one block per group, then the arm comparisons;
    ``n/e`` (not estimable) carries a footnote number saying why."""
    notes = h.Footnotes()
    window = "all messages" if analysis.window is None else analysis.window.label()
    lines = [*drift_headlines(analysis), str(analysis.report), f"window: {window}", ""]
    for group in analysis.groups:
        lines += _group_text(group, notes)
    lines += _comparison_text(analysis)
    if len(notes):
        lines.append("n/e: not estimable. " + "; ".join(f"{m} {r}" for m, r in notes.items()))
    return "\n".join(lines).rstrip() + "\n"


def render_html(analysis: Analysis, figures: bool = True) -> str:
    """A self-contained HTML page (figures inlined as PNG) of the analysis, in the design of
    every rbmtools report (``page.analysis_page``)."""
    from rbmtools.analysis.page import analysis_page

    return analysis_page(analysis, figures=figures)
