"""Compaction: the receiver's segments and the outbox as Parquet, and a per-message state.

``compact(EVENTS_DIR, HISTORY, outbox=...)`` reads what the logs gained since it last ran (new
segments, and the tails of files that grew: the receiver's live segment, an outbox that is
appended to) and writes into the history folder (layout in ``analysis.history_files``):

- each segment's new lines as a Parquet part of its day, ``date=YYYY-MM-DD/<segment>.parquet``
  (then ``<segment>.2.parquet``...; decoded flat columns, duplicates kept), the outbox's records
  by day under ``_outbox/``, and the lines that are no event in each folder's ``_MALFORMED``;
- the per-message state (``analysis.state``): every message the new lines speak of is merged
  into the day file that holds it (its send's day), so a day's file is rewritten only when
  something about its messages came in; each rewritten day gets its load summary again, the
  others keep theirs. ``rbmtools analyze --history HISTORY`` then reads the state and only what
  came in since, in seconds however long the history.

The run commits by replacing the manifest atomically, after every file it lists is written: a
compaction killed at any point leaves the previous history readable, and the next run does the
same work again (its files have fixed names, or are left over and removed). A lock keeps two
compactions from writing the same folder at once. ``rebuild=True`` computes the state again
from the Parquet parts (after a change of rbmtools' rules, say).
"""

# SQL assembled from sql.py/state.py and quoted paths.
# ruff: noqa: S608

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rbmtools.analysis.history_files import (
    MALFORMED_NAME,
    MANIFEST_NAME,
    OUTBOX_DIR,
    STATE_DIR,
    Manifest,
    SourceEntry,
    Tail,
    find_tails,
    read_manifest,
    write_manifest,
)
from rbmtools.errors import RbmError, ValidationError
from rbmtools.wire import dumps_line

__all__ = [
    "LOCK_NAME",
    "MALFORMED_NAME",
    "MANIFEST_NAME",
    "CompactionLockedError",
    "CompactionResult",
    "compact",
]

LOCK_NAME = ".compact.lock"
#: Parts per state fold: at most this many lines of new logs are merged at once (the first
#: compaction of a long history folds it day range by day range, in bounded memory).
CHUNK_LINES = 8_000_000


class CompactionLockedError(RbmError):
    """Another compaction is writing to the same history folder right now."""


@dataclass(frozen=True)
class CompactionResult:
    """What one run did. ``compacted``: files with new lines read (``lines`` event lines: their
    ``events`` and ``malformed``; ``outbox_records``, ``outbox_malformed``), ``unchanged``
    files with none, ``kept`` files compacted earlier and gone from the source;
    ``state_days``: days of the per-message state rewritten (``generation``: the history's)."""

    source: str
    target: str
    days: int
    segments: int
    compacted: int
    unchanged: int
    kept: int
    lines: int
    events: int
    malformed: int
    outbox_records: int
    outbox_malformed: int
    state_days: int
    generation: int
    seconds: float
    unpartitioned: tuple[str, ...] = field(default=(), repr=False)
    malformed_files: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["unpartitioned"] = list(self.unpartitioned)
        out["malformed_files"] = list(self.malformed_files)
        out["seconds"] = round(self.seconds, 3)
        return out

    def __str__(self) -> str:
        text = (
            f"{self.segments} segments over {self.days} days: {self.compacted} files with new "
            f"lines, {self.unchanged} unchanged, {self.kept} kept (source gone)\n"
            f"compacted {self.lines} event lines: {self.events} events, {self.malformed} "
            f"malformed (set aside in {MALFORMED_NAME}); {self.outbox_records} outbox records, "
            f"{self.outbox_malformed} malformed\n"
            f"state: {self.state_days} days rewritten, generation {self.generation} "
            f"({self.seconds:.2f} s) -> {self.target}"
        )
        if self.unpartitioned:
            text += (
                f"\nnot compacted: {len(self.unpartitioned)} files outside date=YYYY-MM-DD "
                f"directories, e.g. {self.unpartitioned[0]}"
            )
        return text


