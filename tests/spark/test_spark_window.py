"""A window on Spark: the same predicate in the transpiled SQL, the same messages as DuckDB."""

from __future__ import annotations

from pathlib import Path

from rbmtools.analysis import Window, build_analysis, load

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def test_spark_keeps_the_same_messages_of_a_window(spark):
    window = Window.parse("2026-11-24T06:00:00Z", "2026-11-25T18:00:00Z")
    logs = (str(SAMPLE / "events"), str(SAMPLE / "outbox.jsonl"))
    with load(*logs, sent=window) as duck:
        expected = build_analysis(duck, "useCase", bootstrap=0).to_dict()
        ids = sorted(duck.lifecycle().messageId)
    with load(*logs, sent=window, engine=spark) as sparked:
        got = build_analysis(sparked, "useCase", bootstrap=0).to_dict()
        assert sorted(sparked.lifecycle().messageId) == ids
    assert got["read"]["messages"] == expected["read"]["messages"] == len(ids) > 0
    counts = lambda doc: {g["key"]["useCase"]: g["outcomes"] for g in doc["groups"]}  # noqa: E731
    assert counts(got) == counts(expected)
