"""Showing results in a notebook: figures as PNG, tables, Markdown, durations for people.

``setup()`` makes a bare matplotlib ``Figure`` (what ``rbmtools.analysis.plots`` returns)
display as a PNG image, so a figure is shown by naming it last in a cell, in JupyterLab and in
papermill reports alike, and sets pandas to show whole tables. Outside IPython it does nothing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

import pandas as pd

__all__ = ["as_table", "human_seconds", "markdown", "setup"]


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def setup() -> None:
    """Prepare the running notebook: figures display as PNG, tables display whole."""
    pd.set_option("display.max_columns", 60)
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.width", 200)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency (ipykernel)
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, _png)


def markdown(text: str) -> Any:
    """``text`` as a Markdown output (rendered in JupyterLab and in the HTML report)."""
    from IPython.display import Markdown

    return Markdown(text)


def human_seconds(value: float | None) -> str:
    """A duration for people: ``14 s``, ``4.9 min``, ``2.2 h``, ``3 d``; ``n/e`` for None
    (not estimable)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/e"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.3g} min"
    if value < 172_800:
        return f"{value / 3600:.3g} h"
    return f"{value / 86400:.3g} d"


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
