"""follow: tailing a live log across partial lines, rotations and new day directories."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_helpers import T0, TOKEN, make_event, wait_for

from rbmtools import ValidationError
from rbmtools.webhook import EventLog, Receiver, follow, read_events
from rbmtools.webhook.loadgen import SignedLoad, sample_events
from rbmtools.wire import event_record_line

POLL = 0.02


def line(index: int) -> bytes:
    return event_record_line(make_event(index), T0, True).encode()


def collect(follower, into: list, until: threading.Event | None = None) -> threading.Thread:
    """Consume ``follower`` in a background thread, appending event ids to ``into``."""

    def run() -> None:
        for logged in follower:
            into.append(logged.event.event_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_it_yields_what_is_there_then_what_arrives_and_stops_on_the_event(tmp_path):
    with EventLog(tmp_path) as log:
        log.append_wait(make_event(1))
        stop = threading.Event()
        seen: list[str] = []
        thread = collect(follow(tmp_path, stop=stop, poll=POLL), seen)
        wait_for(lambda: seen == ["evt-000001"])
        log.append_wait(make_event(2))
        log.append_wait(make_event(1))  # a redelivery: not yielded again
        log.append_wait(make_event(3))
        wait_for(lambda: len(seen) == 3)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert seen == ["evt-000001", "evt-000002", "evt-000003"]


def test_a_partial_line_is_held_back_until_its_newline_arrives(tmp_path):
    segment = tmp_path / "date=2026-11-25" / "events-000001.jsonl"
    segment.parent.mkdir()
    segment.write_bytes(line(1) + line(2)[:30])
    follower = follow(tmp_path, poll=POLL, timeout=0.1)
    assert [e.event.event_id for e in follower] == ["evt-000001"]
    with open(segment, "ab") as stream:
        stream.write(line(2)[30:])
    assert [e.event.event_id for e in follower] == ["evt-000002"]  # resumes where it was
    assert follower.counts.torn == 0 and follower.counts.malformed == 0


def test_it_follows_rotations_and_new_day_directories(tmp_path):
    clock_now = [datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)]
    stop = threading.Event()
    seen: list[str] = []
    thread = collect(follow(tmp_path, stop=stop, poll=POLL), seen)  # the dir does not exist yet
    with EventLog(tmp_path, max_segment_bytes=700, clock=lambda: clock_now[0]) as log:
        for i in range(30):
            if i == 15:
                clock_now[0] += timedelta(seconds=2)  # midnight passes
            log.append_wait(make_event(i))
            if i % 7 == 0:
                time.sleep(POLL * 2)  # let the tailer catch up mid-stream sometimes
    wait_for(lambda: len(seen) == 30)
    stop.set()
    thread.join(5)
    assert seen == [f"evt-{i:06d}" for i in range(30)]
    days = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("date="))
    assert days == ["date=2026-11-25", "date=2026-11-26"]
    assert len(list(tmp_path.rglob("*.jsonl"))) > 4


def test_starting_from_the_end_skips_history_but_not_a_line_being_written(tmp_path):
    segment = tmp_path / "date=2026-11-25" / "events-000002.jsonl"
    segment.parent.mkdir()
    (segment.parent / "events-000001.jsonl").write_bytes(line(1))
    segment.write_bytes(line(2) + line(3)[:20])
    follower = follow(tmp_path, from_start=False, poll=POLL, timeout=0.1)
    assert list(follower) == []
    with open(segment, "ab") as stream:
        stream.write(line(3)[20:] + line(4))
    assert [e.event.event_id for e in follower] == ["evt-000003", "evt-000004"]


def test_a_torn_line_in_an_older_segment_is_counted_once_a_newer_one_exists(tmp_path):
    day = tmp_path / "date=2026-11-25"
    day.mkdir()
    (day / "events-000001.jsonl").write_bytes(line(1) + line(2)[:40])  # the crash
    follower = follow(tmp_path, poll=POLL, timeout=0.1)
    assert [e.event.event_id for e in follower] == ["evt-000001"]
    assert follower.counts.torn == 0  # could still be completed
    (day / "events-000002.jsonl").write_bytes(line(3))  # the restarted writer
    assert [e.event.event_id for e in follower] == ["evt-000003"]
    assert follower.counts.torn == 1
    assert follower.counts.bad_lines[0].reason == "torn"


def test_the_timeout_ends_an_idle_follow(tmp_path):
    started = time.monotonic()
    assert list(follow(tmp_path / "never-created", timeout=0.2, poll=POLL)) == []
    assert 0.15 < time.monotonic() - started < 3


def test_a_stop_set_while_idle_ends_it_promptly(tmp_path):
    stop = threading.Event()
    seen: list[str] = []
    thread = collect(follow(tmp_path, stop=stop, poll=5.0), seen)
    time.sleep(0.1)
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="poll"):
        follow(tmp_path, poll=0)
    with pytest.raises(ValidationError, match="timeout"):
        follow(tmp_path, timeout=-1)


def test_following_a_live_receiver_sees_every_acknowledged_event(tmp_path):
    """The experiment runner's use: react to events live while the receiver takes load."""
    stop = threading.Event()
    seen: list[str] = []
    with Receiver(tmp_path, client_token=TOKEN, max_segment_bytes=20_000) as rx:
        thread = collect(follow(tmp_path, stop=stop, poll=POLL), seen)
        load = SignedLoad(rx.url, TOKEN, sample_events(500), concurrency=32).run()
        wait_for(lambda: len(seen) >= len(load.acked))
    stop.set()
    thread.join(5)
    assert len(load.acked) == 500
    assert sorted(seen) == sorted(load.acked)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 15), min_size=1, max_size=25),
    st.lists(st.integers(1, 500), max_size=40),
    st.booleans(),
)
def test_property_tailing_random_chunks_yields_exactly_a_full_read(
    tmp_path_factory, ids, cuts, with_junk
):
    """However the bytes arrive, follow yields what read_events finds in the finished file."""
    lines = [line(i) for i in ids]
    if with_junk:
        lines.insert(len(lines) // 2, b"junk that is no event\n")
    data = b"".join(lines)
    directory = tmp_path_factory.mktemp("tail")
    segment = directory / "events-000001.jsonl"
    segment.write_bytes(b"")
    follower = follow(directory, timeout=0, poll=POLL)
    got: list[str] = []
    position = 0
    for cut in [*cuts, len(data)]:
        with open(segment, "ab") as stream:
            stream.write(data[position : position + cut])
        position += cut
        got.extend(e.event.event_id for e in follower)
    full = read_events(segment)
    assert got == [e.event.event_id for e in full]
    assert follower.counts.malformed == full.counts.malformed == int(with_junk)
    assert follower.counts.duplicates == full.counts.duplicates
