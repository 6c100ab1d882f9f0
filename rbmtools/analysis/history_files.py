"""A compacted history on disk: its manifest, and what of each log file it holds already.

``rbmtools logs compact`` keeps, in one folder (the history), the logs as Parquet and the
per-message state (``state``) of everything it has read. Layout:

- ``_MANIFEST.json``: the committed history (``Manifest``): every source file and how many of
  its bytes were read (ending at a line end), the Parquet parts written from it, the state's
  files by day and its generation. A reader uses only what the manifest lists; it is replaced
  atomically, so a compaction killed half-way leaves the previous history readable.
- ``date=YYYY-MM-DD/<segment>[.<n>].parquet``: the receiver's segments, decoded (what
  ``Dataset.to_parquet`` writes), one part per compaction that found new lines in them;
  ``date=YYYY-MM-DD/_MALFORMED`` the lines set aside (JSON Lines, with file, line and problem).
- ``_outbox/date=YYYY-MM-DD/...parquet``: the outbox records, by the day of their time.
- ``_state/``: the per-message state (``messages/``, by the day of each message's send), the
  events about no message (``others/``, by the day of the event), the malformed counts and the
  cached load summary of every home day (``summaries/``, by day too).

Log files are only ever appended to (the receiver's live segment, an outbox that grows): what a
history has not read of a file is its tail (``Tail``), from the bytes already read to the last
complete line (a plain file's last line without a newline is still being written; a gzip file
is read to its end). A file that changed in any other way (shorter, or different at its start) is
refused (``SourceChangedError``): its old lines are in the state already, which cannot forget.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rbmtools.analysis.inputs import resolve_paths
from rbmtools.errors import RbmError, ValidationError

__all__ = [
    "HISTORY_FORMAT",
    "MALFORMED_NAME",
    "MANIFEST_NAME",
    "Manifest",
    "SourceChangedError",
    "SourceEntry",
    "Tail",
    "find_tails",
    "is_history",
    "read_manifest",
    "write_manifest",
]

HISTORY_FORMAT = "rbmtools.history/1"
MANIFEST_NAME = "_MANIFEST.json"
#: The lines set aside, per folder of Parquet parts (JSON Lines: log, file, line, text, problem).
MALFORMED_NAME = "_MALFORMED"
STATE_DIR = "_state"
OUTBOX_DIR = "_outbox"
#: How much of a file's start identifies it (so a replaced file is not taken for a grown one).
HEAD_BYTES = 4096

_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_OLD_MANIFEST = "_MANIFEST"  # a day folder of rbmtools.compaction/1


class SourceChangedError(RbmError):
    """A log file the history has read changed other than by growing (see the module doc)."""


@dataclass
class SourceEntry:
    """What the history holds of one log file: ``bytes`` of its content (uncompressed), as
    ``lines`` non-blank lines, identified by the SHA-256 of its first bytes (``head``)."""

    log: str  # "events" or "outbox"
    path: str
    bytes: int = 0
    head: str = ""
    lines: int = 0
    malformed: int = 0
    parts: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """A history's committed state (``_MANIFEST.json``): see the module docstring."""

    generation: int = 0
    rules: str = ""
    events_dir: str | None = None
    outbox: list[str] = field(default_factory=list)
    sources: dict[str, SourceEntry] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # home day -> state file
    others: dict[str, str] = field(default_factory=dict)  # event day -> file
    bad: str | None = None
    summaries: dict[str, str] = field(default_factory=dict)  # home day -> its load summary

    def to_json(self) -> str:
        document = {"format": HISTORY_FORMAT, **asdict(self)}
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ValidationError(
                "history", where, f"has a damaged {MANIFEST_NAME} ({exc})"
            ) from None
        if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
            raise ValidationError(
                "history", where, f"was written by another version (format {HISTORY_FORMAT})"
            )
        document.pop("format")
        document.pop("summary", None)  # (one file for all days, before: summarised again)
        sources = {k: SourceEntry(**v) for k, v in document.pop("sources", {}).items()}
        return cls(sources=sources, **document)

    def state_files(self) -> list[str]:
        """Every state file the manifest lists (relative to the history)."""
        files = [*self.messages.values(), *self.others.values(), *self.summaries.values()]
        return files + ([self.bad] if self.bad else [])


