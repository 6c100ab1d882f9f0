"""Helpers for the experiment tests: small specs and a reader of a run folder's logs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rbmtools.experiment import ExperimentSpec, read_outbox
from rbmtools.webhook import read_events
from rbmtools.wire import FallbackRecord, RevokeRecord, SendRecord


def make_spec(**changes: Any) -> ExperimentSpec:
    """A small valid spec; keyword arguments replace fields of its plain form."""
    data: dict[str, Any] = {
        "name": "t",
        "use_case": "otp",
        "traffic_type": "AUTHENTICATION",
        "template": "Your code is {code}",
        "audience": {"synthetic": 30, "profile": "always-online"},
        "arms": [
            {"method": "ttl", "duration": "2m"},
            {"method": "api_after", "duration": "2m"},
        ],
        "seed": 3,
        "fallback": "on_revoked",
        "grace": "30s",
        "observe": "1m",
    }
    data.update(changes)
    return ExperimentSpec.from_dict(data)


class RunLogs:
    """A run folder's outbox and event log, read back for assertions."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.records = read_outbox(run_dir / "outbox.jsonl")
        self.sends = [r for r in self.records if isinstance(r, SendRecord)]
        self.revokes = [r for r in self.records if isinstance(r, RevokeRecord)]
        self.fallbacks = [r for r in self.records if isinstance(r, FallbackRecord)]
        events_dir = run_dir / "events"
        self.events = list(read_events(events_dir)) if events_dir.exists() else []

    def answered_sends(self) -> list[SendRecord]:
        return [s for s in self.sends if s.status in (200, 404)]

    def sent_keys(self) -> set[tuple[str, str, str]]:
        return {(s.message_id, s.phone, s.arm or "") for s in self.answered_sends()}

    def send_counts(self) -> Counter[str]:
        return Counter(s.message_id for s in self.answered_sends())

    def events_of(self, message_id: str, kind: str) -> list[Any]:
        return [
            e.event
            for e in self.events
            if e.event.message_id == message_id and getattr(e.event, "event_type", "") == kind
        ]
