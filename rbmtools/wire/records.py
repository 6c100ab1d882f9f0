"""The two logs every analysis reads, defined once for writers and readers.

The event log holds what the platform told the webhook; rbmtools writes the receiver's record
``{"receivedAt", "verified", "event"}`` and reads liberally any of three line shapes (that
record, a raw Pub/Sub push body, or a bare decoded event). Beside it, the other log holds the
authentic pushes the receiver acknowledged but could not log as events (``OtherRecord``). The
outbox log holds what the agent did: ``send``, ``revoke`` and ``fallback`` records. Writers are
strict (strict JSON: never ``NaN`` or ``Infinity``; UTC times with ``Z``; camelCase keys; absent
rather than null optional fields); readers accept extra keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from rbmtools.errors import ValidationError
from rbmtools.wire.events import Event, parse_event
from rbmtools.wire.phone import normalize_phone
from rbmtools.wire.text import require_unicode
from rbmtools.wire.times import format_duration, format_timestamp, parse_timestamp
from rbmtools.wire.webhook import parse_push

__all__ = [
    "EVENT_LINE_SHAPES",
    "OTHER_REASONS",
    "OUTBOX_KINDS",
    "EventRecord",
    "FallbackRecord",
    "LoggedEvent",
    "OtherRecord",
    "OutboxRecord",
    "RevokeRecord",
    "SendRecord",
    "dumps_line",
    "event_record_line",
    "parse_event_line",
    "parse_outbox_record",
]

EVENT_LINE_SHAPES = ("receiver", "push", "decoded")


def dumps_line(obj: Mapping[str, Any]) -> str:
    """One JSON Lines line: compact, UTF-8 friendly, ending in a newline.

    Strict JSON in UTF-8 only: a ``NaN`` or infinite number raises ``ValueError``, a lone
    surrogate ``ValidationError`` (strict readers such as BigQuery refuse the bare ``NaN``
    Python would otherwise write, and UTF-8 cannot carry a lone surrogate).
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return require_unicode(text, "line") + "\n"


# ------------------------------------------------------------------------------ the event log


@dataclass(frozen=True)
class EventRecord:
    """The receiver's record of one push: when it arrived, whether it was verified, the event."""

    received_at: datetime
    verified: bool
    event: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "receivedAt": format_timestamp(self.received_at, "receivedAt"),
            "verified": bool(self.verified),
            "event": dict(self.event),
        }


def event_record_line(event: Mapping[str, Any], received_at: datetime, verified: bool) -> str:
    """The event-log line the receiver appends for one verified (or trusted) event."""
    return dumps_line(EventRecord(received_at, verified, event).to_dict())


#: Why an authentic push went to the other log: not an RBM user or server event rbmtools
#: models (an agent launch event, a payload without a phone...), an event time outside the
#: timestamp grammar, what a strict UTF-8 JSON line cannot carry (NaN, Infinity, a lone
#: surrogate), no JSON at all.
OTHER_REASONS = ("unmodelled", "unreadable_time", "not_strict_json", "not_json")


@dataclass(frozen=True)
class OtherRecord:
    """One authentic push the receiver acknowledged but did not log as an event.

    ``payload`` is the decoded ``message.data`` JSON; when that cannot be written as strict
    JSON (or is no JSON), the line carries ``data``, the base64 of the decoded bytes, instead.
    ``push`` keeps what the envelope said (``messageId``, ``publishTime``, ``attributes``,
    ``subscription``): agent launch events are named by ``attributes.type``.
    """

    received_at: datetime
    verified: bool
    reason: str
    problem: str
    data: bytes = field(repr=False)
    payload: Any = field(default=None, repr=False)
    push: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, *, with_payload: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "receivedAt": format_timestamp(self.received_at, "receivedAt"),
            "verified": bool(self.verified),
            "reason": self.reason,
            "problem": self.problem,
        }
        if with_payload and self.payload is not None:
            out["payload"] = self.payload
        else:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.push:
            out["push"] = dict(self.push)
        return out

    def to_line(self) -> str:
        """The other-log line: with ``payload`` when it is strict JSON, else with ``data``."""
        try:
            return dumps_line(self.to_dict())
        except (ValueError, RecursionError):
            return dumps_line(self.to_dict(with_payload=False))


@dataclass(frozen=True)
class LoggedEvent:
    """One event read back from an event log, whatever shape its line had."""

    event: Event
    received_at: datetime | None
    verified: bool | None
    shape: str


def _loads(line: str | bytes | Mapping[str, Any]) -> Any:
    if isinstance(line, Mapping):
        return line
    try:
        return json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        shown = line[:60] if isinstance(line, str | bytes) else line
        raise ValidationError("line", shown, f"is not JSON ({exc})") from None


def parse_event_line(line: str | bytes | Mapping[str, Any]) -> LoggedEvent:
    """Read one event-log line of any accepted shape; ``ValidationError`` if it is no event."""
    obj = _loads(line)
    if not isinstance(obj, Mapping):
        raise ValidationError("line", obj, "must be a JSON object")
    if "event" in obj and "receivedAt" in obj:
        received = parse_timestamp(obj["receivedAt"], "receivedAt")
        verified = obj.get("verified")
        if verified is not None and not isinstance(verified, bool):
            raise ValidationError("verified", verified, "must be true or false")
        return LoggedEvent(parse_event(obj["event"]), received, verified, "receiver")
    if "message" in obj:
        push = parse_push(obj)
        return LoggedEvent(parse_event(push.event()), push.publish_time, None, "push")
    return LoggedEvent(parse_event(obj), None, None, "decoded")


