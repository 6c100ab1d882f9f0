"""DuckDB and Spark give the same analysis of the same logs (issue 9's acceptance test).

Identical outcome counts and revoke rates, latency quantiles and best TTL within 1 % — in fact
the whole JSON document is expected to be identical but for the load time, because both engines
hand the same compact aggregates to the same statistics.
"""

from __future__ import annotations

import json
import math

import pytest

from rbmtools.analysis import build_analysis, load
from rbmtools.cli import main
from rbmtools.errors import ValidationError
from rbmtools.testing.synthetic import SyntheticConfig, generate_logs

BY = ("useCase", "arm")
# the shapes users really have: push bodies, times in every precision and offset, lower case
CONFIG = SyntheticConfig(
    messages=3_000, days=1.0, seed=29, rotate_lines=1_500, garbage_lines=6,
    shapes={"receiver": 0.4, "push": 0.3, "decoded": 0.3},
    time_styles={"micros": 0.3, "nanos": 0.2, "millis": 0.1, "seconds": 0.1, "offset": 0.1,
                 "offset-millis": 0.1, "lower": 0.1},
)  # fmt: skip


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return generate_logs(tmp_path_factory.mktemp("synthetic-spark"), CONFIG)


@pytest.fixture(scope="module")
def duck_data(synthetic):
    with load(synthetic.events_dir, synthetic.outbox_dir) as data:
        yield data


@pytest.fixture(scope="module")
def spark_data(synthetic, spark):
    with load(synthetic.events_dir, synthetic.outbox_dir, engine=spark) as data:
        yield data


@pytest.fixture(scope="module")
def documents(duck_data, spark_data):
    duck = build_analysis(duck_data, BY, bootstrap=50).to_dict()
    sparked = build_analysis(spark_data, BY, bootstrap=50).to_dict()
    return duck, sparked


def _within(a, b, tolerance=0.01):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-9)


def test_the_engines_are_who_they_say(duck_data, spark_data):
    assert (duck_data.engine.name, spark_data.engine.name) == ("duckdb", "spark")


def test_outcome_counts_and_revoke_rates_are_identical(documents):
    duck, sparked = documents
    assert [g["key"] for g in sparked["groups"]] == [g["key"] for g in duck["groups"]]
    assert len(duck["groups"]) == 4
    for ours, theirs in zip(sparked["groups"], duck["groups"], strict=True):
        assert ours["outcomes"] == theirs["outcomes"]
        assert ours["revoke_success"] == theirs["revoke_success"]


def test_latency_quantiles_and_best_ttl_agree_within_one_percent(documents):
    duck, sparked = documents
    for ours, theirs in zip(sparked["groups"], duck["groups"], strict=True):
        for quantile in ("p50", "p90", "p95", "p99"):
            assert _within(ours["latency_seconds"][quantile], theirs["latency_seconds"][quantile])
        assert _within(ours["best_ttl"]["seconds"], theirs["best_ttl"]["seconds"])
    estimated = [g["best_ttl"]["seconds"] for g in duck["groups"] if g["best_ttl"]["seconds"]]
    assert estimated, "the data must support at least one best TTL for this test to bite"


def test_the_whole_document_is_the_same_but_for_the_load_time(documents):
    duck, sparked = documents
    for doc in (duck, sparked):
        doc["read"].pop("seconds")
    assert sparked == duck


def test_lifecycles_and_set_aside_lines_are_the_same(duck_data, spark_data):
    assert spark_data.lifecycle().equals(duck_data.lifecycle())
    assert spark_data.report.malformed == duck_data.report.malformed > 0
    assert spark_data.malformed().equals(duck_data.malformed())


def test_spark_writes_parquet_that_duckdb_reads_back(spark_data, duck_data, synthetic, tmp_path):
    events, outbox = spark_data.to_parquet(tmp_path / "parquet")
    with load(events, outbox) as again:
        assert again.report.events == duck_data.report.events
        assert again.summary(BY).equals(duck_data.summary(BY))


def test_spark_reads_the_bucketed_layout_as_any_parquet(spark_data, duck_data, spark, tmp_path):
    """DuckDB writes it and reads it bucket by bucket; Spark reads it whole (refusing to write
    it, as its bucket would not be DuckDB's): the same summary either way."""
    events, outbox = duck_data.to_parquet(tmp_path / "bucketed", buckets=3)
    with load(events, outbox, engine=spark) as sparked, load(events, outbox) as duck:
        assert sparked.report.events == duck.report.events == duck_data.report.events
        assert sparked.summary(BY).equals(duck.summary(BY))
    with pytest.raises(ValidationError, match="DuckDB"):
        spark_data.to_parquet(tmp_path / "not-written", buckets=3)


def test_the_command_line_prints_the_same_json(synthetic, spark, capsys):
    args = ["analyze", "--events", str(synthetic.events_dir), "--outbox"]
    args += [str(synthetic.outbox_dir), "--by", "useCase,arm", "--json", "--bootstrap", "20"]
    assert main(args) == 0
    duck = json.loads(capsys.readouterr().out)
    assert main([*args, "--engine", "spark"]) == 0  # the session running in this process
    sparked = json.loads(capsys.readouterr().out)
    for doc in (duck, sparked):
        doc["read"].pop("seconds")
    assert sparked == duck


def test_engine_options_are_checked(synthetic, capsys):
    args = ["analyze", "--events", str(synthetic.events_dir), "--outbox"]
    args += [str(synthetic.outbox_dir)]
    assert main([*args, "--spark-master", "local[1]"]) == 2
    assert "spark" in capsys.readouterr().err
    assert main([*args, "--engine", "spark", "--memory-limit", "1GB"]) == 2
    assert "DuckDB" in capsys.readouterr().err


def test_the_lifecycle_stays_in_spark_when_wanted(spark_data):
    spark_data.query("SELECT COUNT(*) AS n FROM rbm_lifecycle")  # built on first use
    frame = spark_data.engine.table("rbm_lifecycle")
    assert frame.count() == spark_data.report.messages
    assert "outcome" in frame.columns
