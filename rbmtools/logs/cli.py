"""``rbmtools logs compact`` (segments -> day-partitioned Parquet) and ``rbmtools logs sql``.

``compact`` is safe to run again and again (from cron, say): only new or changed segments are
written. ``sql`` prints the analysis as a script for BigQuery (or Spark SQL), or the BigQuery
table schema of either log, for teams whose logs already live in a warehouse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_OK = 0


def register(subparsers: Any) -> None:
    """Add ``logs compact`` and ``logs sql`` to the ``rbmtools`` command."""
    logs = subparsers.add_parser(
        "logs",
        help="compact webhook logs to Parquet; print the analysis SQL for BigQuery or Spark",
        description="Housekeeping of RBM webhook logs.",
    )
    commands = logs.add_subparsers(title="logs commands", metavar="COMMAND")
    logs.set_defaults(func=lambda args: logs.print_help() or EXIT_OK)

    compact = commands.add_parser(
        "compact",
        help="convert receiver segments to day-partitioned Parquet (idempotent)",
        description=(
            "Convert the receiver's segments (EVENTS_DIR/date=YYYY-MM-DD/events-*.jsonl[.gz]) "
            "to Parquet, one file per segment under PARQUET_DIR/date=YYYY-MM-DD/, with the "
            "decoded flat columns every engine reads fast. Run it again at any time: unchanged "
            "segments are skipped, changed ones rewritten, none added twice. Malformed lines "
            "are counted and kept in each day's _MALFORMED file (JSON Lines)."
        ),
    )
    compact.add_argument("events_dir", type=Path, metavar="EVENTS_DIR", help="the receiver's log")
    compact.add_argument(
        "--to", dest="parquet_dir", type=Path, required=True, metavar="PARQUET_DIR"
    )
    compact.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    compact.add_argument("--memory-limit", help="DuckDB memory limit, e.g. 2GB")
    compact.add_argument("--json", action="store_true", help="print the result as JSON")
    compact.set_defaults(func=run_compact)

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
        help="group columns, comma separated: useCase, trafficType, experiment, arm, day "
        "(default: useCase; '' for no grouping)",
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
