"""Reading event logs back: ``read_events`` for what is there, ``follow`` for what arrives.

Both accept every line shape of the log format (the receiver's record, a raw Pub/Sub push
body, a bare decoded event, via ``rbmtools.wire.parse_event_line``), walk day partitions and
segments in write order, and de-duplicate redeliveries by ``event.dedup_key``. A line that is no
event is never silently dropped: it is counted (``torn`` when it is an unfinished last line,
``malformed`` otherwise) and kept aside in ``counts.bad_lines``. ``follow`` tails a live log:
a partial last line is not read until its newline arrives, and it moves on across rotations
and new day directories.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from rbmtools.errors import ValidationError
from rbmtools.webhook.dedup import RecentKeys
from rbmtools.webhook.layout import list_segments
from rbmtools.wire import LoggedEvent, ServerEvent, UserMessage, parse_event_line

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FRAME_COLUMNS",
    "MAX_BAD_LINES_KEPT",
    "BadLine",
    "EventReader",
    "Follower",
    "ReadCounts",
    "events_frame",
    "follow",
    "read_events",
]

#: How many bad lines ``ReadCounts.bad_lines`` keeps (the counts themselves are exact).
MAX_BAD_LINES_KEPT = 10_000
_SHOWN_CHARS = 200
_CHUNK = 1024 * 1024

#: The columns of ``events_frame`` / ``read_events(..., as_frame=True)``, one row per event.
FRAME_COLUMNS = (
    "received_at",
    "verified",
    "shape",
    "kind",
    "event_type",
    "event_id",
    "message_id",
    "agent_id",
    "phone",
    "send_time",
    "message_kind",
    "file",
    "line",
)


@dataclass(frozen=True)
class BadLine:
    """A line that held no event: where it is, why, and its first characters."""

    path: str
    line: int
    reason: str
    problem: str
    text: str


@dataclass
class ReadCounts:
    """What a reader saw. ``events`` were yielded; the rest were counted and skipped."""

    files: int = 0
    lines: int = 0
    events: int = 0
    duplicates: int = 0
    blank: int = 0
    malformed: int = 0
    torn: int = 0
    unreadable_files: int = 0
    bad_lines: list[BadLine] = field(default_factory=list, repr=False)

    @property
    def skipped(self) -> int:
        """Lines that were not events (malformed plus torn)."""
        return self.malformed + self.torn

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("bad_lines")
        out["skipped"] = self.skipped
        return out

    def _bad(self, path: Path, line: int, reason: str, problem: str, raw: bytes) -> None:
        if reason == "torn":
            self.torn += 1
        else:
            self.malformed += 1
        if len(self.bad_lines) < MAX_BAD_LINES_KEPT:
            text = raw[: _SHOWN_CHARS * 4].decode("utf-8", "backslashreplace")[:_SHOWN_CHARS]
            self.bad_lines.append(BadLine(str(path), line, reason, problem, text))


class _LineParser:
    """Shared by both readers: one raw line in, a ``LoggedEvent`` (or a count) out."""

    def __init__(self, counts: ReadCounts, dedup: bool, capacity: int | None) -> None:
        self.counts = counts
        self.recent = RecentKeys(capacity) if dedup else None

    def parse(self, raw: bytes, path: Path, number: int, complete: bool) -> LoggedEvent | None:
        """``complete`` is False for a last line without its newline (possibly torn)."""
        counts = self.counts
        counts.lines += 1
        if not raw.strip():
            counts.blank += 1
            return None
        try:
            logged = parse_event_line(raw)
        except (ValidationError, RecursionError) as exc:
            counts._bad(path, number, "malformed" if complete else "torn", str(exc), raw)
            return None
        if self.recent is not None and self.recent.seen(logged.event.dedup_key):
            counts.duplicates += 1
            return None
        counts.events += 1
        return logged


# ------------------------------------------------------------------------------ read_events


def _sources(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    roots = [source] if isinstance(source, str | os.PathLike) else list(source)
    files: list[Path] = []
    for root in roots:
        path = Path(root)
        if not path.exists():
            raise ValidationError("path", str(path), "does not exist")
        files.extend(list_segments(path))
    return files


def _open(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


class EventReader:
    """Iterates the events of a log file, a log directory, or a list of either.

    Iterate it (each pass re-reads and resets ``counts``) or call ``to_frame()``. With
    ``dedup=True`` (the default) a redelivered event is yielded once, at its first line.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        dedup: bool = True,
    ) -> None:
        self.files = _sources(source)
        self.dedup = dedup
        self.counts = ReadCounts()

    def __repr__(self) -> str:
        return f"EventReader({len(self.files)} files, dedup={self.dedup})"

    def __iter__(self) -> Iterator[LoggedEvent]:
        for _path, _number, logged in self._located():
            yield logged

    def _located(self) -> Iterator[tuple[Path, int, LoggedEvent]]:
        self.counts = ReadCounts()
        parser = _LineParser(self.counts, self.dedup, capacity=None)
        for path in self.files:
            self.counts.files += 1
            number = 0
            try:
                with _open(path) as stream:
                    for raw in stream:
                        number += 1
                        complete = raw.endswith(b"\n")
                        logged = parser.parse(raw, path, number, complete)
                        if logged is not None:
                            yield path, number, logged
            except (EOFError, zlib.error):  # a compressed segment cut short
                self.counts._bad(path, number + 1, "torn", "compressed data ends early", b"")
            except (OSError, gzip.BadGzipFile) as exc:
                self.counts.unreadable_files += 1
                self.counts._bad(path, number + 1, "malformed", f"unreadable: {exc}", b"")

    def to_frame(self) -> pd.DataFrame:
        """One row per event (columns ``FRAME_COLUMNS``); ``df.attrs["read_counts"]``."""
        import pandas as pd

        rows = [_row(logged, path, number) for path, number, logged in self._located()]
        frame = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMNS))
        for column in ("received_at", "send_time"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["verified"] = frame["verified"].astype("boolean")
        frame["line"] = frame["line"].astype("int64")
        for column in ("shape", "kind"):
            frame[column] = frame[column].astype("category")
        frame.attrs["read_counts"] = self.counts.as_dict()
        frame.attrs["bad_lines"] = [asdict(bad) for bad in self.counts.bad_lines[:100]]
        return frame


def _kind(logged: LoggedEvent) -> str:
    event = logged.event
    if isinstance(event, UserMessage):
        return "user_message"
    if isinstance(event, ServerEvent):
        return "server_event"
    return "user_event"


def _row(logged: LoggedEvent, path: Path, number: int) -> tuple[Any, ...]:
    event = logged.event
    is_message = isinstance(event, UserMessage)
    return (
        logged.received_at,
        logged.verified,
        logged.shape,
        _kind(logged),
        None if is_message else event.event_type,  # type: ignore[union-attr]
        None if is_message else event.event_id,  # type: ignore[union-attr]
        event.message_id,
        event.agent_id,
        event.phone,
        event.send_time,
        event.kind if is_message else None,  # type: ignore[union-attr]
        str(path),
        number,
    )


@overload
def read_events(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    as_frame: Literal[False] = False,
    dedup: bool = True,
) -> EventReader: ...


@overload
def read_events(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    as_frame: Literal[True],
    dedup: bool = True,
) -> pd.DataFrame: ...


def read_events(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    as_frame: bool = False,
    dedup: bool = True,
) -> EventReader | pd.DataFrame:
    """The events of a log file or directory: an iterable ``EventReader`` of ``LoggedEvent``.

    ``as_frame=True`` returns a pandas DataFrame instead (one row per event, see
    ``FRAME_COLUMNS``; the reader's counts are in ``df.attrs["read_counts"]``). For big logs,
    query the segments with DuckDB (``read_json('<dir>/**/*.jsonl')``) instead.
    """
    reader = EventReader(source, dedup=dedup)
    return reader.to_frame() if as_frame else reader


def events_frame(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, dedup: bool = True
) -> pd.DataFrame:
    """Same as ``read_events(source, as_frame=True)``."""
    return EventReader(source, dedup=dedup).to_frame()


# ------------------------------------------------------------------------------ follow


def _end_of_last_line(path: Path) -> int:
    """The offset just after the last newline of ``path`` (0 when it holds none)."""
    with open(path, "rb") as stream:
        end = stream.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - 64 * 1024)
            stream.seek(start)
            block = stream.read(position - start)
            found = block.rfind(b"\n")
            if found >= 0:
                return start + found + 1
            position = start
    return 0


