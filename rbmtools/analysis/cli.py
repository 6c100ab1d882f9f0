"""``rbmtools analyze``: the analysis of webhook and outbox logs from the command line.

Reads the event logs and outbox logs given (files, globs, directories), and prints a readable
summary, the stable JSON document (``--json``), or writes an HTML report (``--html FILE``, the
design of every rbmtools report). Malformed lines never stop the run; ``--quarantine FILE``
keeps them for inspection. A file that exists is not replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.outputs import add_force_argument

__all__ = ["register"]


def add_log_arguments(parser: argparse.ArgumentParser, history: bool = False) -> None:
    """``--events`` and ``--outbox``: files, globs or directories, as ``load`` takes them (or,
    with ``history``, ``--history`` instead), and ``--on-unreadable``: what to do with a file
    that cannot be read at all."""
    required = not history
    parser.add_argument("--events", nargs="+", required=required, metavar="PATH", help="event logs")
    parser.add_argument(
        "--outbox", nargs="+", required=required, metavar="PATH", help="outbox logs"
    )
    if history:
        parser.add_argument(
            "--history",
            metavar="HISTORY",
            help="a folder 'rbmtools logs compact' keeps (instead of --events/--outbox): its "
            "per-message state plus what its logs gained since",
        )
    parser.add_argument(
        "--on-unreadable",
        choices=("skip", "stop"),
        default="skip",
        help="a file that cannot be read at all (truncated .gz, text named .gz, damaged "
        "Parquet): skip it and name it in the report (default), or stop (exit 2)",
    )


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _memory_limit(text: str) -> str:
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|[KMGT]i?B)?\s*", text, re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"must be a size such as 2GB or 512MB, not {text!r}")
    return text


def add_duckdb_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--memory-limit`` of the embedded DuckDB (checked here: a bad value
    is a usage error, exit 2)."""
    parser.add_argument("--threads", type=_threads, help="DuckDB threads (default: all cores)")
    parser.add_argument(
        "--memory-limit", type=_memory_limit, help="DuckDB memory limit, e.g. 2GB (spills beyond)"
    )


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    parser = subparsers.add_parser(
        "analyze",
        help="revoke success, delivery latency and the best TTL from webhook and outbox logs",
        description=(
            "Analyze RBM webhook event logs and outbox logs: message lifecycles, revoke "
            "success (Wilson intervals), delivery latency (Kaplan-Meier) and the best TTL per "
            "use case under a cost policy. Inputs are files, globs or directories of JSON "
            "Lines (.jsonl, .jsonl.gz) or Parquet."
        ),
    )
    add_log_arguments(parser, history=True)
    parser.add_argument(
        "--by",
        default="useCase",
        help="group columns, comma separated: useCase, trafficType, experiment, arm, "
        "policyVersion, day (default: useCase; '' for no grouping)",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="YAML or JSON mapping useCase -> cost policy fields (over the defaults for otp, "
        "transaction, promo, alert); durations like '5s', '10m'",
    )
    parser.add_argument(
        "--active-policy",
        metavar="FILE",
        help="the TTL policy in use (rbmtools policy write): per use case, a 'drift' entry says "
        "whether it still holds (its duration against the best TTL's interval, the saving per "
        "1,000 messages), with a headline line when it does not",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the JSON document")
    output.add_argument("--html", metavar="FILE", help="write an HTML report to FILE")
    parser.add_argument("--quarantine", metavar="FILE", help="write malformed lines to FILE")
    add_force_argument(parser, "the --html or --quarantine file")
    parser.add_argument(
        "--reference",
        metavar="ARM",
        help="compare every arm with this one (default: the first arm in sort order)",
    )
    parser.add_argument(
        "--min-at-risk",
        type=int,
        default=30,
        metavar="N",
        help="cut latency curves where fewer than N messages remain at risk (default 30)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap replicates for the best-TTL interval (default 200; 0 for none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_duckdb_arguments(parser)
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="the engine that runs the SQL (default duckdb, embedded; spark: the same "
        "analysis on a Spark session, paths may be hdfs://, s3a://, gs://...)",
    )
    parser.add_argument(
        "--spark-master", metavar="URL", help="Spark master for --engine spark (default local[*])"
    )
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting for --engine spark (repeatable), e.g. spark.executor.memory=8g",
    )
    parser.set_defaults(func=run)


def _spark_conf(items: list[str]) -> dict[str, str]:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError("--spark-conf", item, "must be KEY=VALUE")
        conf[key.strip()] = value.strip()
    return conf


def _prefetch_statistics() -> threading.Thread:
    """Import the statistics (pandas, numpy and the report) in a thread of their own while
    the engine reads the logs: DuckDB works outside Python's lock, so the half second of
    imports overlaps the load instead of preceding it."""

    def work() -> None:
        import rbmtools.analysis.report  # noqa: F401

    thread = threading.Thread(target=work, name="rbmtools-prefetch", daemon=True)
    thread.start()
    return thread


def run(args: argparse.Namespace) -> int:
    from rbmtools.outputs import refuse_existing

    if args.history is None and (args.events is None or args.outbox is None):
        raise ValidationError("--events", args.events, "give --events and --outbox, or --history")
    if args.history is not None and (args.events is not None or args.outbox is not None):
        raise ValidationError("--history", args.history, "give a history or logs, not both")
    for flag, path in (("--html", args.html), ("--quarantine", args.quarantine)):
        if path is not None:  # refused before anything is read
            refuse_existing(path, args.force, flag)
    prefetch = _prefetch_statistics()
    from rbmtools.analysis.dataset import load

    progress = sys.stderr.isatty()
    with load(
        args.events,
        args.outbox,
        history=args.history,
        quarantine=args.quarantine,
        threads=args.threads,
        memory_limit=args.memory_limit,
        progress=progress,
        engine=args.engine,
        spark_master=args.spark_master,
        spark_conf=_spark_conf(args.spark_conf),
        on_unreadable=args.on_unreadable,
    ) as dataset:
        prefetch.join()
        from rbmtools.analysis.report import build_analysis

        for found in dataset.report.unreadable_files:
            print(f"rbmtools: skipped {found.file}: {found.problem}", file=sys.stderr)
        analysis = build_analysis(
            dataset,
            args.by,
            args.policy,
            min_at_risk=args.min_at_risk,
            bootstrap=args.bootstrap,
            seed=args.seed,
            daily=bool(args.html),
            reference=args.reference,
        )
        if args.active_policy:
            from rbmtools.analysis.ttl_policy import check_ttl_policy

            check_ttl_policy(analysis, args.active_policy, dataset)
        if args.html:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(analysis.to_html())
            print(f"wrote {args.html}", file=sys.stderr)
            return 0
        text = json.dumps(analysis.to_dict(), indent=2) + "\n" if args.json else analysis.to_text()
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
