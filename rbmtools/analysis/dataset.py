"""Loading the event log and the outbox log into one analysable ``Dataset``.

``load`` reads every file once: Pub/Sub push bodies are decoded, times normalised to UTC,
duplicates (same eventId, or same messageId + eventType + sendTime) counted once, and lines
that are not events counted and set aside, never failing the load. That one pass derives every
message's lifecycle and keeps only a small summary of counts (``sql.SUMMARY``), from which the
``LoadReport``, the metrics and the best TTL come; the per-message lifecycle table is built on
first use (``Dataset.lifecycle()``, ``Dataset.query()``), with a second pass over the logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from rbmtools.analysis import sql
from rbmtools.analysis.buckets import check_buckets, split_by_bucket, write_bucketed
from rbmtools.analysis.engines import (
    Engine,
    EngineArg,
    check_local_paths,
    make_engine,
    resolve_logs,
)
from rbmtools.analysis.inputs import LogFiles
from rbmtools.analysis.schema import validate_by
from rbmtools.analysis.window import Window
from rbmtools.errors import ValidationError
from rbmtools.wire import dumps_line, format_timestamp

__all__ = ["Dataset", "LoadReport", "load"]

PathsArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None


@dataclass(frozen=True)
class LoadReport:
    """What one load read. ``lines`` counts non-blank event-log lines; ``events`` the distinct
    events among them; ``duplicates`` the repeated copies; ``malformed`` the lines that are no
    event (kept aside, see ``Dataset.malformed``)."""

    files: int
    lines: int
    events: int
    duplicates: int
    malformed: int
    outbox_files: int
    outbox_records: int
    outbox_malformed: int
    messages: int
    unverified: int
    other_events: int
    unknown_message_events: int
    unknown_messages: int
    failed_sends: int
    outbox_without_send: int
    span_start: datetime | None
    span_end: datetime | None
    seconds: float
    malformed_files: tuple[str, ...] = field(default=(), repr=False)
    outbox_malformed_files: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``read`` block of the analysis document (times as RFC 3339 UTC)."""
        out = asdict(self)
        out.pop("malformed_files")
        out.pop("outbox_malformed_files")
        for key in ("span_start", "span_end"):
            out[key] = None if out[key] is None else format_timestamp(out[key])
        out["seconds"] = round(self.seconds, 3)
        return out

    def __str__(self) -> str:
        span = (
            f"{format_timestamp(self.span_start)} .. {format_timestamp(self.span_end)}"
            if self.span_start and self.span_end
            else "no timestamps"
        )
        return (
            f"events: {self.files} files, {self.lines} lines, {self.events} events, "
            f"{self.duplicates} duplicates, {self.malformed} malformed\n"
            f"outbox: {self.outbox_files} files, {self.outbox_records} records, "
            f"{self.outbox_malformed} malformed\n"
            f"messages: {self.messages} sent; {self.unknown_message_events} events about "
            f"{self.unknown_messages} unknown messages; {self.other_events} other events "
            f"(replies, typing, subscriptions); {self.failed_sends} sends that failed; "
            f"{self.unverified} unverified events\n"
            f"span: {span} (read in {self.seconds:.2f} s)"
        )


