"""Retrying calls that may succeed when repeated: 429, 500, 503, 504, lost connections, timeouts.

Backoff is exponential with full jitter (sleep a uniform random time between zero and the
current cap), bounded in attempts and in total elapsed time, and never shorter than a
``Retry-After`` the platform sent. A retried send keeps its messageId, and the platform ignores
an id it has already seen, so retrying a send can never deliver twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from rbmtools.errors import RETRYABLE_STATUSES, ValidationError

__all__ = ["RetryPolicy", "retry_after_seconds"]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently to retry: attempts, backoff base and cap, and a total time budget."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_elapsed: float = 120.0
    statuses: frozenset[int] = RETRYABLE_STATUSES
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts", self.max_attempts, "must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.max_elapsed < 0:
            raise ValidationError(
                "backoff",
                (self.initial_backoff, self.max_backoff, self.max_elapsed),
                "must not be negative",
            )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1)))
        jittered = self.rng.uniform(0.0, cap)
        return max(jittered, retry_after or 0.0)

    def next_delay(
        self,
        attempt: int,
        started: float,
        retry_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> float | None:
        """The sleep before the next attempt, or None when attempts or time are used up."""
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, retry_after)
        if clock() + delay - started > self.max_elapsed:
            return None
        return delay
