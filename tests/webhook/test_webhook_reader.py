"""read_events: every line shape, gz segments, torn and malformed lines counted, dedup, frames."""

from __future__ import annotations

import gzip
import json
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_helpers import T0, make_event

from rbmtools import ValidationError
from rbmtools.webhook import FRAME_COLUMNS, events_frame, read_events
from rbmtools.wire import build_push, dumps_line, event_record_line


def receiver_line(index: int, **overrides) -> str:
    return event_record_line(make_event(index, **overrides), T0, True)


def push_line(index: int) -> str:
    envelope, _ = build_push(make_event(index), "tok", message_id="9", publish_time=T0)
    return dumps_line(envelope)


def decoded_line(index: int) -> str:
    return dumps_line(make_event(index))


def test_all_three_line_shapes_are_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(receiver_line(1) + push_line(2) + decoded_line(3))
    logged = list(read_events(path))
    assert [e.shape for e in logged] == ["receiver", "push", "decoded"]
    assert [e.event.event_id for e in logged] == ["evt-000001", "evt-000002", "evt-000003"]
    assert logged[0].verified is True and logged[1].verified is None
    assert logged[1].received_at == T0  # a push's publishTime


def test_a_directory_is_read_in_write_order_with_compressed_segments(tmp_path):
    day1 = tmp_path / "date=2026-11-25"
    day2 = tmp_path / "date=2026-11-26"
    day1.mkdir()
    day2.mkdir()
    (day1 / "events-000002.jsonl").write_text(receiver_line(2))
    with gzip.open(day1 / "events-000001.jsonl.gz", "wt") as stream:
        stream.write(receiver_line(1))
    (day2 / "events-000001.jsonl").write_text(receiver_line(3))
    (tmp_path / "_rejects").mkdir()
    (tmp_path / "_rejects" / "rejects.jsonl").write_text("not an event\n")
    (tmp_path / "notes.txt").write_text("ignored\n")
    reader = read_events(tmp_path)
    assert [e.event.event_id for e in reader] == ["evt-000001", "evt-000002", "evt-000003"]
    assert reader.counts.files == 3 and reader.counts.skipped == 0


def test_segment_numbers_sort_numerically(tmp_path):
    (tmp_path / "events-999999.jsonl").write_text(receiver_line(1))
    (tmp_path / "events-1000000.jsonl").write_text(receiver_line(2))
    assert [e.event.event_id for e in read_events(tmp_path)] == ["evt-000001", "evt-000002"]


def test_a_torn_last_line_and_malformed_lines_are_counted_and_kept_aside(tmp_path):
    path = tmp_path / "events-000001.jsonl"
    torn = receiver_line(4)[:37]
    path.write_text(
        receiver_line(1)
        + "this is not json\n"
        + "\n"
        + '{"json": "but no event"}\n'
        + receiver_line(2)
        + "[[[[\n"
        + receiver_line(3)
        + torn
    )
    reader = read_events(path)
    assert [e.event.event_id for e in reader] == ["evt-000001", "evt-000002", "evt-000003"]
    counts = reader.counts
    assert (counts.malformed, counts.torn, counts.blank, counts.lines) == (3, 1, 1, 8)
    assert counts.skipped == 4
    assert [(bad.line, bad.reason) for bad in counts.bad_lines] == [
        (2, "malformed"),
        (4, "malformed"),
        (6, "malformed"),
        (8, "torn"),
    ]
    assert counts.bad_lines[0].text == "this is not json\n"
    assert counts.bad_lines[-1].text == torn
    assert counts.as_dict()["skipped"] == 4


def test_a_complete_last_line_without_newline_is_an_event(tmp_path):
    path = tmp_path / "foreign.jsonl"
    path.write_text(receiver_line(1) + receiver_line(2).rstrip("\n"))
    reader = read_events(path)
    assert len(list(reader)) == 2 and reader.counts.torn == 0


