"""Injected API faults: make the emulator answer 429/5xx, or answer slowly, on demand.

A fault matches a method (``send``, ``revoke``, ``capabilities``, ``agentEvents``,
``batchGet``, ``testers``, ``files``, ``token``; ``any`` is every RBM method but the token
endpoint) and is used up by ``count`` matching requests (``None``: until cleared). ``when="before"``
answers the fault without doing the request; ``when="after"`` does the request (a send is
accepted, a revoke takes effect) and then answers the fault, which is the case where a client
retry with the same messageId must not create a second message. ``delay`` real seconds are
waited before answering (client timeout tests); a fault with ``status`` None only adds that
delay. ``retry_after`` sets the Retry-After header.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from rbmtools.errors import ValidationError

__all__ = ["FAULT_METHODS", "FAULT_STATUSES", "ApiFault", "ApiFaults"]

FAULT_METHODS = (
    "send",
    "revoke",
    "capabilities",
    "agentEvents",
    "batchGet",
    "testers",
    "files",
    "token",
    "any",
)
FAULT_STATUSES = (400, 401, 403, 404, 409, 429, 500, 502, 503, 504)
_MAX_DELAY = 600.0


@dataclass
class ApiFault:
    """One injected fault (see the module doc)."""

    method: str = "any"
    status: int | None = 503
    count: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    when: str = "before"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "status": self.status,
            "count": self.count,
            "retryAfter": self.retry_after,
            "delay": self.delay,
            "when": self.when,
        }


def _number(value: object, field: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, value, "must be a number of seconds")
    if value < 0 or value > _MAX_DELAY:
        raise ValidationError(field, value, f"must be from 0 to {_MAX_DELAY:g} seconds")
    return float(value)


def parse_fault(data: object) -> ApiFault:
    """An ``ApiFault`` from the admin JSON ``{"method", "status", "count", "retryAfter",
    "delay", "when"}`` (every field optional)."""
    if not isinstance(data, dict):
        raise ValidationError("fault", data, "must be a JSON object")
    known = {"method", "status", "count", "retryAfter", "delay", "when"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(unknown[0], data[unknown[0]], "is not a known field")
    method = data.get("method", "any")
    if method not in FAULT_METHODS:
        raise ValidationError("method", method, f"must be one of {', '.join(FAULT_METHODS)}")
    status = data.get("status", 503)
    if status is not None and status not in FAULT_STATUSES:
        allowed = ", ".join(map(str, FAULT_STATUSES))
        raise ValidationError("status", status, f"must be null or one of {allowed}")
    count = data.get("count", 1)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValidationError("count", count, "must be a whole number of at least 1, or null")
    when = data.get("when", "before")
    if when not in ("before", "after"):
        raise ValidationError("when", when, "must be 'before' or 'after'")
    return ApiFault(
        method=method,
        status=status,
        count=count,
        retry_after=_number(data.get("retryAfter"), "retryAfter", allow_none=True),
        delay=_number(data.get("delay", 0.0), "delay") or 0.0,
        when=when,
    )


class ApiFaults:
    """The active faults, first injected first used."""

    def __init__(self) -> None:
        self._faults: list[ApiFault] = []
        self._lock = threading.Lock()
        self.used = 0

    def add(self, fault: ApiFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[ApiFault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str) -> ApiFault | None:
        """The first fault matching ``method`` (one use of it), if any."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.method != method and (fault.method != "any" or method == "token"):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                self.used += 1
                return fault
        return None
