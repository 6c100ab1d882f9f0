from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbmtools import ValidationError
from rbmtools.wire import (
    EventType,
    ServerEvent,
    UserEvent,
    UserMessage,
    event_payload,
    parse_event,
    user_message_payload,
)

T = datetime(2026, 11, 25, 10, 0, 1, 45123, tzinfo=UTC)


def test_doc_user_event(platform_examples):
    event = parse_event(platform_examples["user_event"])
    assert type(event) is UserEvent
    assert event.event_type == EventType.DELIVERED
    assert event.send_time == T
    assert event.agent_id == "my-agent"
    assert event.dedup_key == ("eventId", "EVT-ID")


def test_doc_server_event(platform_examples):
    event = parse_event(platform_examples["server_event"])
    assert type(event) is ServerEvent
    assert event.event_type == "TTL_EXPIRATION_REVOKED"
    assert event.phone == "+12223334444"


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_round_trips(kind):
    payload = event_payload(
        agent_id="a",
        phone="+12223334444",
        event_type=kind,
        event_id="e",
        send_time=T,
        message_id=None if kind == EventType.IS_TYPING else "m",
    )
    phone_key = "phoneNumber" if kind.is_server_event else "senderPhoneNumber"
    assert payload[phone_key] == "+12223334444"
    event = parse_event(payload)
    assert isinstance(event, ServerEvent) == kind.is_server_event
    assert event.event_type == kind
    assert event.to_dict() == payload


@pytest.mark.parametrize("kind", ["text", "suggestionResponse", "location", "userFile"])
def test_user_messages(kind):
    content = {
        "text": "hello",
        "suggestionResponse": {"postbackData": "yes", "text": "Yes"},
        "location": {"latitude": 1.5, "longitude": 2.5},
        "userFile": {"payload": {"fileUri": "https://x"}},
    }[kind]
    payload = user_message_payload(
        agent_id="a", phone="+12223334444", message_id="u1", send_time=T, kind=kind, content=content
    )
    event = parse_event(payload)
    assert isinstance(event, UserMessage)
    assert (event.kind, event.content) == (kind, content)


@given(st.from_regex(r"[A-Z_]{3,30}", fullmatch=True))
def test_unknown_event_types_are_kept(kind):
    user = parse_event({"senderPhoneNumber": "+12223334444", "eventType": kind, "eventId": "x"})
    server = parse_event({"phoneNumber": "+12223334444", "eventType": kind})
    assert user.event_type == kind and server.event_type == kind


def test_dedup_key_without_event_id():
    event = parse_event(
        {
            "senderPhoneNumber": "+12223334444",
            "eventType": "READ",
            "messageId": "m",
            "sendTime": "2026-11-25T10:00:01.045123Z",
        }
    )
    assert event.dedup_key == ("event", "m", "READ", T)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ("text", "event"),
        ({}, "senderPhoneNumber"),
        ({"senderPhoneNumber": "+12223334444"}, "eventType"),
        ({"phoneNumber": "+12223334444"}, "eventType"),
        ({"senderPhoneNumber": "123", "eventType": "READ"}, "senderPhoneNumber"),
        ({"senderPhoneNumber": "+12223334444", "eventType": "READ", "sendTime": "x"}, "sendTime"),
        ({"senderPhoneNumber": "+12223334444", "eventType": 7}, "eventType"),
    ],
)
def test_not_events(obj, field):
    with pytest.raises(ValidationError) as info:
        parse_event(obj)
    assert info.value.field == field
