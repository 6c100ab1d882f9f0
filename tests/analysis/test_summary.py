"""The load summary: every aggregate summed up from it equals the one counted per message."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbmtools.analysis import load, sql
from rbmtools.testing import lifecycle_sql

from .conftest import LogBuilder

GROUPINGS = ([], ["useCase"], ["useCase", "arm"], ["day"], ["experiment", "trafficType", "day"])
PAIRS = (
    (lifecycle_sql.group_counts_sql, sql.summary_counts_sql),
    (lifecycle_sql.latency_bins_sql, sql.summary_latency_bins_sql),
    (lifecycle_sql.read_bins_sql, sql.summary_read_bins_sql),
)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys:
        return frame.reset_index(drop=True)
    return frame.sort_values(keys, na_position="first").reset_index(drop=True)


def assert_summary_matches_lifecycle(data) -> None:
    """Each aggregate, from ``rbm_summary`` and from ``rbm_lifecycle``: the same frame."""
    data.query("SELECT 1")  # builds rbm_facts and rbm_lifecycle
    for by in GROUPINGS:
        for per_message, summed in PAIRS:
            expected = data.engine.df(per_message(by))
            actual = data.engine.df(summed(by))
            keys = by + (["bin"] if "bin" in expected.columns else [])
            assert list(actual.columns) == list(expected.columns), (summed.__name__, by)
            pd.testing.assert_frame_equal(
                _sorted(actual, keys), _sorted(expected, keys), obj=f"{summed.__name__}({by})"
            )


def test_summary_matches_the_lifecycle_on_synthetic_logs(synthetic_dataset):
    assert_summary_matches_lifecycle(synthetic_dataset)


def _edge_cases(logs: LogBuilder) -> None:
    """Pending messages with and without expiry, duplicates of every shape, events without an
    eventId, clock skew, failed sends, unknown messages, replies and a malformed line."""
    logs.send("waiting", 0.0, arm="a", experiment="x")
    logs.send("expires-late", 0.0, ttl=5000.0, arm="a", experiment="x")
    logs.send("expires-early", 0.0, ttl=20.0, arm="b", experiment="x")
    logs.send("delivered", 1.0, arm="b", experiment="x")
    payload = logs.event("delivered", "DELIVERED", 3.0)
    logs.line(payload, shape="push", received=40.0)
    logs.line(payload, shape="decoded")
    logs.event("delivered", "READ", 9.0, event_id=None)
    logs.event("delivered", "READ", 9.0, event_id=None, received=11.0)
    logs.send("skewed", 5.0, use_case="promo")
    logs.event("skewed", "DELIVERED", 4.0)
    logs.send("unreachable", 2.0, status=404)
    logs.send("failed", 2.0, status=503)
    logs.send("retried", 0.0, status=503)
    logs.send("retried", 1.0)
    logs.revoke("retried", 30.0, 200)
    logs.fallback("retried", 30.5)
    logs.event("nobody-sent-this", "DELIVERED", 6.0)
    logs.event(None, "IS_TYPING", 7.0)
    logs.raw_event("not json")


def test_summary_matches_the_lifecycle_on_edge_cases(logs):
    _edge_cases(logs)
    with load(*logs.write()) as data:
        assert_summary_matches_lifecycle(data)
        frame = data.lifecycle().set_index("messageId")
    # the end of the logs is the latest time of an event, a receipt or a record: a later copy
    # of an event (the push received at 40 s) shows the receiver was still listening then, so
    # the messages still pending were observed undelivered until 40 s (and the end of the logs
    # is a maximum over lines, which a history merged piece by piece keeps exactly)
    assert frame.loc["waiting", "observedSeconds"] == 40.0
    assert frame.loc["expires-late", "observedSeconds"] == 40.0
    assert frame.loc["expires-early", "observedSeconds"] == 20.0


def test_the_lifecycle_is_built_on_first_use(logs):
    _edge_cases(logs)
    with load(*logs.write()) as data:
        tables = set(data.engine.df("SELECT table_name FROM duckdb_tables()").table_name)
        assert "rbm_summary" in tables and "rbm_facts" not in tables
        summary = data.summary(by="arm").set_index("arm")
        assert summary.loc["a", "messages"] == 2 and summary.loc["a", "pending"] == 2
        rows = data.query("SELECT COUNT(*) AS n FROM rbm_lifecycle WHERE \"useCase\" = 'otp'")
        assert rows.n.iloc[0] == 6
        assert len(data.lifecycle()) == 7  # the failed send and the unknown message are not


message_history = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 200, 200, 404, 503]),
        "ttl": st.none() | st.sampled_from([30.0, 300.0]),
        "delivered": st.none() | st.integers(0, 400),
        "read": st.none() | st.integers(0, 100),
        "copies": st.integers(0, 2),
        "copy_shape": st.sampled_from(["receiver", "push", "decoded"]),
        "no_event_id": st.booleans(),
        "api": st.lists(
            st.tuples(st.integers(1, 400), st.sampled_from([200, 404, 503])), max_size=2
        ),
        "ttl_event": st.none()
        | st.sampled_from(["TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"]),
        "arm": st.sampled_from(["a", "b", None]),
        "use_case": st.sampled_from(["otp", "promo"]),
    }
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message_history, min_size=1, max_size=8))
def test_summary_matches_the_lifecycle_for_any_history(histories):
    with tempfile.TemporaryDirectory() as folder:
        logs = LogBuilder(Path(folder))
        for i, h in enumerate(histories):
            mid = f"m{i}"
            send = float(i)
            experiment = "x" if h["arm"] else None
            logs.send(
                mid, send, status=h["status"], ttl=h["ttl"], use_case=h["use_case"],
                arm=h["arm"], experiment=experiment,
            )  # fmt: skip
            if h["delivered"] is not None:
                event_id = None if h["no_event_id"] else "auto"
                payload = logs.event(mid, "DELIVERED", send + h["delivered"], event_id=event_id)
                for copy in range(h["copies"]):
                    logs.line(payload, shape=h["copy_shape"], received=500.0 + copy)
                if h["read"] is not None:
                    logs.event(mid, "READ", send + h["delivered"] + h["read"])
            for when, status in h["api"]:
                logs.revoke(mid, send + when, status)
            if h["ttl_event"] and h["ttl"]:
                logs.event(mid, h["ttl_event"], send + h["ttl"])
        with load(*logs.write()) as data:
            assert_summary_matches_lifecycle(data)


def test_event_type_codes_sort_like_the_type_names():
    """The minimum over copies of an event is taken on codes; it must name the same type as
    the minimum of the names would, and the lifecycle's types must keep their own codes."""
    names = sorted(
        [*sql.KEY_EVENTS, "IS_TYPING", "SUBSCRIBE", "A", "TTL_EXPIRATION_REVOKE", "ZZZ", "READS"]
    )
    # the expression is a constant of sql.py; the names are bound as a parameter
    query = f"SELECT event_type, {sql._TYPE_CODE} AS code FROM (SELECT UNNEST(?) AS event_type)"  # noqa: S608
    codes = duckdb.execute(query + " ORDER BY event_type", [names]).fetchall()
    assert [code for _, code in codes] == sorted(code for _, code in codes)
    for name, code in codes:
        assert (code == sql._KEY_EVENT_CODES.get(name)) if name in sql.KEY_EVENTS else code % 2


