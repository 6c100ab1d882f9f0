"""The windows a notebook reports on, and loading the logs for one.

A window (``rbmtools.analysis.Window``) keeps the messages *sent* in ``[start, end)``; the
analysis applies it in its SQL (``load(..., sent=window)``). Here only what a notebook adds:
paths relative to the project root, and the windows of a scheduled report, one ``period``
that ends at ``end`` and the one just before it, compared.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from rbmtools.analysis.window import Window, parse_instant, parse_period
from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path
from rbmtools.wire import SendRecord, parse_outbox_record

__all__ = ["Window", "load_window", "outbox_span", "parse_instant", "scheduled_windows"]


def _paths(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [find_path(v) for v in value]
    return None if value is None else find_path(value)


def load_window(events: Any, outbox: Any, window: Window | None = None, **options: Any) -> Any:
    """``rbmtools.analysis.load`` of the logs, keeping the messages sent in ``window``
    (``load(..., sent=window)``); relative paths are also looked up in the project root."""
    from rbmtools.analysis import load

    return load(_paths(events), _paths(outbox), sent=window, **options)


def _lines(path: str) -> Iterator[bytes]:
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        yield from stream


def _send_times(files: Any) -> Iterator[datetime]:
    """The sendTime of every send record of the outbox files (JSON Lines, maybe gzipped, or
    Parquet); lines that are no record are skipped here (the analysis counts them)."""
    for path in files.jsonl:
        for line in _lines(path):
            try:
                record = parse_outbox_record(line) if line.strip() else None
            except ValidationError:
                continue
            if isinstance(record, SendRecord):
                yield record.send_time
    for path in files.parquet:
        import pyarrow.parquet as pq

        frame = pq.read_table(path, columns=["kind", "sendTime"]).to_pandas()
        for sent in frame.loc[frame["kind"] == "send", "sendTime"].dropna():
            stamp = pd.Timestamp(sent)
            stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
            yield stamp.to_pydatetime()


def outbox_span(outbox: Any) -> tuple[datetime | None, datetime | None]:
    """The first and the last sendTime of the outbox logs ((None, None) without sends)."""
    from rbmtools.analysis.inputs import resolve_paths

    first = last = None
    for sent in _send_times(resolve_paths(_paths(outbox), "outbox")):
        first = sent if first is None or sent < first else first
        last = sent if last is None or sent > last else last
    return first, last


def scheduled_windows(
    events: Any, outbox: Any, period: Any = "1d", end: Any = None
) -> tuple[Window, Window]:
    """The report window (``period`` long, ending at ``end``) and the one before it.

    ``end`` None means the end of the minute of the last message sent in the logs (a report
    on a finished batch of logs covers its last ``period`` of traffic); a scheduled job
    passes ``today`` (the window ends at midnight UTC) or ``now``. ``events`` is unused here
    (the window is about sends) but kept so every helper takes the same two logs.
    """
    parse_period(period)
    finish = parse_instant(end, "end")
    if finish is None:
        _, last = outbox_span(outbox)
        if last is None:
            raise ValidationError("outbox", str(outbox), "holds no sent message")
        finish = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    current = Window.ending(finish, period)
    return current, current.previous()
