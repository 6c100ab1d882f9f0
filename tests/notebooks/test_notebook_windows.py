"""What the notebooks add to the analysis's windows: paths through the project root, the
span of an outbox in any form, and the windows a scheduled report picks."""

from __future__ import annotations

import gzip
from datetime import timedelta

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
)


def test_load_window_is_the_analysis_load_with_sent(tmp_path):
    window = Window.parse("2026-11-25", None)
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", window) as data:
        assert data.sent == window and 0 < data.report.messages < 1620


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


def test_outbox_span_over_jsonl_gzip_and_parquet(tmp_path):
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        sent = data.lifecycle().sendTime
        _, parquet = data.to_parquet(tmp_path / "parquet")
    with gzip.open(tmp_path / "outbox.jsonl.gz", "wb") as out:
        out.write((SAMPLE / "outbox.jsonl").read_bytes() + b"not a record\n")
    for outbox in (SAMPLE / "outbox.jsonl", tmp_path / "outbox.jsonl.gz", parquet):
        assert outbox_span(outbox) == (sent.min(), sent.max())


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