def _check_dirs(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise ValidationError("EVENTS_DIR", str(source), "is not a directory")
    src, dst = source.resolve(), target.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise ValidationError(
            "--to",
            str(target),
            f"must lie outside {source} (and contain it not): the analysis of either "
            "directory would read both copies",
        )


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.mkdir(parents=True, exist_ok=True)
    fd = os.open(target / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionLockedError(
                f"another compaction is writing to {target} (it holds {LOCK_NAME})"
            ) from None
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _set_aside(folder: Path, source: str, after_line: int, records: list[dict[str, Any]]) -> None:
    """Put a tail's set-aside lines in ``folder``'s ``_MALFORMED``, replacing any of the same
    file past ``after_line`` (left there by a run that did not commit)."""
    path = folder / MALFORMED_NAME
    kept: list[str] = []
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    if record.get("file") == source and record.get("line", 0) > after_line:
                        continue
                except ValueError:
                    pass
                kept.append(line if line.endswith("\n") else line + "\n")
    kept.extend(dumps_line(record) for record in records)
    if kept:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, "".join(kept))


def _numbered(path: str, wanted: Any) -> Iterator[tuple[int, str, str]]:
    """(line number, text, problem) of the non-blank lines of ``path`` whose 0-based place
    among them is in ``wanted`` (a frame of ``rowid`` and ``problem``)."""
    if wanted.empty:
        return
    problems = dict(zip(wanted.rowid.astype(int), wanted.problem, strict=True))
    last, place = max(problems), -1
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            place += 1
            if place in problems:
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield number, text, str(problems[place])
            if place >= last:
                return


def _slug(key: str) -> str:
    return "outbox-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class _Compactor:
    """One DuckDB engine for a run: tails to Parquet parts, then parts into the state."""

    def __init__(self, target: Path, manifest: Manifest, threads: int | None, limit: str | None):
        from rbmtools.analysis.duckdb_engine import DuckDBEngine

        self.target = target
        self.manifest = manifest
        self.engine = DuckDBEngine(threads=threads, memory_limit=limit)
        self.generation = manifest.generation + 1
        self.engine.execute(f"CREATE TEMP TABLE rbm_run_bad AS {_empty_bad()}")
        self.new_parts: list[tuple[str, str | None, str, int]] = []  # log, day, part, rows
        self.malformed_files: list[str] = []

    def close(self) -> None:
        self.engine.close()

    # ------------------------------------------------------------------ tails -> parts

    def tail(self, tail: Tail, scratch: str) -> dict[str, int]:
        """Read one tail once: every line classified (in file order, for the line numbers of
        those set aside), then its Parquet part(s), its set-aside lines and their counts."""
        from rbmtools.analysis import sql, state
        from rbmtools.analysis.inputs import LogFiles

        engine = self.engine
        entry = self.manifest.sources.get(tail.key) or SourceEntry(tail.log, tail.path)
        entry.path = tail.path
        path = tail.materialise(scratch)
        is_events = tail.log == "events"
        engine.register_logs(
            LogFiles(jsonl=(path,)) if is_events else LogFiles(),
            LogFiles() if is_events else LogFiles(jsonl=(path,)),
        )
        lines_sql = (
            sql.event_lines_sql("rbm_event_rows")
            if is_events
            else sql.outbox_lines_sql("rbm_outbox_rows")
        )
        engine.execute("SET preserve_insertion_order = true")  # rowid: the line's place
        try:
            engine.create_table("rbm_tail", lines_sql)
        finally:
            engine.execute("SET preserve_insertion_order = false")
        try:
            lines = int(engine.row("SELECT COUNT(*) AS n FROM rbm_tail")["n"])
            if is_events:
                kept = self._event_part(tail, entry, sql.events_from_lines_sql("rbm_tail"))
                folder = self.target / f"date={tail.day}"
            else:
                kept = self._outbox_parts(tail, entry, sql.outbox_from_lines_sql("rbm_tail"))
                folder = self.target / OUTBOX_DIR
            engine.execute(
                "INSERT INTO rbm_run_bad BY NAME "
                + state.bad_lines_sql("rbm_tail", tail.log, tail.path)
            )
            bad = "cls = 'malformed'" if is_events else "NOT ok"
            set_aside = engine.df(f"SELECT rowid, problem FROM rbm_tail WHERE {bad} ORDER BY 1")
        finally:
            engine.execute("DROP TABLE IF EXISTS rbm_tail")
        records = [
            {"log": tail.log, "file": tail.path, "line": tail.lines_before + number,
             "text": text, "problem": problem}
            for number, text, problem in _numbered(path, set_aside)
        ]  # fmt: skip
        if records:
            self.malformed_files.append(tail.path)
        if records or entry.malformed:
            _set_aside(folder, tail.path, tail.lines_before, records)
        entry.bytes, entry.head = tail.end, tail.head()
        entry.lines += lines
        entry.malformed += lines - kept
        self.manifest.sources[tail.key] = entry
        return {"lines": lines, "kept": kept, "malformed": lines - kept}

    def _event_part(self, tail: Tail, entry: SourceEntry, query: str) -> int:
        import pyarrow.parquet as pq

        name = Path(tail.key).name
        stem = name[: -len(".jsonl.gz")] if name.endswith(".gz") else name[: -len(".jsonl")]
        number = len(entry.parts) + 1
        relative = f"date={tail.day}/{stem}.parquet" if number == 1 else (
            f"date={tail.day}/{stem}.{number}.parquet"
        )  # fmt: skip
        output = self.target / relative
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        os.close(fd)
        try:
            self.engine.write_parquet(query, tmp, level=1)
            rows = pq.ParquetFile(tmp).metadata.num_rows
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        entry.parts.append(relative)
        self.new_parts.append(("events", tail.day, relative, rows))
        return rows

    def _outbox_parts(self, tail: Tail, entry: SourceEntry, query: str) -> int:
        import pyarrow.parquet as pq

        pattern = f"{_slug(tail.key)}.{len(entry.parts) + 1}"
        folder = self.target / OUTBOX_DIR
        dated = (
            f"SELECT *, strftime(COALESCE(sendTime, requestedAt, sentAt), '%Y-%m-%d') AS date "
            f"FROM ({query})"
        )
        self.engine.execute(
            f"COPY ({dated}) TO {_quote(str(folder))} (FORMAT parquet, COMPRESSION zstd, "
            "COMPRESSION_LEVEL 1, PARTITION_BY (date), "
            f"FILENAME_PATTERN {_quote(pattern + '.{i}')}, OVERWRITE_OR_IGNORE true)"
        )
        rows = 0
        for found in sorted(folder.glob(f"date=*/{pattern}.*.parquet")):
            relative = found.relative_to(self.target).as_posix()
            count = pq.ParquetFile(found).metadata.num_rows
            entry.parts.append(relative)
            self.new_parts.append(("outbox", found.parent.name[5:], relative, count))
            rows += count
        return rows

    # ------------------------------------------------------------------ parts -> state

    def fold(self, parts: Sequence[tuple[str, str | None, str, int]], progress: bool) -> int:
        """Merge ``parts`` (log, day, path, rows) into the state, day range by day range;
        returns how many state days were rewritten."""
        from tqdm.auto import tqdm

        from rbmtools.analysis.history import NO_DAY, HistoryMerge, partial_state, rules_digest
        from rbmtools.analysis.inputs import LogFiles

        engine, root = self.engine, self.target
        merge = HistoryMerge(engine, root, self.manifest)
        merge.build_index()
        engine.execute("DROP TABLE IF EXISTS rbm_run_summary")
        chunks = _chunks(parts)
        rewritten: set[str] = set()
        bar = tqdm(chunks, desc="state", unit="chunk", disable=not progress or len(chunks) < 2)
        for index, chunk in enumerate(bar):
            events = tuple(str(root / p) for log, _, p, _ in chunk if log == "events")
            outbox = tuple(str(root / p) for log, _, p, _ in chunk if log == "outbox")
            engine.register_logs(LogFiles(parquet=events), LogFiles(parquet=outbox))
            partial_state(engine)
            engine.execute("DELETE FROM rbm_new_bad")
            if index == 0:
                engine.execute("INSERT INTO rbm_new_bad BY NAME SELECT * FROM rbm_run_bad")
            merge.merge()
            self._write_state(merge, index)
            rewritten |= merge.message_days
            fresh = "SELECT * FROM rbm_fresh_summary"
            if index == 0:
                engine.create_table("rbm_run_summary", fresh)
            else:
                touched = ", ".join(_quote(d) for d in sorted(merge.message_days)) or "NULL"
                engine.execute(
                    "DELETE FROM rbm_run_summary WHERE COALESCE(CAST(rbm_partition AS VARCHAR), "
                    f"{_quote(NO_DAY)}) IN ({touched})"
                )
                engine.execute(f"INSERT INTO rbm_run_summary BY NAME {fresh}")
            for name in ("rbm_new_messages", "rbm_merged_messages", "rbm_new_others",
                         "rbm_merged_others", "rbm_fresh_summary"):  # fmt: skip
                engine.execute(f"DROP TABLE IF EXISTS {name}")
        if not chunks:  # nothing new: the state stands as it is (the bad counts may change)
            engine.register_logs(LogFiles(), LogFiles())
            partial_state(engine)
            engine.execute("DELETE FROM rbm_new_bad")
            engine.execute("INSERT INTO rbm_new_bad BY NAME SELECT * FROM rbm_run_bad")
            merge.merge()
            self._write_state(merge, 0)
            engine.create_table("rbm_run_summary", "SELECT * FROM rbm_fresh_summary")
        merge.message_days = rewritten
        uncached = merge.uncached_summaries()
        if uncached:  # (a history whose summaries another version wrote)
            engine.execute(f"INSERT INTO rbm_run_summary BY NAME {uncached}")
        self._write_summaries()
        self.manifest.rules = rules_digest()
        return len(rewritten)

    def _write_summaries(self) -> None:
        """The load summary of each day in ``rbm_run_summary``, a file a day: the other days
        keep theirs."""
        from rbmtools.analysis.history import NO_DAY

        relative = f"{STATE_DIR}/summaries/g{self.generation}"
        folder = self.target / relative
        folder.parent.mkdir(parents=True, exist_ok=True)
        keyed = (
            f"SELECT *, COALESCE(CAST(rbm_partition AS VARCHAR), {_quote(NO_DAY)}) AS rbm_day "
            "FROM rbm_run_summary"
        )
        self.engine.execute(
            f"COPY ({keyed}) TO {_quote(str(folder))} (FORMAT parquet, COMPRESSION zstd, "
            "COMPRESSION_LEVEL 1, PARTITION_BY (rbm_day), FILENAME_PATTERN 'rows', "
            "OVERWRITE_OR_IGNORE true)"
        )
        summaries = self.manifest.summaries
        for path in folder.glob("rbm_day=*/*"):
            summaries[path.parent.name.split("=", 1)[1]] = path.relative_to(self.target).as_posix()
        for day in set(summaries) - set(self.manifest.messages):
            del summaries[day]  # every message of the day moved to another
        self.engine.execute("DROP TABLE IF EXISTS rbm_run_summary")

    def _write_state(self, merge: Any, chunk: int) -> None:
        """The merged days' files (new names: the manifest moves to them on commit)."""
        from rbmtools.analysis.history import NO_DAY

        engine, root = self.engine, self.target
        for kind, table, day, listed, touched in (
            ("messages", "rbm_merged_messages", "home_day", self.manifest.messages,
             merge.message_days),
            ("others", "rbm_merged_others", "event_day", self.manifest.others, merge.other_days),
        ):  # fmt: skip
            relative = f"{STATE_DIR}/{kind}/g{self.generation}-{chunk}"
            folder = root / relative
            folder.parent.mkdir(parents=True, exist_ok=True)
            keyed = (
                f"SELECT *, COALESCE(CAST({day} AS VARCHAR), {_quote(NO_DAY)}) AS rbm_day "
                f"FROM {table}"
            )
            engine.execute(
                f"COPY ({keyed}) TO {_quote(str(folder))} (FORMAT parquet, COMPRESSION zstd, "
                "COMPRESSION_LEVEL 1, PARTITION_BY (rbm_day), FILENAME_PATTERN 'rows', "
                "OVERWRITE_OR_IGNORE true)"
            )
            written = {p.parent.name.split("=", 1)[1]: p for p in folder.glob("rbm_day=*/*")}
            for key, path in written.items():
                listed[key] = path.relative_to(root).as_posix()
            for key in touched - set(written):
                listed.pop(key, None)  # every message of the day moved to another
        bad = f"{STATE_DIR}/bad-g{self.generation}-{chunk}.parquet"
        engine.write_parquet("SELECT * FROM rbm_merged_bad", str(root / bad))
        self.manifest.bad = bad


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_bad() -> str:
    from rbmtools.analysis import state

    kinds = {"log": "VARCHAR", "bad_file": "VARCHAR", "problem": "VARCHAR", "lines": "BIGINT",
             "unverified": "BIGINT"}  # fmt: skip
    return (
        "SELECT "
        + ", ".join(
            f"CAST(NULL AS {kinds.get(c, 'TIMESTAMPTZ')}) AS {c}" for c in state.BAD_COLUMNS
        )
        + " WHERE FALSE"
    )


def _chunks(
    parts: Sequence[tuple[str, str | None, str, int]],
) -> list[list[tuple[str, str | None, str, int]]]:
    """``parts`` in day order, cut into runs of whole days of at most ``CHUNK_LINES`` rows."""
    by_day: dict[str, list[tuple[str, str | None, str, int]]] = {}
    for part in parts:
        by_day.setdefault(part[1] or "9999-99-99", []).append(part)
    chunks: list[list[tuple[str, str | None, str, int]]] = []
    size = CHUNK_LINES
    for day in sorted(by_day):
        rows = sum(p[3] for p in by_day[day])
        if size + rows > CHUNK_LINES and (not chunks or chunks[-1]):
            chunks.append([])
            size = 0
        chunks[-1].extend(by_day[day])
        size += rows
    return [c for c in chunks if c]


def _collect_garbage(target: Path, keep: set[str]) -> None:
    """Remove state files and stray temporaries no manifest lists (``keep``: relative)."""
    state = target / STATE_DIR
    if state.exists():
        for path in sorted(state.rglob("*"), reverse=True):
            relative = path.relative_to(target).as_posix()
            if path.is_file() and relative not in keep:
                path.unlink(missing_ok=True)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for stray in target.glob("**/.*.parquet.*"):
        stray.unlink(missing_ok=True)


def compact(
    events_dir: str | os.PathLike[str],
    parquet_dir: str | os.PathLike[str],
    *,
    outbox: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    rebuild: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
) -> CompactionResult:
    """Compact what the receiver segments under ``events_dir`` and the ``outbox`` logs gained
    since the last run into the history ``parquet_dir``, and merge it into the per-message
    state (see the module docstring). The outbox paths are remembered: later runs may leave
    them out. ``rebuild`` computes the state again from all the Parquet parts."""
    started = time.perf_counter()
    source, target = Path(events_dir), Path(parquet_dir)
    _check_dirs(source, target)
    with _locked(target):
        manifest = read_manifest(target) or Manifest()
        previous = set(manifest.state_files())
        manifest.events_dir = str(source.resolve())
        if outbox is not None:
            paths = [outbox] if isinstance(outbox, str | os.PathLike) else list(outbox)
            manifest.outbox = sorted({os.path.abspath(os.fspath(p)) for p in paths})
        tails, renamed, unpartitioned = find_tails(manifest, manifest.events_dir, manifest.outbox)
        for old, new in renamed.items():
            manifest.sources[new] = manifest.sources.pop(old)
        _check_segments(source, tails, manifest)
        compactor = _Compactor(target, manifest, threads, memory_limit)
        totals = dict.fromkeys(("lines", "events", "malformed", "outbox", "outbox_bad"), 0)
        try:
            with tempfile.TemporaryDirectory(prefix="rbmtools-compact-") as scratch:
                for tail in _progress(tails, progress):
                    counts = compactor.tail(tail, scratch)
                    if tail.log == "events":
                        totals["lines"] += counts["lines"]
                        totals["events"] += counts["kept"]
                        totals["malformed"] += counts["malformed"]
                    else:
                        totals["outbox"] += counts["kept"]
                        totals["outbox_bad"] += counts["malformed"]
            parts = compactor.new_parts
            if rebuild or (manifest.rules and manifest.rules != _rules()):
                # every part again; the counts of the lines set aside (kept out of the
                # parts) stay as they are
                parts = _all_parts(target, manifest)
                manifest.messages, manifest.others, manifest.summaries = {}, {}, {}
            state_days = compactor.fold(parts, progress)
            manifest.generation = compactor.generation
            write_manifest(target, manifest)
        finally:
            compactor.close()
        _collect_garbage(target, set(manifest.state_files()) | previous)
    events = [e for e in manifest.sources.values() if e.log == "events"]
    present = {t.key for t in tails}
    return CompactionResult(
        source=str(source),
        target=str(target),
        days=len({Path(p).parent.name for e in events for p in e.parts}),
        segments=len(events),
        compacted=len(tails),
        unchanged=sum(
            1 for k, e in manifest.sources.items() if k not in present and os.path.exists(e.path)
        ),
        kept=sum(1 for e in manifest.sources.values() if not os.path.exists(e.path)),
        lines=totals["lines"],
        events=totals["events"],
        malformed=totals["malformed"],
        outbox_records=totals["outbox"],
        outbox_malformed=totals["outbox_bad"],
        state_days=state_days,
        generation=manifest.generation,
        seconds=time.perf_counter() - started,
        unpartitioned=tuple(unpartitioned),
        malformed_files=tuple(compactor.malformed_files),
    )


def _rules() -> str:
    from rbmtools.analysis.history import rules_digest

    return rules_digest()


def _progress(tails: list[Tail], progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(tails, desc="compacting", unit="file", disable=not progress)


def _all_parts(target: Path, manifest: Manifest) -> list[tuple[str, str | None, str, int]]:
    """Every Parquet part of the history (for a rebuild of the state)."""
    import pyarrow.parquet as pq

    parts = []
    for entry in manifest.sources.values():
        for relative in entry.parts:
            day = Path(relative).parent.name.removeprefix("date=")
            rows = pq.ParquetFile(target / relative).metadata.num_rows
            parts.append((entry.log, day, relative, rows))
    return parts


def _check_segments(source: Path, tails: list[Tail], manifest: Manifest) -> None:
    """Refuse a folder with no receiver segments, and a segment present both plain and
    compressed (the analysis would read it twice)."""
    keys = {t.key for t in tails if t.log == "events"} | {
        k for k, e in manifest.sources.items() if e.log == "events"
    }
    if not keys:
        raise ValidationError(
            "EVENTS_DIR",
            str(source),
            "has no receiver segments in date=YYYY-MM-DD directories (events-*.jsonl[.gz])",
        )
    for key in keys:
        if key.lower().endswith(".gz") and key[:-3] in keys:
            plain = source / key[len("events/") : -3]
            if plain.exists() and Path(str(plain) + ".gz").exists():
                raise ValidationError(
                    "EVENTS_DIR",
                    str(plain) + ".gz",
                    f"is the same segment as {plain} (compressed and plain copies): "
                    "remove one of them",
                )
