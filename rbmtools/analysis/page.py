"""Report pages: the headline block, tables and figures as HTML, from Jinja2 templates.

Every report has one design (``templates/``): the headline first (per group: the best TTL with
its interval and the TTLs nearly as cheap, revoke success with its interval, p50 and p90
delivery latency, the share never delivered within its horizon, the message count), the
inputs and the window named above it, then the details, the load report last. Tables are
pandas Stylers without an index; wide ones scroll inside the page; figures are inline PNG.
``rbmtools analyze --html`` renders ``analysis_page``; the notebooks show the same headline
and tables (``rbmtools.notebook``), and their HTML reports carry the same stylesheet.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime
from functools import cache
from typing import Any

import pandas as pd
from markupsafe import Markup

from rbmtools.analysis import humanize as h
from rbmtools.analysis import tables
from rbmtools.analysis.style import TEMPLATES, css

__all__ = [
    "TEMPLATES",
    "analysis_page",
    "css",
    "figure_html",
    "headline_block_html",
    "headline_html",
    "headline_rows",
    "sentence_html",
    "table_html",
]


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=False,
    )


def _render(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


class _Html(Markup):
    """Text that is already HTML, inserted as it is: only ever what this module rendered
    (escaped by Jinja2, or built from escaped parts), never outside text."""


def _is_text_column(frame: pd.DataFrame, column: str) -> bool:
    values = [str(v) for v in frame[column] if str(v) not in ("", h.NOT_ESTIMABLE)]
    return bool(values) and not any(v[:1].isdigit() or v[:1] in "+−-" for v in values)


def table_html(frame: pd.DataFrame, *, wrap: tuple[str, ...] = ("note", "value")) -> str:
    """A table without its index, every cell whole (no truncation), text columns to the left,
    in a box that scrolls sideways when wider than the page; with its footnotes under it."""
    if frame is None or not len(frame.columns):
        return ""
    shown = frame.copy()
    shown.columns = [str(c) for c in shown.columns]
    # an empty cell is empty: a report table writes its own "n/e" where a figure is missing
    shown = shown.astype(object).where(shown.notna(), "")
    styler = shown.style.hide(axis="index").format(_cell)
    left = [c for c in shown.columns if _is_text_column(shown, c) and c not in wrap]
    wrapped = [c for c in shown.columns if c in wrap]
    classes = pd.DataFrame("", index=shown.index, columns=shown.columns)
    for column in left:
        classes[column] = "rbm-left"
    for column in wrapped:
        classes[column] = "rbm-left rbm-wrap"
    styler = styler.set_td_classes(classes)
    styler = styler.set_table_attributes('class="rbm-table"')
    styler = styler.set_table_styles(
        [{"selector": f"th.col_heading.col{i}", "props": "text-align: left"}
         for i, c in enumerate(shown.columns) if c in left or c in wrapped]
    )  # fmt: skip
    html = styler.to_html(doctype_html=False, exclude_styles=False)
    notes = frame.attrs.get("footnotes", [])
    return _render("table.html.j2", table=_Html(html), notes=notes)


def _cell(value: Any) -> str:
    """A value of a table that was not written for people (an ad hoc frame): counts with
    separators, floats to four digits, times to the second in UTC."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return h.count(value)
    if isinstance(value, float):
        return f"{value:.4g}" if h.estimable(value) else ""
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
        return stamp.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if stamp.tzinfo is not None else "")
    return str(value)


