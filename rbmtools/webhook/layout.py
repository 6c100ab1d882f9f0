"""Where the event log lives on disk: day partitions of append-only JSON Lines segments.

The receiver writes ``<log_dir>/date=YYYY-MM-DD/events-NNNNNN.jsonl`` (the UTC day of receipt,
then a per-day sequence number), so sorting the relative paths sorts the segments in write
order. DuckDB, Spark and the readers here find them all with the glob ``**/*.jsonl`` (plus
``**/*.jsonl.gz`` for segments someone compressed later). Anything else under ``log_dir`` (the
writer's lock file, the size-capped rejects log) uses other names so those globs skip it.

The other log (authentic pushes the receiver acknowledged but could not log as events, see
``rbmtools.wire.OtherRecord``) is laid out the same way under ``<log_dir>/_other/``, as
``date=YYYY-MM-DD/other-NNNNNN.jsonl``: analyses that search ``log_dir`` find and count its
lines (none of them is an event); the event readers here skip it.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

__all__ = [
    "EVENTS_STEM",
    "LOCK_NAME",
    "OTHER_DIR",
    "OTHER_STEM",
    "REJECTS_DIR",
    "SEGMENT_SUFFIXES",
    "day_dir_name",
    "list_segments",
    "names_file",
    "next_segment_number",
    "segment_name",
    "segment_sort_key",
]

LOCK_NAME = ".writer.lock"
REJECTS_DIR = "_rejects"
OTHER_DIR = "_other"
EVENTS_STEM = "events"
OTHER_STEM = "other"
SEGMENT_SUFFIXES = (".jsonl", ".jsonl.gz")
_DAY_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_NUMBER = re.compile(r"(\d+)")


def day_dir_name(day: date) -> str:
    """The partition directory of one UTC day: ``date=2026-11-25``."""
    return f"date={day.isoformat()}"


def segment_name(number: int, stem: str = EVENTS_STEM) -> str:
    """The file name of segment ``number`` of a day: ``events-000001.jsonl``."""
    return f"{stem}-{number:06d}.jsonl"


def next_segment_number(day_dir: Path, stem: str = EVENTS_STEM) -> int:
    """One more than the highest segment number already in ``day_dir`` (1 when it is empty)."""
    highest = 0
    try:
        names = os.listdir(day_dir)
    except FileNotFoundError:
        return 1
    segment = re.compile(rf"{re.escape(stem)}-(\d+)\.jsonl(?:\.gz)?")
    for name in names:
        match = segment.fullmatch(name)
        if match:
            highest = max(highest, int(match[1]))
    return highest + 1


def segment_sort_key(relative: Path) -> tuple[tuple[int, object], ...]:
    """Sort key for a segment path relative to the log root: write order for our names.

    Digit runs compare as numbers (``events-1000000`` after ``events-999999``), the rest as
    text, so day partitions sort by date and foreign files still get a stable order.
    """
    key: list[tuple[int, object]] = []
    for part in relative.parts:
        for index, piece in enumerate(_NUMBER.split(part)):
            key.append((1, int(piece)) if index % 2 else (0, piece))
        key.append((2, ""))
    return tuple(key)


def list_segments(root: Path, *, compressed: bool = True) -> list[Path]:
    """Every event-log file under ``root`` in write order (a file ``root`` is its own list).

    Hidden entries, the rejects and the other log are skipped. ``compressed=False`` leaves out
    ``.jsonl.gz`` files (the live tailer reads plain segments only).
    """
    root = Path(root)
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and d not in (REJECTS_DIR, OTHER_DIR)
        ]
        for name in filenames:
            if name.startswith("."):
                continue
            if name.endswith(".jsonl") or (compressed and name.endswith(".jsonl.gz")):
                found.append(Path(dirpath) / name)
    found.sort(key=lambda path: segment_sort_key(path.relative_to(root)))
    return found


def names_file(path: Path, fd: int) -> bool:
    """True while ``path`` names the file open as ``fd`` (not removed, not replaced)."""
    try:
        found = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)
