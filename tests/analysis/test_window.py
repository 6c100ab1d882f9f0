"""Time windows belong to the analysis: ``load(..., sent=window)`` keeps exactly the messages
sent in the window, as a predicate in the load's SQL (no copy of the outbox), for every outbox
form and for the bucketed layout; instants and labels parse as a cron job writes them."""

from __future__ import annotations

import gzip
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from rbmtools.analysis import Window, build_analysis, load, parse_instant
from rbmtools.errors import ValidationError
from rbmtools.wire import utc_now

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
DAY = datetime(2026, 11, 24, tzinfo=UTC)
WINDOW = ("2026-11-24T06:00:00Z", "2026-11-25T18:00:00Z")


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


def test_window_labels_previous_ending_and_order():
    window = Window.parse("2026-11-24", "2026-11-26")
    assert window.label() == "messages sent from 2026-11-24 to 2026-11-26 (UTC, end excluded)"
    assert window.previous() == Window(DAY - timedelta(days=2), DAY)
    assert Window.ending("2026-11-26", "2d") == window
    assert Window.parse().label() == "all messages" and Window.parse().is_open
    assert "from the first message" in Window.parse(end="2026-11-25").label()
    assert Window.of(("2026-11-24", "2026-11-26")) == window and Window.of(None) is None
    with pytest.raises(ValidationError, match="after the start"):
        Window.parse("2026-11-25", "2026-11-24")
    with pytest.raises(ValidationError, match="needs a start and an end"):
        Window.parse(start="2026-11-25").previous()
    with pytest.raises(ValidationError, match="longer than zero"):
        Window.ending("today", "0s")
    with pytest.raises(ValidationError, match="sent"):
        Window.of("2026-11-24")


@pytest.fixture(scope="module")
def everything():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return data.lifecycle().set_index("messageId")


def _expected(everything):
    start, end = (pd.Timestamp(t) for t in WINDOW)
    return everything[(everything.sendTime >= start) & (everything.sendTime < end)]


def test_a_window_keeps_exactly_the_messages_sent_in_it_without_copying_the_outbox(everything):
    expected = _expected(everything)
    window = Window.parse(*WINDOW)
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("rbmtools-window-*"))
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl", sent=window) as data:
        assert set(temp.glob("rbmtools-window-*")) == before  # nothing copied
        kept = data.lifecycle().set_index("messageId")
        summary = data.summary(by="useCase")
        report = data.report
        assert data.sent == window
        analysis = build_analysis(data, "useCase", bootstrap=0)
    assert sorted(kept.index) == sorted(expected.index)
    assert summary["messages"].sum() == len(expected) == report.messages
    assert sum(g.counts["messages"] for g in analysis.groups) == len(expected)
    # the lifecycles are the same as in the whole logs: a late DELIVERED still counts
    columns = ["outcome", "deliveredAt", "revokedAt", "fallbackAt", "latencySeconds"]
    pd.testing.assert_frame_equal(kept.sort_index()[columns], expected.sort_index()[columns])
    assert report.unknown_message_events > 0  # events about the messages left out
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        assert data.sent is None and data.report.messages == len(everything)


def test_open_sides_and_an_empty_window(everything):
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl", sent=(None, "2026-11-24")) as data:
        assert data.report.messages == int((everything.sendTime < "2026-11-24").sum()) > 0
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl", sent=("2030-01-01", None)) as data:
        assert data.report.messages == 0
        assert data.summary(by="useCase").empty


def test_windows_over_gzipped_parquet_and_bucketed_outboxes(tmp_path, everything):
    expected = sorted(_expected(everything).index)
    with gzip.open(tmp_path / "outbox.jsonl.gz", "wb") as out:
        out.write((SAMPLE / "outbox.jsonl").read_bytes() + b"not a record\n")
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        events_parquet, parquet = data.to_parquet(tmp_path / "parquet")
        bucketed = data.to_parquet(tmp_path / "buckets", buckets=3)
    window = Window.parse(*WINDOW)
    for events, outbox in (
        (SAMPLE / "events", tmp_path / "outbox.jsonl.gz"),
        (events_parquet, parquet),
        bucketed,
    ):
        with load(events, outbox, sent=window) as data:
            assert sorted(data.lifecycle().messageId) == expected, outbox
            assert data.report.messages == len(expected)
            if str(outbox).endswith(".gz"):
                assert data.report.outbox_malformed == 1  # kept, so still counted