def is_history(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a history folder (it holds a manifest)."""
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(history: str | os.PathLike[str]) -> Manifest | None:
    """The committed manifest of ``history`` (None for a folder no compaction wrote yet)."""
    folder = Path(history)
    path = folder / MANIFEST_NAME
    if not path.exists():
        if any(folder.glob(f"date=*/{_OLD_MANIFEST}")):
            raise ValidationError(
                "history",
                str(folder),
                "was compacted by an earlier rbmtools (per-day _MANIFEST files): compact "
                "into a new folder",
            )
        return None
    return Manifest.from_json(path.read_text(encoding="utf-8"), str(folder))


def write_manifest(history: str | os.PathLike[str], manifest: Manifest) -> None:
    """Replace the manifest atomically (written, fsynced, renamed, the folder fsynced)."""
    folder = Path(history)
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_NAME}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# ------------------------------------------------------------------------------ sources


def _open(path: str):
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def _head(path: str, length: int) -> str:
    with _open(path) as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


def _gzip_size(path: str) -> int:
    """The uncompressed size a gzip file declares (modulo 2**32, its trailer's ISIZE)."""
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


@dataclass(frozen=True)
class Tail:
    """What a history has not read of one log file: content bytes ``start`` to ``end`` (the
    last complete line), after ``lines_before`` lines. ``day`` is the receiver's day folder of
    an event segment."""

    key: str
    log: str
    path: str
    start: int
    end: int
    lines_before: int
    day: str | None

    @property
    def whole(self) -> bool:
        return self.start == 0

    def head(self) -> str:
        """The identity to record: SHA-256 of the first ``HEAD_BYTES`` of the content."""
        return _head(self.path, min(HEAD_BYTES, self.end))

    def materialise(self, folder: str) -> str:
        """A file holding exactly this tail: the source itself when that is all of it (a
        complete plain file read from its start), else a copy in ``folder``."""
        plain = not self.path.lower().endswith(".gz")
        if plain and self.start == 0 and os.path.getsize(self.path) == self.end:
            return self.path
        name = hashlib.sha256(self.key.encode()).hexdigest()[:24]
        target = os.path.join(folder, f"tail-{name}.jsonl")
        with _open(self.path) as source, open(target, "wb") as out:
            if plain:
                source.seek(self.start)
            else:
                _skip(source, self.start)
            remaining = self.end - self.start
            while remaining > 0:
                chunk = source.read(min(remaining, 1 << 22))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
        return target


def _skip(handle: Any, count: int) -> None:
    while count > 0:
        chunk = handle.read(min(count, 1 << 22))
        if not chunk:
            return
        count -= len(chunk)


def _complete_end(path: str, start: int) -> int:
    """Where the content from ``start`` on stops being complete lines: just after its last
    newline (a last line without one is still being written: left for later). A gzip file
    is complete: all of it."""
    if path.lower().endswith(".gz"):
        position = start
        with _open(path) as handle:
            _skip(handle, start)
            while chunk := handle.read(1 << 22):
                position += len(chunk)
        return position
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        while position > start:
            block = min(1 << 16, position - start)
            handle.seek(position - block)
            cut = handle.read(block).rfind(b"\n")
            if cut >= 0:
                return position - block + cut + 1
            position -= block
    return start


def _tail(key: str, log: str, path: str, entry: SourceEntry | None, day: str | None) -> Tail | None:
    """The unread tail of ``path`` (None when there is none), or ``SourceChangedError``."""
    compressed = path.lower().endswith(".gz")
    if entry is not None and entry.bytes:
        size = _gzip_size(path) if compressed else os.path.getsize(path)
        if (size % 2**32 if compressed else size) == (
            entry.bytes % 2**32 if compressed else entry.bytes
        ):
            return None  # (a gzip file keeps its size: read once, unchanged)
        if not compressed and size < entry.bytes:
            raise SourceChangedError(f"{path} is shorter than when it was compacted")
        if _head(path, min(HEAD_BYTES, entry.bytes)) != entry.head:
            raise SourceChangedError(f"{path} changed since it was compacted (not only appended)")
    start = entry.bytes if entry is not None else 0
    end = _complete_end(path, start)
    if end <= start:
        return None
    before = entry.lines if entry is not None else 0
    return Tail(key, log, os.path.abspath(path), start, end, before, day)


def _event_sources(events_dir: str) -> Iterator[tuple[str, str, str | None]]:
    """(key, path, day) of the receiver's segments under ``events_dir``."""
    from rbmtools.analysis.inputs import JSONL_SUFFIXES

    root = Path(events_dir)
    for found in resolve_paths(root, "events", empty_ok=True).jsonl:
        relative = Path(found).relative_to(root.resolve())
        if not found.lower().endswith(JSONL_SUFFIXES):
            continue
        match = next((_DAY.fullmatch(p) for p in relative.parts[:-1] if _DAY.fullmatch(p)), None)
        yield f"events/{relative.as_posix()}", found, match[1] if match else None


def find_tails(
    manifest: Manifest, events_dir: str | None, outbox: Iterable[str]
) -> tuple[list[Tail], dict[str, str], list[str]]:
    """The unread tails of the event segments under ``events_dir`` and of the outbox files
    ``outbox`` (paths as ``load`` takes them), the renames of entries whose plain file was
    compressed since (old key -> new key: the same file, nothing new to read in it), and the
    event files outside ``date=YYYY-MM-DD`` folders (no receiver segments: not compacted)."""
    tails: list[Tail] = []
    renamed: dict[str, str] = {}
    found: list[tuple[str, str, str, str | None]] = []
    unpartitioned: list[str] = []
    if events_dir is not None:
        for key, path, day in _event_sources(events_dir):
            if day is None:
                unpartitioned.append(path)
            else:
                found.append((key, "events", path, day))
    for path in outbox:  # (a folder the outbox has no file in yet is no error here)
        if os.path.isdir(path) and not resolve_paths(path, "outbox", empty_ok=True):
            continue
        found += [(f"outbox/{p}", "outbox", p, None) for p in resolve_paths(path, "outbox").jsonl]
    present = {key for key, *_ in found}
    for key, log, path, day in found:
        entry = manifest.sources.get(key)
        plain_key = key[:-3] if key.lower().endswith(".gz") else None
        if entry is None and plain_key in manifest.sources and plain_key not in present:
            entry = manifest.sources[plain_key]  # compressed after it was read
            renamed[plain_key] = key
        tail = _tail(key, log, path, entry, day)
        if tail is not None:
            tails.append(tail)
    return tails, renamed, unpartitioned
