"""The shared SQL in Spark SQL and BigQuery: each rewrite keeps DuckDB's meaning, and the
scripts are pinned by golden files (``RBMTOOLS_UPDATE_GOLDEN=1`` rewrites them after a
deliberate change to ``sql.py``; review the diff)."""

# SQL in these tests is built from literals of the tests themselves.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot

from rbmtools.analysis import (
    Aggregates,
    compare_arms,
    delivery_latency,
    dialects,
    outcome_counts,
    revoke_success,
)
from rbmtools.analysis.export import analysis_script, table_schema
from rbmtools.cli import main
from rbmtools.errors import ValidationError

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RBMTOOLS_UPDATE_GOLDEN") == "1"


def _one_line(sql: str, dialect: str) -> str:
    return dialects.transpile(sql, dialect, pretty=False)


def test_hash_keeps_64_bits_and_bigquery_gets_a_fingerprint():
    assert _one_line("SELECT HASH(a, b) FROM t", "spark") == "SELECT XXHASH64(a, b) FROM t"
    assert _one_line("SELECT HASH(a) FROM t", "bigquery") == (
        "SELECT FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(a))) FROM t"
    )


def test_decimal_literals_are_doubles_in_spark_as_in_duckdb():
    assert _one_line("SELECT x / 1000000.0, CAST(1.5 AS DECIMAL(3, 1)) FROM t", "spark") == (
        "SELECT x / CAST(1000000.0 AS DOUBLE), CAST(1.5 AS DECIMAL(3, 1)) FROM t"
    )


def test_bigquery_timestamp_difference_and_null_skipping_greatest():
    text = _one_line("SELECT DATE_DIFF('microsecond', a, b), LEAST(a, b) FROM t", "bigquery")
    assert text == (
        "SELECT TIMESTAMP_DIFF(b, a, MICROSECOND), LEAST(COALESCE(a, b), COALESCE(b, a)) FROM t"
    )


def test_the_coalesced_greatest_skips_nulls_like_duckdb():
    con = duckdb.connect()
    rows = "(VALUES (1, NULL, 3), (NULL, NULL, NULL), (NULL, 2, NULL), (5, 4, 6)) AS t(a, b, c)"
    tree = sqlglot.parse_one("SELECT GREATEST(a, b, c), LEAST(a, b, c) FROM t", read="duckdb")
    rewritten = dialects._bigquery(tree).sql("duckdb").replace("FROM t", f"FROM {rows}")
    native = f"SELECT GREATEST(a, b, c), LEAST(a, b, c) FROM {rows}"
    assert con.sql(rewritten).fetchall() == con.sql(native).fetchall()


def test_group_by_names_shadowed_by_an_alias_are_qualified_in_bigquery():
    sql = (
        "SELECT CASE WHEN c THEN m END AS m, COUNT(*) AS n, x + 1 AS bin FROM t GROUP BY c, m, bin"
    )
    assert _one_line(sql, "bigquery").endswith("GROUP BY c, t.m, bin")


def test_arg_min_skips_null_values_in_every_dialect():
    spark = _one_line("SELECT ARG_MIN(v, k) FROM t", "spark")
    assert spark == "SELECT MIN_BY(v, CASE WHEN NOT v IS NULL THEN k END) FROM t"
    bigquery = _one_line("SELECT ARG_MIN(v, k) FILTER (WHERE c) FROM t", "bigquery")
    assert bigquery.startswith("SELECT ARRAY_AGG(IF((c) AND (NOT v IS NULL) AND (NOT k IS NULL)")
    assert "IGNORE NULLS ORDER BY" in bigquery and "LIMIT 1)[SAFE_OFFSET(0)]" in bigquery


def test_arg_min_means_the_same_on_spark(spark):
    rows = [(1, None, True), (None, 0, True), (2, 5, True), (3, 1, False)]
    duck = duckdb.connect()
    values = (
        "(VALUES "
        + ", ".join(
            "(" + ", ".join("NULL" if x is None else str(x).upper() for x in row) + ")"
            for row in rows
        )
        + ") AS t(v, k, c)"
    )
    query = (
        "SELECT ARG_MIN(v, k) AS a, ARG_MIN(v, k) FILTER (WHERE c) AS b, "
        "ARG_MIN(v, {'r': c, 'k': k}) AS s FROM t"
    )
    expected = duck.sql(query.replace("FROM t", f"FROM {values}")).fetchall()
    frame = spark.createDataFrame(rows, "v INT, k INT, c BOOLEAN")
    frame.createOrReplaceTempView("t")
    try:
        got = [tuple(r) for r in spark.sql(dialects.transpile(query, "spark")).collect()]
    finally:
        spark.catalog.dropTempView("t")
    assert got == expected == [(3, 2, 3)]


def test_unknown_dialects_are_refused():
    with pytest.raises(ValidationError, match="dialect"):
        dialects.transpile("SELECT 1", "oracle")
    with pytest.raises(ValidationError, match="dialect"):
        analysis_script("duckdb")


@pytest.mark.parametrize(
    ("dialect", "name", "options"),
    [
        ("bigquery", "analysis.bigquery.sql", {}),
        (
            "bigquery",
            "analysis.bigquery.external.sql",
            {
                "events_table": "proj.rbm.events",
                "outbox_table": "proj.rbm.outbox",
                "external": True,
                "lifecycle": True,
            },
        ),
        ("spark", "analysis.spark.sql", {}),
    ],
)
def test_the_scripts_match_their_golden_files(dialect, name, options):
    script = analysis_script(dialect, ("useCase", "arm"), **options)
    path = GOLDEN / name
    if UPDATE:
        path.write_text(script, encoding="utf-8")
    assert script == path.read_text(encoding="utf-8"), f"{name} changed: review and update"
    body = script.split("\n\n", 1)[1]  # after the header comments
    statements = [sqlglot.parse_one(part, read=dialect) for part in body.split(";\n\n")]
    # time and decode functions (BigQuery), inputs, summary, report, 3 aggregates, facts and
    # lifecycle
    expected = 2 * (dialect == "bigquery") + 5 + (4 if options else 0)
    assert len(statements) == expected


