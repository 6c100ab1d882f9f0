"""Decoded webhook payloads: what the platform says happened, as typed records.

Three kinds arrive. User events carry ``senderPhoneNumber`` and an ``eventType`` (DELIVERED,
READ, IS_TYPING, SUBSCRIBE, UNSUBSCRIBE); user messages carry ``senderPhoneNumber`` and one of
``text``, ``suggestionResponse``, ``location`` or ``userFile`` instead; server events carry
``phoneNumber`` (not ``senderPhoneNumber``) and an ``eventType`` such as TTL_EXPIRATION_REVOKED.
An ``eventType`` rbmtools does not know is kept as its string, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.wire.phone import normalize_phone
from rbmtools.wire.times import format_timestamp, parse_timestamp

__all__ = [
    "USER_MESSAGE_KINDS",
    "Event",
    "EventType",
    "ServerEvent",
    "UserEvent",
    "UserMessage",
    "event_payload",
    "parse_event",
    "user_message_payload",
]

USER_MESSAGE_KINDS = ("text", "suggestionResponse", "location", "userFile")


class EventType(StrEnum):
    """Every eventType of the RBM webhook that rbmtools knows."""

    DELIVERED = "DELIVERED"
    READ = "READ"
    IS_TYPING = "IS_TYPING"
    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    TTL_EXPIRATION_REVOKED = "TTL_EXPIRATION_REVOKED"
    TTL_EXPIRATION_REVOKE_FAILED = "TTL_EXPIRATION_REVOKE_FAILED"

    @property
    def is_server_event(self) -> bool:
        """True for the platform's own notifications (payload names ``phoneNumber``)."""
        return self.name.startswith("TTL_")


_SERVER_EVENT_TYPES = frozenset(e.value for e in EventType if e.is_server_event)


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(key, value, "must be a string")
    return value


def _optional_time(obj: Mapping[str, Any], key: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else parse_timestamp(value, key)


@dataclass(frozen=True)
class _Base:
    agent_id: str | None
    phone: str
    message_id: str | None
    send_time: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The payload as it travels (the original object, keys and all)."""
        return dict(self.raw)


@dataclass(frozen=True)
class UserEvent(_Base):
    """DELIVERED, READ, IS_TYPING, SUBSCRIBE, UNSUBSCRIBE (or an unknown user eventType)."""

    event_type: str = ""
    event_id: str | None = None

    @property
    def dedup_key(self) -> tuple[Any, ...]:
        """Same eventId, or same messageId + eventType + sendTime, is the same event."""
        if self.event_id:
            return ("eventId", self.event_id)
        return ("event", self.message_id, self.event_type, self.send_time)


@dataclass(frozen=True)
class ServerEvent(UserEvent):
    """TTL_EXPIRATION_REVOKED, TTL_EXPIRATION_REVOKE_FAILED (or an unknown server eventType)."""


@dataclass(frozen=True)
class UserMessage(_Base):
    """A reply from the user: ``kind`` names which content field it carried."""

    kind: str = "text"
    content: Any = None

    @property
    def dedup_key(self) -> tuple[Any, ...]:
        return ("userMessage", self.message_id, self.send_time)


Event = UserEvent | ServerEvent | UserMessage


def parse_event(obj: object) -> Event:
    """Parse a decoded payload; raise ``ValidationError`` when it is not an RBM event at all."""
    if not isinstance(obj, Mapping):
        raise ValidationError("event", obj, "must be a JSON object")
    common = {
        "agent_id": _optional_str(obj, "agentId"),
        "message_id": _optional_str(obj, "messageId"),
        "send_time": _optional_time(obj, "sendTime"),
        "raw": obj,
    }
    if "senderPhoneNumber" in obj:
        phone = normalize_phone(obj["senderPhoneNumber"], "senderPhoneNumber")
        event_type = _optional_str(obj, "eventType")
        if event_type:
            return UserEvent(
                phone=phone, event_type=event_type, event_id=_optional_str(obj, "eventId"), **common
            )
        for kind in USER_MESSAGE_KINDS:
            if kind in obj:
                return UserMessage(phone=phone, kind=kind, content=obj[kind], **common)
        raise ValidationError(
            "eventType", None, "a user payload needs an eventType or a message content field"
        )
    if "phoneNumber" in obj:
        phone = normalize_phone(obj["phoneNumber"], "phoneNumber")
        event_type = _optional_str(obj, "eventType")
        if not event_type:
            raise ValidationError("eventType", obj.get("eventType"), "a server event needs one")
        return ServerEvent(
            phone=phone, event_type=event_type, event_id=_optional_str(obj, "eventId"), **common
        )
    raise ValidationError(
        "senderPhoneNumber", None, "an RBM event names senderPhoneNumber or phoneNumber"
    )


def event_payload(
    *,
    agent_id: str,
    phone: str,
    event_type: str | EventType,
    event_id: str,
    send_time: datetime,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The decoded payload of a user or server event, as the platform sends it.

    Server events (TTL_*) name the phone ``phoneNumber``; user events ``senderPhoneNumber``.
    """
    kind = str(event_type)
    is_server = kind in _SERVER_EVENT_TYPES
    payload: dict[str, Any] = {"agentId": agent_id}
    payload["phoneNumber" if is_server else "senderPhoneNumber"] = normalize_phone(phone)
    if message_id is not None:
        payload["messageId"] = message_id
    payload["eventId"] = event_id
    payload["sendTime"] = format_timestamp(send_time, "sendTime")
    payload["eventType"] = kind
    return payload


def user_message_payload(
    *,
    agent_id: str,
    phone: str,
    message_id: str,
    send_time: datetime,
    kind: str,
    content: Any,
) -> dict[str, Any]:
    """The decoded payload of a user's reply (``kind`` is one of ``USER_MESSAGE_KINDS``)."""
    if kind not in USER_MESSAGE_KINDS:
        raise ValidationError("kind", kind, f"must be one of {', '.join(USER_MESSAGE_KINDS)}")
    return {
        "agentId": agent_id,
        "senderPhoneNumber": normalize_phone(phone),
        "messageId": message_id,
        "sendTime": format_timestamp(send_time, "sendTime"),
        kind: content,
    }
