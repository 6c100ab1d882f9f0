"""The outbox log: one JSON line per action the agent took (send, revoke, fallback).

Records are the shared definitions of ``rbmtools.wire.records``; each is written and flushed as
one line, under a lock, so concurrent bulk calls never interleave partial lines and a crash
loses at most the action in flight. The analysis joins this log with the webhook event log.
A new outbox file is created 0640 (it names phone numbers; error texts in it are redacted).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from rbmtools.wire.records import OutboxRecord

__all__ = ["OutboxWriter"]


class OutboxWriter:
    """Append outbox records to a JSON Lines file, flushing per record (thread-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self.records_written = 0

    def write(self, record: OutboxRecord) -> None:
        """Append one record as one line and flush it to the operating system."""
        line = record.to_line()
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self.records_written += 1

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> OutboxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OutboxWriter({str(self.path)!r}, records_written={self.records_written})"