def test_a_truncated_gzip_segment_counts_as_torn(tmp_path):
    path = tmp_path / "events-000001.jsonl.gz"
    data = gzip.compress("".join(receiver_line(i) for i in range(200)).encode())
    path.write_bytes(data[: len(data) // 2])
    reader = read_events(path)
    events = list(reader)
    assert reader.counts.torn >= 1
    assert [e.event.event_id for e in events] == [f"evt-{i:06d}" for i in range(len(events))]


def test_duplicates_are_dropped_by_default_and_kept_on_request(tmp_path):
    path = tmp_path / "dups.jsonl"
    # The same event as receiver record, as raw push, and again: one event.
    path.write_text(receiver_line(1) + push_line(1) + receiver_line(1) + receiver_line(2))
    reader = read_events(path)
    assert [e.shape for e in reader] == ["receiver", "receiver"]
    assert reader.counts.duplicates == 2
    everything = read_events(path, dedup=False)
    assert len(list(everything)) == 4 and everything.counts.duplicates == 0


def test_events_without_event_id_dedup_by_message_type_and_time(tmp_path):
    path = tmp_path / "no-ids.jsonl"
    event = make_event(1)
    del event["eventId"]
    line = event_record_line(event, T0, True)
    other = dict(event, eventType="READ")
    path.write_text(line + line + event_record_line(other, T0, True))
    assert [e.event.event_type for e in read_events(path)] == ["DELIVERED", "READ"]


def test_iterating_twice_rereads_and_resets_the_counts(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(receiver_line(1) + "junk\n")
    reader = read_events(path)
    assert len(list(reader)) == 1 and len(list(reader)) == 1
    assert reader.counts.malformed == 1


def test_the_frame_has_one_row_per_event_with_typed_columns(tmp_path):
    path = tmp_path / "a.jsonl"
    reply = {
        "agentId": "a",
        "senderPhoneNumber": "+12223334444",
        "messageId": "u-1",
        "sendTime": "2026-11-25T10:00:01.5Z",
        "suggestionResponse": {"postbackData": "yes", "text": "Yes"},
    }
    path.write_text(
        receiver_line(1)
        + receiver_line(1)
        + receiver_line(2, eventType="TTL_EXPIRATION_REVOKED")
        + dumps_line(reply)
        + "junk\n"
    )
    frame = read_events(path, as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert tuple(frame.columns) == FRAME_COLUMNS and len(frame) == 3
    assert str(frame["received_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["send_time"].dtype) == "datetime64[ns, UTC]"
    assert list(frame["kind"]) == ["user_event", "user_event", "user_message"]
    assert frame["event_type"].tolist()[:2] == ["DELIVERED", "TTL_EXPIRATION_REVOKED"]
    assert frame["message_kind"].tolist()[2] == "suggestionResponse"
    assert frame["verified"].tolist()[:2] == [True, True] and pd.isna(frame["verified"][2])
    assert frame["line"].tolist() == [1, 3, 4]
    counts = frame.attrs["read_counts"]
    assert counts["duplicates"] == 1 and counts["malformed"] == 1
    assert frame.attrs["bad_lines"][0]["line"] == 5
    assert events_frame(path).equals(frame)


def test_an_empty_log_gives_an_empty_frame_with_the_columns(tmp_path):
    frame = read_events(tmp_path, as_frame=True)
    assert len(frame) == 0 and tuple(frame.columns) == FRAME_COLUMNS


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        read_events(tmp_path / "nope")


def test_a_list_of_sources_is_read_in_order(tmp_path):
    (tmp_path / "a.jsonl").write_text(receiver_line(2))
    (tmp_path / "b.jsonl").write_text(receiver_line(1))
    ids = [e.event.event_id for e in read_events([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])]
    assert ids == ["evt-000002", "evt-000001"]


GARBAGE = st.sampled_from(
    ["", "not json", "{", '{"a": 1}', "[1, 2]", "null", '{"event": {}, "receivedAt": "x"}']
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 30).map(lambda i: ("event", i)), GARBAGE), max_size=60),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_property_valid_lines_come_back_once_and_garbage_is_counted(
    tmp_path_factory, items, torn_tail, seed
):
    rng = random.Random(seed)
    shapes = [receiver_line, push_line, decoded_line]
    lines, expected, seen, garbage, blank = [], [], set(), 0, 0
    for item in items:
        if isinstance(item, tuple):
            index = item[1]
            lines.append(rng.choice(shapes)(index))
            if index not in seen:
                seen.add(index)
                expected.append(f"evt-{index:06d}")
        else:
            lines.append(item + "\n")
            if item.strip():
                garbage += 1
            else:
                blank += 1
    text = "".join(lines)
    if torn_tail:
        text += receiver_line(99)[:25]
    path = tmp_path_factory.mktemp("prop") / "events.jsonl"
    path.write_text(text)
    reader = read_events(path)
    assert [e.event.event_id for e in reader] == expected
    assert reader.counts.malformed == garbage
    assert reader.counts.blank == blank
    assert reader.counts.torn == int(torn_tail)
    assert reader.counts.lines == len(items) + int(torn_tail)


def test_a_line_of_invalid_utf8_is_malformed_not_fatal(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(
        receiver_line(1).encode() + b"\xff\xfe\x00garbage\n" + receiver_line(2).encode()
    )
    reader = read_events(path)
    assert len(list(reader)) == 2 and reader.counts.malformed == 1
    assert json.dumps(reader.counts.as_dict())  # the counts are plain JSON


def test_duckdb_reads_the_receivers_log_with_the_documented_glob(tmp_path):
    """The analysis side globs ``**/*.jsonl``: the writer lock and rejects log stay out of it."""
    import duckdb

    from rbmtools.webhook import EventLog

    with EventLog(tmp_path, max_segment_bytes=1_000) as log:
        for index in range(12):
            log.append_wait(make_event(index))
    (tmp_path / "_rejects").mkdir()
    (tmp_path / "_rejects" / "rejects.log").write_text('{"reason": "signature_mismatch"}\n')
    query = "SELECT event.eventId AS id, verified FROM read_json(?) ORDER BY id"
    rows = duckdb.execute(query, [f"{tmp_path}/**/*.jsonl"]).fetchall()
    assert rows == [(f"evt-{i:06d}", True) for i in range(12)]
