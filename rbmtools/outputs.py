"""Paths a command writes: never another run's file, and an existing one only when asked.

``refuse_existing`` is the one rule for an output path a user names (``rbmtools report -o
FILE.html``, ``rbmtools analyze --html FILE``, ``--quarantine FILE``): it is refused with one
line unless ``--force``. ``claim_timestamped`` gives a run its own UTC-timestamped names and
creates them at once (``O_EXCL``), so two runs started in the same second, from one
directory, never get the same file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rbmtools.errors import ValidationError

__all__ = ["add_force_argument", "claim_timestamped", "refuse_existing"]


def add_force_argument(parser: Any, files: str) -> None:
    """``--force``: replace ``files`` (how the command's help names them) if they exist."""
    parser.add_argument("--force", action="store_true", help=f"replace {files} if it exists")


def refuse_existing(path: str | os.PathLike[str], force: bool, field: str) -> Path:
    """``path``, unless something is there and ``force`` is not set: then a
    ``ValidationError`` naming ``field`` (``--html``...) says to pass ``--force``."""
    target = Path(path)
    if target.is_dir():
        raise ValidationError(field, os.fspath(path), "is a folder, not a file")
    if target.exists() and not force:
        raise ValidationError(field, os.fspath(path), "exists; pass --force to replace it")
    return target


def _create(path: Path) -> bool:
    """Create ``path`` (an empty file, or a folder when it has no suffix to write) only if
    nothing is there; True when this call created it."""
    try:
        if path.suffix:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        else:
            path.mkdir()
    except FileExistsError:
        return False
    return True


def claim_timestamped(
    directory: str | os.PathLike[str],
    stem: str,
    suffixes: Sequence[str],
    when: datetime | None = None,
) -> Path:
    """``directory/<stem>-<UTC time>`` (``-2``, ``-3``... when taken), with every one of
    ``suffixes`` created empty (``""``: a folder), claimed for this run alone. Returns the
    path without suffix."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    number = 1
    while True:
        base = folder / (f"{stem}-{stamp}" if number == 1 else f"{stem}-{stamp}-{number}")
        made = []
        for suffix in suffixes:
            path = base.with_name(base.name + suffix)
            if not _create(path):
                break
            made.append(path)
        else:
            return base
        for path in made:  # one of the names was taken: give the others back
            path.rmdir() if path.is_dir() else path.unlink(missing_ok=True)
        number += 1
