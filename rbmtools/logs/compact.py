"""Compaction: the receiver's JSON Lines segments as day-partitioned Parquet, idempotently.

The receiver writes ``EVENTS_DIR/date=YYYY-MM-DD/events-NNNNNN.jsonl[.gz]``. Each segment
becomes ``PARQUET_DIR/date=YYYY-MM-DD/events-NNNNNN.parquet`` holding the flat decoded columns
that ``Dataset.to_parquet`` writes (every line shape alike, push bodies decoded, duplicates kept
so the analysis still counts them once), which any engine reads far faster than JSON. Lines that
are no event are set aside in the day's ``_MALFORMED`` file (JSON Lines, one object per line
with its origin) and counted. The day's ``_MANIFEST`` records every compacted segment's size and
modification time: a segment unchanged since is skipped, one that grew (the receiver's live
segment) is rewritten in place, never appended twice, and one deleted from the source keeps its
Parquet. Names starting with ``_`` or ``.`` are skipped by Spark, by the Parquet globs and by
``load``; a lock file keeps two compactions from writing the same directory at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rbmtools.errors import RbmError, ValidationError
from rbmtools.wire import dumps_line, format_timestamp, utc_now

__all__ = [
    "MALFORMED_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "CompactionLockedError",
    "CompactionResult",
    "compact",
]

MANIFEST_NAME = "_MANIFEST"
MALFORMED_NAME = "_MALFORMED"
MANIFEST_FORMAT = "rbmtools.compaction/1"
LOCK_NAME = ".compact.lock"

_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_SEGMENT_SUFFIX = re.compile(r"\.jsonl(\.gz)?$", re.IGNORECASE)


class CompactionLockedError(RbmError):
    """Another compaction is writing to the same Parquet directory right now."""


@dataclass(frozen=True)
class CompactionResult:
    """What one run did. ``compacted`` segments were (re)written, ``unchanged`` skipped;
    ``kept`` were compacted earlier and are gone from the source (their Parquet stays);
    ``lines``/``events``/``malformed`` count the segments compacted in this run."""

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
            f"{self.segments} segments over {self.days} days: {self.compacted} compacted, "
            f"{self.unchanged} unchanged, {self.kept} kept (source gone)\n"
            f"compacted {self.lines} lines: {self.events} events, {self.malformed} malformed "
            f"(set aside in {MALFORMED_NAME}) in {self.seconds:.2f} s -> {self.target}"
        )
        if self.unpartitioned:
            text += (
                f"\nnot compacted: {len(self.unpartitioned)} files outside date=YYYY-MM-DD "
                f"directories, e.g. {self.unpartitioned[0]}"
            )
        return text


@dataclass(frozen=True)
class _Segment:
    path: Path  # the source file
    day: str  # YYYY-MM-DD
    key: str  # its path relative to its day directory
    size: int
    mtime_ns: int

    @property
    def parquet_key(self) -> str:
        return _SEGMENT_SUFFIX.sub(".parquet", self.key)


def _day_of(relative: Path) -> tuple[str, str] | None:
    """The day of a segment path (relative to the log root) and its path inside the day."""
    parts = relative.parts
    for index, part in enumerate(parts[:-1]):
        match = _DAY.fullmatch(part)
        if match:
            return match[1], "/".join(parts[index + 1 :])
    return None


def _segments(source: Path) -> tuple[list[_Segment], list[str]]:
    from rbmtools.webhook.layout import list_segments

    segments, unpartitioned = [], []
    for path in list_segments(source):
        located = _day_of(path.relative_to(source))
        if located is None:
            unpartitioned.append(str(path))
            continue
        stat = path.stat()
        segments.append(_Segment(path, located[0], located[1], stat.st_size, stat.st_mtime_ns))
    seen: dict[tuple[str, str], Path] = {}
    for segment in segments:
        target = (segment.day, segment.parquet_key)
        if target in seen:
            raise ValidationError(
                "EVENTS_DIR",
                str(segment.path),
                f"is the same segment as {seen[target]} (compressed and plain copies): "
                "remove one of them",
            )
        seen[target] = segment.path
    return segments, unpartitioned


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


def _read_manifest(day_dir: Path) -> dict[str, Any]:
    path = day_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}  # a damaged manifest only costs a recompaction of the day
    if document.get("format") != MANIFEST_FORMAT:
        return {}
    return dict(document.get("segments") or {})


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


def _write_manifest(day_dir: Path, day: str, entries: dict[str, Any]) -> None:
    document = {"format": MANIFEST_FORMAT, "day": day, "segments": dict(sorted(entries.items()))}
    _write_atomic(day_dir / MANIFEST_NAME, json.dumps(document, indent=1) + "\n")


def _rewrite_malformed(day_dir: Path, source_file: str, records: list[dict[str, Any]]) -> None:
    """Replace one segment's set-aside lines in the day's ``_MALFORMED`` file."""
    path = day_dir / MALFORMED_NAME
    kept: list[str] = []
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    if json.loads(line).get("file") == source_file:
                        continue
                except ValueError:
                    pass
                kept.append(line if line.endswith("\n") else line + "\n")
    kept.extend(dumps_line(record) for record in records)
    if kept:
        _write_atomic(path, "".join(kept))
    else:
        path.unlink(missing_ok=True)


class _Compactor:
    """One DuckDB engine, reused for every segment of a run."""

    def __init__(self, threads: int | None, memory_limit: str | None) -> None:
        from rbmtools.analysis.duckdb_engine import DuckDBEngine

        self.engine = DuckDBEngine(threads=threads, memory_limit=memory_limit)

    def close(self) -> None:
        self.engine.close()

    def segment(self, segment: _Segment, output: Path) -> dict[str, Any]:
        """Write one segment's events to ``output``; the counts and the set-aside lines."""
        import pyarrow.parquet as pq

        from rbmtools.analysis import sql
        from rbmtools.analysis.inputs import LogFiles

        engine = self.engine
        engine.register_logs(LogFiles(jsonl=(str(segment.path),)), LogFiles())
        # Parse the segment once: the count and the export both read the table.
        engine.create_table("rbm_compact_rows", "SELECT * FROM rbm_event_rows")
        try:
            lines = int(engine.row("SELECT COUNT(*) AS n FROM rbm_compact_rows")["n"])
            fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
            os.close(fd)
            try:
                engine.write_parquet(sql.events_export_sql("rbm_compact_rows"), tmp)
                events = pq.ParquetFile(tmp).metadata.num_rows
                os.replace(tmp, output)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        finally:
            engine.execute("DROP TABLE IF EXISTS rbm_compact_rows")
        malformed = lines - events
        bad: list[dict[str, Any]] = []
        if malformed:
            for number, text, problem in engine.bad_rows(str(segment.path), "events"):
                bad.append(
                    {
                        "log": "events",
                        "file": str(segment.path),
                        "line": number,
                        "text": text,
                        "problem": problem,
                    }
                )
        return {"lines": lines, "events": events, "malformed": malformed, "bad": bad}


