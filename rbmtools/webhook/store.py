"""The durable event log: append-only JSON Lines with group commit, day partitions and rotation.

Callers hand an event to ``EventLog.append`` and get an answer only after its line is written
and fsynced. One writer thread does the blocking I/O: every append that arrives while it is
busy joins the next batch, which is written with one ``write`` and made durable with one
``fdatasync`` (group commit), so concurrency raises throughput instead of costing fsyncs.
Lines go to ``date=YYYY-MM-DD/events-NNNNNN.jsonl`` by UTC day of receipt; a segment is closed
when the next line would take it past ``max_segment_bytes``, and every start begins a new one,
so a crash leaves at most one torn line, at the end of its segment, never glued to a good one.

A line is acknowledged only if, after its fsync, its segment is still the file at its path: a
log directory removed or replaced while the receiver runs (``rm -rf``) is noticed by comparing
inodes, recreated (the writer lock taken again), and the lines written into the unlinked file
are written again into a new segment. ``storable_problem`` probes whether a line could be
stored right now (the receiver's ``/healthz``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Self

from rbmtools.errors import RbmError
from rbmtools.webhook.layout import (
    EVENTS_STEM,
    LOCK_NAME,
    day_dir_name,
    names_file,
    next_segment_number,
    segment_name,
)
from rbmtools.wire import event_record_line, to_utc, utc_now

__all__ = [
    "BATCH_BUCKETS",
    "DEFAULT_SEGMENT_BYTES",
    "Appended",
    "EventLog",
    "LogClosedError",
    "LogLockedError",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
#: Upper bounds of the fsync-batch-size histogram in ``EventLog.stats()``.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_FILE_MODE = 0o640
_DIR_MODE = 0o750
_PROBE_BYTES = 4096
_sync = getattr(os, "fdatasync", os.fsync)


class LogClosedError(RbmError):
    """The event log is closed (or closing): nothing more can be appended."""


class LogLockedError(RbmError):
    """Another writer (a second receiver) already holds this log directory."""


@dataclass(frozen=True)
class Appended:
    """Proof that one event is durable: its segment, its ``receivedAt`` and its fsync batch."""

    segment: Path
    received_at: datetime
    batch: int
    size: int


class _Entry:
    __slots__ = ("line", "received_at", "waiter")

    def __init__(self, line: bytes, received_at: datetime, waiter: Any) -> None:
        self.line = line
        self.received_at = received_at
        self.waiter = waiter


@dataclass(frozen=True)
class _SegmentFile:
    """A segment as opened: its path and the identity (device, inode) of the file."""

    path: Path
    device: int
    inode: int

    def linked(self) -> bool:
        """True while ``path`` still names this very file (not removed, not replaced)."""
        try:
            found = os.stat(self.path)
        except OSError:
            return False
        return (found.st_dev, found.st_ino) == (self.device, self.inode)


def _fsync_dir(path: Path) -> None:
    """Make a directory entry (a new file or subdirectory in ``path``) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _settle_all(items: list[tuple[asyncio.Future[Appended], Appended | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():  # the waiting request was cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class EventLog:
    """An append-only, group-committed event log under ``log_dir`` (see the module doc).

    Use it as a context manager, or call ``open()`` and ``close()``. ``append`` (async) and
    ``append_wait`` (blocking) return an ``Appended`` once the line is fsynced, and raise
    ``OSError`` when the disk refused it (nothing was acknowledged; the caller answers an
    error so the platform retries). ``clock`` stamps ``receivedAt`` (never going backwards);
    ``max_batch`` caps how many events share one fsync (``None``: no cap). ``stem`` names the
    segments (``events``; the receiver's other log uses ``other``), and ``append_line``
    appends any line rendered for its ``receivedAt``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], datetime] = utc_now,
        max_batch: int | None = None,
        stem: str = EVENTS_STEM,
    ) -> None:
        if max_segment_bytes < 1:
            raise ValueError("max_segment_bytes must be positive")
        if max_batch is not None and max_batch < 1:
            raise ValueError("max_batch must be positive (or None)")
        self.log_dir = Path(log_dir)
        self.max_segment_bytes = max_segment_bytes
        self.max_batch = max_batch
        self.stem = stem
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._closing = False
        self._opened = False
        self._last_stamp: datetime | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        # Writer-thread state (``_durable_dirs`` is shared with the health probe).
        self._durable_dirs: set[Path] = set()
        self._fd: int | None = None
        self._file: _SegmentFile | None = None
        self._segment: Path | None = None
        self._segment_day: date | None = None
        self._segment_size = 0
        self._next_number: dict[date, int] = {}
        # Counters, updated once per batch under _stats_lock.
        self._stats_lock = threading.Lock()
        self._events = 0
        self._bytes = 0
        self._batches = 0
        self._max_batch_seen = 0
        self._histogram = [0] * (len(BATCH_BUCKETS) + 1)
        self._segments_opened = 0
        self._write_errors = 0
        self._vanished = 0
        self._sync_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Self:
        """Create ``log_dir``, take its writer lock and start the writer thread."""
        if self._opened and not self._closing:
            return self
        self._make_dirs(self.log_dir)
        self._lock_fd = self._take_lock()
        self._opened, self._closing = True, False
        self._thread = threading.Thread(target=self._run, name="rbmtools-event-log", daemon=True)
        self._thread.start()
        return self

    def _take_lock(self) -> int:
        lock_fd = os.open(self.log_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise LogLockedError(
                f"another receiver is already writing to {self.log_dir} (it holds {LOCK_NAME})"
            ) from None
        return lock_fd

    def _make_dirs(self, *directories: Path) -> None:
        """Create each directory (parents first) if missing, and make its entry durable once."""
        for directory in directories:
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
                self._durable_dirs.discard(directory)  # a new one: its entry is not durable yet
            if directory not in self._durable_dirs:
                _fsync_dir(directory.parent)
                self._durable_dirs.add(directory)

    def storable_problem(self) -> str | None:
        """Why a line could not be stored right now (``None``: it could).

        A real probe, from any thread: today's directory is created if missing, and a hidden
        file of a few KiB is written, fsynced and removed there (a full or read-only disk, a
        removed parent, a missing writer thread all show).
        """
        if self._closing or not self._opened:
            return "the log is closed"
        if self._thread is None or not self._thread.is_alive():
            return "the log's writer thread is not running"
        day_dir = self.log_dir / day_dir_name(to_utc(self._clock(), "now").date())
        probe = day_dir / f".probe-{os.getpid()}-{threading.get_ident()}"
        try:
            self._make_dirs(self.log_dir, day_dir)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, bytes(_PROBE_BYTES))
                _sync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            return f"cannot store in {day_dir}: {exc.strerror or exc}"
        return None

    def close(self, timeout: float | None = 60.0) -> None:
        """Write and fsync everything already appended, then stop; later appends fail."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RbmError(f"the event log writer did not finish within {timeout} s")
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("open" if self._opened else "new")
        return f"EventLog({str(self.log_dir)!r}, {state})"

    # ------------------------------------------------------------------ appending

    def _enqueue(self, render: Callable[[datetime], str], waiter: Any) -> None:
        """Queue the line ``render(receivedAt)``; its errors (``ValueError`` for a line that
        is not strict JSON) are raised here, before anything is queued."""
        with self._cond:
            if self._closing or not self._opened:
                raise LogClosedError(f"the event log at {self.log_dir} is not open")
            stamp = to_utc(self._clock(), "receivedAt")
            if self._last_stamp is not None and stamp < self._last_stamp:
                stamp = self._last_stamp  # receivedAt never goes backwards within the log
            line = render(stamp).encode("utf-8")
            self._last_stamp = stamp
            self._pending.append(_Entry(line, stamp, waiter))
            self._cond.notify()

    async def append(self, event: Mapping[str, Any], verified: bool = True) -> Appended:
        """Append one decoded event; returns once its line is durable (see the class doc)."""
        return await self.append_line(lambda stamp: event_record_line(event, stamp, verified))

    async def append_line(self, render: Callable[[datetime], str]) -> Appended:
        """Append the line ``render(receivedAt)`` (one JSON object ending in a newline)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        self._enqueue(render, (loop, future))
        return await future

    def append_wait(
        self, event: Mapping[str, Any], verified: bool = True, timeout: float | None = None
    ) -> Appended:
        """Blocking ``append`` for code without an event loop."""
        future: concurrent.futures.Future[Appended] = concurrent.futures.Future()
        self._enqueue(lambda stamp: event_record_line(event, stamp, verified), future)
        return future.result(timeout)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    break
                if self.max_batch is None or len(self._pending) <= self.max_batch:
                    batch, self._pending = self._pending, []
                else:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
            try:
                outcomes = self._commit(batch)
            except Exception as exc:  # never leave a request waiting forever
                outcomes = [exc] * len(batch)
            self._deliver(batch, outcomes)
        self._close_segment()

    def _commit(self, batch: list[_Entry]) -> list[Appended | BaseException]:
        """Write and fsync one batch; every entry gets its ``Appended`` or the error.

        Lines whose segment was removed or replaced meanwhile are written once more into a
        fresh segment (the directories recreated); they are acknowledged only from there.
        """
        started = time.perf_counter()
        try:
            if self._file is not None and not self._file.linked():
                self._lost_segment()
            placed = self._place(batch)
            lost = [index for index, file in enumerate(placed) if not file.linked()]
            if lost:
                self._lost_segment()
                again = self._place([batch[index] for index in lost])
                if not all(file.linked() for file in again):
                    raise FileNotFoundError(f"the log directory {self.log_dir} keeps vanishing")
                for index, file in zip(lost, again, strict=True):
                    placed[index] = file
        except OSError as exc:
            with self._stats_lock:
                self._write_errors += 1
            return [exc] * len(batch)
        elapsed = time.perf_counter() - started
        with self._stats_lock:
            self._batches += 1
            number = self._batches
            self._events += len(batch)
            self._bytes += sum(len(entry.line) for entry in batch)
            self._max_batch_seen = max(self._max_batch_seen, len(batch))
            self._histogram[_bucket(len(batch))] += 1
            self._sync_seconds += elapsed
        return [
            Appended(file.path, entry.received_at, number, len(entry.line))
            for file, entry in zip(placed, batch, strict=True)
        ]

    def _place(self, entries: list[_Entry]) -> list[_SegmentFile]:
        """Write and fsync ``entries`` (rotating as needed); the segment each one went to."""
        placed: list[_SegmentFile] = []
        chunk: list[bytes] = []
        chunk_bytes = 0
        for entry in entries:
            size = len(entry.line)
            day = entry.received_at.date()
            held = self._segment_size + chunk_bytes
            full = held > 0 and held + size > self.max_segment_bytes
            if self._fd is None or day != self._segment_day or full:
                if chunk:
                    self._write_and_sync(chunk, chunk_bytes)
                    chunk, chunk_bytes = [], 0
                self._close_segment()
                self._open_segment(day)
            chunk.append(entry.line)
            chunk_bytes += size
            placed.append(self._file)  # type: ignore[arg-type]
        if chunk:
            self._write_and_sync(chunk, chunk_bytes)
        return placed

    def _lost_segment(self) -> None:
        """The open segment is no longer at its path (its directory was removed): drop it."""
        with self._stats_lock:
            self._vanished += 1
        self._close_segment()
        self._next_number.clear()
        self._durable_dirs.clear()  # whatever stands there now, make its entries durable

    def _hold_lock(self) -> None:
        """Take the writer lock again if the lock file was removed with the directory."""
        if self._lock_fd is None or names_file(self.log_dir / LOCK_NAME, self._lock_fd):
            return
        fd = self._take_lock()
        os.close(self._lock_fd)
        self._lock_fd = fd

    def _open_segment(self, day: date) -> None:
        day_dir = self.log_dir / day_dir_name(day)
        self._make_dirs(self.log_dir, day_dir)
        self._hold_lock()
        number = self._next_number.get(day) or next_segment_number(day_dir, self.stem)
        while True:
            path = day_dir / segment_name(number, self.stem)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            try:
                fd = os.open(path, flags, _FILE_MODE)
                break
            except FileExistsError:  # someone dropped a file there; never write into it
                number += 1
        _fsync_dir(day_dir)
        self._next_number[day] = number + 1
        held = os.fstat(fd)
        self._file = _SegmentFile(path, held.st_dev, held.st_ino)
        self._fd, self._segment, self._segment_day, self._segment_size = fd, path, day, 0
        with self._stats_lock:
            self._segments_opened += 1

    def _write_and_sync(self, chunk: list[bytes], chunk_bytes: int) -> None:
        assert self._fd is not None
        data = memoryview(b"".join(chunk))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            # Cut the partial write off so the segment still ends with a whole line.
            try:
                os.ftruncate(self._fd, self._segment_size)
            except OSError:
                self._close_segment()
            raise
        try:
            _sync(self._fd)
        except OSError:
            # After a failed fsync the page cache state is unknown: never write here again.
            self._close_segment()
            raise
        self._segment_size += chunk_bytes

    def _close_segment(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._segment, self._segment_day, self._segment_size = None, None, None, 0
        self._file = None

    def _deliver(self, batch: list[_Entry], outcomes: list[Appended | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for entry, outcome in zip(batch, outcomes, strict=True):
            waiter = entry.waiter
            if isinstance(waiter, concurrent.futures.Future):
                if not waiter.set_running_or_notify_cancel():
                    continue  # the caller gave up on it
                if isinstance(outcome, BaseException):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(outcome)
            else:
                loop, future = waiter
                by_loop.setdefault(loop, []).append((future, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(_settle_all, items)

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters since ``open``: events, bytes, fsync batches and their sizes, errors."""
        with self._stats_lock:
            labels = [str(b) if b == 1 else f"<={b}" for b in BATCH_BUCKETS]
            labels.append(f">{BATCH_BUCKETS[-1]}")
            with self._cond:
                queued = len(self._pending)
            return {
                "events": self._events,
                "bytes": self._bytes,
                "fsync_batches": self._batches,
                "events_per_batch_mean": (self._events / self._batches if self._batches else 0.0),
                "events_per_batch_max": self._max_batch_seen,
                "events_per_batch_histogram": dict(zip(labels, self._histogram, strict=True)),
                "fsync_seconds_total": round(self._sync_seconds, 6),
                "segments_opened": self._segments_opened,
                "write_errors": self._write_errors,
                "segments_vanished": self._vanished,
                "queued": queued,
                "segment": None if self._segment is None else str(self._segment),
            }


def _bucket(size: int) -> int:
    for index, bound in enumerate(BATCH_BUCKETS):
        if size <= bound:
            return index
    return len(BATCH_BUCKETS)
