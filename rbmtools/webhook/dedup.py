"""A bounded memory of recently seen event keys, for counting and dropping redeliveries.

The platform delivers at least once, so the same event can arrive twice, minutes or days
apart. Remembering every key forever would grow without bound in a long-running receiver or
tailer; two generations of sets keep between ``capacity / 2`` and ``capacity`` of the most
recent keys at O(1) cost per lookup.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["RecentKeys"]


class RecentKeys:
    """Remembers up to ``capacity`` recent keys; ``None`` means remember everything."""

    def __init__(self, capacity: int | None = 1_000_000) -> None:
        if capacity is not None and capacity < 2:
            raise ValueError("capacity must be at least 2 (or None for unbounded)")
        self.capacity = capacity
        self._current: set[Hashable] = set()
        self._previous: set[Hashable] = set()

    def seen(self, key: Hashable) -> bool:
        """True when ``key`` was seen before; either way it is now remembered as recent."""
        if key in self._current:
            return True
        was_seen = key in self._previous
        self._current.add(key)
        if self.capacity is not None and len(self._current) >= self.capacity // 2:
            self._previous, self._current = self._current, set()
        return was_seen
