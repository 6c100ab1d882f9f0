"""A size-capped log of rejected webhook requests, kept for forensics only.

Anyone who can reach the webhook can send garbage, so this log must not become a way to fill
the disk: it holds at most ``max_bytes`` in ``rejects.log`` plus one rotated ``rejects.1.log``,
each line a small JSON object (when, why, which status, and the head of the body). Handshake
bodies are never kept (they carry a clientToken), nor are request headers, and the bodies that
are kept are redacted first (``clientToken``, ``secret`` and other secret-named fields, bearer
tokens, JWTs: see ``rbmtools.wire.redact``). The files are created 0600 (a forged request may
still carry something private). It is not fsynced: nothing here was acknowledged. It lives in
``<log_dir>/_rejects/``, outside the event globs, and is opened again by path if that
directory is removed while the receiver runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from rbmtools.webhook.layout import names_file
from rbmtools.wire import dumps_line, format_timestamp, redact_json, redact_text, utc_now

__all__ = ["DEFAULT_REJECTS_BYTES", "RejectsLog"]

DEFAULT_REJECTS_BYTES = 8 * 1024 * 1024
BODY_HEAD_BYTES = 1024
#: How much of a body that is not JSON is redacted before its head is cut (a token that
#: straddles the cut is still whole when it is redacted).
_REDACT_BYTES = 16 * 1024
_FILE_MODE = 0o600
_DIR_MODE = 0o750


def redacted_head(body: bytes) -> str:
    """The first ``BODY_HEAD_BYTES`` of ``body`` as text, secrets redacted."""
    try:
        text = json.dumps(redact_json(json.loads(body)), ensure_ascii=False)
    except (UnicodeDecodeError, ValueError, RecursionError):
        head = body[:_REDACT_BYTES].decode("utf-8", "backslashreplace")
        text = redact_text(head)
    # A JSON escape such as \ud800 decodes to a lone surrogate, which UTF-8 cannot carry.
    return text[:BODY_HEAD_BYTES].encode("utf-8", "backslashreplace").decode("utf-8")


class RejectsLog:
    """Appends one line per rejected request; rotates once ``max_bytes`` is reached."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = DEFAULT_REJECTS_BYTES):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.path = self.directory / "rejects.log"
        self._rotated = self.directory / "rejects.1.log"
        self._lock = threading.Lock()
        self._file: Any = None
        self._size = 0
        self.written = 0
        self.dropped = 0

    def _ensure_open(self) -> None:
        if self._file is not None and not names_file(self.path, self._file.fileno()):
            self._file.close()  # removed with its directory: open it again by path
            self._file = None
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            fd = os.open(self.path, flags, _FILE_MODE)
            self._file = os.fdopen(fd, "ab", buffering=0)
            self._size = self._file.seek(0, os.SEEK_END)

    def record(
        self, reason: str, status: int, *, body: bytes | None = None, remote: str | None = None
    ) -> None:
        """Keep one rejected request (``body=None`` for requests whose body must not be kept)."""
        entry: dict[str, Any] = {
            "at": format_timestamp(utc_now()),
            "reason": reason,
            "status": status,
        }
        if remote:
            entry["remote"] = remote
        if body is not None:
            entry["bodyBytes"] = len(body)
            entry["bodyHead"] = redacted_head(body)
        try:
            line = dumps_line(entry).encode("utf-8")
        except ValueError:  # forensics must never break the receiver
            self.dropped += 1
            return
        with self._lock:
            try:
                self._ensure_open()
                if self._size + len(line) > self.max_bytes:
                    self._rotate()
                self._file.write(line)
                self._size += len(line)
                self.written += 1
            except OSError:  # forensics must never break the receiver
                self.dropped += 1

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        os.replace(self.path, self._rotated)
        self._ensure_open()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
