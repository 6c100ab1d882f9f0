"""Timestamps and durations in the forms the RBM API and the logs use.

Timestamps are RFC 3339: ``2026-11-25T10:00:01.045123456Z``, 0 to 9 fractional digits, ``Z`` or
an offset such as ``+05:30``. They parse to aware UTC ``datetime`` values; Python keeps
microseconds, so digits beyond the sixth (nanoseconds) are truncated. They are written back as
protobuf's JSON mapping does: UTC, ``Z``, and 0, 3 or 6 fractional digits.

This is the one timestamp grammar of rbmtools (the receiver stores as events only what it
reads; the analysis reads the same in SQL): ``TIMESTAMP_PATTERN`` in ASCII digits, ``T``, ``t``
or a space between date and time, ``Z``, ``z`` or ``+hh:mm``/``-hh:mm``, and a real calendar
date and time (month 01-12, a day the month has, hour 00-23, minute and second 00-59: no leap
second ``:60``; offset below 24 h) whose UTC instant lies in years 0001-9999. Nothing else is a
timestamp: no surrounding whitespace, no epoch numbers, no ``25/11/2026 10:00``, no empty string.

Durations are protobuf ``Duration`` strings (``"600s"``, ``"3.5s"``, up to 9 fractional
digits). rbmtools also accepts seconds as numbers, ``timedelta``, and human strings such as
``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` or ``"250ms"``. Internally a duration is
an exact integer of nanoseconds, so ``"0.000000001s"`` survives a round trip.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from rbmtools.errors import ValidationError

__all__ = [
    "NANOS_PER_SECOND",
    "TIMESTAMP_PATTERN",
    "duration_nanos",
    "duration_seconds",
    "format_duration",
    "format_duration_nanos",
    "format_timestamp",
    "is_proto_duration",
    "parse_duration",
    "parse_timestamp",
    "to_utc",
    "utc_now",
]

NANOS_PER_SECOND = 1_000_000_000

#: The shape of a timestamp (the whole string must match; see the module doc for the ranges).
TIMESTAMP_PATTERN = (
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_PROTO_DURATION = re.compile(r"(?P<secs>\d+)(?:\.(?P<frac>\d{1,9}))?s")
_HUMAN_PART = re.compile(r"\s*(?P<num>\d+(?:\.\d{1,9})?)\s*(?P<unit>ms|d|h|m|s)")
_UNIT_NANOS = {
    "d": 86_400 * NANOS_PER_SECOND,
    "h": 3_600 * NANOS_PER_SECOND,
    "m": 60 * NANOS_PER_SECOND,
    "s": NANOS_PER_SECOND,
    "ms": NANOS_PER_SECOND // 1000,
}


def utc_now() -> datetime:
    """The current wall-clock time as an aware UTC datetime."""
    return datetime.now(UTC)


def to_utc(value: datetime, field: str = "time") -> datetime:
    """Convert an aware datetime to UTC; naive datetimes are refused (their zone is a guess)."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "must be a datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(
            field,
            value,
            "is a naive datetime; give it a time zone, e.g. datetime.now(timezone.utc)",
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(field, value, "is outside the years 0001-9999 in UTC") from None


def parse_timestamp(value: str | datetime, field: str = "time") -> datetime:
    """Parse an RFC 3339 timestamp (or an aware datetime) to an aware UTC datetime.

    The grammar is exactly the module doc's; anything else raises ``ValidationError``.
    Fractional digits beyond microseconds are truncated, not rounded.
    """
    if isinstance(value, datetime):
        return to_utc(value, field)
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be an RFC 3339 timestamp string")
    match = _TIMESTAMP.fullmatch(value)
    if not match:
        raise ValidationError(
            field, value, "must be an RFC 3339 timestamp like '2026-11-25T10:00:00.5Z'"
        )
    micros = int((match["frac"] or "").ljust(6, "0")[:6])
    zone = match["zone"].upper().replace("Z", "+00:00")
    text = f"{match['date']}T{match['hour']}:{match['minute']}:{match['second']}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(field, value, f"is not a valid date or time ({exc})") from None
    # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC: refused by to_utc
    return to_utc(parsed.replace(microsecond=micros), field)


def format_timestamp(value: datetime, field: str = "time") -> str:
    """Write an aware datetime as UTC RFC 3339 with ``Z`` and 0, 3 or 6 fractional digits."""
    utc = to_utc(value, field)
    base = utc.strftime("%Y-%m-%dT%H:%M:%S")
    micros = utc.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def _nanos_from_decimal(number: Decimal, value: object, field: str) -> int:
    if not number.is_finite():
        raise ValidationError(field, value, "must be a finite duration")
    if number < 0:
        raise ValidationError(field, value, "must not be negative")
    return int(number * NANOS_PER_SECOND)


def duration_nanos(value: object, field: str = "duration") -> int:
    """Exact nanoseconds of a duration given in any accepted form (see the module doc)."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "must be a duration, not a boolean")
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValidationError(field, value, "must not be negative")
        whole = (value.days * 86_400 + value.seconds) * NANOS_PER_SECOND
        return whole + value.microseconds * 1000
    if isinstance(value, int):
        return _nanos_from_decimal(Decimal(value), value, field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, value, "must be a finite duration")
        return _nanos_from_decimal(Decimal(repr(value)), value, field)
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be seconds, a timedelta or a string like '10m'")
    text = value.strip()
    proto = _PROTO_DURATION.fullmatch(text)
    if proto:
        frac = (proto["frac"] or "").ljust(9, "0")
        return int(proto["secs"]) * NANOS_PER_SECOND + int(frac)
    try:
        return _nanos_from_decimal(Decimal(text), value, field)
    except InvalidOperation:
        pass
    total, position = 0, 0
    for part in _HUMAN_PART.finditer(text):
        if part.start() != position:
            break
        total += int(Decimal(part["num"]) * _UNIT_NANOS[part["unit"]])
        position = part.end()
    if position == 0 or position != len(text):
        raise ValidationError(
            field,
            value,
            "must be a duration like '600s', '3.5s', '10m', '2h', '1d' or '1h30m'",
        )
    return total


def is_proto_duration(value: object) -> bool:
    """True for a protobuf Duration in its JSON form: seconds, 0-9 fractional digits, ``s``.

    This is the only form the RBM API reads for ``ttl`` (``"600s"``, ``"1.5s"``); numbers and
    unit-less strings are refused by Google's front end.
    """
    return isinstance(value, str) and _PROTO_DURATION.fullmatch(value) is not None


def format_duration(value: object, field: str = "duration") -> str:
    """The canonical protobuf Duration string: seconds, 0/3/6/9 fractional digits, ``s``."""
    return format_duration_nanos(duration_nanos(value, field))


def format_duration_nanos(nanos: int) -> str:
    """The canonical protobuf Duration string of a non-negative number of nanoseconds."""
    seconds, frac = divmod(nanos, NANOS_PER_SECOND)
    if frac == 0:
        return f"{seconds}s"
    if frac % 1_000_000 == 0:
        return f"{seconds}.{frac // 1_000_000:03d}s"
    if frac % 1000 == 0:
        return f"{seconds}.{frac // 1000:06d}s"
    return f"{seconds}.{frac:09d}s"


def parse_duration(value: object, field: str = "duration") -> timedelta:
    """A duration as a ``timedelta`` (nanoseconds truncated to microseconds)."""
    return timedelta(microseconds=duration_nanos(value, field) // 1000)


def duration_seconds(value: object, field: str = "duration") -> float:
    """A duration in (float) seconds, handy for arithmetic and plots."""
    return duration_nanos(value, field) / NANOS_PER_SECOND
