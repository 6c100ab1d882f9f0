"""Time windows: parsing, labels, the previous window, loading only the messages sent in a
window (whatever form the outbox has), and the window a scheduled report picks."""

from __future__ import annotations

import gzip
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from notebook_helpers import SAMPLE

from rbmtools.analysis import load
from rbmtools.errors import ValidationError
from rbmtools.notebook import (
    Window,
    find_path,
    load_window,
    outbox_span,
    parse_instant,
    scheduled_windows,
    window_of,
    window_outbox,
)
from rbmtools.wire import utc_now

DAY = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("2026-11-24", DAY),
        ("2026-11-24T06:30:00Z", DAY + timedelta(hours=6, minutes=30)),
        ("2026-11-24T08:30:00+02:00", DAY + timedelta(hours=6, minutes=30)),
        (DAY, DAY),
        (DAY.date(), DAY),
    ],
)
def test_parse_instant(value, expected):
    assert parse_instant(value, "start") == expected


def test_today_yesterday_and_now():
    today = parse_instant("today", "end")
    assert today.time() == datetime.min.time() and today.tzinfo == UTC
    assert today.date() == utc_now().date()
    assert parse_instant("Yesterday", "start") == today - timedelta(days=1)
    assert abs((parse_instant("NOW", "end") - utc_now()).total_seconds()) < 5


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-13-01", "calendar date"),
        ("yesterday-ish", "must be a date"),
        ("2026-11-24T06:00:00", "must be a date"),  # no offset: refused, never guessed
        (datetime(2026, 11, 24), "time zone"),
        (5, "ISO 8601"),
    ],
)
def test_bad_instants_name_the_field(value, problem):
    with pytest.raises(ValidationError, match=problem) as caught:
        parse_instant(value, "start")
    assert caught.value.field == "start"


def test_window_labels_previous_and_order():
    window = Window.parse("2026-11-24", "2026-11-26")
    assert window.label() == ("messages sent from 2026-11-24 to 2026-11-26 (UTC, end excluded)")
    assert window.previous() == Window(DAY - timedelta(days=2), DAY)
    assert Window.parse().label() == "all messages" and Window.parse().is_open
    assert "from the first message" in Window.parse(end="2026-11-25").label()
    with pytest.raises(ValidationError, match="after the start"):
        Window.parse("2026-11-25", "2026-11-24")
    with pytest.raises(ValidationError, match="needs a start and an end"):
        Window.parse(start="2026-11-25").previous()


WINDOW = ("2026-11-24T06:00:00Z", "2026-11-25T18:00:00Z")


@pytest.fixture(scope="module")
def everything():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return data.lifecycle().set_index("messageId")


def _expected(everything):
    start, end = (pd.Timestamp(t) for t in WINDOW)
    return everything[(everything.sendTime >= start) & (everything.sendTime < end)]


def test_a_window_keeps_exactly_the_messages_sent_in_it(everything):
    expected = _expected(everything)
    window = Window.parse(*WINDOW)
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", window) as data:
        kept = data.lifecycle().set_index("messageId")
        summary = data.summary(by="useCase")
        report = data.report
        folder = window_of(data)
    assert folder == window
    assert sorted(kept.index) == sorted(expected.index)
    assert summary["messages"].sum() == len(expected) == report.messages
    # the lifecycles are the same as in the whole logs: a late DELIVERED still counts
    columns = ["outcome", "deliveredAt", "revokedAt", "fallbackAt", "latencySeconds"]
    pd.testing.assert_frame_equal(kept.sort_index()[columns], expected.sort_index()[columns])
    assert report.unknown_message_events > 0  # events about the messages left out


def test_windows_over_gzipped_and_parquet_outboxes(tmp_path, everything):
    expected = _expected(everything)
    with gzip.open(tmp_path / "outbox.jsonl.gz", "wb") as out:
        out.write((SAMPLE / "outbox.jsonl").read_bytes() + b"not a record\n")
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        _, parquet = data.to_parquet(tmp_path / "parquet")
    window = Window.parse(*WINDOW)
    for outbox in (tmp_path / "outbox.jsonl.gz", parquet):
        with load_window(SAMPLE / "events", outbox, window) as data:
            assert sorted(data.lifecycle().messageId) == sorted(expected.index)
            if str(outbox).endswith(".gz"):
                assert data.report.outbox_malformed == 1  # kept, so still counted
        first, last = outbox_span(outbox)
        assert first == everything.sendTime.min() and last == everything.sendTime.max()
    written = window_outbox(parquet, window, tmp_path / "out")
    assert [p.suffix for p in written] == [".parquet"]


def test_closing_a_windowed_dataset_removes_its_filtered_outbox():
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("rbmtools-window-*"))
    data = load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", Window.parse(*WINDOW))
    created = set(temp.glob("rbmtools-window-*")) - before
    assert len(created) == 1 and (next(iter(created)) / "outbox.jsonl").exists()
    data.close()
    assert not next(iter(created)).exists()


def test_relative_paths_resolve_through_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_path("data/sample/events") == SAMPLE / "events"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.jsonl").write_text("")
    assert find_path("data/mine.jsonl").resolve() == tmp_path / "data" / "mine.jsonl"
    with load_window("data/sample/events", "data/sample/outbox.jsonl") as data:
        assert data.report.messages == 1620
    with pytest.raises(ValidationError, match="does not exist"):
        load_window("data/nowhere", "data/sample/outbox.jsonl")


def test_scheduled_windows_default_to_the_last_period_of_traffic():
    current, previous = scheduled_windows(SAMPLE / "events", SAMPLE / "outbox.jsonl", "1d")
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        last = data.lifecycle().sendTime.max().to_pydatetime()
    assert current.end - timedelta(minutes=1) <= last < current.end
    assert current.end - current.start == timedelta(days=1)
    assert previous == Window(current.start - timedelta(days=1), current.start)
    weekly, before = scheduled_windows(SAMPLE / "events", SAMPLE / "outbox.jsonl", "7d", "today")
    assert weekly.end == parse_instant("today", "end") and before.end == weekly.start
    with pytest.raises(ValidationError, match="period"):
        scheduled_windows(SAMPLE / "events", SAMPLE / "outbox.jsonl", "0s", "today")
