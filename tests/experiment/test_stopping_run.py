"""Runs with a stopping rule on the emulator: looks after every batch, eliminated arms get no
more recipients, the run ends on Ready, every look replays from the run folder, a resume keeps
them; the status command on a finished, a running and a too-small experiment."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from experiment_helpers import RunLogs, make_spec

from rbmtools.emulator import Emulator
from rbmtools.errors import ValidationError
from rbmtools.experiment import looks as looks_module
from rbmtools.experiment import run_experiment
from rbmtools.experiment.assign import recipients, stopping_plan
from rbmtools.experiment.looks import facts_from_logs, read_looks, replay_looks
from rbmtools.experiment.status import experiment_status

QUIET = {"progress": False, "echo": None}


def stopping_spec(name: str = "stop", **stopping):
    """OTP on commuters: a 15 s TTL is much cheaper than a 10-minute one (the waits)."""
    return make_spec(
        name=name,
        audience={"synthetic": 3000, "profile": "commuters"},
        arms=[{"method": "ttl", "duration": "15s"}, {"method": "ttl", "duration": "10m"}],
        send_rate=0.2,
        seed=4,
        observe="1m",
        stopping={"min_per_arm": 20, "look_every": 40, "max_messages": 1200, **stopping},
    )


# Runs whose looks are replayed go at speed 400: the grace period (30 platform seconds) is then
# 75 real milliseconds, plus the lag the runner has seen, for every event to reach it before
# the look that counts it; at full speed on a loaded machine a webhook can lag past that.


def _replayed(result) -> tuple[list, list]:
    logs = RunLogs(result.run_dir)
    facts = facts_from_logs(logs.records, logs.events, result.spec.name)
    recorded = read_looks(result.paths.looks)
    return recorded, replay_looks(result.spec, facts, recorded, 1200)


def _check_batches(result, recorded) -> None:
    """What was sent is the seeded plan of the recorded looks: each batch among the arms the
    look before it kept, the recipients in the run's order, nobody twice."""
    logs = RunLogs(result.run_dir)
    plan = stopping_plan(result.spec, recipients(result.spec), [r.running for r in recorded])
    sent = {(s.message_id, s.phone, s.arm) for s in logs.answered_sends()}
    assert sent == {(m.message_id, m.phone, m.arm) for m in plan}
    assert set(logs.send_counts().values()) == {1}
    for number, record in enumerate(recorded[:-1], start=1):
        batch = plan[number * 40 : (number + 1) * 40]
        assert {m.arm for m in batch} <= set(record.running)


def test_a_clear_winner_stops_the_run_early_and_every_look_replays(tmp_path):
    spec = stopping_spec()
    with Emulator(profile="commuters", speed=400.0, seed=4) as emu:
        result = run_experiment(spec, data_dir=tmp_path, emulator=emu, **QUIET)
    assert result.status == "complete"
    recorded, again = _replayed(result)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in recorded]
    last = recorded[-1]
    assert last.final and last.use_cases["otp"].decision.value == "ready"
    assert last.use_cases["otp"].best == "ttl=15s"
    assert last.use_cases["otp"].eliminated == ("ttl=600s",)
    assert [r.index for r in recorded] == list(range(1, len(recorded) + 1))
    assert last.sent < 1200 and result.stats.messages == last.sent
    _check_batches(result, recorded)
    status = experiment_status(result.run_dir)
    assert status.recorded and status.state == "finished"
    assert status.headline("otp").startswith("otp: READY. Best arm 'ttl=15s'")
    assert status.headlines()[0].startswith("otp: Ready: 'ttl=15s', 0.0")
    assert status.alerts() == []
    assert not status.sample_ratio.flagged
    table = status.table("otp").set_index("arm")
    assert (
        table.loc["ttl=600s", "status"]
        == f"dropped at look {last.use_cases['otp'].arm('ttl=600s').eliminated_at}"
    )
    assert table["messages"].sum() == last.sent


def _run_until_looks(spec, data_dir: Path, emu: Emulator, count: int):
    """Run ``spec`` and create its STOP file once ``count`` looks are recorded."""
    run_dir = data_dir / spec.name
    done = threading.Event()

    def watch() -> None:
        looks = run_dir / "looks.jsonl"
        while not done.is_set():
            if looks.exists() and len(looks.read_text().splitlines()) >= count:
                (run_dir / "STOP").touch()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        return run_experiment(spec, data_dir=data_dir, emulator=emu, **QUIET)
    finally:
        done.set()
        watcher.join()


def test_looks_and_decisions_survive_a_resume(tmp_path):
    spec = stopping_spec(name="resumed")
    run_dir = tmp_path / "resumed"
    with Emulator(profile="commuters", speed=400.0, seed=4) as emu:
        first = _run_until_looks(spec, tmp_path, emu, 4)
        assert first.status == "interrupted"
        before = read_looks(first.paths.looks)
        assert len(before) >= 4 and not before[-1].final
        second = run_experiment(spec, data_dir=tmp_path, emulator=emu, resume=True, **QUIET)
        assert emu.admin.stats()["ignoredReusedIds"] == 0  # nothing was sent twice
    assert second.status == "complete"
    recorded, again = _replayed(second)
    assert [r.to_dict() for r in recorded[: len(before)]] == [r.to_dict() for r in before]
    assert [r.index for r in recorded] == list(range(1, len(recorded) + 1))
    assert [r.to_dict() for r in again] == [r.to_dict() for r in recorded]
    assert recorded[-1].final
    _check_batches(second, recorded)
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "complete"]


