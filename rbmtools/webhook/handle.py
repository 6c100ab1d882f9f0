"""The receiver in-process: a context manager that serves on a free port from a background thread.

Tests, notebooks and the experiment runner start a real receiver (real HTTP on 127.0.0.1, real
fsyncs) without a subprocess: the thread runs its own asyncio loop, and leaving the ``with``
block drains in-flight requests and closes the log, exactly as the ``serve`` command does.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from rbmtools.errors import RbmError
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

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
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the receiver's counters (taken on its own loop)."""
        if not self.running or self._loop is None:
            return self._server.stats()
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        return future.result(timeout=10)

    async def _snapshot(self) -> dict[str, Any]:
        return self._server.stats()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Receiver(url={self.url!r}, log_dir={str(self.log_dir)!r}, {state})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start serving; returns once the port is bound (raises if it could not start)."""
        if self.running:
            return self
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="rbmtools-receiver", daemon=True
        )
        self._thread.start()
        try:
            started.result(timeout=_START_TIMEOUT)
        except TimeoutError:
            raise RbmError(f"the receiver did not start within {_START_TIMEOUT} s") from None
        return self

    def _serve(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.start())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Drain in-flight requests, fsync, close the log and stop the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._server.stop(), loop).result(
                timeout=self._server.drain_timeout + 30
            )
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
