"""Figures of an analysis (matplotlib); every function returns a ``Figure`` (or None when there
is nothing to draw, with a sentence saying why from ``trend_sentence``).

One colour per group in every figure of a report (``group_colours``, by the group's place in
the analysis); time axes are logarithmic with ticks people read (1 s, 10 s, 1 min, 10 min, 1 h,
1 d) and start where the data starts; legends name each group once, by its values. Latency
survival curves by group (cut where the data stops supporting them), outcome bars, revoke
success with Wilson intervals, TTL cost curves as small multiples (one panel per group, with
the optimum, its bootstrap interval, the near-optimal range and the support limit), and the
daily trend. Nothing is shown or saved here: callers decide (use the non-interactive Agg
backend on servers and in tests).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

from rbmtools.analysis import humanize as h
from rbmtools.analysis.metrics import wilson
from rbmtools.analysis.schema import OUTCOMES

if TYPE_CHECKING:
    from rbmtools.analysis.report import Analysis

__all__ = [
    "PALETTE",
    "all_figures",
    "daily_trend",
    "group_colours",
    "latency_curves",
    "outcome_bars",
    "revoke_success_plot",
    "trend_sentence",
    "ttl_cost_curves",
]

#: Group colours in order: Okabe-Ito (readable by colour-blind readers; its yellow left out,
#: too pale on white), then further colours chosen to stay apart from those.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D31", "#4D4D4D",
    "#9467BD", "#BCBD22", "#E7298A", "#66A61E", "#17BECF", "#A50026", "#1A1A80", "#B0B0B0",
)  # fmt: skip

_OUTCOME_COLOURS = {
    "delivered": "#2e7d32",
    "delivered_after_revoke": "#f9a825",
    "revoked": "#1565c0",
    "revoke_failed_undelivered": "#8e24aa",
    "pending": "#9e9e9e",
    "not_rcs": "#c62828",
}
_METHOD_MARKERS = {"all": "o", "api": "s", "ttl": "^"}
_METHOD_NAMES = {"all": "all revokes", "api": "API (DELETE)", "ttl": "TTL expiry"}
#: Tick positions a reader knows, in seconds.
_TICKS = (
    0.01, 0.1, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 43200,
    86400, 172800, 604800, 1296000,
)  # fmt: skip
_ROUND_TICKS = (0.01, 0.1, 1, 10, 60, 600, 3600, 86400, 604800)
_WIDTH = 10.0  # inches: 1,000 pixels at 100 dpi, inside a 1280-pixel page


def group_colours(analysis: Analysis) -> list[str]:
    """The colour of each group of ``analysis`` (in its order), the same in every figure."""
    return [PALETTE[i % len(PALETTE)] for i in range(len(analysis.groups))]


def _name(group: Any) -> str:
    from rbmtools.analysis.tables import group_name

    return group_name(group.key)


def _legend_title(analysis: Analysis) -> str:
    from rbmtools.analysis.tables import COLUMN_NAMES

    return " · ".join(COLUMN_NAMES.get(c, c) for c in analysis.by) or None


def time_axis(ax: Any, low: float, high: float, axis: str = "x", max_ticks: int = 7) -> None:
    """A logarithmic time axis from ``low`` to ``high`` seconds with human ticks (at most
    ``max_ticks``: round ones first, 1 s, 10 s, 1 min, 10 min, 1 h, 1 d)."""
    low = max(low, 1e-3)
    high = max(high, low * 1.5)
    inside = [t for t in _TICKS if low <= t <= high]
    if len(inside) > max_ticks:
        rounded = [t for t in inside if t in _ROUND_TICKS]
        if 3 <= len(rounded) <= max_ticks:
            inside = rounded
        else:
            source = rounded if len(rounded) > max_ticks else inside
            inside = source[:: math.ceil(len(source) / max_ticks)]
    if len(inside) < 2:
        inside = sorted({*inside, *[t for t in _TICKS if t <= low][-1:], high})
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    set_limits = ax.set_xlim if axis == "x" else ax.set_ylim
    target = ax.xaxis if axis == "x" else ax.yaxis
    set_scale("log")
    set_limits(low, high)
    target.set_major_locator(FixedLocator(inside))
    target.set_major_formatter(FuncFormatter(lambda value, _: h.duration(value)))
    target.set_minor_locator(NullLocator())


def _figure(width: float = _WIDTH, height: float = 4.2) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def latency_curves(analysis: Analysis) -> Figure:
    """Share not yet delivered against time since the send, with 95 % bands, per group."""
    figure, ax = _figure()
    starts, ends = [], []
    for group, colour in zip(analysis.groups, group_colours(analysis), strict=True):
        curve = group.curve
        if not curve.estimable:
            continue
        positive = curve.times[curve.times > 0]
        if len(positive):
            starts.append(positive[0])
        ends.append(curve.times[-1])
        t = np.maximum(curve.times, positive[0] if len(positive) else 1e-3)
        ax.step(t, curve.survival, where="post", color=colour, label=_name(group), lw=1.6)
        ax.fill_between(t, curve.lower, curve.upper, step="post", alpha=0.13, color=colour, lw=0)
    if starts:
        time_axis(ax, min(starts) / 1.2, max(ends) * 1.15)
        ax.legend(title=_legend_title(analysis), fontsize="small", title_fontsize="small")
    ax.set_xlabel("time since the send")
    ax.set_ylabel("not yet delivered")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.25)
    ax.set_title("Delivery latency (Kaplan-Meier, 95 % bands; curves stop where the data does)")
    return figure


def outcome_bars(analysis: Analysis) -> Figure:
    """Stacked shares of each outcome per group."""
    figure, ax = _figure(_WIDTH, 1.6 + 0.42 * max(len(analysis.groups), 1))
    labels = [_name(g) for g in analysis.groups][::-1]
    groups = analysis.groups[::-1]
    left = np.zeros(len(labels))
    for outcome in OUTCOMES:
        shares = np.array([g.counts[outcome] / max(g.counts["messages"], 1) for g in groups])
        name = outcome.replace("_", " ").replace("not rcs", "not RCS")
        ax.barh(labels, shares, left=left, label=name, color=_OUTCOME_COLOURS[outcome])
        left += shares
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("share of messages")
    ax.legend(fontsize="small", ncols=6, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure


def revoke_success_plot(analysis: Analysis) -> Figure:
    """Revoke success per group (its colour) and method (marker), Wilson 95 % intervals."""
    figure, ax = _figure(_WIDTH, 4.0)
    offsets = {"all": -0.18, "api": 0.0, "ttl": 0.18}
    used = set()
    for i, (group, colour) in enumerate(zip(analysis.groups, group_colours(analysis), strict=True)):
        c = group.counts
        for method, offset in offsets.items():
            tried = c["revoke_tried"] if method == "all" else c[f"{method}_tried"]
            ok = c["revoked"] if method == "all" else c[f"{method}_revoked"]
            rate, lo, hi = wilson(ok, tried)
            if rate is None:
                continue
            used.add(method)
            # at a rate of 0 or 1 the interval's edge may miss the rate by a rounding error
            error = [[max(rate - lo, 0.0)], [max(hi - rate, 0.0)]]
            ax.errorbar([i + offset], [rate], yerr=error, fmt=_METHOD_MARKERS[method],
                        color=colour, capsize=3, ms=6)  # fmt: skip
    ax.set_xticks(range(len(analysis.groups)), [_name(g) for g in analysis.groups])
    if len(analysis.groups) > 5:
        ax.tick_params(axis="x", rotation=20)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("revoked / revoke tried")
    ax.grid(axis="y", alpha=0.25)
    handles = [
        Line2D([], [], ls="", marker=_METHOD_MARKERS[m], color="#4d4d4d", label=_METHOD_NAMES[m])
        for m in offsets
        if m in used
    ]
    if handles:
        figure.legend(handles=handles, fontsize="small", loc="outside right upper")
    ax.set_title("Revoke success (Wilson 95 % intervals)")
    return figure


def _cost_panel(ax: Any, group: Any, colour: str, max_ticks: int) -> None:
    choice = group.ttl
    curve = choice.curve
    ttls, costs = curve["ttl_seconds"].to_numpy(), curve["expected_cost"].to_numpy()
    ax.plot(ttls, costs, color=colour, lw=1.8)
    ax.axvspan(choice.near_lo, choice.near_hi, color="#9aa4ae", alpha=0.22, lw=0)
    if choice.lo is not None:
        error = [[choice.seconds - choice.lo], [choice.hi - choice.seconds]]
        ax.errorbar([choice.seconds], [choice.expected_cost], xerr=error, fmt="o", color=colour,
                    ecolor="#1f2328", capsize=4, ms=7, zorder=5)  # fmt: skip
    else:
        ax.plot([choice.seconds], [choice.expected_cost], "o", color=colour, ms=7, zorder=5)
    ax.axvline(choice.stops_at, ls=":", lw=1.2, color="#1f2328")
    time_axis(ax, ttls[0] / 1.15, ttls[-1] * 1.3, max_ticks=max_ticks)
    spread = max(costs.max() - costs.min(), 1e-4 * max(abs(costs.min()), 1e-9))
    ax.set_ylim(costs.min() - 0.08 * spread, costs.max() + 0.12 * spread)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))
    interval = f" ({h.duration_range(choice.lo, choice.hi)})" if choice.lo is not None else ""
    ax.set_title(f"{_name(group)}\nbest {h.duration(choice.seconds)}{interval}", fontsize=10)
    ax.grid(alpha=0.25)


def ttl_cost_curves(analysis: Analysis) -> Figure | None:
    """Expected cost per message against the TTL, one panel per group: the curve, the optimum
    with its bootstrap 95 % interval, the TTLs within the tolerance of the best cost (grey)
    and the longest TTL the data supports (dotted). None when no group has a curve."""
    drawn = [
        (g, c)
        for g, c in zip(analysis.groups, group_colours(analysis), strict=True)
        if g.ttl.seconds is not None
    ]
    if not drawn:
        return None
    columns = 1 if len(drawn) == 1 else 2 if len(drawn) <= 4 else 3
    rows = math.ceil(len(drawn) / columns)
    figure = Figure(figsize=(_WIDTH, 0.6 + 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, (group, colour) in zip(axes.flat, drawn, strict=False):
        _cost_panel(ax, group, colour, max_ticks=4 if columns == 3 else 6)
    for ax in axes.flat[len(drawn) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("expected cost / message")
    tolerance = analysis.settings.get("tolerance", 0.005)
    handles = [
        Line2D([], [], ls="", marker="o", color="#4d4d4d", label="optimum, bootstrap 95 %"),
        Patch(color="#9aa4ae", alpha=0.35, label=f"within {100 * tolerance:g} % of the best"),
        Line2D([], [], ls=":", color="#1f2328", label="longest TTL the data supports"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    figure.supxlabel("TTL", fontsize=10)
    return figure


def _days(analysis: Analysis) -> list[Any]:
    daily = analysis.daily
    if daily is None or not len(daily.groups):
        return []
    return sorted({str(day) for day in daily.groups["day"].dropna()})


def trend_sentence(analysis: Analysis) -> str:
    """Why there is no trend plot (fewer than two days), in one sentence."""
    days = _days(analysis)
    if not days:
        return "No messages, so no daily trend."
    return f"All messages were sent on one day ({days[0]}): a trend needs at least two days."


def daily_trend(analysis: Analysis) -> Figure | None:
    """Per UTC day of the send: the share delivered and the revoke success, one line per group
    (needs ``build_analysis(daily=True)``); None with fewer than two days (see
    ``trend_sentence``)."""
    if len(_days(analysis)) < 2:
        return None
    import pandas as pd

    frame = analysis.daily.groups.copy()
    frame["day"] = pd.to_datetime(frame["day"].astype(str))
    reachable = (frame["messages"] - frame["not_rcs"]).where(lambda n: n > 0)
    frame["delivered_share"] = (frame["delivered"] + frame["delivered_after_revoke"]) / reachable
    frame["revoke_rate"] = frame["revoked"] / frame["revoke_tried"].where(frame["revoke_tried"] > 0)
    figure = Figure(figsize=(_WIDTH, 3.8), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    for group, colour in zip(analysis.groups, group_colours(analysis), strict=True):
        part = frame
        for column, value in group.key.items():
            part = part[part[column].astype(str) == str(value)]
        part = part.sort_values("day")
        axes[0].plot(part["day"], part["delivered_share"], marker="o", color=colour,
                     label=_name(group))  # fmt: skip
        axes[1].plot(part["day"], part["revoke_rate"], marker="o", color=colour)
    for ax, title in zip(axes, ("delivered (of RCS messages)", "revoke success"), strict=True):
        ax.set_title(title, fontsize=11)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(alpha=0.25)
        ax.tick_params(axis="x", rotation=30)
    import matplotlib.dates as mdates

    axes[0].xaxis.set_major_locator(mdates.DayLocator())
    axes[0].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    figure.legend(title=_legend_title(analysis), loc="outside right center", fontsize="small")
    return figure


def all_figures(analysis: Analysis) -> dict[str, Figure]:
    """Every figure there is something to draw for, by title, in the order a report shows
    them."""
    figures = {
        "TTL cost curves": ttl_cost_curves(analysis),
        "Revoke success": revoke_success_plot(analysis),
        "Delivery latency": latency_curves(analysis),
        "Outcomes": outcome_bars(analysis),
    }
    if analysis.daily is not None:
        figures["Daily trend"] = daily_trend(analysis)
    return {title: figure for title, figure in figures.items() if figure is not None}
