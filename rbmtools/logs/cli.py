"""``rbmtools logs compact`` (segments and outbox -> a history: Parquet and per-message state),
``rbmtools logs bucket`` (both logs -> Parquet bucketed by message id) and ``rbmtools logs sql``.

``compact`` is safe to run again and again (from cron, say): only what the logs gained is read.
``bucket`` rewrites a whole history in the layout a load analyses bucket by bucket. ``sql``
prints the analysis as a script for BigQuery (or Spark SQL), or the BigQuery table schema of
either log, for teams whose logs already live in a warehouse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rbmtools.analysis.cli import add_duckdb_arguments, add_log_arguments

__all__ = ["register"]

EXIT_OK = 0


def register(subparsers: Any) -> None:
    """Add ``logs compact``, ``logs bucket`` and ``logs sql`` to the ``rbmtools`` command."""
    logs = subparsers.add_parser(
        "logs",
        help="compact webhook logs to Parquet; print the analysis SQL for BigQuery or Spark",
        description="Housekeeping of RBM webhook logs.",
    )
    commands = logs.add_subparsers(title="logs commands", metavar="COMMAND")
    logs.set_defaults(func=lambda args: logs.print_help() or EXIT_OK)

    compact = commands.add_parser(
        "compact",
        help="keep a history: the logs as Parquet and a per-message state (incremental)",
        description=(
            "Read what the receiver's segments (EVENTS_DIR/date=YYYY-MM-DD/events-*.jsonl[.gz]) "
            "and the outbox gained since the last run (new files, grown ones) into the history "
            "HISTORY: the lines as Parquet parts by day, the lines that are no event in each "
            "folder's _MALFORMED file, and the per-message state, merged into the days it "
            "touches, with their summaries. 'rbmtools analyze --history HISTORY' then reads "
            "the state and only what came in since. Run it as often as you like (from cron): "
            "nothing is added twice, and a run killed half-way leaves the last history readable."
        ),
    )
    compact.add_argument("events_dir", type=Path, metavar="EVENTS_DIR", help="the receiver's log")
    compact.add_argument("--to", dest="parquet_dir", type=Path, required=True, metavar="HISTORY")
    compact.add_argument(
        "--outbox",
        nargs="+",
        metavar="PATH",
        help="outbox logs (files, globs or directories; remembered for later runs)",
    )
    compact.add_argument(
        "--rebuild",
        action="store_true",
        help="compute the per-message state again from all the Parquet parts",
    )
    add_duckdb_arguments(compact)
    compact.add_argument("--json", action="store_true", help="print the result as JSON")
    compact.set_defaults(func=run_compact)

    bucket = commands.add_parser(
        "bucket",
        help="rewrite both logs as Parquet bucketed by message id (fast repeated analysis)",
        description=(
            "Read an event log and an outbox log (files, globs or directories; JSON Lines or "
            "Parquet) and write them to PARQUET_DIR/events/bucket=N/ and "
            "PARQUET_DIR/outbox/bucket=N/, every message in one bucket: 'rbmtools analyze "
            "--events PARQUET_DIR/events --outbox PARQUET_DIR/outbox' then analyses one bucket "
            "at a time, in memory. What the two folders held is replaced. Malformed lines are "
            "left out (see --quarantine)."
        ),
    )
    add_log_arguments(bucket)
    bucket.add_argument("--to", dest="parquet_dir", type=Path, required=True, metavar="PARQUET_DIR")
    bucket.add_argument(
        "--buckets",
        type=int,
        default=32,
        help="how many buckets (default 32; aim for a few million lines a bucket)",
    )
    bucket.add_argument("--quarantine", metavar="FILE", help="write the malformed lines to FILE")
    add_duckdb_arguments(bucket)
    bucket.add_argument("--json", action="store_true", help="print the result as JSON")
    bucket.set_defaults(func=run_bucket)

    script = commands.add_parser(
        "sql",
        help="print the analysis SQL for BigQuery or Spark SQL",
        description=(
            "Print the analysis (the load summary, the load report and the compact aggregates; "
            "with --lifecycle the per-message lifecycle too) as "
            "a SQL script in another engine's dialect, transpiled from the one DuckDB "
            "definition; or, with --schema, the BigQuery table schema of a log."
        ),
    )
    script.add_argument("--dialect", choices=("bigquery", "spark"), default="bigquery")
    script.add_argument(
        "--by",
        default="useCase",
        help="group columns, comma separated: useCase, trafficType, experiment, arm, "
        "policyVersion, day (default: useCase; '' for no grouping)",
    )
    script.add_argument("--events-table", metavar="TABLE", help="table holding the event log")
    script.add_argument("--outbox-table", metavar="TABLE", help="table holding the outbox log")
    script.add_argument(
        "--external",
        action="store_true",
        help="the tables are BigQuery external tables over the log files (_FILE_NAME names "
        "each line's file)",
    )
    script.add_argument(
        "--lifecycle",
        action="store_true",
        help="also return one lifecycle row per message (a second pass over the logs)",
    )
    script.add_argument(
        "--schema",
        choices=("events", "outbox"),
        help="print the BigQuery schema (JSON) of this log instead of the script",
    )
    script.set_defaults(func=run_sql)


def run_compact(args: argparse.Namespace) -> int:
    from rbmtools.logs.compact import compact

    result = compact(
        args.events_dir,
        args.parquet_dir,
        outbox=args.outbox,
        rebuild=args.rebuild,
        threads=args.threads,
        memory_limit=args.memory_limit,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    if result.unpartitioned:
        print(
            f"rbmtools logs compact: {len(result.unpartitioned)} files outside "
            "date=YYYY-MM-DD directories were not compacted",
            file=sys.stderr,
        )
    return EXIT_OK


def run_bucket(args: argparse.Namespace) -> int:
    import time

    from rbmtools.analysis import load
    from rbmtools.analysis.buckets import check_buckets

    check_buckets(args.buckets)  # before the logs are read
    started = time.perf_counter()
    with load(
        args.events,
        args.outbox,
        quarantine=args.quarantine,
        threads=args.threads,
        memory_limit=args.memory_limit,
        progress=sys.stderr.isatty(),
        on_unreadable=args.on_unreadable,
    ) as data:
        events, outbox = data.to_parquet(args.parquet_dir, buckets=args.buckets)
        report = data.report
    result = {
        "events": events,
        "outbox": outbox,
        "buckets": args.buckets,
        "messages": report.messages,
        "events_written": report.lines - report.malformed,
        "outbox_records_written": report.outbox_records,
        "malformed_left_out": report.malformed + report.outbox_malformed,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['messages']:,} messages ({result['events_written']:,} event lines, "
            f"{result['outbox_records_written']:,} outbox records) in {args.buckets} buckets: "
            f"{events}, {outbox} ({result['malformed_left_out']:,} malformed lines left out; "
            f"{result['seconds']:.1f} s)"
        )
    return EXIT_OK


def run_sql(args: argparse.Namespace) -> int:
    from rbmtools.analysis.export import analysis_script, schema_json

    if args.schema:
        sys.stdout.write(schema_json(args.schema))
        return EXIT_OK
    sys.stdout.write(
        analysis_script(
            args.dialect,
            args.by,
            events_table=args.events_table,
            outbox_table=args.outbox_table,
            external=args.external,
            lifecycle=args.lifecycle,
        )
    )
    return EXIT_OK