def test_status_of_a_running_and_of_a_too_small_experiment(tmp_path):
    spec = stopping_spec(name="watched")
    run_dir = tmp_path / "watched"
    seen = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            looks = run_dir / "looks.jsonl"
            if looks.exists() and len(looks.read_text().splitlines()) >= 3:
                seen.append(experiment_status(run_dir))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    with Emulator(profile="commuters", speed=300.0, seed=4) as emu:
        watcher.start()
        run_experiment(spec, data_dir=tmp_path, emulator=emu, **QUIET)
        watcher.join()
    running = seen[0]
    assert running.state == "running (or died)" and not running.recorded
    assert running.look is not None and running.look.index >= 4  # after the recorded ones
    decision = running.decisions()["otp"].decision.value
    assert decision in ("keep_running", "not_enough_data")
    assert ("KEEP RUNNING" in running.text()) == (decision == "keep_running")
    assert any("has not ended" in alert for alert in running.alerts())
    small = stopping_spec(name="small", max_messages=60, min_per_arm=100)
    with Emulator(profile="commuters", speed=1200.0, seed=4) as emu:
        result = run_experiment(small, data_dir=tmp_path, emulator=emu, **QUIET)
    status = experiment_status(result.run_dir)
    assert status.recorded and status.sent == 60
    assert status.decisions()["otp"].decision.value == "not_enough_data"
    assert "otp: NOT ENOUGH DATA" in status.text() and "needs 100" in status.text()
    assert status.headlines() == [
        "otp: Not enough data: an arm has fewer than 100 settled messages"
    ]


def test_a_fixed_run_is_read_with_always_valid_intervals(tmp_path):
    spec = make_spec(
        name="fixed",
        audience={"synthetic": 600, "profile": "commuters"},
        arms=[
            {"method": "ttl", "duration": "15s"},
            {"method": "ttl", "duration": "10m"},
            {"method": "ttl", "duration": "1m", "use_case": "banking"},
            {"method": "ttl", "duration": "5m", "use_case": "banking"},
        ],
        per_arm=150,
        seed=4,
        observe="30m",  # past the longest TTL and its grace: every message settles, even when
        # a loaded machine delivers the webhook pushes late (1.5 s of real time at speed 1200)
    )
    with Emulator(profile="commuters", speed=1200.0, seed=4) as emu:
        result = run_experiment(spec, data_dir=tmp_path, emulator=emu, **QUIET)
    status = experiment_status(result.run_dir)
    assert not status.recorded and status.looks == 0 and status.max_messages == 600
    look = status.decisions()["otp"]
    assert look.decision.value in ("ready", "inconclusive")  # a finished run: no Keep running
    counts = Counter(s.arm for s in RunLogs(result.run_dir).answered_sends())
    assert status.sample_ratio.observed == dict(counts) and not status.sample_ratio.flagged
    cli = [sys.executable, "-m", "rbmtools", "experiment", "status", str(result.run_dir)]
    shown = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("fixed: finished; 600 of at most 600 messages sent")
    assert "otp: " in shown.stdout and "sample ratio: as allocated" in shown.stdout
    assert "banking: no decision: no cost policy prices this use case" in shown.stdout
    document = json.loads(
        subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert document["look"]["use_cases"]["otp"]["decision"] == look.decision.value
    missing = subprocess.run([*cli[:-1], str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 2 and "not a run folder" in missing.stderr


class Crash(Exception):
    """The process dies here."""


def test_a_look_torn_by_a_crash_is_taken_again_on_resume(tmp_path, monkeypatch):
    spec = stopping_spec(name="torn")
    written = []

    def write_then_die(path, record):
        line = json.dumps(record.to_dict())
        if len(written) == 3:  # the fourth look: half its line, then the process dies
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line[:25])
            raise Crash
        written.append(record)
        real_write(path, record)

    real_write = looks_module.write_look
    with Emulator(profile="commuters", speed=400.0, seed=4) as emu:
        monkeypatch.setattr(looks_module, "write_look", write_then_die)
        with pytest.raises(Crash):
            run_experiment(spec, data_dir=tmp_path, emulator=emu, **QUIET)
        monkeypatch.setattr(looks_module, "write_look", real_write)
        assert [r.index for r in read_looks(tmp_path / "torn" / "looks.jsonl")] == [1, 2, 3]
        result = run_experiment(spec, data_dir=tmp_path, emulator=emu, resume=True, **QUIET)
        assert emu.admin.stats()["ignoredReusedIds"] == 0
    assert result.status == "complete"
    recorded, again = _replayed(result)
    assert [r.index for r in recorded] == list(range(1, len(recorded) + 1))
    assert [r.to_dict() for r in recorded[:3]] == [r.to_dict() for r in written]
    assert [r.to_dict() for r in again] == [r.to_dict() for r in recorded]
    _check_batches(result, recorded)


def test_a_resume_refuses_looks_that_do_not_match_the_outbox(tmp_path):
    spec = stopping_spec(name="cut")
    run_dir = tmp_path / "cut"
    with Emulator(profile="commuters", speed=600.0, seed=4) as emu:
        _run_until_looks(spec, tmp_path, emu, 6)
        looks = run_dir / "looks.jsonl"
        looks.write_text("".join(looks.read_text().splitlines(keepends=True)[:2]))
        with pytest.raises(ValidationError, match="does not account for"):
            run_experiment(spec, data_dir=tmp_path, emulator=emu, resume=True, **QUIET)
