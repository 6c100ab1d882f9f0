"""Numbers for people: the one way every report writes durations, rates, counts and costs.

Durations read like durations (``0.4 s``, ``14 s``, ``33 min``, ``1.5 h``, ``15 d``), rates
like rates (``12.4 %``, one decimal), counts with separators (``1,620``), differences of rates
in percentage points (``+4.1 pp``). A figure that cannot be estimated is ``n/e``
(``NOT_ESTIMABLE``); pages add a footnote saying why (``Footnotes``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "NOT_ESTIMABLE",
    "Footnotes",
    "cost",
    "count",
    "duration",
    "duration_range",
    "estimable",
    "percent",
    "percent_range",
    "percentage_points",
]

NOT_ESTIMABLE = "n/e"
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
#: Unit boundaries: below a minute in seconds, below an hour in minutes, below two days in
#: hours (so a value never reads as ``60 s`` or ``60 min``).
_UNITS = ((59.5, 1.0, "s"), (3_570.0, 60.0, "min"), (171_000.0, 3_600.0, "h"))


def estimable(value: Any) -> bool:
    """Whether ``value`` is a figure (not None, not NaN, not infinite)."""
    if value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _number(value: float) -> str:
    """Two significant digits below 10, whole numbers above: ``0.45``, ``4.5``, ``45``."""
    if value == 0:
        return "0"
    if abs(value) < 10:
        text = f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.0f}"


def duration(seconds: Any) -> str:
    """``0.45 s``, ``4.5 s``, ``33 s``, ``4.9 min``, ``33 min``, ``1.5 h``, ``15 d``."""
    if not estimable(seconds):
        return NOT_ESTIMABLE
    value = float(seconds)
    for limit, unit, name in _UNITS:
        if abs(value) < limit:
            return f"{_number(value / unit)} {name}"
    return f"{_number(value / 86_400.0)} d"


def duration_range(lo: Any, hi: Any) -> str:
    """``22 s – 2.9 min``; ``n/e`` when either end is missing."""
    if not (estimable(lo) and estimable(hi)):
        return NOT_ESTIMABLE
    return f"{duration(lo)} – {duration(hi)}"


def percent(rate: Any) -> str:
    """A share as a percentage with one decimal: ``12.4 %``."""
    return f"{100 * float(rate):.1f} %" if estimable(rate) else NOT_ESTIMABLE


def percent_range(lo: Any, hi: Any) -> str:
    """An interval of shares: ``10.1 – 15.0 %``."""
    if not (estimable(lo) and estimable(hi)):
        return NOT_ESTIMABLE
    return f"{100 * float(lo):.1f} – {100 * float(hi):.1f} %"


def percentage_points(value: Any, sign: bool = True) -> str:
    """A difference of two rates in percentage points: ``+4.1 pp``."""
    if not estimable(value):
        return NOT_ESTIMABLE
    text = f"{float(value):+.1f}" if sign else f"{float(value):.1f}"
    return f"{text.replace('-', '−')} pp"


def count(value: Any) -> str:
    """A count with thousands separators: ``1,620``."""
    return f"{int(value):,}" if estimable(value) else NOT_ESTIMABLE


def cost(value: Any) -> str:
    """An expected cost per message, in the policy's currency: ``0.0353``."""
    return f"{float(value):.4f}" if estimable(value) else NOT_ESTIMABLE


class Footnotes:
    """The reasons behind a page's ``n/e``: ``mark(reason)`` gives ``n/e¹`` and keeps the
    reason; the same reason always gets the same number."""

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}

    def number(self, reason: str) -> str:
        if reason not in self.reasons:
            self.reasons[reason] = len(self.reasons) + 1
        return str(self.reasons[reason]).translate(_SUPERSCRIPTS)

    def mark(self, reason: str | None) -> str:
        """``n/e`` with the footnote number of ``reason`` (plain ``n/e`` without one)."""
        return NOT_ESTIMABLE if not reason else f"{NOT_ESTIMABLE}{self.number(reason)}"

    def value(self, text: str, reason: str | None) -> str:
        """``text``, or when it says ``n/e``, the marked ``n/e``."""
        return self.mark(reason) if text == NOT_ESTIMABLE else text

    def items(self) -> list[tuple[str, str]]:
        """``(superscript, reason)`` in number order."""
        return [(str(n).translate(_SUPERSCRIPTS), r) for r, n in self.reasons.items()]

    def __len__(self) -> int:
        return len(self.reasons)
