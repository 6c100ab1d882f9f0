"""Message expiry: the ``ttl`` / ``expireTime`` union of an AgentMessage.

A message may carry at most one of them. ``ttl`` is a protobuf Duration measured from
submission; ``expireTime`` an absolute UTC time. The platform accepts at most 15 days after
submission. Google recommends at least 10 seconds, because shorter windows make "delivered and
revoked" double notifications likely, so shorter values draw a warning, not an error.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

from rbmtools.errors import ValidationError
from rbmtools.wire.times import (
    NANOS_PER_SECOND,
    duration_nanos,
    format_duration_nanos,
    format_timestamp,
    parse_timestamp,
)

__all__ = [
    "MAX_EXPIRY",
    "RECOMMENDED_MIN_TTL",
    "ShortExpiryWarning",
    "expiry_fields",
    "resolve_expire_time",
]

MAX_EXPIRY = timedelta(days=15)
RECOMMENDED_MIN_TTL = timedelta(seconds=10)
_MAX_NANOS = int(MAX_EXPIRY.total_seconds()) * NANOS_PER_SECOND
_MIN_NANOS = int(RECOMMENDED_MIN_TTL.total_seconds()) * NANOS_PER_SECOND


class ShortExpiryWarning(UserWarning):
    """An expiry under 10 s: legal, but it invites delivered-and-revoked double notifications."""


def _warn_short(field: str, shown: str) -> None:
    warnings.warn(
        f"{field}: {shown} is shorter than the 10 s Google recommends; expect messages that "
        "are both delivered and revoked",
        ShortExpiryWarning,
        stacklevel=4,  # the caller of agent_message / validate_agent_message
    )


def expiry_fields(
    ttl: object = None,
    expire_time: str | datetime | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """Validate the expiry union and return the AgentMessage fields for it.

    Returns ``{}``, ``{"ttl": "600s"}`` or ``{"expireTime": "2026-11-25T10:10:00Z"}``.
    ``now`` is the submission time on the platform's clock; when given, an ``expire_time`` is
    checked against it (not in the past, at most 15 days ahead). Without it only the forms are
    checked and the platform judges the window, which is right when the caller's clock is not
    the platform's (the emulator runs on a virtual clock).
    """
    if ttl is not None and expire_time is not None:
        raise ValidationError(
            "ttl/expireTime", {"ttl": ttl, "expireTime": expire_time}, "give at most one of them"
        )
    if ttl is not None:
        nanos = duration_nanos(ttl, "ttl")
        if nanos <= 0:
            raise ValidationError("ttl", ttl, "must be longer than zero")
        if nanos > _MAX_NANOS:
            raise ValidationError("ttl", ttl, "must be at most 15 days")
        if nanos < _MIN_NANOS:
            _warn_short("ttl", format_duration_nanos(nanos))
        return {"ttl": format_duration_nanos(nanos)}
    if expire_time is not None:
        when = parse_timestamp(expire_time, "expireTime")
        if now is not None:
            submitted = parse_timestamp(now, "now")
            window = when - submitted
            if window <= timedelta(0):
                raise ValidationError("expireTime", expire_time, "must be in the future")
            if window > MAX_EXPIRY:
                raise ValidationError("expireTime", expire_time, "must be at most 15 days ahead")
            if window < RECOMMENDED_MIN_TTL:
                _warn_short("expireTime", f"{window.total_seconds():g} s ahead")
        return {"expireTime": format_timestamp(when)}
    return {}


def resolve_expire_time(fields: dict, submitted: datetime) -> datetime | None:
    """The absolute expiry of a message body submitted at ``submitted`` (None: no expiry)."""
    if fields.get("ttl") is not None:
        micros = duration_nanos(fields["ttl"], "ttl") // 1000
        return parse_timestamp(submitted, "sendTime") + timedelta(microseconds=micros)
    if fields.get("expireTime") is not None:
        return parse_timestamp(fields["expireTime"], "expireTime")
    return None
