"""What the receiver acknowledges, the analysis reads (issue 15): times by the wire's grammar,
implausible times kept out of latency, unreadable files named and skipped, bad options refused.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbmtools import wire
from rbmtools.analysis import load, sql
from rbmtools.cli import main
from rbmtools.errors import ValidationError

from .conftest import LogBuilder

GOOD_SPELLINGS = [
    "2026-11-25t10:00:05z",  # lower case t and z: valid RFC 3339
    "2026-11-25 10:00:05Z",
    "2026-11-25T10:00:05.000000000Z",
    "2026-11-25T15:30:05+05:30",
    "2026-11-25T02:00:05.0-08:00",
]
UNREADABLE = [1764064805, "1764064805", "25/11/2026 10:00:05", "2026-11-25T10:00:60Z", ""]


def _delivered(logs: LogBuilder, send_time: object, *, received: float = 6.0) -> dict:
    """One sent message and its DELIVERED, whose sendTime is written as ``send_time``."""
    logs.send("m1", 0.0)
    payload = wire.event_payload(
        agent_id="agent",
        phone="+12223334444",
        event_type="DELIVERED",
        event_id="d1",
        send_time=wire.parse_timestamp("2026-11-25T10:00:05Z"),
        message_id="m1",
    )
    payload["sendTime"] = send_time
    logs.line(payload, shape="receiver", received=received)
    return payload


@pytest.mark.parametrize("spelling", GOOD_SPELLINGS)
def test_every_spelling_of_the_grammar_is_read_as_the_same_time(logs, spelling):
    _delivered(logs, spelling)
    with load(*logs.write()) as data:
        row = data.lifecycle().iloc[0]
        assert data.report.malformed == 0
    assert row.outcome == "delivered" and row.latencySeconds == 5.0


@pytest.mark.parametrize("text", UNREADABLE, ids=repr)
def test_an_unreadable_time_is_a_counted_malformed_line_never_a_silent_pending(logs, text):
    _delivered(logs, text)
    with load(*logs.write()) as data:
        assert data.report.malformed == 1
        assert data.report.malformed_problems == {"unreadable time": 1}
        assert list(data.malformed().problem) == ["unreadable time"]
        assert data.report.to_dict()["malformed_problems"] == {"unreadable time": 1}


def test_a_lifecycle_event_without_a_send_time_is_set_aside_with_its_problem(logs):
    payload = _delivered(logs, "x")
    payload.pop("sendTime")
    logs.events.clear()
    logs.line(payload)
    with load(*logs.write()) as data:
        assert data.report.malformed_problems == {"lifecycle event without sendTime": 1}


def test_an_unreadable_receipt_time_or_outbox_time_is_malformed_too(logs):
    _delivered(logs, "2026-11-25T10:00:05Z")
    logs.events[-1] = logs.events[-1].replace('"receivedAt":"', '"receivedAt":"x')
    logs.outbox.append(json.dumps({"kind": "revoke", "messageId": "m1", "status": 200,
                                   "requestedAt": "2026-11-25T10:00:07"}) + "\n")  # fmt: skip
    with load(*logs.write()) as data:
        assert data.report.malformed_problems == {"unreadable time": 1}
        assert data.report.outbox_malformed_problems == {"unreadable time": 1}


def test_a_year_9999_delivery_is_an_implausible_time_kept_out_of_latency(logs):
    _delivered(logs, "9999-11-25T10:00:05Z")
    logs.send("m2", 1.0)
    logs.event("m2", "DELIVERED", 3.0)
    with load(*logs.write()) as data:
        frame = data.lifecycle().set_index("messageId")
        report = data.report
        latency = data.aggregates([]).latency_bins
    assert report.implausible_times == 1 and report.malformed == 0
    assert frame.loc["m1", "outcome"] == "delivered" and bool(frame.loc["m1", "implausibleTime"])
    assert frame.loc["m1", "latencySeconds"] != frame.loc["m1", "latencySeconds"]  # NaN
    assert report.span_end.year == 2026  # the year 9999 does not stretch the logs
    assert latency.delivered.sum() == 1  # only m2's delivery is a latency
    assert data_anomalies(logs) == 1


def data_anomalies(logs: LogBuilder) -> int:
    from rbmtools.analysis import analyze

    events, outbox = logs.root / "logs" / "events.jsonl", logs.root / "logs" / "outbox.jsonl"
    doc = analyze(events, outbox, by="", bootstrap=0)
    return doc["groups"][0]["anomalies"]["implausible_time_messages"]


def test_a_delivery_before_the_send_is_skew_within_a_minute_and_implausible_beyond(logs):
    logs.send("skewed", 10.0)
    logs.event("skewed", "DELIVERED", 9.0)
    logs.send("before", 100.0)
    logs.event("before", "DELIVERED", 30.0)
    with load(*logs.write()) as data:
        frame = data.lifecycle().set_index("messageId")
        assert data.report.implausible_times == 1
    assert frame.loc["skewed", "latencySeconds"] == 0.0 and frame.loc["skewed", "clockSkew"]
    assert frame.loc["before", "implausibleTime"] and not frame.loc["before", "clockSkew"]
    assert frame.loc["before", "latencySeconds"] != frame.loc["before", "latencySeconds"]


# ------------------------------------------------------------------ one grammar, two readers

_digits = st.text(alphabet="0123456789", min_size=1, max_size=3)
_pieces = st.tuples(
    st.sampled_from(["1999", "2026", "0001", "9999", "0000", "2024", "12026", "226"]),
    st.sampled_from(["-02-", "-11-", "-13-", "-00-", "/", "-1-"]),
    st.sampled_from(["29", "30", "25", "00", "31", "5"]),
    st.sampled_from(["T", "t", " ", "  ", "_", ""]),
    st.sampled_from(["00", "10", "23", "24", "9"]),
    st.sampled_from([":00:", ":59:", ":60:", ":5:", "::"]),
    st.sampled_from(["00", "05", "59", "60", "7"]),
    st.one_of(st.just(""), st.just("."), _digits.map(lambda d: "." + d), st.just(".1234567890")),
    st.sampled_from(["Z", "z", "+05:30", "-08:00", "+23:59", "+24:00", "-00:00", "+0530",
                     "+05", "", " UTC", "ZZ"]),
    st.sampled_from(["", " ", "\t", "\n"]),
    st.sampled_from(["", " ", "\t"]),
)  # fmt: skip


def _text(parts: tuple[str, ...]) -> str:
    year, dash, day, sep, hour, mid, second, fraction, zone, head, tail = parts
    return f"{head}{year}{dash}{day}{sep}{hour}{mid}{second}{fraction}{zone}{tail}"


@pytest.fixture(scope="module")
def grammar():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE MACRO rbm_time(s) AS {sql.time_function('duckdb')}")
    yield con
    con.close()


@settings(max_examples=400, deadline=None)
@given(_pieces)
def test_the_sql_reads_exactly_what_the_wire_reads(grammar, parts):
    text = _text(parts)
    try:
        expected = wire.parse_timestamp(text)
    except (ValidationError, ValueError, OverflowError):
        expected = None
    got = grammar.execute("SELECT rbm_time(?)", [text]).fetchone()[0]
    assert got == expected, text


def test_the_grammar_examples_of_the_shared_decision(grammar):
    def read(text):
        return grammar.execute("SELECT rbm_time(?)", [text]).fetchone()[0]

    assert read("2026-11-25t10:00:05z") == wire.parse_timestamp("2026-11-25T10:00:05Z")
    assert read("2026-11-25T10:00:05.123456789Z").microsecond == 123456  # cut, not rounded
    for text in ["1764064805", "25/11/2026 10:00:05", "2026-11-25T10:00:60Z", "", "2026-11-25"]:
        assert read(text) is None, text


# ------------------------------------------------------------------ files that cannot be read


@pytest.fixture
def damaged(logs: LogBuilder) -> tuple[Path, Path, dict[str, Path]]:
    """Good logs beside a truncated .jsonl.gz, a text file named .gz and a garbage .parquet."""
    logs.send("m1", 0.0)
    logs.event("m1", "DELIVERED", 2.0)
    events, outbox = logs.write()
    folder = events.parent / "more"
    folder.mkdir()
    whole = gzip.compress(("".join(logs.events) * 50).encode())
    bad = {
        "truncated": folder / "truncated.jsonl.gz",
        "text": folder / "text.jsonl.gz",
        "parquet": folder / "garbage.parquet",
    }
    bad["truncated"].write_bytes(whole[: len(whole) // 2])
    bad["text"].write_text("".join(logs.events), encoding="utf-8")
    bad["parquet"].write_bytes(b"PAR1 this is no parquet file at all PAR1")
    return events, outbox, bad


def test_unreadable_files_are_named_in_the_report_and_skipped(damaged):
    events, outbox, bad = damaged
    with load([events, bad["truncated"].parent], outbox) as data:
        report = data.report
        outcomes = list(data.lifecycle().outcome)
    assert outcomes == ["delivered"] and report.files == 1
    named = {Path(f.file).name: f.problem for f in report.unreadable_files}
    assert set(named) == {p.name for p in bad.values()}
    assert "gzip" in named["text.jsonl.gz"].lower() and "GZIP" in named["truncated.jsonl.gz"]
    assert [f["file"] for f in report.to_dict()["unreadable_files"]] == [
        f.file for f in report.unreadable_files
    ]
    assert "unreadable, skipped" in str(report)


@pytest.mark.parametrize("kind", ["truncated", "text", "parquet"])
def test_stop_on_an_unreadable_file_is_one_line_and_exit_2(damaged, kind, capsys):
    events, outbox, bad = damaged
    with pytest.raises(ValidationError, match="cannot be read"):
        load([events, bad[kind]], outbox, on_unreadable="stop")
    args = ["analyze", "--events", str(events), str(bad[kind]), "--outbox", str(outbox)]
    assert main([*args, "--json"]) == 0
    assert f"skipped {bad[kind]}" in capsys.readouterr().err
    assert main([*args, "--on-unreadable", "stop"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad[kind]) in err


def test_a_memory_limit_that_is_no_size_is_a_usage_error(logs):
    events, outbox = logs.write()
    with pytest.raises(ValidationError, match="memory_limit"):
        load(events, outbox, memory_limit="banana")
    result = subprocess.run(
        [sys.executable, "-m", "rbmtools", "analyze", "--events", str(events), "--outbox",
         str(outbox), "--memory-limit", "banana"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--memory-limit" in result.stderr