# ------------------------------------------------------------------------------ the outbox log


def _spec(key: str, kind: str = "str", *, required: bool = False) -> Any:
    metadata = {"key": key, "kind": kind, "required": required}
    return field(metadata=metadata) if required else field(default=None, metadata=metadata)


def _read_value(kind: str, key: str, value: Any) -> Any:
    if kind == "time":
        return parse_timestamp(value, key)
    if kind == "phone":
        return normalize_phone(value, key)
    if kind == "duration":
        return format_duration(value, key)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(key, value, "must be an integer")
        return value
    if not isinstance(value, str):
        raise ValidationError(key, value, "must be a string")
    return require_unicode(value, key)


def _write_value(kind: str, key: str, value: Any) -> Any:
    if kind == "time":
        return format_timestamp(value, key)
    if kind == "duration":
        return format_duration(value, key)
    return value


class _OutboxBase:
    kind: ClassVar[str]

    def __post_init__(self) -> None:
        """Writers are strict: check and canonicalise every field at construction."""
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            key = spec.metadata["key"]
            if value is None:
                if spec.metadata["required"]:
                    raise ValidationError(key, None, f"is required in a {self.kind} record")
                continue
            object.__setattr__(self, spec.name, _read_value(spec.metadata["kind"], key, value))

    def to_dict(self) -> dict[str, Any]:
        """The record as its JSON object: ``kind`` first, absent optional fields left out."""
        out: dict[str, Any] = {"kind": self.kind}
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if value is not None:
                key = spec.metadata["key"]
                out[key] = _write_value(spec.metadata["kind"], key, value)
        return out

    def to_line(self) -> str:
        return dumps_line(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Any:
        """Validate and read a record; unknown keys are ignored (readers are liberal)."""
        values = {spec.name: obj.get(spec.metadata["key"]) for spec in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)


@dataclass(frozen=True)
class SendRecord(_OutboxBase):
    """One create call. ``status`` 404 means the phone was not RCS-reachable (also when a
    capability check said so and no create call was made). ``policy_version`` is the TTL
    policy the send applied (``use_case`` names its rule)."""

    kind: ClassVar[str] = "send"
    message_id: str = _spec("messageId", required=True)
    phone: str = _spec("phone", "phone", required=True)
    agent_id: str = _spec("agentId", required=True)
    send_time: datetime = _spec("sendTime", "time", required=True)
    status: int = _spec("status", "int", required=True)
    use_case: str | None = _spec("useCase")
    traffic_type: str | None = _spec("trafficType")
    ttl: str | None = _spec("ttl", "duration")
    expire_time: datetime | None = _spec("expireTime", "time")
    experiment: str | None = _spec("experiment")
    arm: str | None = _spec("arm")
    error: str | None = _spec("error")
    policy_version: str | None = _spec("policyVersion")


@dataclass(frozen=True)
class RevokeRecord(_OutboxBase):
    """One revoke call: 200 revoked, 404 already delivered, anything else an error."""

    kind: ClassVar[str] = "revoke"
    message_id: str = _spec("messageId", required=True)
    phone: str = _spec("phone", "phone", required=True)
    agent_id: str = _spec("agentId", required=True)
    requested_at: datetime = _spec("requestedAt", "time", required=True)
    status: int = _spec("status", "int", required=True)
    attempt: int = _spec("attempt", "int")
    experiment: str | None = _spec("experiment")
    arm: str | None = _spec("arm")
    error: str | None = _spec("error")


@dataclass(frozen=True)
class FallbackRecord(_OutboxBase):
    """A message sent another way (SMS): ``reason`` is ``revoked`` or ``inconclusive`` (the RBM
    message was taken back) or ``not_rcs`` (the phone has no RCS: the send was answered 404)."""

    kind: ClassVar[str] = "fallback"
    message_id: str = _spec("messageId", required=True)
    phone: str = _spec("phone", "phone", required=True)
    channel: str = _spec("channel", required=True)
    sent_at: datetime = _spec("sentAt", "time", required=True)
    reason: str = _spec("reason", required=True)
    agent_id: str | None = _spec("agentId")
    experiment: str | None = _spec("experiment")
    arm: str | None = _spec("arm")


OutboxRecord = SendRecord | RevokeRecord | FallbackRecord
OUTBOX_KINDS: dict[str, type[OutboxRecord]] = {
    "send": SendRecord,
    "revoke": RevokeRecord,
    "fallback": FallbackRecord,
}


def parse_outbox_record(line: str | bytes | Mapping[str, Any]) -> OutboxRecord:
    """Read one outbox line (or object) into its record type; ``ValidationError`` if invalid."""
    obj = _loads(line)
    if not isinstance(obj, Mapping):
        raise ValidationError("line", obj, "must be a JSON object")
    kind = obj.get("kind")
    record_type = OUTBOX_KINDS.get(kind) if isinstance(kind, str) else None
    if record_type is None:
        raise ValidationError("kind", kind, f"must be one of {', '.join(OUTBOX_KINDS)}")
    return record_type.from_dict(obj)