def _to_datetime(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


class Dataset:
    """Both logs, loaded: ``report``, ``lifecycle()``, ``aggregates(by)`` and the rest.

    Holds its engine (an embedded DuckDB connection by default, see ``load``); use it as a
    context manager or call ``close()``.
    """

    def __init__(
        self,
        engine: Engine,
        events: LogFiles,
        outbox: LogFiles,
        report: LoadReport,
        sent: Window | None = None,
    ):
        self.engine = engine
        self.event_files = events
        self.outbox_files = outbox
        self.report = report
        self.sent = sent  # the window of send times kept (None: every message)
        self._lifecycle_ready = False

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    def __repr__(self) -> str:
        r = self.report
        return (
            f"Dataset(messages={r.messages}, events={r.events}, files={r.files}, "
            f"outbox_files={r.outbox_files}, malformed={r.malformed})"
        )

    def _ensure_lifecycle(self) -> None:
        """Build the per-message relations on first use: ``rbm_facts`` (a table; a second
        pass over the logs) and the view ``rbm_lifecycle`` over it."""
        if self._lifecycle_ready:
            return
        _run_steps(self.engine, _steps(sql.FACTS_STEPS, self.sent))
        self.engine.create_view("rbm_lifecycle", sql.LIFECYCLE)
        self._lifecycle_ready = True

    def lifecycle(self) -> pd.DataFrame:
        """One row per sent message: the columns and ``outcome`` of log-format section 3.
        The first call reads the logs again to build it (metrics never need it)."""
        self._ensure_lifecycle()
        return self.engine.df('SELECT * FROM rbm_lifecycle ORDER BY "sendTime", "messageId"')

    def query(self, statement: str) -> pd.DataFrame:
        """Run SQL (DuckDB dialect) against the loaded data: the view ``rbm_lifecycle``, one
        row per message with the columns of ``lifecycle()`` (built on first use, as there)."""
        self._ensure_lifecycle()
        return self.engine.df(statement)

    def summary(self, by: str | Iterable[str] = ("experiment", "arm")) -> pd.DataFrame:
        """Lifecycle counts per group (per experiment arm by default): messages, outcomes,
        revoke attempts and successes, reads, stale and double deliveries."""
        return self.engine.df(sql.summary_counts_sql(validate_by(by)))

    def aggregates(self, by: str | Iterable[str] | None = None):
        """The compact aggregates every statistic is computed from (see ``Aggregates``)."""
        from rbmtools.analysis.aggregates import compute_aggregates

        return compute_aggregates(self.engine, validate_by(by))

    def malformed(self) -> pd.DataFrame:
        """Every line set aside: ``log`` (events / outbox), ``file``, ``line`` (1-based) and
        ``text``. Re-reads only the files that had malformed lines."""
        rows = []
        for kind, files in (
            ("events", self.report.malformed_files),
            ("outbox", self.report.outbox_malformed_files),
        ):
            for path in files:
                for number, text in self.engine.bad_rows(path, kind):
                    rows.append({"log": kind, "file": path, "line": number, "text": text})
        return pd.DataFrame(rows, columns=["log", "file", "line", "text"])

    def to_parquet(
        self, directory: str | os.PathLike[str], *, buckets: int | None = None
    ) -> tuple[str, str]:
        """Write the events (decoded, flat columns; malformed lines left out) and the outbox
        records as ``events.parquet`` and ``outbox.parquet`` in ``directory``; ``load`` reads
        them back to the same lifecycles, faster than JSON Lines. Returns the two paths.

        ``buckets=K`` writes the directories ``events/`` and ``outbox/`` instead, each split
        by message id into ``bucket=0`` ... ``bucket=K-1`` (replacing what they held): a load
        of those two analyses one bucket at a time, in memory (see ``buckets``); choose K so
        that a bucket holds a few million lines. DuckDB engine only."""
        if buckets is None:
            os.makedirs(directory, exist_ok=True)
            events = os.path.join(directory, "events.parquet")
            outbox = os.path.join(directory, "outbox.parquet")
            self.engine.write_parquet(sql.events_export_sql(), events)
            self.engine.write_parquet(sql.outbox_export_sql(), outbox)
            return events, outbox
        check_buckets(buckets)
        if self.engine.name != "duckdb":
            raise ValidationError(
                "buckets", buckets, "the bucketed layout is written with the DuckDB engine"
            )
        exports = {"events": sql.events_export_sql(), "outbox": sql.outbox_export_sql()}
        events, outbox = (
            write_bucketed(self.engine, query, os.path.join(directory, log), log, buckets)
            for log, query in exports.items()
        )
        return events, outbox

    def write_quarantine(self, path: str | os.PathLike[str]) -> int:
        """Write the malformed lines to ``path`` as JSON Lines (one object per set-aside line,
        with its origin); returns how many were written."""
        frame = self.malformed()
        with open(path, "w", encoding="utf-8") as handle:
            for record in frame.to_dict("records"):
                handle.write(dumps_line(record))
        return len(frame)


def _run_steps(engine: Engine, steps: Sequence[tuple[str, str]]) -> None:
    """Materialise each ``(name, query)`` in turn and keep only the last table: the earlier
    ones are its inputs, dropped once it is built."""
    for name, query in steps:
        engine.create_table(name, query)
    for name, _ in steps[:-1]:
        engine.execute(f"DROP TABLE IF EXISTS {name}")


def _steps(steps: tuple[tuple[str, str], ...], sent: Window | None) -> tuple[tuple[str, str], ...]:
    """``steps`` for the messages sent in the window ``sent`` (all for None)."""
    if sent is None:
        return steps
    start, end = (None if t is None else format_timestamp(t) for t in (sent.start, sent.end))
    return sql.sent_in(steps, start, end)


def _summarise_by_bucket(
    engine: Engine,
    buckets: Sequence[tuple[LogFiles, LogFiles]],
    progress: bool,
    steps: tuple[tuple[str, str], ...] = sql.SUMMARY_STEPS,
) -> None:
    """The summary of logs bucketed by message id, bucket after bucket (each fits in
    memory), then added up (``sql.SUMMARY_COMBINE``): what one pass gives, without spilling."""
    from tqdm.auto import tqdm

    engine.execute("DROP TABLE IF EXISTS rbm_summary_parts")
    bar = tqdm(buckets, desc="buckets", unit="bucket", disable=not progress)
    for index, (events, outbox) in enumerate(bar):
        engine.register_logs(events, outbox)
        _run_steps(engine, steps)
        if index == 0:
            engine.create_table("rbm_summary_parts", "SELECT * FROM rbm_summary")
        else:
            engine.execute("INSERT INTO rbm_summary_parts SELECT * FROM rbm_summary")
    engine.create_table("rbm_summary", sql.SUMMARY_COMBINE)
    engine.execute("DROP TABLE IF EXISTS rbm_summary_parts")


def load(
    events: PathsArg = None,
    outbox: PathsArg = None,
    *,
    quarantine: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
    engine: EngineArg = "duckdb",
    spark_master: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    sent: Window | tuple[Any, Any] | None = None,
) -> Dataset:
    """Read an event log and an outbox log (files, globs or directories; JSON Lines, ``.gz``
    or Parquet) into a ``Dataset``. ``quarantine`` writes the set-aside lines there.

    ``engine`` runs the SQL: ``"duckdb"`` (the default; ``threads``, ``memory_limit``),
    ``"spark"`` (``spark_master``, ``spark_conf``; paths may then be any URI Hadoop reads) or
    a ``SparkSession`` (see ``engines.make_engine``). Lifecycles need the outbox (it says what
    was sent); events alone still load and report. Parquet bucketed by message id (as
    ``Dataset.to_parquet(..., buckets=K)`` writes it) is analysed one bucket at a time.
    ``sent`` keeps only the messages sent in a ``Window`` (or a ``(start, end)`` pair; see
    ``window``), in the SQL, whatever the engine and the log format.
    """
    started = time.perf_counter()
    sent = Window.of(sent)
    steps = _steps(sql.SUMMARY_STEPS, sent)
    if engine != "duckdb":  # local paths are checked before Spark takes seconds to start
        check_local_paths(events, "events")
        check_local_paths(outbox, "outbox")
    engine = make_engine(
        engine,
        threads=threads,
        memory_limit=memory_limit,
        spark_master=spark_master,
        spark_conf=spark_conf,
    )
    try:
        event_files = resolve_logs(engine, events, "events")
        outbox_files = resolve_logs(engine, outbox, "outbox")
        if not event_files and not outbox_files:
            raise ValidationError("events", events, "give at least one event or outbox log")
        # One pass over both logs leaves a small table of counts (what every metric sums
        # up); the per-message lifecycle is built only when asked for (``lifecycle()``).
        buckets = split_by_bucket(event_files, outbox_files) if engine.name == "duckdb" else None
        if progress and not buckets:  # (with buckets, a bar counts the buckets)
            engine.execute("SET enable_progress_bar = true")
        if buckets:
            _summarise_by_bucket(engine, buckets, progress, steps)
        engine.register_logs(event_files, outbox_files)
        if not buckets:
            _run_steps(engine, steps)
        counts = engine.row(sql.LOAD_REPORT)
        bad = engine.df(sql.BAD_FILES)
    except BaseException:
        engine.close()
        raise
    report = LoadReport(
        files=len(event_files),
        lines=int(counts["lines"]),
        events=int(counts["events"]),
        duplicates=int(counts["duplicates"]),
        malformed=int(counts["malformed"]),
        outbox_files=len(outbox_files),
        outbox_records=int(counts["outbox_records"]),
        outbox_malformed=int(counts["outbox_malformed"]),
        messages=int(counts["messages"]),
        unverified=int(counts["unverified"]),
        other_events=int(counts["other_events"]),
        unknown_message_events=int(counts["unknown_message_events"]),
        unknown_messages=int(counts["unknown_messages"]),
        failed_sends=int(counts["failed_sends"]),
        outbox_without_send=int(counts["outbox_without_send"]),
        span_start=_to_datetime(counts["span_start"]),
        span_end=_to_datetime(counts["span_end"]),
        seconds=time.perf_counter() - started,
        malformed_files=tuple(bad.loc[bad.row_kind == "malformed_event_lines", "bad_file"]),
        outbox_malformed_files=tuple(bad.loc[bad.row_kind == "malformed_outbox_lines", "bad_file"]),
    )
    dataset = Dataset(engine, event_files, outbox_files, report, sent)
    if quarantine is not None:
        dataset.write_quarantine(quarantine)
    return dataset
