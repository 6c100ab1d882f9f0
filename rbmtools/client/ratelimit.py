"""A thread-safe client-side rate limit: calls are spaced to at most ``rate`` per second.

Used by the bulk helpers (``rate=`` calls per second across all worker threads) and by
``batch_capabilities`` (users.batchGet is limited to 600 calls a minute).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rbmtools.errors import ValidationError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Hands out start times at most ``rate`` per second, allowing a burst of ``burst``."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValidationError("rate", rate, "must be a positive number of calls per second")
        if burst < 1:
            raise ValidationError("burst", burst, "must be at least 1")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def acquire(self) -> float:
        """Block until a call may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait
