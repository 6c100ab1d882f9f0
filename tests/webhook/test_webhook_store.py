"""The durable log: group commit, rotation, day partitions, restarts, locking, write errors."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from webhook_helpers import lines_of, make_event

from rbmtools.webhook import EventLog, LogClosedError, LogLockedError, read_events
from rbmtools.webhook.layout import list_segments
from rbmtools.wire import parse_event_line, parse_timestamp


class SteppingClock:
    """A settable clock for day-boundary tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_append_writes_the_receiver_record_and_returns_after_the_line_is_there(tmp_path):
    event = make_event(1)
    with EventLog(tmp_path) as log:
        appended = log.append_wait(event, verified=True)
        # The line is on disk by the time append returns.
        text = appended.segment.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    record = json.loads(text)
    assert set(record) == {"receivedAt", "verified", "event"}
    assert record["event"] == event and record["verified"] is True
    assert parse_timestamp(record["receivedAt"]) == appended.received_at
    assert parse_event_line(text).event.event_id == "evt-000001"
    assert appended.segment.parent.name == f"date={appended.received_at.date().isoformat()}"
    assert appended.segment.name == "events-000001.jsonl"


def test_concurrent_appends_share_fsyncs(tmp_path):
    """Group commit: 400 concurrent appends take far fewer than 400 fsync batches."""

    async def burst(log: EventLog) -> list:
        return await asyncio.gather(*(log.append(make_event(i)) for i in range(400)))

    with EventLog(tmp_path) as log:
        results = asyncio.run(burst(log))
        stats = log.stats()
    assert stats["events"] == 400
    assert stats["fsync_batches"] < 400
    assert stats["events_per_batch_max"] > 1
    assert sum(stats["events_per_batch_histogram"].values()) == stats["fsync_batches"]
    assert len({r.batch for r in results}) == stats["fsync_batches"]
    # Every line is there, once, in the order the appends were queued.
    ids = [line["event"]["eventId"] for line in lines_of(tmp_path)]
    assert ids == [f"evt-{i:06d}" for i in range(400)]


def test_max_batch_caps_the_events_per_fsync(tmp_path):
    async def burst(log: EventLog) -> None:
        await asyncio.gather(*(log.append(make_event(i)) for i in range(50)))

    with EventLog(tmp_path, max_batch=1) as log:
        asyncio.run(burst(log))
        stats = log.stats()
    assert stats["fsync_batches"] == 50 and stats["events_per_batch_max"] == 1


def test_segments_rotate_by_size_and_sort_in_write_order(tmp_path):
    limit = 2_000
    with EventLog(tmp_path, max_segment_bytes=limit) as log:
        for i in range(60):
            log.append_wait(make_event(i))
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    assert [p.name for p in segments] == sorted(p.name for p in segments)
    assert all(p.stat().st_size <= limit for p in segments)
    assert all(p.read_bytes().endswith(b"\n") for p in segments)
    ids = [logged.event.event_id for logged in read_events(tmp_path)]
    assert ids == [f"evt-{i:06d}" for i in range(60)]


def test_a_line_bigger_than_a_segment_still_gets_written_whole(tmp_path):
    with EventLog(tmp_path, max_segment_bytes=100) as log:
        first = log.append_wait(make_event(1))
        second = log.append_wait(make_event(2))
    assert first.segment != second.segment
    assert len(lines_of(tmp_path)) == 2


def test_lines_go_to_the_utc_day_of_receipt_and_received_at_never_goes_back(tmp_path):
    clock = SteppingClock(datetime(2026, 11, 25, 23, 59, 59, 900_000, tzinfo=UTC))
    with EventLog(tmp_path, clock=clock) as log:
        a = log.append_wait(make_event(1))
        clock.now += timedelta(milliseconds=200)  # past midnight
        b = log.append_wait(make_event(2))
        clock.now -= timedelta(seconds=5)  # the wall clock steps back
        c = log.append_wait(make_event(3))
    assert a.segment.parent.name == "date=2026-11-25"
    assert b.segment.parent.name == "date=2026-11-26"
    assert c.received_at == b.received_at and c.segment == b.segment
    assert [p.parent.name for p in list_segments(tmp_path)] == [
        "date=2026-11-25",
        "date=2026-11-26",
    ]


def test_a_restart_begins_a_new_segment_so_a_torn_line_is_never_glued(tmp_path):
    with EventLog(tmp_path) as log:
        first = log.append_wait(make_event(1))
    # Simulate a crash in the middle of a write: half a line at the end of the segment.
    with open(first.segment, "ab") as stream:
        stream.write(b'{"receivedAt": "2026-11-25T10:00:00Z", "verified": tr')
    with EventLog(tmp_path) as log:
        second = log.append_wait(make_event(2))
    assert second.segment != first.segment
    assert second.segment.name == "events-000002.jsonl"
    reader = read_events(tmp_path)
    assert [e.event.event_id for e in reader] == ["evt-000001", "evt-000002"]
    assert reader.counts.torn == 1 and reader.counts.malformed == 0
    assert reader.counts.bad_lines[0].path == str(first.segment)


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path):
    first = EventLog(tmp_path).open()
    with pytest.raises(LogLockedError, match="already writing"):
        EventLog(tmp_path).open()
    first.close()
    with EventLog(tmp_path) as second:
        second.append_wait(make_event(1))


def test_close_drains_queued_appends_and_later_appends_fail(tmp_path):
    """Closing while 8 threads append: every append that was queued is written and answered."""
    log = EventLog(tmp_path).open()
    outcomes: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender(k: int) -> None:
        for i in range(100):
            try:
                log.append_wait(make_event(k * 1000 + i))
                outcome = "ok"
            except LogClosedError:
                outcome = "closed"
            with lock:
                outcomes.append(outcome)
                if len(outcomes) >= 80:
                    enough.set()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(10)
    log.close()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == len(lines_of(tmp_path)) >= 80
    assert "closed" in outcomes
    with pytest.raises(LogClosedError):
        log.append_wait(make_event(99_999))


def test_a_failed_write_is_reported_and_cut_back_to_whole_lines(tmp_path, monkeypatch):
    """ENOSPC mid-write: the waiter gets the OSError and the segment keeps only whole lines."""
    real_write = os.write
    armed = threading.Event()

    def failing_write(fd: int, data: bytes) -> int:
        if armed.is_set() and fd > 2:
            armed.clear()
            real_write(fd, bytes(data[:10]))  # a partial write reaches the file...
            raise OSError(28, "No space left on device")  # ...then the disk is full
        return real_write(fd, data)

    with EventLog(tmp_path) as log:
        log.append_wait(make_event(1))
        monkeypatch.setattr(os, "write", failing_write)
        armed.set()
        with pytest.raises(OSError, match="No space"):
            log.append_wait(make_event(2))
        monkeypatch.setattr(os, "write", real_write)
        log.append_wait(make_event(3))
        assert log.stats()["write_errors"] == 1
    reader = read_events(tmp_path)
    assert [e.event.event_id for e in reader] == ["evt-000001", "evt-000003"]
    assert reader.counts.skipped == 0


def test_an_unopened_log_refuses_appends_and_repr_is_safe(tmp_path):
    log = EventLog(tmp_path)
    with pytest.raises(LogClosedError):
        log.append_wait(make_event(1))
    assert "new" in repr(log)
    with pytest.raises(ValueError, match="max_segment_bytes"):
        EventLog(tmp_path, max_segment_bytes=0)


def test_the_rejects_log_cannot_fill_the_disk(tmp_path):
    from rbmtools.webhook.rejects import RejectsLog

    rejects = RejectsLog(tmp_path, max_bytes=4_000)
    for index in range(500):
        rejects.record("signature_mismatch", 401, body=b"x" * 5_000, remote=f"10.0.0.{index}")
    rejects.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rejects.1.log", "rejects.log"]
    assert all((tmp_path / name).stat().st_size <= 4_000 for name in files)
    assert rejects.written == 500
    last = json.loads((tmp_path / "rejects.log").read_text().splitlines()[-1])
    assert last["remote"] == "10.0.0.499" and last["bodyBytes"] == 5_000
    assert len(last["bodyHead"]) == 1024  # only the head of a body is kept
