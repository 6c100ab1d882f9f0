"""Fixtures for the analysis tests: hand-built logs and one shared synthetic data set."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib
import pytest

from rbmtools import wire
from rbmtools.testing.synthetic import SyntheticConfig, generate_logs

matplotlib.use("Agg")

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
PHONE = "+12223334444"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class LogBuilder:
    """Writes small event and outbox logs with the wire helpers (the real record formats)."""

    root: Path
    events: list[str] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)
    counter: int = 0

    def event(
        self,
        message_id: str | None,
        event_type: str,
        seconds: float,
        *,
        shape: str = "receiver",
        event_id: str | None = "auto",
        received: float | None = None,
        verified: bool = True,
    ) -> dict:
        self.counter += 1
        if event_id == "auto":
            event_id = f"ev-{self.counter}"
        payload = wire.event_payload(
            agent_id="agent",
            phone=PHONE,
            event_type=event_type,
            event_id=event_id or "x",
            send_time=at(seconds),
            message_id=message_id,
        )
        if event_id is None:
            payload.pop("eventId")
        self.line(
            payload,
            shape=shape,
            received=seconds + 0.5 if received is None else received,
            verified=verified,
        )
        return payload

    def line(
        self,
        payload: dict,
        *,
        shape: str = "receiver",
        received: float = 0.0,
        verified: bool = True,
    ) -> None:
        if shape == "receiver":
            self.events.append(wire.event_record_line(payload, at(received), verified))
        elif shape == "push":
            envelope, _ = wire.build_push(
                payload, "token", message_id=f"p{self.counter}", publish_time=at(received)
            )
            self.events.append(json.dumps(envelope) + "\n")
        else:
            self.events.append(wire.dumps_line(payload))

    def raw_event(self, text: str) -> None:
        self.events.append(text if text.endswith("\n") else text + "\n")

    def send(
        self,
        message_id: str,
        seconds: float = 0.0,
        *,
        status: int = 200,
        ttl: float | None = None,
        use_case: str = "otp",
        arm: str | None = None,
        experiment: str | None = None,
    ) -> None:
        record = wire.SendRecord(
            message_id=message_id,
            phone=PHONE,
            agent_id="agent",
            send_time=at(seconds),
            status=status,
            use_case=use_case,
            traffic_type="AUTHENTICATION",
            ttl=ttl,
            expire_time=at(seconds + ttl) if ttl is not None else None,
            experiment=experiment,
            arm=arm,
        )
        self.outbox.append(record.to_line())

    def revoke(self, message_id: str, seconds: float, status: int, attempt: int = 1) -> None:
        self.outbox.append(
            wire.RevokeRecord(
                message_id=message_id, phone=PHONE, agent_id="agent",
                requested_at=at(seconds), status=status, attempt=attempt,
            ).to_line()
        )  # fmt: skip

    def fallback(self, message_id: str, seconds: float) -> None:
        self.outbox.append(
            wire.FallbackRecord(
                message_id=message_id, phone=PHONE, channel="sms", sent_at=at(seconds),
                reason="revoked",
            ).to_line()
        )  # fmt: skip

    def write(self, name: str = "logs") -> tuple[Path, Path]:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        events, outbox = folder / "events.jsonl", folder / "outbox.jsonl"
        events.write_text("".join(self.events), encoding="utf-8")
        outbox.write_text("".join(self.outbox), encoding="utf-8")
        return events, outbox


@pytest.fixture
def logs(tmp_path: Path) -> LogBuilder:
    return LogBuilder(tmp_path)


SYNTHETIC = SyntheticConfig(messages=8_000, days=1.0, seed=11, rotate_lines=4_000, garbage_lines=7)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """One seeded synthetic data set with a known truth, shared by the tests."""
    return generate_logs(tmp_path_factory.mktemp("synthetic"), SYNTHETIC)


@pytest.fixture(scope="session")
def synthetic_dataset(synthetic):
    from rbmtools.analysis import load

    with load(synthetic.events_dir, synthetic.outbox_dir) as dataset:
        yield dataset