def compact(
    events_dir: str | os.PathLike[str],
    parquet_dir: str | os.PathLike[str],
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
) -> CompactionResult:
    """Compact the receiver segments under ``events_dir`` into ``parquet_dir`` (see the module
    docstring); run it again at any time: only new or changed segments are written."""
    started = time.perf_counter()
    source, target = Path(events_dir), Path(parquet_dir)
    _check_dirs(source, target)
    segments, unpartitioned = _segments(source)
    if not segments:
        problem = (
            "has no date=YYYY-MM-DD directories of receiver segments (events-*.jsonl[.gz])"
            if unpartitioned
            else "has no receiver segments (date=YYYY-MM-DD/events-*.jsonl[.gz])"
        )
        raise ValidationError("EVENTS_DIR", str(source), problem)
    by_day: dict[str, list[_Segment]] = {}
    for segment in segments:
        by_day.setdefault(segment.day, []).append(segment)
    totals = {"compacted": 0, "unchanged": 0, "kept": 0, "lines": 0, "events": 0, "malformed": 0}
    malformed_files: list[str] = []
    with _locked(target):
        todo: list[tuple[_Segment, dict[str, Any]]] = []
        manifests: dict[str, dict[str, Any]] = {}
        for day, day_segments in sorted(by_day.items()):
            manifest = _read_manifest(target / f"date={day}")
            manifests[day] = manifest
            present = {s.key for s in day_segments}
            totals["kept"] += sum(1 for key in manifest if key not in present)
            for segment in day_segments:
                entry = manifest.get(segment.key)
                output = target / f"date={day}" / segment.parquet_key
                if (
                    entry
                    and entry.get("size") == segment.size
                    and entry.get("mtime_ns") == segment.mtime_ns
                    and output.exists()
                ):
                    totals["unchanged"] += 1
                else:
                    todo.append((segment, manifest))
        if todo:
            _run(todo, target, totals, malformed_files, threads, memory_limit, progress)
    return CompactionResult(
        source=str(source),
        target=str(target),
        days=len(by_day),
        segments=len(segments),
        unpartitioned=tuple(unpartitioned),
        malformed_files=tuple(malformed_files),
        seconds=time.perf_counter() - started,
        **totals,
    )


def _run(
    todo: list[tuple[_Segment, dict[str, Any]]],
    target: Path,
    totals: dict[str, int],
    malformed_files: list[str],
    threads: int | None,
    memory_limit: str | None,
    progress: bool,
) -> None:
    from tqdm import tqdm

    compactor = _Compactor(threads, memory_limit)
    try:
        bar = tqdm(
            todo,
            desc="compacting",
            unit="segment",
            disable=not progress,
            postfix={"bytes": sum(s.size for s, _ in todo)},
        )
        for segment, manifest in bar:
            day_dir = target / f"date={segment.day}"
            output = day_dir / segment.parquet_key
            output.parent.mkdir(parents=True, exist_ok=True)
            counts = compactor.segment(segment, output)
            had_bad = bool(manifest.get(segment.key, {}).get("malformed"))
            if counts["bad"] or had_bad:
                _rewrite_malformed(day_dir, str(segment.path), counts["bad"])
            if counts["malformed"]:
                malformed_files.append(str(segment.path))
            manifest[segment.key] = {
                "size": segment.size,
                "mtime_ns": segment.mtime_ns,
                "parquet": segment.parquet_key,
                "lines": counts["lines"],
                "events": counts["events"],
                "malformed": counts["malformed"],
                "compacted_at": format_timestamp(utc_now()),
            }
            _write_manifest(day_dir, segment.day, manifest)
            totals["compacted"] += 1
            for key in ("lines", "events", "malformed"):
                totals[key] += counts[key]
    finally:
        compactor.close()
