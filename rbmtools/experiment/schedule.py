"""Time for the runner: the platform's clock, a heap of due actions, and the send-rate spacing.

Everything an experiment schedules (revokes at send + delay, grace periods, the end of the
observation window) is a platform instant: the wall clock live, the emulator's virtual clock
offline. The runner never sleeps a platform duration; it asks the clock how many *real* seconds
a platform wait takes (``real_delay``: a 10-minute wait is one real second at speed 600) and
waits on its inbox for that long at most, so events and finished calls wake it at once.
"""

from __future__ import annotations

import heapq
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from rbmtools.errors import ValidationError
from rbmtools.wire import parse_timestamp, utc_now

__all__ = ["DueHeap", "MirroredClock", "PlatformClock", "SendSpacing", "WallClock", "real_wait"]


@runtime_checkable
class PlatformClock(Protocol):
    """What the runner needs of a clock (``rbmtools.emulator.VirtualClock`` is one)."""

    def now(self) -> datetime:
        """The platform's current time (aware UTC)."""
        ...

    def real_delay(self, platform_seconds: float) -> float | None:
        """Real seconds until ``platform_seconds`` pass (None: the clock is paused)."""
        ...


class WallClock:
    """The real platform's clock: platform time is the wall clock."""

    speed = 1.0

    def now(self) -> datetime:
        return utc_now()

    def real_delay(self, platform_seconds: float) -> float | None:
        return max(0.0, platform_seconds)

    def __repr__(self) -> str:
        return "WallClock()"


class MirroredClock:
    """The clock of an emulator running elsewhere, read through its admin surface.

    It reads ``now`` and ``speed`` from ``GET /emulator/v1/clock`` and extrapolates with the
    local monotonic clock, re-reading every ``refresh`` real seconds (a speed change or an
    ``advance`` is picked up then).
    """

    def __init__(self, admin: Any, *, refresh: float = 2.0) -> None:
        self._admin = admin
        self._refresh = refresh
        self._lock = threading.Lock()
        self._anchor = self._read()

    def _read(self) -> tuple[float, datetime, float]:
        clock = self._admin.clock()
        return time.monotonic(), parse_timestamp(clock["now"], "now"), float(clock["speed"])

    @property
    def speed(self) -> float:
        return self._anchor[2]

    def now(self) -> datetime:
        real, platform, speed = self._anchor
        elapsed = time.monotonic() - real
        if elapsed > self._refresh:
            with self._lock:
                if time.monotonic() - self._anchor[0] > self._refresh:
                    self._anchor = self._read()
            real, platform, speed = self._anchor
            elapsed = time.monotonic() - real
        return platform + timedelta(seconds=elapsed * speed)

    def real_delay(self, platform_seconds: float) -> float | None:
        speed = self.speed
        if speed == 0.0:
            return None
        return max(0.0, platform_seconds) / speed

    def __repr__(self) -> str:
        return f"MirroredClock(speed={self.speed:g})"


def real_wait(clock: PlatformClock, now: datetime, until: datetime | None, cap: float) -> float:
    """Real seconds to wait from ``now`` until the platform instant ``until`` (at most ``cap``)."""
    if until is None:
        return cap
    delay = clock.real_delay((until - now).total_seconds())
    if delay is None:  # a paused clock moves only when someone advances it: look again soon
        return min(cap, 0.05)
    return max(0.0, min(cap, delay))


class DueHeap:
    """Keys due at platform instants; stale entries are harmless (the owner re-checks)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: datetime, key: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at.timestamp(), self._seq, key))

    def next_due(self) -> datetime | None:
        if not self._heap:
            return None
        return datetime.fromtimestamp(self._heap[0][0], tz=UTC)

    def pop_due(self, now: datetime, limit: int | None = None) -> list[int]:
        """Keys due by ``now``, earliest first (at most ``limit``)."""
        cutoff = now.timestamp()
        keys: list[int] = []
        while self._heap and self._heap[0][0] <= cutoff:
            if limit is not None and len(keys) >= limit:
                break
            keys.append(heapq.heappop(self._heap)[2])
        return keys


class SendSpacing:
    """Spaces sends ``1 / rate`` platform seconds apart (None: no limit).

    A runner that falls behind does not burst to catch up: the next slot is counted from the
    later of the previous slot and now.
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and not rate > 0:
            raise ValidationError("send_rate", rate, "must be a positive number per second")
        self.interval = None if rate is None else timedelta(seconds=1.0 / rate)
        self._next: datetime | None = None

    def next_slot(self) -> datetime | None:
        """When the next send may start (None: now)."""
        return self._next

    def ready(self, now: datetime) -> bool:
        return self._next is None or now >= self._next

    def take(self, now: datetime) -> None:
        if self.interval is not None:
            start = now if self._next is None else max(self._next, now)
            self._next = start + self.interval