def test_the_bigquery_schema_covers_every_line_shape():
    events = {field["name"]: field for field in table_schema("events")}
    assert events["receivedAt"]["type"] == "STRING"  # read by the timestamp grammar
    assert events["received_at_typed"]["type"] == "TIMESTAMP"  # for tables holding TIMESTAMPs
    assert [f["name"] for f in events["message"]["fields"]] == ["data", "publishTime"]
    assert events["event"]["type"] == "RECORD"
    assert {f["name"] for f in table_schema("outbox")} >= {"kind", "messageId", "status"}


def test_logs_sql_command(capsys):
    assert main(["logs", "sql", "--dialect", "bigquery", "--by", "useCase,arm"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "analysis.bigquery.sql").read_text()
    assert main(["logs", "sql", "--schema", "outbox"]) == 0
    assert json.loads(capsys.readouterr().out) == table_schema("outbox")
    assert main(["logs", "sql", "--events-table", "a.b.c"]) == 2
    assert "both tables" in capsys.readouterr().err


def _bigquery_read_back(statement: sqlglot.exp.Expression) -> str:
    """A BigQuery statement of the script as DuckDB SQL, for the two constructs sqlglot
    cannot carry across: ARRAY_AGG(... LIMIT 1)[SAFE_OFFSET(0)] and FARM_FINGERPRINT."""
    E = sqlglot.exp

    def back(node):
        if (
            isinstance(node, E.Bracket)
            and isinstance(node.this, E.IgnoreNulls)
            and isinstance(node.this.this, E.ArrayAgg)
        ):
            order = node.this.this.this.this  # ARRAY_AGG(LIMIT(ORDER(value, keys)))
            value = order.this.sql("duckdb")
            keys = ", ".join(o.this.sql("duckdb") for o in order.expressions)
            text = f"(LIST({value} ORDER BY {keys}) FILTER (WHERE ({value}) IS NOT NULL))[1]"
            return sqlglot.parse_one(text, read="duckdb")
        if isinstance(node, E.Anonymous) and str(node.this).upper() == "FARM_FINGERPRINT":
            return E.Anonymous(this="HASH", expressions=node.expressions)
        if type(node).__name__ == "FarmFingerprint":
            return E.Anonymous(this="HASH", expressions=node.expressions or [node.this])
        return node

    return statement.transform(back).sql("duckdb")


def test_the_bigquery_script_read_back_into_duckdb_gives_the_same_lifecycle(tmp_path):
    """BigQuery cannot run here; sqlglot reads the script back into DuckDB's dialect (with
    BigQuery's NULL rules for GREATEST/LEAST and its ordering), which checks the rewrites'
    meaning on logs full of NULLs and odd lines."""
    from rbmtools.analysis import load
    from rbmtools.analysis.duckdb_engine import DuckDBEngine
    from rbmtools.analysis.inputs import resolve_paths

    from .spark_logs import write_mixed_logs

    events, outbox = write_mixed_logs(tmp_path)
    script = analysis_script("bigquery", ("useCase", "arm"), lifecycle=True)
    body = script.split("\n\n", 1)[1].split(";\n\n")[2:]  # time and decode: DuckDB's own
    engine = DuckDBEngine(threads=1)
    try:
        engine.register_logs(resolve_paths(events, "e"), resolve_paths(outbox, "o"))
        results = []
        for part in body:
            statement = sqlglot.parse_one(part, read="bigquery")
            text = _bigquery_read_back(statement)
            if isinstance(statement, sqlglot.exp.Create):
                engine.execute(text.replace("CREATE TEMPORARY TABLE", "CREATE TEMP TABLE"))
            else:
                results.append(engine.df(text))
    finally:
        engine.close()
    with load(events, outbox) as native:
        assert results[0].iloc[0]["messages"] == native.report.messages == 12
        assert results[0].iloc[0]["malformed"] == native.report.malformed
        expected = native.lifecycle()
        groups = native.summary(("useCase", "arm"))
        aggregates = native.aggregates(("useCase", "arm"))
    # (counts come back as floats: DuckDB's reading of COUNTIF may be NULL where BigQuery's is 0)
    lifecycle = results[4].sort_values(["sendTime", "messageId"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(lifecycle, expected, check_dtype=False)
    # DuckDB's reading of COUNTIF gives NULL for no rows where BigQuery gives 0
    counts = results[1].drop(columns=["useCase", "arm"]).fillna(0).astype("int64")
    assert counts.equals(groups.drop(columns=["useCase", "arm"]).astype("int64"))
    for got, want in ((results[2], aggregates.latency_bins), (results[3], aggregates.read_bins)):
        keys = ["useCase", "arm", "bin"]
        got = got.sort_values(keys).reset_index(drop=True).fillna(0)
        want = want.sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # the script's results, as BigQuery would hand them back, give the same statistics
    exported = Aggregates.from_frames(("useCase", "arm"), *results[1:4])
    assert len(exported) == len(aggregates) > 1
    for metric in (revoke_success, delivery_latency, outcome_counts, compare_arms):
        pd.testing.assert_frame_equal(metric(exported), metric(aggregates))
