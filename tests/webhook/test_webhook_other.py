"""Authentic pushes that are no event rbmtools logs: 200 and the other log, never 400 or 500.

Google redelivers anything but 200 for 7 days, so a signed push is never refused for its
content (issue 14 item 11, issue 15). What the event log holds is only what every reader takes
as an event; the rest is kept, fsynced, counted by reason, and counted by the analysis.
"""

from __future__ import annotations

import base64
import json
import math
import stat

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_helpers import T0, TOKEN, lines_of, make_event, signed

from rbmtools.analysis import load
from rbmtools.analysis.sql import PROBLEMS
from rbmtools.webhook import Receiver, read_events
from rbmtools.webhook.layout import OTHER_DIR, list_segments
from rbmtools.wire import SIGNATURE_HEADER, OtherRecord, sign


def post(rx: Receiver, body: bytes, headers: dict[str, str] | None = None):
    return requests.post(rx.url, data=body, headers=headers or {}, timeout=10)


def signed_data(data: bytes, attributes: dict[str, str] | None = None, token: str = TOKEN):
    """A push whose ``message.data`` is exactly ``data`` (JSON or not), signed."""
    message = {"data": base64.b64encode(data).decode(), "messageId": "ps-1"}
    if attributes:
        message["attributes"] = attributes
    body = json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"})
    return body.encode(), {SIGNATURE_HEADER: sign(data, token)}


