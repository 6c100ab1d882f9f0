"""Loading: the three line shapes, formats, paths, duplicates, malformed lines, the report."""

from __future__ import annotations

import gzip
import json

import pytest

from rbmtools.analysis import load
from rbmtools.errors import ValidationError

from .conftest import at


def _one_of_each_shape(logs):
    logs.send("m1")
    logs.send("m2")
    logs.send("m3")
    logs.event("m1", "DELIVERED", 1.0, shape="receiver")
    logs.event("m2", "DELIVERED", 2.0, shape="push")
    logs.event("m3", "DELIVERED", 3.0, shape="decoded")


def test_all_three_line_shapes_are_read(logs):
    _one_of_each_shape(logs)
    with load(*logs.write()) as data:
        frame = data.lifecycle().set_index("messageId")
        assert data.report.events == 3 and data.report.malformed == 0
    assert frame.loc["m1", "latencySeconds"] == pytest.approx(1.0)
    assert frame.loc["m2", "latencySeconds"] == pytest.approx(2.0)
    assert frame.loc["m3", "latencySeconds"] == pytest.approx(3.0)
    assert set(frame.outcome) == {"delivered"}


def test_duplicates_count_once_by_event_id_and_by_key_without_one(logs):
    logs.send("m1")
    payload = logs.event("m1", "DELIVERED", 1.0)
    logs.line(payload, shape="push", received=9.0)  # the same event, pushed again
    logs.line(payload, shape="decoded")
    logs.event("m1", "READ", 5.0, event_id=None)
    logs.event("m1", "READ", 5.0, event_id=None, received=7.0)  # same messageId+type+sendTime
    logs.event("m1", "READ", 6.0, event_id=None)  # a different sendTime: another event
    with load(*logs.write()) as data:
        report = data.report
        row = data.lifecycle().iloc[0]
    assert (report.lines, report.events, report.duplicates) == (6, 3, 3)
    assert row["events"] == 3 and row["duplicateEvents"] == 3
    assert row["readAt"] == at(5.0)


def test_malformed_lines_are_counted_and_set_aside(logs, tmp_path):
    logs.send("m1")
    logs.event("m1", "DELIVERED", 1.0)
    bad = [
        "not json at all",
        '{"hello": "world"}',
        "[1, 2, 3]",
        '{"message": {"data": "%%%not-base64%%%", "messageId": "1"}}',
        '{"receivedAt": "yesterday", "event": {"senderPhoneNumber": "+12223334444"}}',
        '{"receivedAt": "2026-11-25T10:00:00Z", "event": {"senderPhoneNumber": "+1',
    ]
    for text in bad:
        logs.raw_event(text)
    logs.raw_event("")  # a blank line is not a line of the log
    logs.outbox.append('{"kind": "send", "messageId": "no-time"}\n')
    logs.outbox.append("garbage\n")
    quarantine = tmp_path / "quarantine.jsonl"
    with load(*logs.write(), quarantine=quarantine) as data:
        report = data.report
        kept = data.malformed()
        lifecycle = data.lifecycle()
    assert (report.lines, report.events, report.malformed) == (7, 1, 6)
    assert report.outbox_malformed == 2 and report.outbox_records == 1
    assert list(kept.loc[kept.log == "events", "text"]) == bad
    assert list(kept.loc[kept.log == "events", "line"]) == [2, 3, 4, 5, 6, 7]
    written = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert [w["text"] for w in written] == [
        *bad,
        '{"kind": "send", "messageId": "no-time"}',
        "garbage",
    ]
    assert lifecycle.outcome.tolist() == ["delivered"]


