"""``rbmtools logs compact``: receiver segments to day-partitioned Parquet, idempotently (the
per-message state it keeps beside them: ``test_history``)."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rbmtools import wire
from rbmtools.analysis import load
from rbmtools.analysis.history_files import SourceChangedError
from rbmtools.cli import main
from rbmtools.errors import ValidationError
from rbmtools.logs import CompactionLockedError, compact
from rbmtools.logs.compact import LOCK_NAME, MALFORMED_NAME, MANIFEST_NAME
from rbmtools.webhook.store import EventLog

T0 = datetime(2026, 11, 24, 23, 58, 0, tzinfo=UTC)
PHONE = "+12223334444"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _event(message_id: str, kind: str, seconds: float, event_id: str) -> dict:
    return wire.event_payload(
        agent_id="agent",
        phone=PHONE,
        event_type=kind,
        event_id=event_id,
        send_time=T0 + timedelta(seconds=seconds),
        message_id=message_id,
    )


@pytest.fixture
def receiver_log(tmp_path: Path) -> tuple[Path, Path]:
    """Segments written by the real receiver store over two UTC days, and their outbox."""
    events, outbox = tmp_path / "events", tmp_path / "outbox.jsonl"
    clock = Clock()
    records = []
    with EventLog(events, max_segment_bytes=4_000, clock=clock) as log:
        for index in range(60):
            clock.now = T0 + timedelta(seconds=4 * index)  # crosses midnight at index 30
            mid = f"m{index:03d}"
            send_time = T0 + timedelta(seconds=4 * index - 2)
            records.append(
                wire.SendRecord(
                    message_id=mid, phone=PHONE, agent_id="agent", send_time=send_time,
                    status=200, use_case="otp", traffic_type="AUTHENTICATION",
                ).to_line()
            )  # fmt: skip
            log.append_wait(_event(mid, "DELIVERED", 4 * index - 1, f"d{index}"))
            if index % 5 == 0:  # a redelivery: the same event again
                log.append_wait(_event(mid, "DELIVERED", 4 * index - 1, f"d{index}"))
    outbox.write_text("".join(records), encoding="utf-8")
    return events, outbox


def _parquet_files(root: Path) -> list[Path]:
    """The event parts (not the state, under ``_state``)."""
    return sorted(root.glob("date=*/*.parquet"))


def test_compacts_each_segment_into_its_day_and_keeps_the_analysis(receiver_log, tmp_path):
    events, outbox = receiver_log
    out = tmp_path / "parquet"
    result = compact(events, out)
    segments = sorted(events.rglob("events-*.jsonl"))
    assert result.segments == result.compacted == len(segments) > 2
    assert result.days == 2 and (result.unchanged, result.kept, result.malformed) == (0, 0, 0)
    assert [p.relative_to(out).with_suffix("") for p in _parquet_files(out)] == [
        p.relative_to(events).with_suffix("") for p in segments
    ]
    assert result.lines == result.events == 72  # 60 events and 12 redeliveries, all kept
    with load(events, outbox) as json_data, load(out, outbox) as parquet_data:
        assert parquet_data.report.events == json_data.report.events == 60
        assert parquet_data.report.duplicates == json_data.report.duplicates == 12
        columns = ["messageId", "outcome", "latencySeconds", "deliveredAt"]
        assert parquet_data.lifecycle()[columns].equals(json_data.lifecycle()[columns])
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["format"] == "rbmtools.history/1" and manifest["generation"] == 1
    entry = manifest["sources"]["events/" + segments[0].relative_to(events).as_posix()]
    assert entry["bytes"] == segments[0].stat().st_size and entry["parts"] == [
        segments[0].relative_to(events).with_suffix(".parquet").as_posix()
    ]


def test_running_again_adds_nothing_and_rewrites_only_what_changed(receiver_log, tmp_path):
    events, outbox = receiver_log
    out = tmp_path / "parquet"
    first = compact(events, out)
    stamps = {p: p.stat().st_mtime_ns for p in _parquet_files(out)}
    again = compact(events, out)
    assert (again.compacted, again.unchanged, again.lines) == (0, first.segments, 0)
    assert {p: p.stat().st_mtime_ns for p in _parquet_files(out)} == stamps
    # the receiver appends to its last segment, and a new day begins
    last = sorted(events.rglob("events-*.jsonl"))[-1]
    with open(last, "a", encoding="utf-8") as handle:
        handle.write(wire.event_record_line(_event("m059", "READ", 300, "r59"), T0, True))
    new_day = events / "date=2026-11-26"
    new_day.mkdir()
    (new_day / "events-000001.jsonl").write_text(
        wire.event_record_line(_event("m001", "READ", 400, "r1"), T0, True), encoding="utf-8"
    )
    third = compact(events, out)
    assert (third.compacted, third.unchanged) == (2, first.segments - 1)
    assert third.days == 3
    # the grown segment's new line is a part of its own; nothing written before is touched
    changed = {p for p in _parquet_files(out) if stamps.get(p) != p.stat().st_mtime_ns}
    assert changed == {
        out / last.relative_to(events).with_suffix(".2.parquet"),
        out / "date=2026-11-26" / "events-000001.parquet",
    }
    with load(out, outbox) as data:  # every event once: nothing appended twice
        assert (data.report.events, data.report.duplicates) == (62, 12)


def test_a_deleted_source_keeps_its_parquet(receiver_log, tmp_path):
    events, _ = receiver_log
    out = tmp_path / "parquet"
    compact(events, out)
    gone = sorted(events.rglob("events-*.jsonl"))[0]
    gone.unlink()
    result = compact(events, out)
    assert (result.compacted, result.kept) == (0, 1)
    assert (out / gone.relative_to(events).with_suffix(".parquet")).exists()


def test_malformed_lines_are_counted_and_set_aside_per_day(tmp_path):
    events, out = tmp_path / "events", tmp_path / "parquet"
    day = events / "date=2026-11-25"
    day.mkdir(parents=True)
    good = wire.event_record_line(_event("m1", "DELIVERED", 1, "d1"), T0, True)
    segment = day / "events-000001.jsonl"
    segment.write_text(good + "not json\n\n" + '{"hello": 1}\n', encoding="utf-8")
    with gzip.open(day / "events-000002.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(good.replace("d1", "d2") + '{"receivedAt": "2026-11-25T00:00:00Z", "ev')
    result = compact(events, out)
    assert (result.lines, result.events, result.malformed) == (5, 2, 3)
    kept = [json.loads(line) for line in (out / "date=2026-11-25" / MALFORMED_NAME).open()]
    assert [(Path(k["file"]).name, k["line"], k["text"]) for k in kept] == [
        ("events-000001.jsonl", 2, "not json"),
        ("events-000001.jsonl", 4, '{"hello": 1}'),
        ("events-000002.jsonl.gz", 2, '{"receivedAt": "2026-11-25T00:00:00Z", "ev'),
    ]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in _parquet_files(out)) == 2
    assert {k["problem"] for k in kept} == {"not an event"}
    # a segment rewritten (not appended to) cannot be taken back out of the state: refused
    segment.write_text(good, encoding="utf-8")
    with pytest.raises(SourceChangedError, match=r"events-000001\.jsonl"):
        compact(events, out)


def test_bad_directories_are_refused_with_the_reason(receiver_log, tmp_path):
    events, _ = receiver_log
    with pytest.raises(ValidationError, match="outside"):
        compact(events, events / "parquet")
    with pytest.raises(ValidationError, match="outside"):
        compact(events, events.parent)
    with pytest.raises(ValidationError, match="not a directory"):
        compact(tmp_path / "missing", tmp_path / "out")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "events.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="date=YYYY-MM-DD"):
        compact(flat, tmp_path / "out")
    day = next(events.glob("date=*"))
    first = next(day.glob("events-*.jsonl"))
    with gzip.open(first.with_suffix(".jsonl.gz"), "wb") as handle:
        handle.write(first.read_bytes())
    with pytest.raises(ValidationError, match="same segment"):
        compact(events, tmp_path / "out")


def test_files_outside_day_partitions_are_reported_not_compacted(receiver_log, tmp_path):
    events, _ = receiver_log
    (events / "stray.jsonl").write_text("{}\n", encoding="utf-8")
    result = compact(events, tmp_path / "parquet")
    assert result.unpartitioned == (str(events / "stray.jsonl"),)
    assert "outside date=YYYY-MM-DD" in str(result)


def test_two_compactions_of_one_directory_do_not_run_at_once(receiver_log, tmp_path):
    import fcntl

    events, _ = receiver_log
    out = tmp_path / "parquet"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(CompactionLockedError, match="another compaction"):
            compact(events, out)
    finally:
        os.close(fd)


def test_the_command_line(receiver_log, tmp_path, capsys):
    events, _ = receiver_log
    out = tmp_path / "parquet"
    assert main(["logs", "compact", str(events), "--to", str(out)]) == 0
    assert "compacted" in capsys.readouterr().out
    assert main(["logs", "compact", str(events), "--to", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["compacted"] == 0 and document["unchanged"] == document["segments"]
    assert main(["logs", "compact", str(events), "--to", str(events / "x")]) == 2
    assert "--to" in capsys.readouterr().err