@pytest.mark.parametrize(
    ("steps", "whole_sql", "build", "at_least"),
    [
        (sql.SUMMARY_STEPS, sql.SUMMARY, lambda data: None, 10),  # built by load
        (sql.FACTS_STEPS, sql.FACTS, lambda data: data.lifecycle(), 100),  # on first use
    ],
    ids=["load-summary", "lifecycle-facts"],
)
def test_the_steps_give_the_one_statement_table(
    synthetic_dataset, steps, whole_sql, build, at_least
):
    """``load`` runs ``SUMMARY_STEPS`` and ``lifecycle()`` runs ``FACTS_STEPS`` (so each big
    aggregation can spill on its own); the one-statement ``SUMMARY`` / ``FACTS`` (what the
    exported scripts run) gives the same table, and the intermediate tables are dropped."""
    engine = synthetic_dataset.engine
    build(synthetic_dataset)
    table = steps[-1][0]  # a constant of sql.py: the f-strings below build no user text
    engine.create_table(f"{table}_whole", whole_sql)
    try:
        columns = list(engine.df(f"SELECT * FROM {table} LIMIT 0").columns)  # noqa: S608
        keys = columns[: columns.index("n")] if "n" in columns else columns[:3]
        whole = _sorted(engine.df(f"SELECT * FROM {table}_whole"), keys)  # noqa: S608
        stepped = _sorted(engine.df(f"SELECT * FROM {table}"), keys)  # noqa: S608
        assert len(stepped) > at_least
        pd.testing.assert_frame_equal(stepped, whole)
    finally:
        engine.execute(f"DROP TABLE IF EXISTS {table}_whole")
    tables = set(engine.df("SHOW TABLES")["name"])
    assert table in tables
    assert not tables & {name for name, _ in steps[:-1]}
