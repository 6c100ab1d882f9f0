"""A server on a background thread with its own asyncio loop: the in-process emulator and
webhook receiver (and tests' helper servers) run this way.

``BackgroundLoop.start(startup, shutdown)`` starts a daemon thread, runs ``startup()`` on its
fresh loop and returns its result once it finished (re-raising what it raised, so a port in
use is the caller's exception); the loop then runs until ``stop()``, which runs ``shutdown()``
on the loop (letting in-flight work finish), stops the loop, closes it and joins the thread.
``call(coroutine)`` runs a coroutine on the loop from any other thread. It lives here, beside
``errors``, so that every package can use it without importing another.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from rbmtools.errors import RbmError

__all__ = ["BackgroundLoop"]

log = logging.getLogger("rbmtools")

T = TypeVar("T")


class BackgroundLoop:
    """One daemon thread running one asyncio loop (see the module doc)."""

    def __init__(self, name: str, *, start_timeout: float = 30.0) -> None:
        self.name = name
        self.start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shutdown: Callable[[], Awaitable[None]] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        startup: Callable[[], Awaitable[T]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> T:
        """Run ``startup()`` on a new loop in a new thread; its result once it is done."""
        if self.running:
            raise RbmError(f"{self.name} is already running")
        started: Future[Any] = Future()
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                started.set_result(loop.run_until_complete(startup()))
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop, self._shutdown = loop, shutdown
        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        try:
            return started.result(timeout=self.start_timeout)
        except TimeoutError:
            raise RbmError(f"{self.name} did not start within {self.start_timeout:g} s") from None
        except BaseException:
            self._thread.join(timeout=5)
            self._loop = self._thread = None
            raise

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        if self._loop is None or not self.running:
            coroutine.close()
            raise RbmError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Run the shutdown coroutine, stop the loop and join the thread (idempotent)."""
        loop, thread, shutdown = self._loop, self._thread, self._shutdown
        self._loop = self._thread = self._shutdown = None
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            if shutdown is not None:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            if thread.is_alive():
                log.warning("%s: the thread did not stop within 30 s; left running", self.name)
