"""Time windows: which messages an analysis is about.

A window keeps the messages *sent* in ``[start, end)`` (UTC); their events count whenever they
arrived, so a message sent just before the end still gets its late DELIVERED, and events about
messages sent outside it count as events about unknown messages. ``load(..., sent=window)``
applies it as a predicate in the load's SQL (any engine). Instants are RFC 3339 with an offset
(``2026-11-24T06:00:00Z``), a date (``2026-11-24``: midnight UTC), ``today`` or ``yesterday``
(that midnight, UTC) or ``now``, so a cron job needs no date arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.wire import format_timestamp, parse_duration, parse_timestamp, utc_now

__all__ = ["Window", "parse_instant", "parse_period"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instant(value: Any, field: str) -> datetime | None:
    """An instant from a parameter: None, ``now``, ``today``, ``yesterday``, a date (midnight
    UTC), an aware ``datetime`` or RFC 3339 text with an offset."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(field, value, "needs a time zone (use UTC, e.g. ...Z)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if not isinstance(value, str):
        raise ValidationError(
            field, value, "must be an ISO 8601 date or time, 'today', 'yesterday' or 'now'"
        )
    text = value.strip()
    if text.lower() == "now":
        return utc_now()
    if text.lower() in ("today", "yesterday"):
        day = utc_now().date() - timedelta(days=text.lower() == "yesterday")
        return datetime.combine(day, time(), UTC)
    if _DATE.fullmatch(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise ValidationError(field, value, "is not a calendar date") from None
    try:
        return parse_timestamp(text, field)
    except ValidationError:
        raise ValidationError(
            field, value, "must be a date (2026-11-24), a time with an offset "
            "(2026-11-24T06:00:00Z), 'today', 'yesterday' or 'now'",
        ) from None  # fmt: skip


def parse_period(value: Any, field: str = "period") -> timedelta:
    """A window length (``1d``, ``7d``, ``6h``, seconds), longer than zero."""
    period = parse_duration(value, field)
    if period <= timedelta(0):
        raise ValidationError(field, value, "must be longer than zero")
    return period


def _show(when: datetime) -> str:
    if when.time() == time() and when.tzinfo is not None:
        return when.strftime("%Y-%m-%d")
    return format_timestamp(when)


@dataclass(frozen=True)
class Window:
    """Messages sent in ``[start, end)``; None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, start: Any = None, end: Any = None) -> Window:
        window = cls(parse_instant(start, "start"), parse_instant(end, "end"))
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise ValidationError("end", end, f"must be after the start ({start})")
        return window

    @classmethod
    def ending(cls, end: Any, period: Any) -> Window:
        """The window of one ``period`` that ends at ``end`` (an instant as ``parse`` reads)."""
        finish = parse_instant(end, "end")
        if finish is None:
            raise ValidationError("end", end, "is needed for a window of one period")
        return cls(finish - parse_period(period), finish)

    @classmethod
    def of(cls, value: Any) -> Window | None:
        """A window from what ``load(sent=...)`` accepts: None, a ``Window`` or ``(start, end)``."""
        if value is None or isinstance(value, Window):
            return value
        if isinstance(value, tuple | list) and len(value) == 2:
            return cls.parse(*value)
        raise ValidationError("sent", value, "must be a Window or a (start, end) pair")

    @property
    def is_open(self) -> bool:
        """True when the window keeps every message."""
        return self.start is None and self.end is None

    def label(self) -> str:
        if self.is_open:
            return "all messages"
        left = "the first message" if self.start is None else _show(self.start)
        right = "the last message" if self.end is None else _show(self.end)
        return f"messages sent from {left} to {right} (UTC, end excluded)"

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        if self.start is None or self.end is None:
            raise ValidationError("window", self.label(), "needs a start and an end")
        return Window(self.start - (self.end - self.start), self.start)

    def contains(self, when: datetime) -> bool:
        """Whether a message sent at ``when`` belongs to the window."""
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)
