"""The receiver in-process: a context manager that serves on a free port from a background thread.

Tests, notebooks and the experiment runner start a real receiver (real HTTP on 127.0.0.1, real
fsyncs) without a subprocess: the thread runs its own asyncio loop (``rbmtools.background``),
and leaving the ``with`` block (or ``stop()``) drains in-flight requests and closes the log,
exactly as the ``serve`` command does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from rbmtools.background import BackgroundLoop
from rbmtools.webhook.receiver import DEFAULT_HOST, DEFAULT_MAX_BODY, ReceiverServer
from rbmtools.webhook.rejects import DEFAULT_REJECTS_BYTES
from rbmtools.webhook.store import DEFAULT_SEGMENT_BYTES
from rbmtools.wire import utc_now

__all__ = ["Receiver"]

_START_TIMEOUT = 30.0


class Receiver:
    """A running webhook receiver for ``with`` blocks (see ``ReceiverServer`` for the options).

    >>> with Receiver("data/events", client_token="s3cret", path="/rbm") as rx:  # doctest: +SKIP
    ...     rx.url      # 'http://127.0.0.1:PORT/rbm': register this with the platform
    ...     rx.stats()  # accepted, rejected by reason, duplicates, bytes, fsync batches
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        client_token: str | None = None,
        port: int = 0,
        host: str = DEFAULT_HOST,
        path: str = "/",
        verify: bool = True,
        max_body: int = DEFAULT_MAX_BODY,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        rejects_bytes: int | None = DEFAULT_REJECTS_BYTES,
        drain_timeout: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._server = ReceiverServer(
            log_dir,
            client_token=client_token,
            host=host,
            port=port,
            path=path,
            verify=verify,
            max_body=max_body,
            max_segment_bytes=max_segment_bytes,
            rejects_bytes=rejects_bytes,
            drain_timeout=drain_timeout,
            clock=clock,
        )
        self._background = BackgroundLoop("rbmtools-receiver", start_timeout=_START_TIMEOUT)

    # ------------------------------------------------------------------ what callers use

    @property
    def url(self) -> str:
        """The full webhook URL, path included: ``http://127.0.0.1:PORT/``."""
        return self._server.url

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``/healthz`` and ``/stats`` live under it)."""
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def log_dir(self) -> Path:
        return self._server.log_dir

    @property
    def running(self) -> bool:
        return self._background.running

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the receiver's counters (taken on its own loop)."""
        if not self.running:
            return self._server.stats()
        return self._background.call(self._snapshot(), timeout=10)

    async def _snapshot(self) -> dict[str, Any]:
        return self._server.stats()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Receiver(url={self.url!r}, log_dir={str(self.log_dir)!r}, {state})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start serving; returns once the port is bound (raises if it could not start)."""
        if not self.running:
            self._background.start(self._server.start, self._server.stop)
        return self

    def stop(self) -> None:
        """Drain in-flight requests, fsync, close the log and stop the thread (idempotent)."""
        self._background.stop(timeout=self._server.drain_timeout + 30)

    close = stop  # the name earlier versions used

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
