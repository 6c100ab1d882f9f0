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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rbmtools.analysis import sql
from rbmtools.analysis.buckets import check_buckets, split_by_bucket, write_bucketed
from rbmtools.analysis.engine_interface import (
    Engine,
    EngineArg,
    check_local_paths,
    make_engine,
    resolve_logs,
)
from rbmtools.analysis.inputs import LogFiles, unreadable_problem
from rbmtools.analysis.schema import validate_by
from rbmtools.analysis.window import Window
from rbmtools.errors import ValidationError
from rbmtools.wire import dumps_line, format_timestamp

if TYPE_CHECKING:  # pandas loads on first use (analysis.cli imports it beside the load)
    import pandas as pd

__all__ = ["Dataset", "LoadReport", "load"]

PathsArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None


@dataclass(frozen=True)
class UnreadableFile:
    """A log file that could not be read at all (a truncated ``.gz``, a text file named
    ``.gz``, a damaged Parquet file): skipped, and named in the load report."""

    log: str  # "events" or "outbox"
    file: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class LoadReport:
    """What one load read. ``lines`` counts non-blank event-log lines; ``events`` the distinct
    events among them; ``duplicates`` the repeated copies; ``malformed`` the lines that are no
    event (kept aside, see ``Dataset.malformed``), by problem in ``malformed_problems``
    (``outbox_malformed_problems`` for the outbox); ``implausible_times`` the messages whose
    event times cannot be right (kept out of latency); ``unreadable_files`` the files skipped."""

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
    implausible_times: int = 0
    malformed_problems: Mapping[str, int] = field(default_factory=dict)
    outbox_malformed_problems: Mapping[str, int] = field(default_factory=dict)
    unreadable_files: tuple[UnreadableFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``read`` block of the analysis document (times as RFC 3339 UTC)."""
        out = asdict(self)
        out.pop("malformed_files")
        out.pop("outbox_malformed_files")
        for key in ("span_start", "span_end"):
            out[key] = None if out[key] is None else format_timestamp(out[key])
        out["seconds"] = round(self.seconds, 3)
        out["malformed_problems"] = dict(self.malformed_problems)
        out["outbox_malformed_problems"] = dict(self.outbox_malformed_problems)
        out["unreadable_files"] = [f.to_dict() for f in self.unreadable_files]
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
            f"{self.unverified} unverified events; {self.implausible_times} messages with "
            f"implausible times (kept out of latency)\n"
            + "".join(
                f"malformed: {n} {kind} lines: {problem}\n"
                for kind, problems in (
                    ("event", self.malformed_problems),
                    ("outbox", self.outbox_malformed_problems),
                )
                for problem, n in problems.items()
            )
            + "".join(
                f"unreadable, skipped: {f.file} ({f.problem})\n" for f in self.unreadable_files
            )
            + f"span: {span} (read in {self.seconds:.2f} s)"
        )


def _to_datetime(value: Any) -> datetime | None:
    import pandas as pd

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
        history: Any = None,
    ):
        self.engine = engine
        self.event_files = events
        self.outbox_files = outbox
        self.report = report
        self.sent = sent  # the window of send times kept (None: every message)
        self.history = history  # a HistoryMerge when loaded from a compacted history
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
        if self.history is not None:
            self.engine.create_table("rbm_facts", self.history.facts_query())
        else:
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
        """Every line set aside: ``log`` (events / outbox), ``file``, ``line`` (1-based),
        ``text`` and ``problem`` (why). Re-reads only the files that had malformed lines (a
        history keeps the lines it set aside in its ``_MALFORMED`` files)."""
        if self.history is not None:
            from rbmtools.analysis.history import set_aside

            return set_aside(self.engine, self.history)
        rows = []
        for kind, files in (
            ("events", self.report.malformed_files),
            ("outbox", self.report.outbox_malformed_files),
        ):
            for path in files:
                for number, text, problem in self.engine.bad_rows(path, kind):
                    rows.append(
                        {
                            "log": kind,
                            "file": path,
                            "line": number,
                            "text": text,
                            "problem": problem,
                        }
                    )
        import pandas as pd

        return pd.DataFrame(rows, columns=["log", "file", "line", "text", "problem"])

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
        if self.history is not None:
            raise ValidationError("to_parquet", str(directory), "a history is Parquet already")
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


def _bad_files(bad: pd.DataFrame, kind: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(bad.loc[bad.row_kind == kind, "bad_file"].dropna()))


def _problems(bad: pd.DataFrame, kind: str) -> dict[str, int]:
    rows = bad.loc[bad.row_kind == kind]
    return {str(k): int(v) for k, v in rows.groupby("problem", dropna=False)["lines"].sum().items()}


def _steps(steps: tuple[tuple[str, str], ...], sent: Window | None) -> tuple[tuple[str, str], ...]:
    """``steps`` for the messages sent in the window ``sent`` (all for None)."""
    if sent is None:
        return steps
    start, end = _window_bounds(sent)
    return sql.sent_in(steps, start, end)


def _window_bounds(sent: Window) -> tuple[str | None, str | None]:
    return tuple(None if t is None else format_timestamp(t) for t in (sent.start, sent.end))


def _summarise_by_bucket(
    engine: Engine,
    buckets: Sequence[tuple[LogFiles, LogFiles]],
    progress: bool,
    steps: Sequence[tuple[str, str]] = sql.SUMMARY_STEPS,
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


#: What ``load`` does with a log file it cannot read at all (a truncated ``.gz``, text named
#: ``.gz``, a damaged Parquet file): ``skip`` it, named in the load report, or ``stop``.
ON_UNREADABLE: tuple[str, ...] = ("skip", "stop")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _drop_unreadable(
    event_files: LogFiles, outbox_files: LogFiles, found: UnreadableFile, on_unreadable: str
) -> tuple[LogFiles, LogFiles]:
    if on_unreadable == "stop":
        raise ValidationError(
            found.log, Path(found.file).name, f"{found.file} cannot be read ({found.problem})"
        )
    return event_files.without(found.file), outbox_files.without(found.file)


def read_readable(
    engine: Engine,
    files: tuple[LogFiles, LogFiles],
    run: Callable[[LogFiles, LogFiles], None],
    on_unreadable: str,
    unreadable: list[UnreadableFile],
) -> tuple[LogFiles, LogFiles]:
    """``run(events, outbox)`` over the logs, and the files it read: a file found unreadable
    beforehand (``inputs.unreadable_problem``) or while reading (the engine names it) is left
    out and ``run`` called again, or the load stops (``on_unreadable``)."""
    event_files, outbox_files = files
    for log, log_files in (("events", event_files), ("outbox", outbox_files)):
        for path in log_files.all:
            problem = unreadable_problem(path)
            if problem is not None:
                found = UnreadableFile(log, path, problem)
                event_files, outbox_files = _drop_unreadable(
                    event_files, outbox_files, found, on_unreadable
                )
                unreadable.append(found)
    while True:
        try:
            run(event_files, outbox_files)
            return event_files, outbox_files
        except Exception as exc:
            culprit = getattr(engine, "unreadable_file", lambda *_: None)(
                exc, event_files.all + outbox_files.all
            )
            if culprit is None:
                raise
            log = "events" if culprit in event_files.all else "outbox"
            found = UnreadableFile(log, culprit, _first_line(exc))
            event_files, outbox_files = _drop_unreadable(
                event_files, outbox_files, found, on_unreadable
            )
            unreadable.append(found)


def _summarise(
    engine: Engine, steps: Sequence[tuple[str, str]], progress: bool
) -> Callable[[LogFiles, LogFiles], None]:
    """The load summary of two logs (bucket by bucket when they are bucketed)."""

    def run(event_files: LogFiles, outbox_files: LogFiles) -> None:
        buckets = split_by_bucket(event_files, outbox_files) if engine.name == "duckdb" else None
        if progress and not buckets:  # (with buckets, a bar counts the buckets)
            engine.execute("SET enable_progress_bar = true")
        if buckets:
            _summarise_by_bucket(engine, buckets, progress, steps)
        engine.register_logs(event_files, outbox_files)
        if not buckets:
            _run_steps(engine, steps)

    return run


def load(
    events: PathsArg = None,
    outbox: PathsArg = None,
    *,
    history: str | os.PathLike[str] | None = None,
    quarantine: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
    engine: EngineArg = "duckdb",
    spark_master: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    on_unreadable: str = "skip",
    sent: Window | tuple[Any, Any] | None = None,
) -> Dataset:
    """Read an event log and an outbox log (files, globs or directories; JSON Lines, ``.gz``
    or Parquet) into a ``Dataset``. ``quarantine`` writes the set-aside lines there.

    ``engine`` runs the SQL: ``"duckdb"`` (the default; ``threads``, ``memory_limit``),
    ``"spark"`` (``spark_master``, ``spark_conf``; paths may then be any URI Hadoop reads) or
    a ``SparkSession`` (see ``engine_interface.make_engine``). Lifecycles need the outbox (it
    says what was sent); events alone still load and report. Parquet bucketed by message id (as
    ``Dataset.to_parquet(..., buckets=K)`` writes it) is analysed one bucket at a time. A file
    that cannot be read at all is skipped and named in ``report.unreadable_files``, or, with
    ``on_unreadable="stop"``, stops the load with a ``ValidationError`` naming it. ``sent``
    keeps only the messages sent in a ``Window`` (or a ``(start, end)`` pair; see ``window``),
    in the SQL, whatever the engine, the log format or a history.

    ``history`` (instead of ``events`` and ``outbox``) reads a folder ``rbmtools logs compact``
    keeps: its per-message state and cached summaries, plus whatever its logs gained since the
    last compaction (new segments, grown files), merged in memory; DuckDB only.
    """
    started = time.perf_counter()
    sent = Window.of(sent)
    steps = _steps(sql.SUMMARY_STEPS, sent)
    if on_unreadable not in ON_UNREADABLE:
        raise ValidationError(
            "on_unreadable", on_unreadable, f"must be one of {', '.join(ON_UNREADABLE)}"
        )
    if history is not None and (events is not None or outbox is not None):
        raise ValidationError("history", str(history), "give a history or logs, not both")
    if engine != "duckdb":  # local paths are checked before Spark takes seconds to start
        if history is not None:
            raise ValidationError("engine", engine, "a history is read with the DuckDB engine")
        check_local_paths(events, "events")
        check_local_paths(outbox, "outbox")
    engine = make_engine(
        engine,
        threads=threads,
        memory_limit=memory_limit,
        spark_master=spark_master,
        spark_conf=spark_conf,
    )
    unreadable: list[UnreadableFile] = []
    merged = None
    try:
        if history is not None:
            merged, event_files, outbox_files = _load_history(
                engine, history, on_unreadable, unreadable, sent
            )
        else:
            event_files = resolve_logs(engine, events, "events")
            outbox_files = resolve_logs(engine, outbox, "outbox")
            if not event_files and not outbox_files:
                raise ValidationError("events", events, "give at least one event or outbox log")
            # One pass over both logs leaves a small table of counts (what every metric sums
            # up); the per-message lifecycle is built only when asked for (``lifecycle()``).
            event_files, outbox_files = read_readable(
                engine,
                (event_files, outbox_files),
                _summarise(engine, steps, progress),
                on_unreadable,
                unreadable,
            )
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
        malformed_files=_bad_files(bad, "malformed_event_lines"),
        outbox_malformed_files=_bad_files(bad, "malformed_outbox_lines"),
        implausible_times=int(counts["implausible_times"]),
        malformed_problems=_problems(bad, "malformed_event_lines"),
        outbox_malformed_problems=_problems(bad, "malformed_outbox_lines"),
        unreadable_files=tuple(unreadable),
    )
    dataset = Dataset(engine, event_files, outbox_files, report, sent, merged)
    if quarantine is not None:
        dataset.write_quarantine(quarantine)
    return dataset


def _load_history(
    engine: Engine,
    folder: str | os.PathLike[str],
    on_unreadable: str,
    unreadable: list[UnreadableFile],
    sent: Window | None = None,
) -> tuple[Any, LogFiles, LogFiles]:
    """The merged state of a history and what its logs gained since (see ``history``), its
    summary built as ``rbm_summary``; and the logs' files (the sources it knows, and new)."""
    import tempfile

    from rbmtools.analysis.history import HistoryMerge, partial_state, rules_digest
    from rbmtools.analysis.history_files import find_tails, read_manifest

    root = Path(folder).resolve()
    manifest = read_manifest(root)
    if manifest is None:
        raise ValidationError(
            "history", str(folder), "holds no history (compact logs into it: rbmtools logs compact)"
        )
    if manifest.rules != rules_digest():
        raise ValidationError(
            "history",
            str(folder),
            "was compacted by another version of rbmtools or DuckDB: run rbmtools logs compact "
            "on it once (it rebuilds the state from its Parquet parts)",
        )
    tails, _, _ = find_tails(manifest, manifest.events_dir, manifest.outbox)
    with tempfile.TemporaryDirectory(prefix="rbmtools-tails-") as scratch:
        copies = {tail: tail.materialise(scratch) for tail in tails}
        renames = {copy: tail.path for tail, copy in copies.items() if copy != tail.path}

        def run(events: LogFiles, outbox: LogFiles) -> None:
            engine.register_logs(events, outbox)
            partial_state(engine, renames)

        new_events = LogFiles(jsonl=tuple(c for t, c in copies.items() if t.log == "events"))
        new_outbox = LogFiles(jsonl=tuple(c for t, c in copies.items() if t.log == "outbox"))
        read_readable(engine, (new_events, new_outbox), run, on_unreadable, unreadable)
    # name the source, not the copy of its tail
    unreadable[:] = [
        UnreadableFile(f.log, renames.get(f.file, f.file), f.problem) for f in unreadable
    ]
    merge = HistoryMerge(engine, root, manifest, window=_window_bounds(sent) if sent else None)
    merge.build_index(needed=bool(tails))
    merge.merge()
    merge.summarise()
    paths = {e.path: e.log for e in manifest.sources.values()}
    paths.update({t.path: t.log for t in tails})
    events = LogFiles(jsonl=tuple(sorted(p for p, log in paths.items() if log == "events")))
    outbox = LogFiles(jsonl=tuple(sorted(p for p, log in paths.items() if log == "outbox")))
    return merge, events, outbox