def other_lines(log_dir) -> list[dict]:
    out = []
    for path in sorted((log_dir / OTHER_DIR).rglob("other-*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


UNREADABLE_TIMES = {
    "epoch number": 1764064805,
    "day first": "25/11/2026 10:00:05",
    "leap second": "2026-11-25T10:00:60Z",
    "empty string": "",
    "surrounding space": " 2026-11-25T10:00:05Z",
    "beyond year 9999 in UTC": "9999-12-31T23:59:59-01:00",  # was a 500 (OverflowError)
}


@pytest.mark.parametrize("case", list(UNREADABLE_TIMES))
def test_an_authentic_event_with_an_unreadable_time_is_kept_in_the_other_log(receiver, case):
    event = make_event(1, sendTime=UNREADABLE_TIMES[case])
    response = post(receiver, *signed(event))
    assert response.status_code == 200  # acknowledged: Google must not redeliver it
    assert lines_of(receiver.log_dir) == []  # ...but never stored as a normal event
    [line] = other_lines(receiver.log_dir)
    assert line["reason"] == "unreadable_time" and line["verified"] is True
    assert line["problem"].startswith("sendTime:")
    assert line["payload"] == event  # kept whole
    assert line["push"]["messageId"] == "1"
    stats = receiver.stats()
    assert stats["accepted"] == 0 and stats["other"]["unreadable_time"] == 1
    assert stats["other_total"] == 1 and stats["rejected_total"] == 0


def test_lower_case_t_and_z_are_in_the_grammar_and_logged_as_an_event(receiver):
    event = make_event(1, sendTime="2026-11-25t10:00:05z")
    assert post(receiver, *signed(event)).status_code == 200
    assert [line["event"] for line in lines_of(receiver.log_dir)] == [event]
    assert other_lines(receiver.log_dir) == []


def test_an_agent_launch_event_is_acknowledged_and_kept_with_its_attributes(receiver):
    launch = {"agentId": "my-agent@rbm.goog", "launchState": "LAUNCHED", "carrier": "X"}
    body, headers = signed_data(json.dumps(launch).encode(), {"type": "AGENT_LAUNCH_EVENT"})
    response = post(receiver, body, headers)
    assert response.status_code == 200  # was 400: Google would redeliver it for 7 days
    [line] = other_lines(receiver.log_dir)
    assert line["reason"] == "unmodelled" and line["payload"] == launch
    assert line["push"]["attributes"] == {"type": "AGENT_LAUNCH_EVENT"}
    assert line["push"]["subscription"] == "projects/p/subscriptions/s"
    assert lines_of(receiver.log_dir) == []


def test_an_unknown_event_type_of_a_user_event_is_still_an_event(receiver):
    event = make_event(2, event_type="SOMETHING_NEW")
    assert post(receiver, *signed(event)).status_code == 200
    assert [line["event"]["eventType"] for line in lines_of(receiver.log_dir)] == ["SOMETHING_NEW"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json at all", "not_json"),
        (b"\xff\xfe\x00garbage", "not_json"),
        (b"[" * 200_000, "not_json"),  # too deep to decode
        (b'["an", "array"]', "unmodelled"),
        (b'{"agentId": "a", "eventType": "DELIVERED", "eventId": "x"}', "unmodelled"),  # no phone
    ],
)
def test_authentic_data_that_is_no_event_is_kept_byte_for_byte(receiver, data, reason):
    response = post(receiver, *signed_data(data))
    assert response.status_code == 200
    [line] = other_lines(receiver.log_dir)
    assert line["reason"] == reason
    if "data" in line:
        assert base64.b64decode(line["data"]) == data
    else:
        assert line["payload"] == json.loads(data)
    assert receiver.stats()["other"][reason] == 1


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_signed_event_holding_nan_never_makes_the_log_invalid_json(receiver, number):
    event = json.dumps(make_event(3)).encode()[:-1] + b', "score": ' + number + b"}"
    response = post(receiver, *signed_data(event))
    assert response.status_code == 200
    assert lines_of(receiver.log_dir) == []
    [line] = other_lines(receiver.log_dir)
    assert line["reason"] == "not_strict_json" and "NaN or an infinite" in line["problem"]
    assert base64.b64decode(line["data"]) == event  # the bytes as signed, in strict JSON
    every_line = [
        raw
        for path in (
            *list_segments(receiver.log_dir),
            *(receiver.log_dir / OTHER_DIR).rglob("*.jsonl"),
        )
        for raw in path.read_text().splitlines()
    ]

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a log line")

    for raw in every_line:  # strict readers (BigQuery) accept every line
        json.loads(raw, parse_constant=refuse)


def test_unverified_pushes_of_that_kind_are_refused_with_a_reason(tmp_path):
    cases = {
        "bad_time": json.dumps(make_event(1, sendTime="25/11/2026 10:00:05")).encode(),
        "bad_event": json.dumps({"agentId": "a", "launchState": "LAUNCHED"}).encode(),
        "bad_json": b"not json at all",
    }
    with Receiver(tmp_path / "events", verify=False) as rx:
        for reason, data in cases.items():
            body, _ = signed_data(data)
            response = post(rx, body)  # no signature: nothing vouches for it
            assert response.status_code == 400, reason
            assert rx.stats()["rejected"][reason] == 1
        assert rx.stats()["other_total"] == 0
    assert other_lines(tmp_path / "events") == []


def test_other_log_files_are_not_world_readable(receiver):
    post(receiver, *signed_data(b"not json"))
    [path] = (receiver.log_dir / OTHER_DIR).rglob("other-*.jsonl")
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0


def test_other_record_line_falls_back_to_the_bytes_when_the_payload_is_not_strict_json():
    record = OtherRecord(T0, True, "unmodelled", "p", b'{"x": NaN}', {"x": math.nan})
    line = json.loads(record.to_line())
    assert "payload" not in line and base64.b64decode(line["data"]) == b'{"x": NaN}'
    assert (
        json.loads(OtherRecord(T0, True, "unmodelled", "p", b"{}", {}).to_line())["payload"] == {}
    )


def test_every_acknowledged_push_is_an_event_or_a_line_the_analysis_counts(receiver, tmp_path):
    """Nothing acknowledged is lost downstream: the analysis reads the events and counts the
    other log's lines (none of them as an event)."""
    pushes = [signed(make_event(i)) for i in range(5)]
    pushes.append(signed(make_event(10, sendTime="25/11/2026 10:00:05")))
    pushes.append(signed(make_event(11, sendTime=1764064805)))
    pushes.append(signed_data(b'{"agentId": "a"}', {"type": "AGENT_LAUNCH_EVENT"}))
    pushes.append(signed_data(json.dumps(make_event(12)).encode()[:-1] + b', "x": NaN}'))
    for body, headers in pushes:
        assert post(receiver, body, headers).status_code == 200
    stats = receiver.stats()
    assert stats["accepted"] + stats["other_total"] == len(pushes)
    outbox = tmp_path / "outbox.jsonl"
    outbox.write_text("")
    with load(receiver.log_dir, outbox) as data:
        report = data.report
    assert report.events == stats["accepted"] == 5
    assert report.lines - report.events - report.duplicates == stats["other_total"] == 4
    assert dict(report.malformed_problems) == {PROBLEMS["other_log"]: 4}  # said where they are
    reader = read_events(receiver.log_dir)  # the event readers skip the other log
    assert len(list(reader)) == 5 and reader.counts.malformed == 0


any_text = st.text(st.characters(exclude_categories=()), max_size=20)  # lone surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(["sendTime", "eventType", "messageId", "senderPhoneNumber", "eventId"])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(json_values, st.tuples(fields, json_values)))
def test_any_authentic_payload_is_acknowledged_and_kept_somewhere(receiver, mutation):
    """Whatever a signed push carries: 200, and one line in the event log or the other log."""
    if isinstance(mutation, tuple):  # a real event with one field replaced by anything
        payload = make_event(5) | {mutation[0]: mutation[1]}
    else:
        payload = mutation
    data = json.dumps(payload).encode()  # NaN and Infinity included, as Python writes them
    before = receiver.stats()
    assert post(receiver, *signed_data(data)).status_code == 200
    after = receiver.stats()
    kept = after["accepted"] + after["other_total"] - before["accepted"] - before["other_total"]
    assert kept == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"clientToken": "\\ud800", "secret": "x"}',  # a handshake with a lone surrogate
        b'{"message": {"data": "eA==", "attributes": {"\\ud800": "1"}}}',  # rejected, logged
        b'{"message": {"data": "eA==", "messageId": "\\udcff"}, "subscription": "\\ud800"}',
    ],
)
def test_lone_surrogates_in_a_request_are_never_a_500(receiver, body):
    response = post(receiver, body)
    assert response.status_code in (400, 401, 403)
    assert post(receiver, *signed(make_event(1))).status_code == 200


def test_a_handshake_whose_secret_is_not_unicode_is_refused_not_a_500(receiver):
    body = json.dumps({"clientToken": TOKEN, "secret": "\ud800"}).encode()
    assert post(receiver, body).status_code == 400


def test_authentic_text_that_utf8_cannot_carry_goes_to_the_other_log(receiver):
    data = json.dumps(make_event(4) | {"text": "broken \ud83d emoji"}).encode()  # ASCII escapes
    body, headers = signed_data(data)
    envelope = json.loads(body)
    envelope["message"]["attributes"] = {"type": "\udcff"}  # the unsigned envelope, too
    response = post(receiver, json.dumps(envelope).encode(), headers)
    assert response.status_code == 200
    [line] = other_lines(receiver.log_dir)
    assert line["reason"] == "not_strict_json" and "not valid Unicode" in line["problem"]
    assert base64.b64decode(line["data"]) == data
    assert line["push"]["attributes"] == {"type": "\\udcff"}
    assert lines_of(receiver.log_dir) == []
