"""An emulator over loopback for the client tests, with google-auth's real token flow."""

from __future__ import annotations

import pytest

from rbmtools.client import RbmClient, RetryPolicy
from rbmtools.emulator import Emulator


@pytest.fixture(scope="package")
def emulator():
    with Emulator(profile="always-online", speed=60.0, seed=11) as emu:
        yield emu


@pytest.fixture
def emu(emulator):
    """The shared emulator, reset to a clean platform for each test."""
    emulator.admin.reset()
    yield emulator
    emulator.admin.clear_faults()


class RecordingSleep:
    """Stands in for time.sleep in retry tests: records each requested delay, waits briefly."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def client(emu, tmp_path, sleeps):
    with RbmClient.from_emulator(
        emu, outbox=tmp_path / "outbox.jsonl", retry=RetryPolicy(max_attempts=4), sleep=sleeps
    ) as c:
        yield c
