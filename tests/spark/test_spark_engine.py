"""The Spark engine reads logs into the same relations as DuckDB, line for line."""

from __future__ import annotations

import pandas as pd
import pytest

from rbmtools.analysis import sql
from rbmtools.analysis.duckdb_engine import DuckDBEngine
from rbmtools.analysis.inputs import resolve_paths
from rbmtools.errors import ValidationError

from .spark_logs import MALFORMED_LINES, event_rows, outbox_rows, write_mixed_logs


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return write_mixed_logs(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def duck(mixed):
    engine = DuckDBEngine(threads=1)
    engine.register_logs(resolve_paths(mixed[0], "events"), resolve_paths(mixed[1], "outbox"))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def sparked(spark_engine, mixed):
    spark_engine.register_logs(
        spark_engine.resolve(mixed[0], "events"), spark_engine.resolve(mixed[1], "outbox")
    )
    return spark_engine


def test_event_lines_become_the_same_rows(duck, sparked):
    ours, theirs = event_rows(sparked), event_rows(duck)
    assert len(ours) == len(theirs) >= 40
    assert ours.to_dict("records") == theirs.to_dict("records")


def test_outbox_records_become_the_same_rows(duck, sparked):
    assert outbox_rows(sparked).to_dict("records") == outbox_rows(duck).to_dict("records")


def test_summary_load_report_and_facts_agree(duck, sparked):
    for engine in (duck, sparked):
        engine.create_table("rbm_summary", sql.SUMMARY)
        engine.create_table("rbm_facts", sql.FACTS)
    ours, theirs = sparked.row(sql.LOAD_REPORT), duck.row(sql.LOAD_REPORT)
    assert ours == theirs
    assert ours["malformed"] == len(MALFORMED_LINES) + 3  # + bad push time, two bad pushes
    assert ours["outbox_malformed"] == 2 and ours["unknown_messages"] == 1
    query = "SELECT * FROM rbm_facts"
    ours, theirs = sparked.df(query), duck.df(query)
    assert len(ours) == len(theirs) > 12
    keys = ["row_kind", "message_id", "bad_file", "problem"]
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_malformed_lines_are_found_with_their_line_numbers(duck, sparked, mixed):
    files = sorted(str(p) for p in mixed[0].rglob("events-*"))
    for path in files:
        assert list(sparked.bad_rows(path, "events")) == list(duck.bad_rows(path, "events"))
    bad = list(sparked.bad_rows(files[1], "events"))
    assert [text for _, text, _ in bad][-len(MALFORMED_LINES) - 2 : -2] == MALFORMED_LINES
    outbox = list(sparked.bad_rows(str(mixed[1]), "outbox"))
    assert [text for _, text, _ in outbox] == [
        '{"kind": "send", "messageId": "no-time"}',
        "garbage",
    ]
    assert outbox == list(duck.bad_rows(str(mixed[1]), "outbox"))


def test_uris_are_listed_through_hadoop(spark_engine, mixed, tmp_path):
    local = spark_engine.resolve(mixed[0], "events")
    by_uri = spark_engine.resolve(f"file://{mixed[0]}", "events")
    assert [p.split("/")[-1] for p in by_uri.jsonl] == [p.split("/")[-1] for p in local.jsonl]
    globbed = spark_engine.resolve(f"file://{mixed[0]}/*/events-*.jsonl.gz", "events")
    assert [p.split("/")[-1] for p in globbed.jsonl] == ["events-000002.jsonl.gz"]
    with pytest.raises(ValidationError, match="matches no file"):
        spark_engine.resolve(f"file://{tmp_path}/nothing-here", "events")
    (tmp_path / "_hidden").mkdir()
    (tmp_path / "_hidden" / "x.jsonl").write_text("{}\n")
    with pytest.raises(ValidationError, match=r"no \.jsonl"):
        spark_engine.resolve(f"file://{tmp_path}", "events")


def test_paths_with_odd_characters_keep_their_names(spark_engine, duck, tmp_path):
    folder = tmp_path / "a b+c%d{x,y}"
    folder.mkdir()
    target = folder / "events.jsonl"
    target.write_text('{"hello": 1}\n{"senderPhoneNumber": "+1", "eventType": "IS_TYPING"}\n')
    spark_engine.register_logs(
        spark_engine.resolve(target, "events"), spark_engine.resolve(None, "o")
    )
    rows = event_rows(spark_engine)
    assert set(rows["source_file"]) == {str(target)}
    assert list(spark_engine.bad_rows(str(target), "events")) == [
        (1, '{"hello": 1}', "not an event")
    ]


def test_the_callers_session_is_left_alone(spark, spark_engine):
    names = {table.name for table in spark.catalog.listTables()}
    assert not names & {"rbm_event_rows", "rbm_outbox_rows", "rbm_facts"}
    assert spark_engine.spark.conf.get("spark.sql.session.timeZone") == "UTC"
