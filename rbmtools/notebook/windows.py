"""Time windows of the logs: which messages a report is about.

A window keeps the messages *sent* in ``[start, end)`` (UTC); their events count whenever they
arrived, so a message sent just before the end still gets its late DELIVERED. Instants are
RFC 3339 with an offset (``2026-11-24T06:00:00Z``), a date (``2026-11-24``: midnight UTC),
``today`` or ``yesterday`` (that midnight, UTC) or ``now``, so a cron job needs no date
arithmetic. A scheduled report looks at the window of one ``period`` that ends at ``end`` and
compares it with the window just before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd

from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path
from rbmtools.wire import format_timestamp, parse_duration, parse_timestamp, utc_now

__all__ = ["Window", "load_window", "parse_instant", "restrict", "scheduled_windows"]

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

    def outside_sql(self) -> str | None:
        """A DuckDB condition true for lifecycle rows outside the window (None: none are)."""
        parts = []
        if self.start is not None:
            parts.append(f"\"sendTime\" < TIMESTAMPTZ '{self.start.isoformat()}'")
        if self.end is not None:
            parts.append(f"\"sendTime\" >= TIMESTAMPTZ '{self.end.isoformat()}'")
        if not parts:
            return None
        return f'"sendTime" IS NULL OR {" OR ".join(parts)}'


def _show(when: datetime) -> str:
    if when.time() == time() and when.tzinfo is not None:
        return when.strftime("%Y-%m-%d")
    return format_timestamp(when)


def restrict(dataset: Any, window: Window) -> int:
    """Keep only the messages of ``window`` in a loaded ``rbmtools.analysis.Dataset`` (every
    metric and figure then reads those); returns how many messages remain."""
    condition = window.outside_sql()
    if condition is not None:
        # the condition holds only timestamps this module formatted (no user text)
        dataset.engine.execute(f"DELETE FROM rbm_lifecycle WHERE {condition}")  # noqa: S608
    return int(dataset.query("SELECT count(*) AS n FROM rbm_lifecycle")["n"].iloc[0])


def _paths(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [find_path(v) for v in value]
    return None if value is None else find_path(value)


def load_window(events: Any, outbox: Any, window: Window | None = None, **options: Any) -> Any:
    """``rbmtools.analysis.load`` of the logs (relative paths are also looked up in the
    project root), restricted to ``window``."""
    from rbmtools.analysis import load

    dataset = load(_paths(events), _paths(outbox), **options)
    if window is not None:
        try:
            restrict(dataset, window)
        except BaseException:
            dataset.close()
            raise
    return dataset


def _period(value: Any) -> timedelta:
    period = parse_duration(value, "period")
    if period <= timedelta(0):
        raise ValidationError("period", value, "must be longer than zero")
    return period


def scheduled_windows(
    events: Any, outbox: Any, period: Any = "1d", end: Any = None
) -> tuple[Window, Window]:
    """The report window (``period`` long, ending at ``end``) and the one before it.

    ``end`` None means the end of the minute of the last message sent in the logs (a report
    on a finished batch of logs covers its last ``period`` of traffic); a scheduled job
    passes ``today`` (the window ends at midnight UTC) or ``now``.
    """
    length = _period(period)
    finish = parse_instant(end, "end")
    if finish is None:
        with load_window(events, outbox) as data:
            last = data.query('SELECT max("sendTime") AS t FROM rbm_lifecycle')["t"].iloc[0]
        if last is None or pd.isna(last):
            raise ValidationError("outbox", str(outbox), "holds no sent message")
        last = last.to_pydatetime().astimezone(UTC)
        finish = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    current = Window(finish - length, finish)
    return current, current.previous()
