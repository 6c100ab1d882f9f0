"""Time windows of the logs: which messages a report is about.

A window keeps the messages *sent* in ``[start, end)`` (UTC); their events count whenever they
arrived, so a message sent just before the end still gets its late DELIVERED. Instants are
RFC 3339 with an offset (``2026-11-24T06:00:00Z``), a date (``2026-11-24``: midnight UTC),
``today`` or ``yesterday`` (that midnight, UTC) or ``now``, so a cron job needs no date
arithmetic. A scheduled report looks at the window of one ``period`` that ends at ``end`` and
compares it with the window just before.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path
from rbmtools.wire import (
    SendRecord,
    format_timestamp,
    parse_duration,
    parse_outbox_record,
    parse_timestamp,
    utc_now,
)

__all__ = [
    "Window",
    "load_window",
    "outbox_span",
    "parse_instant",
    "scheduled_windows",
    "window_of",
    "window_outbox",
]

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

    def contains(self, when: datetime) -> bool:
        """Whether a message sent at ``when`` belongs to the window."""
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)


def _show(when: datetime) -> str:
    if when.time() == time() and when.tzinfo is not None:
        return when.strftime("%Y-%m-%d")
    return format_timestamp(when)


def _paths(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [find_path(v) for v in value]
    return None if value is None else find_path(value)


def _lines(path: str) -> Iterator[bytes]:
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        yield from stream


def _parquet(path: str, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (KeyError, ValueError) as exc:  # pyarrow names a missing column in a ValueError
        raise ValidationError(
            "outbox", path, f"is a Parquet file without the outbox columns {columns} ({exc})"
        ) from None


def _send_times(files: Any) -> Iterator[tuple[str, datetime]]:
    """(messageId, sendTime) of every send record of the outbox files (JSON Lines, maybe
    gzipped, or Parquet); lines that are no record are skipped here (the analysis counts
    them)."""
    for path in files.jsonl:
        for line in _lines(path):
            if not line.strip():
                continue
            try:
                record = parse_outbox_record(line)
            except ValidationError:
                continue
            if isinstance(record, SendRecord):
                yield record.message_id, record.send_time
    for path in files.parquet:
        frame = _parquet(path, ["kind", "messageId", "sendTime"]).to_pandas()
        sends = frame[frame["kind"] == "send"].dropna(subset=["messageId", "sendTime"])
        for message_id, sent in zip(sends["messageId"], sends["sendTime"], strict=True):
            stamp = pd.Timestamp(sent)
            stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
            yield str(message_id), stamp.to_pydatetime()


def outbox_span(outbox: Any) -> tuple[datetime | None, datetime | None]:
    """The first and the last sendTime of the outbox logs ((None, None) without sends)."""
    from rbmtools.analysis.inputs import resolve_paths

    first = last = None
    for _, sent in _send_times(resolve_paths(_paths(outbox), "outbox")):
        first = sent if first is None or sent < first else first
        last = sent if last is None or sent > last else last
    return first, last


def window_outbox(outbox: Any, window: Window, directory: str | os.PathLike[str]) -> list[Path]:
    """Copy the outbox records of the messages *sent* in ``window`` (their sends, revokes and
    fallbacks) into ``directory``; lines that are no record are copied too, so the analysis
    still counts them. Returns the files written (JSON Lines and/or Parquet)."""
    from rbmtools.analysis.inputs import resolve_paths

    files = resolve_paths(_paths(outbox), "outbox")
    kept = {message_id for message_id, sent in _send_times(files) if window.contains(sent)}
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if files.jsonl:
        target = folder / "outbox.jsonl"
        with open(target, "wb") as out:
            for path in files.jsonl:
                for line in _lines(path):
                    if not line.strip():
                        continue
                    try:
                        keep = parse_outbox_record(line).message_id in kept
                    except ValidationError:
                        keep = True  # no record: the analysis sets it aside and counts it
                    if keep:
                        out.write(line if line.endswith(b"\n") else line + b"\n")
        written.append(target)
    for number, path in enumerate(files.parquet, 1):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = _parquet(path)
        if "messageId" not in table.column_names:
            raise ValidationError("outbox", path, "is a Parquet file without a messageId column")
        mask = pc.is_in(table["messageId"], value_set=pa.array(sorted(kept), pa.string()))
        target = folder / f"outbox-{number:05d}.parquet"
        pq.write_table(table.filter(mask), target)
        written.append(target)
    return written


#: What ``load_window`` did, per dataset (for ``read_table``).
_WINDOWS: weakref.WeakKeyDictionary[Any, Window] = weakref.WeakKeyDictionary()


def window_of(dataset: Any) -> Window | None:
    """The window a dataset of ``load_window`` keeps (None: every message)."""
    return _WINDOWS.get(dataset)


def load_window(events: Any, outbox: Any, window: Window | None = None, **options: Any) -> Any:
    """``rbmtools.analysis.load`` of the logs, keeping the messages sent in ``window``.

    Relative paths are also looked up in the project root. The window filters the outbox
    (``window_outbox``, into a temporary folder removed when the dataset is closed), so every
    figure of the analysis is about those messages; events about the messages left out count
    as events about unknown messages.
    """
    from rbmtools.analysis import load

    if window is None or window.is_open:
        return load(_paths(events), _paths(outbox), **options)
    folder = Path(tempfile.mkdtemp(prefix="rbmtools-window-"))
    try:
        filtered = window_outbox(outbox, window, folder)
        dataset = load(_paths(events), [str(p) for p in filtered], **options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    close = dataset.close

    def close_and_clean() -> None:
        try:
            close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    dataset.close = close_and_clean  # the context manager's exit calls it too
    weakref.finalize(dataset, shutil.rmtree, folder, True)
    _WINDOWS[dataset] = window
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
    passes ``today`` (the window ends at midnight UTC) or ``now``. ``events`` is unused here
    (the window is about sends) but kept so every helper takes the same two logs.
    """
    length = _period(period)
    finish = parse_instant(end, "end")
    if finish is None:
        _, last = outbox_span(outbox)
        if last is None:
            raise ValidationError("outbox", str(outbox), "holds no sent message")
        finish = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    current = Window(finish - length, finish)
    return current, current.previous()
