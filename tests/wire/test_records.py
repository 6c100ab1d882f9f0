import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbmtools import ValidationError
from rbmtools.wire import (
    FallbackRecord,
    RevokeRecord,
    SendRecord,
    event_record_line,
    parse_event_line,
    parse_outbox_record,
    parse_timestamp,
)


def test_doc_outbox_lines_parse_and_write_back(platform_examples):
    for line in platform_examples["outbox"]:
        record = parse_outbox_record(json.dumps(line))
        written = record.to_dict()
        assert written.keys() == line.keys()
        for key, value in line.items():
            if key.endswith(("Time", "At")):  # times are rewritten canonically (.000Z -> Z)
                assert parse_timestamp(written[key]) == parse_timestamp(value)
            else:
                assert written[key] == value


def test_the_three_event_line_shapes(platform_examples):
    receiver = parse_event_line(json.dumps(platform_examples["receiver_record"]))
    push = parse_event_line(json.dumps(platform_examples["push_envelope"]))
    decoded = parse_event_line(json.dumps(platform_examples["user_event"]))
    assert (receiver.shape, push.shape, decoded.shape) == ("receiver", "push", "decoded")
    assert receiver.verified is True
    assert push.received_at == datetime(2026, 11, 25, 10, 0, 2, 120000, tzinfo=UTC)
    assert decoded.received_at is None
    assert receiver.event.dedup_key == push.event.dedup_key == decoded.event.dedup_key


def test_receiver_record_round_trip(platform_examples):
    event = platform_examples["user_event"]
    line = event_record_line(event, datetime(2026, 11, 25, 10, 0, 2, 130000, tzinfo=UTC), True)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "receivedAt": "2026-11-25T10:00:02.130Z",
        "verified": True,
        "event": event,
    }
    assert parse_event_line(line).event.to_dict() == event


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "[1, 2]",
        '{"hello": 1}',
        '{"receivedAt": "x", "event": {}}',
        '{"message": {"data": "%%%"}}',
        '{"receivedAt": "2026-11-25T10:00:02Z",',
    ],
)
def test_lines_that_are_no_events(line):
    with pytest.raises(ValidationError):
        parse_event_line(line)


times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ids = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)
phones = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
labels = st.none() | st.text(min_size=1, max_size=20)


@given(
    st.builds(
        SendRecord,
        message_id=ids,
        phone=phones,
        agent_id=ids,
        send_time=times,
        status=st.sampled_from([200, 404, 403, 500]),
        use_case=labels,
        traffic_type=labels,
        ttl=st.none() | st.integers(1, 86400),
        expire_time=st.none() | times,
        experiment=labels,
        arm=labels,
        error=labels,
    )
    | st.builds(
        RevokeRecord,
        message_id=ids,
        phone=phones,
        agent_id=ids,
        requested_at=times,
        status=st.sampled_from([200, 404, 503]),
        attempt=st.none() | st.integers(1, 5),
    )
    | st.builds(
        FallbackRecord,
        message_id=ids,
        phone=phones,
        channel=st.just("sms"),
        sent_at=times,
        reason=st.sampled_from(["revoked", "inconclusive"]),
    )
)
def test_outbox_round_trip(record):
    line = record.to_line()
    assert None not in json.loads(line).values()  # absent, never null (a label may say "null")
    assert parse_outbox_record(line) == record


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"kind": "tweet"}, "kind"),
        ({"kind": "send", "messageId": "m"}, "phone"),
        (
            {
                "kind": "revoke",
                "messageId": "m",
                "phone": "+12223334444",
                "agentId": "a",
                "requestedAt": "2026-11-25T10:05:00Z",
                "status": "200",
            },
            "status",
        ),
        (
            {
                "kind": "fallback",
                "messageId": "m",
                "phone": "+12223334444",
                "channel": "sms",
                "sentAt": "later",
                "reason": "revoked",
            },
            "sentAt",
        ),
    ],
)
def test_invalid_outbox_records(obj, field):
    with pytest.raises(ValidationError) as info:
        parse_outbox_record(obj)
    assert info.value.field == field


def test_writers_are_strict():
    with pytest.raises(ValidationError, match="naive"):
        SendRecord(
            message_id="m",
            phone="+12223334444",
            agent_id="a",
            send_time=datetime(2026, 1, 1),
            status=200,
        ).to_line()
