"""Parquet bucketed by message id: written by to_parquet(buckets=K), loaded bucket by bucket to
the same summary, report, lifecycle and analysis as one pass."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from rbmtools.analysis import build_analysis, load
from rbmtools.analysis.buckets import MARKER, bucket_sql, check_buckets, marker, split_by_bucket
from rbmtools.analysis.inputs import LogFiles, resolve_paths
from rbmtools.cli import main
from rbmtools.errors import ValidationError


@pytest.fixture(scope="module")
def layouts(synthetic_dataset, tmp_path_factory):
    """The synthetic logs as one Parquet pair and as 5 buckets (malformed lines left out by
    both, so the two loads must agree exactly)."""
    root = tmp_path_factory.mktemp("buckets")
    return {
        "flat": synthetic_dataset.to_parquet(root / "flat"),
        "bucketed": synthetic_dataset.to_parquet(root / "bucketed", buckets=5),
    }


def _summary(data) -> pd.DataFrame:
    frame = data.engine.df("SELECT * FROM rbm_summary")
    keys = list(frame.columns[: list(frame.columns).index("n")])
    return frame.sort_values(keys, na_position="first").reset_index(drop=True)


def test_the_bucketed_layout_puts_each_message_in_one_bucket(layouts):
    events, outbox = layouts["bucketed"]
    assert sorted(p.name for p in Path(events).iterdir()) == [
        MARKER,
        *(f"bucket={b}" for b in range(5)),
    ]

    def rows(log: str) -> str:
        return f"read_parquet('{log}/*/*.parquet', hive_partitioning = true)"

    spread = duckdb.sql(
        f"""SELECT "messageId" FROM (
            SELECT "messageId", bucket FROM {rows(events)}
            UNION ALL SELECT "messageId", bucket FROM {rows(outbox)}
        ) WHERE "messageId" IS NOT NULL
        GROUP BY ALL HAVING COUNT(DISTINCT bucket) > 1"""  # noqa: S608 (a test's own paths)
    ).fetchall()
    assert spread == []
    # events about no message go by their own id: copies together, the events spread out
    loose = duckdb.sql(
        f"""SELECT COUNT(*), COUNT(DISTINCT bucket), MAX(buckets) FROM (
            SELECT "eventId", bucket, COUNT(DISTINCT bucket) OVER (PARTITION BY "eventId")
                AS buckets
            FROM {rows(events)} WHERE "messageId" IS NULL)"""  # noqa: S608
    ).fetchall()[0]
    assert loose[0] > 100 and loose[1] == 5 and loose[2] == 1
    sizes = duckdb.sql(f"SELECT bucket, COUNT(*) FROM {rows(outbox)} GROUP BY ALL").fetchall()  # noqa: S608
    counts = [n for _, n in sizes]
    assert len(counts) == 5 and min(counts) > 0.6 * max(counts)  # md5 spreads them evenly


def test_a_bucketed_load_gives_what_one_pass_gives(layouts):
    with load(*layouts["flat"]) as flat, load(*layouts["bucketed"]) as bucketed:
        assert split_by_bucket(bucketed.event_files, bucketed.outbox_files) is not None
        pd.testing.assert_frame_equal(_summary(bucketed), _summary(flat))
        expected = asdict(flat.report) | {"files": 5, "outbox_files": 5, "seconds": None}
        assert asdict(bucketed.report) | {"seconds": None} == expected
        assert bucketed.report.messages > 1000
        doc = build_analysis(bucketed, ["useCase", "arm"], bootstrap=20).to_dict()
        want = build_analysis(flat, ["useCase", "arm"], bootstrap=20).to_dict()
        for d in (doc, want):
            d["read"].pop("seconds"), d["read"].pop("files"), d["read"].pop("outbox_files")
            d.pop("inputs")  # the folders read, named: flat files here, bucket folders there
        assert doc == want
        # the lifecycle reads all buckets at once (the whole logs are registered again)
        pd.testing.assert_frame_equal(bucketed.lifecycle(), flat.lifecycle())
        tables = set(bucketed.engine.df("SHOW TABLES")["name"])
        assert "rbm_summary_parts" not in tables


def test_a_load_splits_only_logs_bucketed_by_rbmtools(tmp_path):
    def files(*paths: str) -> LogFiles:
        return LogFiles(parquet=tuple(str(tmp_path / p) for p in paths))

    def mark(folder: str, text: str) -> None:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / MARKER).write_text(text)

    events = files("e/bucket=0/a.parquet", "e/bucket=1/a.parquet", "e/bucket=1/b.parquet")
    outbox = files("o/bucket=0/a.parquet", "o/bucket=2/a.parquet")
    assert split_by_bucket(events, outbox) is None  # bucket=N folders of unknown making
    mark("e", marker(3))
    mark("o", marker(3))
    parts = split_by_bucket(events, outbox)
    assert [(len(e), len(o)) for e, o in parts] == [(1, 1), (2, 0), (0, 1)]
    mark("o", marker(4))  # bucketed another way: the buckets do not match
    assert split_by_bucket(events, outbox) is None
    mark("o", '{"scheme": "someone-else", "buckets": 3}')
    assert split_by_bucket(events, outbox) is None
    mark("o", marker(3))
    assert split_by_bucket(events, files("o/outbox.parquet")) is None  # any message anywhere
    assert split_by_bucket(events, files("o/bucket=0/a.parquet", "o/bucket=7/a.parquet")) is None
    assert split_by_bucket(events, files("o/bucket=0/deeper/a.parquet")) is None
    both = files("e/bucket=0/a.parquet", "x/bucket=1/a.parquet")  # two bucketed roots mixed
    assert split_by_bucket(both, outbox) is None
    assert split_by_bucket(LogFiles(jsonl=("e.jsonl",), parquet=events.parquet), outbox) is None
    assert split_by_bucket(events, LogFiles()) is None


def test_bucket_counts_are_checked_and_the_bucket_of_an_id_is_stable():
    for bad in (0, 1, 5000, True, "4", 2.0):
        with pytest.raises(ValidationError, match="buckets"):
            check_buckets(bad)
    # md5, not HASH: these must never change, or a layout written before would be read wrong
    query = f"SELECT {bucket_sql('id', 16)} FROM (VALUES ('m-1'), ('m-2'), (NULL)) AS t(id)"  # noqa: S608
    assert [b for (b,) in duckdb.sql(query).fetchall()] == [
        int.from_bytes(__import__("hashlib").md5(b"m-1").digest(), "little") % 16,
        int.from_bytes(__import__("hashlib").md5(b"m-2").digest(), "little") % 16,
        0,
    ]


def test_to_parquet_refuses_a_bad_bucket_count(synthetic_dataset, tmp_path):
    with pytest.raises(ValidationError, match="buckets"):
        synthetic_dataset.to_parquet(tmp_path, buckets=1)
    assert not any(tmp_path.iterdir())


def test_a_bucketed_directory_is_found_by_the_usual_path_rules(layouts):
    events, _ = layouts["bucketed"]
    assert len(resolve_paths(events, "events").parquet) == 5


def test_a_bucketed_load_shows_its_progress_per_bucket(layouts, capsys):
    with load(*layouts["bucketed"], progress=True) as data:
        assert data.report.messages > 1000
    assert "buckets: 100%" in capsys.readouterr().err


def test_writing_again_with_fewer_buckets_leaves_nothing_stale(synthetic_dataset, tmp_path):
    synthetic_dataset.to_parquet(tmp_path, buckets=5)
    events, outbox = synthetic_dataset.to_parquet(tmp_path, buckets=3)
    files = resolve_paths(events, "events").parquet
    assert {Path(f).parent.name for f in files} == {"bucket=0", "bucket=1", "bucket=2"}
    with load(events, outbox) as data:
        assert data.report.messages == synthetic_dataset.report.messages
        assert data.report.events == synthetic_dataset.report.events


def test_the_logs_bucket_command_writes_what_analyze_reads(synthetic, tmp_path, capsys):
    target = tmp_path / "history"
    quarantine = tmp_path / "bad.jsonl"
    args = ["logs", "bucket", "--events", str(synthetic.events_dir)]
    args += ["--outbox", str(synthetic.outbox_dir), "--to", str(target), "--buckets", "4"]
    assert main([*args, "--quarantine", str(quarantine), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["buckets"] == 4 and written["messages"] > 1000
    assert written["malformed_left_out"] == len(quarantine.read_text().splitlines()) > 0
    assert sorted(p.name for p in (target / "outbox").iterdir()) == [
        MARKER,
        *(f"bucket={b}" for b in range(4)),
    ]
    analyze = ["analyze", "--events", written["events"], "--outbox", written["outbox"], "--json"]
    assert main([*analyze, "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["read"]["messages"] == written["messages"]
    assert main([*args[:-1], "1"]) == 2  # one bucket is refused before anything is read
    assert "buckets" in capsys.readouterr().err
