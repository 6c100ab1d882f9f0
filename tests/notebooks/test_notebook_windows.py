"""Time windows: parsing, labels, the previous window, restricting a loaded dataset, and the
window a scheduled report picks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from notebook_helpers import SAMPLE

from rbmtools.analysis import load
from rbmtools.errors import ValidationError
from rbmtools.notebook import Window, find_path, load_window, parse_instant, scheduled_windows
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


def test_restricting_keeps_exactly_the_messages_sent_in_the_window():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        everything = data.lifecycle()
    start, end = pd.Timestamp("2026-11-24T06:00:00Z"), pd.Timestamp("2026-11-25T18:00:00Z")
    expected = everything[(everything.sendTime >= start) & (everything.sendTime < end)]
    window = Window.parse("2026-11-24T06:00:00Z", "2026-11-25T18:00:00Z")
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", window) as data:
        kept = data.lifecycle()
        summary = data.summary(by="useCase")
    assert sorted(kept.messageId) == sorted(expected.messageId)
    assert summary["messages"].sum() == len(expected)
    # the events of kept messages count whenever they arrived (a late DELIVERED still counts)
    kept_rows = kept.set_index("messageId").deliveredAt.dropna()
    assert kept_rows.equals(expected.set_index("messageId").deliveredAt.dropna())


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
