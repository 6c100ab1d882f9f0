"""Turning the paths a user gives (files, globs, directories) into the log files to read.

A directory is searched recursively (folders and files named ``.*`` or ``_*`` skipped), because
the webhook receiver writes ``<dir>/date=YYYY-MM-DD/events-*.jsonl`` segments rotated by size.
JSON Lines files may be gzip-compressed (``.jsonl.gz``); Parquet files end in ``.parquet``. A
path that matches nothing is an error (a typo must not read as "no traffic").
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rbmtools.errors import ValidationError

__all__ = [
    "JSONL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "LogFiles",
    "resolve_paths",
    "unreadable_problem",
]

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class LogFiles:
    """The files of one log, split by format, each list sorted and free of repeats."""

    jsonl: tuple[str, ...] = ()
    parquet: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.jsonl + self.parquet

    def __len__(self) -> int:
        return len(self.jsonl) + len(self.parquet)

    def without(self, path: str) -> LogFiles:
        """These files but ``path``."""
        return LogFiles(
            jsonl=tuple(f for f in self.jsonl if f != path),
            parquet=tuple(f for f in self.parquet if f != path),
        )


_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def unreadable_problem(path: str) -> str | None:
    """Why the local file ``path`` cannot be a log of its kind, from its first and last
    bytes (a ``.gz`` that is not gzip, a ``.parquet`` without Parquet's magic bytes), or
    None. A truncated file passes: the engine finds it out when it reads it."""
    lower = path.lower()
    if "://" in path or not lower.endswith((".gz", *PARQUET_SUFFIXES)):
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if lower.endswith(".gz"):
                return None if head[:2] == _GZIP_MAGIC else "not a gzip file"
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc})"
    if size < 12 or head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        return "not a Parquet file (no PAR1 magic bytes)"
    return None


def _is_log_file(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)


# What a compacted history keeps beside its day folders (rbmtools.analysis.history_files):
# not logs. Other ``_*`` folders are searched: the receiver's other log (``_other/``) is a log
# the analysis counts.
_HISTORY_NAMES = frozenset({"_state", "_outbox", "_MALFORMED", "_MANIFEST.json", "_BUCKETS"})


def _walk(directory: Path) -> list[str]:
    """Log files below ``directory``; hidden names (``.*``) and a compacted history's own
    state and manifest are not logs."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _HISTORY_NAMES)
        found.extend(
            os.path.join(root, f)
            for f in sorted(files)
            if _is_log_file(f) and not f.startswith(".") and f not in _HISTORY_NAMES
        )
    return found


def resolve_paths(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None,
    field: str,
    *,
    empty_ok: bool = False,
) -> LogFiles:
    """The log files named by ``paths``: files as given, directories searched recursively
    for ``*.jsonl[.gz]`` / ``*.json[.gz]`` / ``*.ndjson[.gz]`` / ``*.parquet``, glob patterns
    (``**`` allowed) expanded. ``field`` names the argument in errors; ``empty_ok`` lets a
    directory hold no log (yet)."""
    if paths is None:
        return LogFiles()
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[str] = []
    for item in items:
        text = os.fspath(item)
        if _GLOB_CHARS & set(text):
            matched = sorted(glob.glob(text, recursive=True))
            expanded = []
            for match in matched:
                expanded.extend(_walk(Path(match)) if os.path.isdir(match) else [match])
            if not expanded:
                raise ValidationError(field, text, "matches no file")
            files.extend(expanded)
        elif os.path.isdir(text):
            found = _walk(Path(text))
            if not found and not empty_ok:
                raise ValidationError(
                    field, text, "is a directory with no .jsonl, .jsonl.gz or .parquet files"
                )
            files.extend(found)
        elif os.path.isfile(text):
            files.append(text)
        else:
            raise ValidationError(field, text, "does not exist")
    unique = sorted({os.path.abspath(f) for f in files})
    parquet = tuple(f for f in unique if f.lower().endswith(PARQUET_SUFFIXES))
    jsonl = tuple(f for f in unique if f not in set(parquet))
    return LogFiles(jsonl=jsonl, parquet=parquet)