def figure_html(figure: Any, alt: str) -> str:
    """A matplotlib figure as an inline PNG image (100 dpi, scaled down to the page)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    from markupsafe import escape

    return (
        f'<div class="rbm-figure"><img alt="{escape(alt)}" '
        f'src="data:image/png;base64,{data}"></div>'
    )


def sentence_html(text: str) -> str:
    from markupsafe import escape

    return f'<p class="rbm-sentence">{escape(text)}</p>'


def _cell_pair(main: str, sub: str = "") -> dict[str, str]:
    return {"v": main, "s": sub}


def headline_rows(analysis: Any, notes: h.Footnotes) -> tuple[list[str], list[dict]]:
    """The headline's columns and one row per group (``name``, ``colour``, ``cells``: each
    a main value ``v`` and a line under it ``s``), its ``n/e`` marked in ``notes``."""
    from rbmtools.analysis.plots import group_colours
    from rbmtools.analysis.report import group_document, not_estimable

    tolerance = analysis.settings.get("tolerance", 0.005)
    columns = [
        "messages",
        "best TTL (95 % interval)",
        f"TTLs within {100 * tolerance:g} % of the best cost",
        "revoke success (95 % interval)",
        "p50 latency",
        "p90 latency",
        "never delivered (95 % interval)",
    ]
    rows = []
    for group, colour in zip(analysis.groups, group_colours(analysis), strict=True):
        doc = group_document(group)
        why = not_estimable(group, doc)
        c, curve, choice = group.counts, group.curve, group.ttl
        ttl_main = notes.value(h.duration(choice.seconds), why.get("best_ttl.seconds"))
        if choice.seconds is not None and choice.at_support_edge:
            ttl_main += notes.number(
                f"costs within {100 * tolerance:g} % of the best reach the longest TTL the data "
                "supports: a longer TTL may be as cheap or cheaper (see the best-TTL table)"
            )
        interval = h.duration_range(choice.lo, choice.hi)
        revoke = doc["revoke_success"]
        never = doc["latency_seconds"]
        never_reason = why.get("latency_seconds.never_delivered_share")
        cells = [
            _cell_pair(h.count(c["messages"]), f"{h.count(c['not_rcs'])} not RCS"),
            _cell_pair(ttl_main, notes.value(interval, why.get("best_ttl.lo"))
                       if choice.seconds is not None else ""),
            _cell_pair(notes.value(h.duration_range(choice.near_lo, choice.near_hi),
                                   why.get("best_ttl.near_optimal")),
                       f"cost {h.cost(choice.expected_cost)} / message"
                       if choice.expected_cost is not None else ""),
            _cell_pair(notes.value(h.percent(revoke["rate"]), why.get("revoke_success.rate")),
                       f"{h.percent_range(revoke['lo'], revoke['hi'])} · "
                       f"{h.count(revoke['n'])} tried" if revoke["n"] else ""),
            *(_quantile_cell(curve, p, why, notes) for p in (0.5, 0.9)),
            _cell_pair(notes.value(h.percent(never["never_delivered_share"]), never_reason),
                       f"within {h.duration(curve.never_delivered_at)} · "
                       f"{h.percent_range(*never['ci']['never_delivered_share'])}"
                       if never_reason is None else ""),
        ]  # fmt: skip
        rows.append({"name": tables.group_name(group.key), "colour": colour, "cells": cells})
    return columns, rows


def _quantile_cell(curve: Any, p: float, why: dict[str, str], notes: h.Footnotes) -> dict:
    name = f"p{round(p * 100):d}"
    estimate, lo, hi = curve.quantile(p)
    reason = why.get(f"latency_seconds.{name}")
    beyond = "the interval reaches beyond where the curve stops"
    sub = (
        ""
        if estimate is None
        else f"{notes.value(h.duration(lo), beyond)} – {notes.value(h.duration(hi), beyond)}"
    )
    return _cell_pair(notes.value(h.duration(estimate), reason), sub)


def _context(analysis: Any) -> list[tuple[str, str]]:
    inputs = getattr(analysis, "inputs", {}) or {}
    window = getattr(analysis, "window", None)
    by = ", ".join(tables.COLUMN_NAMES.get(c, c) for c in analysis.by) or "nothing"
    context = [(f"{name}:", text) for name, text in inputs.items()]
    context.append(("window:", "all messages" if window is None else window.label()))
    context.append(("grouped by:", by))
    return context


def headline_html(
    analysis: Any,
    *,
    empty: str = "No messages to report.",
    lead: list[str] | None = None,
    alerts: list[str] | None = None,
) -> str:
    """The headline block of ``analysis``: its inputs and window, the ``lead`` lines (an
    experiment's decisions) and the alerts (drift, and ``alerts``), then one row per group."""
    notes = h.Footnotes()
    columns, rows = headline_rows(analysis, notes)
    header = " · ".join(tables.COLUMN_NAMES.get(c, c) for c in analysis.by) or "messages"
    from rbmtools.analysis.report import drift_headlines

    return _render(
        "headline.html.j2",
        context=_context(analysis),
        lead=lead or [],
        alerts=[*drift_headlines(analysis), *(alerts or [])],
        group_header=header,
        columns=columns,
        rows=rows,
        notes=notes.items(),
        empty=empty,
    )


def headline_block_html(
    context: list[tuple[str, str]],
    group_header: str,
    columns: list[str],
    rows: list[dict],
    *,
    lead: list[str] | None = None,
    alerts: list[str] | None = None,
    notes: list[tuple[str, str]] | None = None,
    empty: str = "",
) -> str:
    """A headline block of the reports' design from ready parts: the ``context`` line, lines
    in bold (``lead``: a decision) and in warning colours (``alerts``), then one row per group
    (``name``, ``colour``, ``cells`` of a main value ``v`` and a line under it ``s``)."""
    return _render(
        "headline.html.j2", context=context, lead=lead or [], alerts=alerts or [],
        group_header=group_header, columns=columns, rows=rows, notes=notes or [], empty=empty,
    )  # fmt: skip


def _section(title: str, *parts: dict, intro: str = "", appendix: bool = False) -> dict:
    return {"title": title, "parts": list(parts), "intro": intro, "appendix": appendix}


def _html(text: str) -> dict:
    return {"kind": "html", "html": _Html(text)}


_INTROS = {
    "Best TTL": "Expected cost per message against the TTL under each use case's cost policy: "
    "the optimum with its bootstrap 95 % interval, the TTLs whose cost is within the tolerance "
    "of the best, and where the data stops supporting the curve.",
    "Revoke success": "Revoked over revokes tried, by API (DELETE) and by expiry (TTL), with "
    "Wilson 95 % intervals.",
    "Delivery latency": "Kaplan-Meier: a message never delivered counts as not delivered yet up "
    "to its revoke, its expiry or the end of the logs. Quantiles stop where fewer than "
    "{min_at_risk} messages remain at risk; the share never delivered is the estimate at the "
    "end of each group's follow-up.",
    "Arm against arm": "Each arm minus the reference arm (the spec's first), in percentage "
    "points, with a Newcombe 95 % interval; significant when the interval excludes zero.",
}


def _detail_sections(analysis: Any, drawn: dict[str, Any]) -> list[dict]:
    """The detail sections of ``analysis_page``: figure (if drawn), table, notes."""

    def figure(name: str) -> list[dict]:
        found = drawn.get(name)
        return [_html(figure_html(found, name))] if found is not None else []

    def table(frame: pd.DataFrame) -> dict:
        return _html(table_html(frame))

    def intro(title: str) -> str:
        return _INTROS.get(title, "").format(**analysis.settings)

    ttl_notes = {"kind": "list", "items": tables.support_notes(analysis)}
    sections = [
        ("Best TTL", [*figure("TTL cost curves"), table(tables.ttl_table(analysis)), ttl_notes]),
        ("Revoke success", [*figure("Revoke success"), table(tables.revoke_table(analysis))]),
        ("Delivery latency", [*figure("Delivery latency"), table(tables.latency_table(analysis))]),
        ("Outcomes", [*figure("Outcomes"), table(tables.outcomes_table(analysis))]),
        ("Reads", [table(tables.read_table(analysis))]),
        ("Fallbacks, stale and double deliveries", [table(tables.deliveries_table(analysis))]),
    ]
    if len(analysis.comparisons):
        sections.append(("Arm against arm", [table(tables.comparisons_table(analysis))]))
    if analysis.daily is not None:
        from rbmtools.analysis.plots import trend_sentence

        trend = figure("Daily trend") or [{"kind": "sentence", "text": trend_sentence(analysis)}]
        sections.append(("Daily trend", [*trend, table(tables.daily_table(analysis))]))
    return [_section(title, *parts, intro=intro(title)) for title, parts in sections]


def analysis_page(analysis: Any, figures: bool = True) -> str:
    """The whole report of an analysis as one self-contained HTML page (``analyze --html``):
    the headline, the details, and the load report, policies and settings in appendices."""
    from rbmtools.analysis import plots

    drawn = plots.all_figures(analysis) if figures else {}
    window = getattr(analysis, "window", None)
    appendix = [
        _section(
            "Appendix: what was read",
            _html(table_html(tables.load_table(analysis.report, window))),
            appendix=True,
        ),
        _section(
            "Appendix: cost policies and settings",
            _html(table_html(tables.policy_table(analysis.policies, _used(analysis)))),
            _html(table_html(_settings_table(analysis.settings))),
            appendix=True,
        ),
    ]
    return _render(
        "analysis.html.j2",
        title="RBM delivery, revoke and TTL report",
        css=_Html(css()),
        headline=_Html(headline_html(analysis)),
        sections=_detail_sections(analysis, drawn) + appendix,
    )


def _used(analysis: Any) -> list[str]:
    return sorted({g.ttl.policy_name for g in analysis.groups if g.ttl.policy_name})


def _settings_table(settings: dict[str, Any]) -> pd.DataFrame:
    rows = [{"setting": k.replace("_", " "), "value": "none" if v is None else str(v)}
            for k, v in settings.items()]  # fmt: skip
    return pd.DataFrame(rows)
