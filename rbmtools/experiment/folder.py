"""The run folder: where one experiment's files live, and the checkpoint a resume reads.

``DATA_DIR/<experiment name>/`` holds ``spec.yaml`` (the spec it runs), ``run.json`` (audience
fingerprint and one entry per session), ``outbox.jsonl`` (every send, revoke and fallback),
``events/`` (the webhook receiver's log), ``sms.jsonl`` (what the emulator's SMS sink
received) and, with a stopping rule, ``looks.jsonl`` (every look and decision), so
``rbmtools analyze --events DIR/events --outbox DIR/outbox.jsonl`` reads it as it is. The
outbox is the checkpoint: ``read_outbox`` reads it back (a torn last line from a crash is set
aside), and a resume must run the same spec on the same audience and target.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.experiment.spec import ExperimentSpec, load_spec
from rbmtools.wire import (
    FallbackRecord,
    OutboxRecord,
    RevokeRecord,
    SendRecord,
    parse_outbox_record,
)

__all__ = [
    "RunPaths",
    "check_same_run",
    "latest_record_time",
    "read_meta",
    "read_outbox",
    "write_meta",
]

log = logging.getLogger("rbmtools.experiment")


@dataclass(frozen=True)
class RunPaths:
    """Where the files of one run live (see the module doc)."""

    run_dir: Path

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str], experiment: str) -> RunPaths:
        return cls(Path(data_dir) / experiment)

    @property
    def spec(self) -> Path:
        return self.run_dir / "spec.yaml"

    @property
    def meta(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def outbox(self) -> Path:
        return self.run_dir / "outbox.jsonl"

    @property
    def events(self) -> Path:
        return self.run_dir / "events"

    @property
    def sms(self) -> Path:
        return self.run_dir / "sms.jsonl"

    @property
    def looks(self) -> Path:
        """The looks of a run with a stopping rule (``looks.RunLooks``), one JSON line each."""
        return self.run_dir / "looks.jsonl"

    @property
    def stop_file(self) -> Path:
        return self.run_dir / "STOP"

    @property
    def torn(self) -> Path:
        return self.run_dir / "outbox.torn"

    def exists(self) -> bool:
        return self.meta.exists() or self.outbox.exists()


def read_outbox(path: str | os.PathLike[str], *, repair: bool = False) -> list[OutboxRecord]:
    """The records of an outbox log, for resuming.

    A torn last line (a crash mid-write) is skipped; with ``repair=True`` it is cut from the
    file and kept in ``outbox.torn`` next to it, so new records start on a fresh line. Other
    unreadable lines are skipped with a warning (readers are liberal).
    """
    source = Path(path)
    if not source.exists():
        return []
    raw = source.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end != len(raw):
        torn = raw[end:]
        log.warning("%s ends with a torn line (%d bytes); it is ignored", source, len(torn))
        if repair:
            with open(source.with_suffix(".torn"), "ab") as keep:
                keep.write(torn + b"\n")
            with open(source, "r+b") as handle:
                handle.truncate(end)
    records: list[OutboxRecord] = []
    for number, line in enumerate(raw[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(parse_outbox_record(line))
        except ValidationError as exc:
            log.warning("%s line %d is not an outbox record: %s", source, number, exc)
    return records


def _record_time(record: OutboxRecord) -> datetime:
    if isinstance(record, SendRecord):
        return record.send_time
    if isinstance(record, RevokeRecord):
        return record.requested_at
    assert isinstance(record, FallbackRecord)
    return record.sent_at


def latest_record_time(records: list[OutboxRecord]) -> datetime | None:
    """The platform time of the last thing the outbox says was done (None: nothing yet)."""
    return max((_record_time(r) for r in records), default=None)


def read_meta(paths: RunPaths) -> dict[str, Any]:
    if not paths.meta.exists():
        return {}
    try:
        data = json.loads(paths.meta.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValidationError("run.json", str(paths.meta), f"is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def write_meta(paths: RunPaths, meta: Mapping[str, Any]) -> None:
    temporary = paths.meta.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, paths.meta)


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else where or "spec"


def check_same_run(
    paths: RunPaths, spec: ExperimentSpec, fingerprint: str, meta: Mapping[str, Any], target: str
) -> None:
    if paths.spec.exists():
        saved = load_spec(paths.spec)
        where = _first_difference(saved.to_dict(), spec.to_dict())
        if where is not None:
            raise ValidationError(
                "spec",
                where,
                f"differs from the spec the run started with ({paths.spec}); a resume must run "
                "the same spec",
            )
    if meta.get("audienceSha256") not in (None, fingerprint):
        raise ValidationError(
            "audience", spec.audience.phones_file, "changed since the run started; a resume "
            "must message the same audience",
        )  # fmt: skip
    if meta.get("target") not in (None, target):
        raise ValidationError(
            "target", target, f"the run started on the {meta.get('target')} target"
        )