class Follower:
    """Tails an event log directory (or one file); iterate it to get events as they arrive.

    ``from_start=True`` first yields everything already there; ``False`` starts at the end
    (a line being written at that moment is still yielded once complete). Iteration ends when
    ``stop`` (a ``threading.Event``) is set or ``timeout`` seconds have passed; ``poll`` is how
    long to sleep when there is nothing new. A segment's unfinished last line is held back
    until its newline arrives, and counted as torn once a later segment exists (a crash cut
    it). De-duplication remembers the ``dedup_capacity`` most recent keys.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        stop: threading.Event | None = None,
        timeout: float | None = None,
        poll: float = 0.2,
        from_start: bool = True,
        dedup: bool = True,
        dedup_capacity: int | None = 1_000_000,
    ) -> None:
        if poll <= 0:
            raise ValidationError("poll", poll, "must be a positive number of seconds")
        if timeout is not None and timeout < 0:
            raise ValidationError("timeout", timeout, "must not be negative")
        self.root = Path(log_dir)
        self.stop = stop
        self.timeout = timeout
        self.poll = poll
        self.from_start = from_start
        self.counts = ReadCounts()
        self._parser = _LineParser(self.counts, dedup, dedup_capacity)
        self._offsets: dict[Path, int] = {}
        self._numbers: dict[Path, int] = {}
        self._done: set[Path] = set()
        self._started = False

    def __repr__(self) -> str:
        return f"Follower({str(self.root)!r}, events={self.counts.events})"

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _list(self) -> list[Path]:
        if self.root.is_dir():
            return list_segments(self.root, compressed=False)
        return [self.root] if self.root.is_file() else []

    def _skip_existing(self, files: list[Path]) -> None:
        for path in files[:-1]:
            self._done.add(path)
        if files:
            last = files[-1]
            self._offsets[last] = _end_of_last_line(last)  # line numbers count from here

    def __iter__(self) -> Iterator[LoggedEvent]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self._stopped():
            files = self._list()
            if not self._started:
                self._started = True
                if not self.from_start:
                    self._skip_existing(files)
            for index, path in enumerate(files):
                if path in self._done:
                    continue
                finished = index < len(files) - 1  # a later segment exists: no more writes
                if path not in self._offsets:
                    self.counts.files += 1
                yield from self._drain(path, finished)
                if finished:
                    self._done.add(path)
                    self._offsets.pop(path, None)
                    self._numbers.pop(path, None)
                if self._stopped():
                    return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = self.poll if deadline is None else min(self.poll, deadline - now)
            if self.stop is not None:
                self.stop.wait(wait)
            else:
                time.sleep(wait)

    def _drain(self, path: Path, finished: bool) -> Iterator[LoggedEvent]:
        """Yield the complete lines added to ``path`` since the last visit."""
        offset = self._offsets.get(path, 0)
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:  # removed between listing and reading
            return
        with stream:
            size = os.fstat(stream.fileno()).st_size
            offset = min(offset, size)  # a failed write that the writer cut off again
            stream.seek(offset)
            pending = b""
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                pending += chunk
                cut = pending.rfind(b"\n")
                if cut < 0:
                    continue
                complete, pending = pending[: cut + 1], pending[cut + 1 :]
                for raw in complete[:-1].split(b"\n"):
                    offset += len(raw) + 1
                    logged = self._take(path, raw + b"\n", offset, complete=True)
                    if logged is not None:
                        yield logged
            if pending and finished:
                logged = self._take(path, pending, offset + len(pending), complete=False)
                if logged is not None:
                    yield logged
        self._offsets.setdefault(path, offset)

    def _take(self, path: Path, raw: bytes, offset: int, complete: bool) -> LoggedEvent | None:
        number = self._numbers.get(path, 0) + 1
        self._numbers[path] = number
        self._offsets[path] = offset  # saved per line: a consumer may stop iterating anywhere
        return self._parser.parse(raw, path, number, complete)


def follow(
    log_dir: str | os.PathLike[str],
    *,
    stop: threading.Event | None = None,
    timeout: float | None = None,
    poll: float = 0.2,
    from_start: bool = True,
    dedup: bool = True,
) -> Follower:
    """Tail ``log_dir`` for new events (see ``Follower``); iterate the result.

    >>> for logged in follow("data/events", stop=done, poll=0.2):  # doctest: +SKIP
    ...     if logged.event.event_type == "DELIVERED": ...
    """
    return Follower(
        log_dir, stop=stop, timeout=timeout, poll=poll, from_start=from_start, dedup=dedup
    )
