"""Figures of an analysis (matplotlib); every function returns a ``Figure``.

Latency survival curves by group (cut where the data stops supporting them), outcome bars,
revoke success with Wilson intervals, TTL cost curves with the optimum and its bootstrap
interval marked, and the daily trend. Nothing is shown or saved here: callers decide (use the
non-interactive Agg backend on servers and in tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from rbmtools.analysis.metrics import wilson
from rbmtools.analysis.schema import OUTCOMES

if TYPE_CHECKING:
    from rbmtools.analysis.report import Analysis

__all__ = [
    "all_figures",
    "daily_trend",
    "latency_curves",
    "outcome_bars",
    "revoke_success_plot",
    "ttl_cost_curves",
]

_COLOURS = {
    "delivered": "#2e7d32",
    "delivered_after_revoke": "#f9a825",
    "revoked": "#1565c0",
    "revoke_failed_undelivered": "#8e24aa",
    "pending": "#9e9e9e",
    "not_rcs": "#c62828",
}


def _figure(width: float = 8.0, height: float = 4.5) -> tuple[Figure, object]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def latency_curves(analysis: Analysis) -> Figure:
    """Share not yet delivered against time since the send (log scale), with 95 % bands."""
    figure, ax = _figure()
    for group in analysis.groups:
        curve = group.curve
        if not curve.estimable:
            continue
        t = np.maximum(curve.times, 1e-3)
        line = ax.step(t, curve.survival, where="post", label=group.label())[0]
        ax.fill_between(
            t, curve.lower, curve.upper, step="post", alpha=0.15, color=line.get_color()
        )
    ax.set_xscale("log")
    ax.set_xlabel("seconds since send")
    ax.set_ylabel("share not yet delivered")
    ax.set_ylim(0, 1)
    ax.set_title("Delivery latency (Kaplan-Meier; curves stop where the data does)")
    if ax.lines:
        ax.legend(fontsize="small")
    return figure


def outcome_bars(analysis: Analysis) -> Figure:
    """Stacked shares of each outcome per group."""
    figure, ax = _figure(8.0, 1.2 + 0.5 * max(len(analysis.groups), 1))
    labels = [g.label() for g in analysis.groups]
    left = np.zeros(len(labels))
    for outcome in OUTCOMES:
        shares = np.array(
            [g.counts[outcome] / max(g.counts["messages"], 1) for g in analysis.groups]
        )
        ax.barh(labels, shares, left=left, label=outcome, color=_COLOURS[outcome])
        left += shares
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of messages")
    ax.set_title("Outcomes")
    ax.legend(fontsize="small", ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return figure


def revoke_success_plot(analysis: Analysis) -> Figure:
    """Revoke success rate per group and method with Wilson 95 % intervals."""
    figure, ax = _figure()
    offsets = {"all": -0.2, "api": 0.0, "ttl": 0.2}
    for method, offset in offsets.items():
        xs, rates, errors = [], [], [[], []]
        for i, group in enumerate(analysis.groups):
            c = group.counts
            tried = c["revoke_tried"] if method == "all" else c[f"{method}_tried"]
            ok = c["revoked"] if method == "all" else c[f"{method}_revoked"]
            rate, lo, hi = wilson(ok, tried)
            if rate is None:
                continue
            xs.append(i + offset)
            rates.append(rate)
            # at a rate of 0 or 1 the interval's edge may miss the rate by a rounding error
            errors[0].append(max(rate - lo, 0.0))
            errors[1].append(max(hi - rate, 0.0))
        if xs:
            ax.errorbar(xs, rates, yerr=errors, fmt="o", capsize=3, label=method)
    ax.set_xticks(
        range(len(analysis.groups)), [g.label() for g in analysis.groups], rotation=20, ha="right"
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("revoked / revoke tried")
    ax.set_title("Revoke success (Wilson 95 % intervals)")
    if ax.lines:
        ax.legend(fontsize="small")
    return figure


def ttl_cost_curves(analysis: Analysis) -> Figure:
    """Expected cost per message against the TTL, the optimum marked with its interval."""
    figure, ax = _figure()
    for group in analysis.groups:
        choice = group.ttl
        if choice.seconds is None:
            continue
        line = ax.plot(
            choice.curve["ttl_seconds"],
            choice.curve["expected_cost"],
            label=f"{group.label()} ({choice.policy_name})",
        )[0]
        ax.plot([choice.seconds], [choice.expected_cost], "o", color=line.get_color())
        if choice.lo is not None:
            ax.axvspan(choice.lo, choice.hi, alpha=0.12, color=line.get_color())
        ax.axvline(choice.curve["ttl_seconds"].iloc[-1], ls=":", lw=0.8, color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("TTL (seconds); dotted: where the data stops")
    ax.set_ylabel("expected cost per message")
    ax.set_title("Best TTL under the cost policy (dot: optimum, band: bootstrap 95 %)")
    if ax.lines:
        ax.legend(fontsize="small")
    return figure


def daily_trend(analysis: Analysis) -> Figure:
    """Per day: share delivered and revoke success rate (needs ``build_analysis(daily=True)``)."""
    figure, ax = _figure()
    daily = analysis.daily
    if daily is None or not len(daily.groups):
        ax.set_title("Daily trend (no daily aggregates)")
        return figure
    frame = daily.groups.copy()
    others = [c for c in daily.by if c != "day"]
    frame["series"] = frame[others].astype(str).agg(", ".join, axis=1) if others else "all"
    reachable = (frame["messages"] - frame["not_rcs"]).clip(lower=1)
    frame["delivered_share"] = (frame["delivered"] + frame["delivered_after_revoke"]) / reachable
    frame["revoke_rate"] = frame["revoked"] / frame["revoke_tried"].where(frame["revoke_tried"] > 0)
    for name, part in frame.sort_values("day").groupby("series"):
        days = part["day"].astype(str)
        line = ax.plot(days, part["delivered_share"], marker="o", label=f"{name}: delivered")[0]
        ax.plot(
            days,
            part["revoke_rate"],
            marker="x",
            ls="--",
            color=line.get_color(),
            label=f"{name}: revoke success",
        )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title("Daily trend")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize="x-small")
    return figure


def all_figures(analysis: Analysis) -> dict[str, Figure]:
    """Every figure, by title, in the order a report shows them."""
    figures = {
        "Delivery latency": latency_curves(analysis),
        "Outcomes": outcome_bars(analysis),
        "Revoke success": revoke_success_plot(analysis),
        "TTL cost curves": ttl_cost_curves(analysis),
    }
    if analysis.daily is not None:
        figures["Daily trend"] = daily_trend(analysis)
    return figures
