"""The emulator's virtual clock: platform time runs ``speed`` times faster than real time.

Platform time is ``start + speed × (real seconds since start) + manual advances``. Speed 600
makes ten platform minutes pass per real second; speed 0 is the pure stepping mode, in which
time moves only when ``advance`` is called (tests use it to land a revoke exactly inside a
hand-off window). Internally the emulator counts platform time as float seconds since
``start``; every timestamp it emits is that platform time as an aware UTC datetime.

Platform time never passes ``HORIZON`` (the start of the year 9000): an ``advance`` past it
or a speed above ``MAX_SPEED`` is refused, and a clock left running at a high speed stops
there, so no timestamp the emulator writes can overflow Python's datetime range.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rbmtools.errors import ValidationError
from rbmtools.wire import parse_timestamp, utc_now

__all__ = ["HORIZON", "MAX_DURATION", "MAX_SPEED", "VirtualClock"]

#: The latest platform instant: far beyond any rehearsal, well inside datetime's range.
HORIZON = datetime(9000, 1, 1, tzinfo=UTC)
#: The fastest clock: about 11.6 platform days per real second.
MAX_SPEED = 1_000_000.0
#: The longest duration the admin surface takes for a pin or a fault (10 years).
MAX_DURATION = 3650 * 86_400.0


def _check_speed(speed: object) -> float:
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
        raise ValidationError("speed", speed, "must be a finite number")
    if speed < 0:
        raise ValidationError("speed", speed, "must not be negative (0 is the stepping mode)")
    if speed > MAX_SPEED:
        raise ValidationError("speed", speed, f"must be at most {MAX_SPEED:g}")
    return float(speed)


class VirtualClock:
    """Platform time at a speed factor; thread-safe to read from any thread."""

    def __init__(
        self,
        speed: float = 600.0,
        start: datetime | str | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        origin = utc_now() if start is None else parse_timestamp(start, "start")
        if origin >= HORIZON:
            raise ValidationError("start", start, f"must be before {HORIZON.year}")
        #: The platform instant that ``seconds() == 0`` stands for (whole milliseconds).
        self.start: datetime = origin.replace(microsecond=origin.microsecond // 1000 * 1000)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # (real anchor, platform seconds at the anchor, speed): replaced as one tuple, so a
        # reader on another thread never sees a half-updated anchor.
        self._anchor = (monotonic(), 0.0, _check_speed(speed))
        #: Platform seconds from ``start`` to ``HORIZON``: the clock never reads more.
        self.horizon: float = (HORIZON - self.start).total_seconds()

    @property
    def speed(self) -> float:
        return self._anchor[2]

    def seconds(self) -> float:
        """Platform seconds since ``start``."""
        real, platform, speed = self._anchor
        if speed == 0.0:
            return platform
        return min(platform + (self._monotonic() - real) * speed, self.horizon)

    def now(self) -> datetime:
        """The current platform time (aware UTC)."""
        return self.to_datetime(self.seconds())

    def to_datetime(self, seconds: float) -> datetime:
        """The platform instant ``seconds`` after ``start``."""
        return self.start + timedelta(seconds=seconds)

    def to_seconds(self, when: datetime | str) -> float:
        """Platform seconds since ``start`` of an aware datetime or RFC 3339 string."""
        return (parse_timestamp(when, "time") - self.start).total_seconds()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (0 pauses: the stepping mode)."""
        checked = _check_speed(speed)
        with self._lock:
            current = self.seconds()
            self._anchor = (self._monotonic(), current, checked)

    def advance(self, seconds: float) -> float:
        """Move platform time forward by ``seconds`` at once; returns the new platform seconds."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValidationError("seconds", seconds, "must be a number")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValidationError("seconds", seconds, "must be a finite number, zero or more")
        with self._lock:
            now_real = self._monotonic()
            current = self.seconds()
            if current + float(seconds) > self.horizon:
                raise ValidationError(
                    "seconds", seconds, f"would move platform time past {HORIZON.year}"
                )
            self._anchor = (now_real, current + float(seconds), self.speed)
            return current + float(seconds)

    def real_delay(self, platform_seconds: float) -> float | None:
        """Real seconds until ``platform_seconds`` of platform time pass (None when paused)."""
        speed = self.speed
        if speed == 0.0:
            return None
        return max(0.0, platform_seconds) / speed

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now().isoformat()}, speed={self.speed:g})"
