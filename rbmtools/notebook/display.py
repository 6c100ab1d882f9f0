"""Showing results in a notebook: figures as PNG, tables in the report design, the headline.

``setup()`` makes a bare matplotlib ``Figure`` (what ``rbmtools.analysis.plots`` returns)
display as a PNG image and every ``DataFrame`` as a report table (``rbmtools.analysis.page``:
no index, whole cells, humanised numbers where the table has them, footnotes for ``n/e``), in
JupyterLab and in papermill reports alike. ``headline(analysis)`` is the block every report
leads with. Outside IPython ``setup`` only sets pandas' display options.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

import pandas as pd

from rbmtools.analysis.humanize import duration

__all__ = [
    "as_table",
    "figure_or_sentence",
    "headline",
    "human_seconds",
    "markdown",
    "setup",
    "table",
]

#: A duration for people (``14 s``, ``4.9 min``, ``2.2 h``, ``3 d``; ``n/e`` for None): the one
#: way every report writes durations (``rbmtools.analysis.humanize.duration``).
human_seconds = duration


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _table_html(frame: pd.DataFrame) -> str:
    from rbmtools.analysis.page import table_html

    if not len(frame.columns):
        return '<p class="rbm-muted">Nothing to show.</p>'
    return table_html(frame)


def setup() -> None:
    """Prepare the running notebook: figures display as PNG, tables as report tables."""
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.width", 200)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency (ipykernel)
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    formatters["image/png"].for_type(Figure, _png)
    formatters["text/html"].for_type(pd.DataFrame, _table_html)


def table(frame: pd.DataFrame) -> Any:
    """``frame`` as a report table (what ``setup`` makes every DataFrame show as)."""
    from IPython.display import HTML

    return HTML(_table_html(frame))


def headline(
    analysis: Any,
    *,
    empty: str = "No messages to report.",
    lead: list[str] | None = None,
    alerts: list[str] | None = None,
) -> Any:
    """The headline block of an analysis: inputs and window, ``lead`` lines in bold (an
    experiment's decisions) and ``alerts``, then per group the best TTL with its interval,
    revoke success, p50 and p90 latency, never delivered and the message count."""
    from IPython.display import HTML

    from rbmtools.analysis.page import headline_html
    from rbmtools.analysis.style import css

    block = headline_html(analysis, empty=empty, lead=lead, alerts=alerts)
    return HTML(f"<style>{css()}</style>{block}")


def figure_or_sentence(figure: Any, sentence: str) -> Any:
    """``figure``, or ``sentence`` (as Markdown) when there was nothing to draw (None)."""
    return markdown(sentence) if figure is None else figure


def markdown(text: str) -> Any:
    """``text`` as a Markdown output (rendered in JupyterLab and in the HTML report)."""
    from IPython.display import Markdown

    return Markdown(text)


def as_table(items: Any) -> pd.DataFrame:
    """One result (a ``SendResult``, ``RevokeResult``, dataclass or mapping) or several, as a
    table with one row each."""
    if isinstance(items, pd.DataFrame):
        return items
    if is_dataclass(items) or isinstance(items, Mapping):
        items = [items]
    rows = []
    for item in items if isinstance(items, Iterable) else [items]:
        if hasattr(item, "to_dict"):
            rows.append(item.to_dict())
        elif is_dataclass(item) and not isinstance(item, type):
            rows.append(asdict(item))
        elif isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            rows.append({"value": item})
    return pd.DataFrame(rows)