def test_gzip_parquet_directories_and_globs(logs, tmp_path):
    _one_of_each_shape(logs)
    events, outbox = logs.write()
    day = tmp_path / "receiver" / "date=2026-11-25"
    day.mkdir(parents=True)
    with gzip.open(day / "events-00001.jsonl.gz", "wt") as handle:
        handle.write(events.read_text())
    with load(tmp_path / "receiver", outbox) as data:
        assert data.report.files == 1 and data.report.events == 3
        data.engine.write_parquet(
            "SELECT * FROM (SELECT * FROM rbm_event_rows) AS r", str(tmp_path / "events.parquet")
        )
    with load(str(tmp_path / "rec*" / "**" / "*.jsonl.gz"), outbox) as data:
        assert data.report.events == 3
    with load(tmp_path / "events.parquet", outbox) as data:
        assert data.report.events == 3
        assert sorted(data.lifecycle().latencySeconds) == pytest.approx([1.0, 2.0, 3.0])


def test_flat_parquet_with_camel_case_columns(tmp_path, logs):
    import pandas as pd

    logs.send("m1")
    pd.DataFrame(
        {
            "receivedAt": [pd.Timestamp("2026-11-25T10:00:02Z")],
            "messageId": ["m1"],
            "eventId": ["e1"],
            "eventType": ["DELIVERED"],
            "senderPhoneNumber": ["+12223334444"],
            "sendTime": [pd.Timestamp("2026-11-25T10:00:01.5Z")],
        }
    ).to_parquet(tmp_path / "flat.parquet")
    with load(tmp_path / "flat.parquet", logs.write()[1]) as data:
        assert data.lifecycle().latencySeconds.tolist() == [pytest.approx(1.5)]


def test_times_with_offsets_and_nanoseconds_are_normalised_to_utc(logs):
    logs.send("m1")
    logs.raw_event(
        '{"agentId":"a","senderPhoneNumber":"+12223334444","messageId":"m1","eventId":"e",'
        '"sendTime":"2026-11-25T15:30:02.250000999+05:30","eventType":"DELIVERED"}'
    )
    with load(*logs.write()) as data:
        row = data.lifecycle().iloc[0]
    assert row["latencySeconds"] == pytest.approx(2.25)
    assert str(row["deliveredAt"].tz) in {"UTC", "Etc/UTC"}


def test_report_counts_unknown_messages_other_events_and_failed_sends(logs):
    logs.send("m1")
    logs.send("fail", status=503)
    logs.event("m1", "DELIVERED", 1.0)
    logs.event("ghost", "DELIVERED", 1.0)
    logs.event("ghost", "READ", 2.0)
    logs.event(None, "IS_TYPING", 3.0)
    logs.raw_event(
        '{"senderPhoneNumber":"+12223334444","messageId":"user-msg","sendTime":'
        '"2026-11-25T10:00:04Z","text":"thanks"}'
    )
    logs.event("m1", "READ", 2.0, verified=False)
    with load(*logs.write()) as data:
        r = data.report
        assert len(data.lifecycle()) == 1
    assert (r.messages, r.failed_sends, r.unknown_messages, r.unknown_message_events) == (
        1,
        1,
        1,
        2,
    )
    assert (r.other_events, r.unverified, r.events) == (2, 1, 6)
    assert r.span_start == at(0) and r.span_end is not None
    assert "6 events" in str(r)
    assert r.to_dict()["span_start"] == "2026-11-25T10:00:00Z"


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        load(tmp_path / "missing.jsonl")
    with pytest.raises(ValidationError, match="matches no file"):
        load(str(tmp_path / "*.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"no \.jsonl"):
        load(tmp_path / "empty")
    with pytest.raises(ValidationError, match="at least one"):
        load()


def test_to_parquet_round_trips_the_lifecycles(synthetic_dataset, tmp_path):
    events, outbox = synthetic_dataset.to_parquet(tmp_path / "parquet")
    before = synthetic_dataset.lifecycle()
    with load(events, outbox) as data:
        after = data.lifecycle()
        report = data.report
    assert report.malformed == 0 and report.events == synthetic_dataset.report.events
    assert report.duplicates == synthetic_dataset.report.duplicates
    columns = ["messageId", "outcome", "revokeMethod", "latencySeconds", "observedSeconds"]
    assert after[columns].equals(before[columns])
