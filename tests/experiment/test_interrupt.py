"""Real interruptions of ``rbmtools experiment run`` processes: kill -9 and Ctrl-C halfway,
then a resume, against an emulator that outlives them (as Google's platform would)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from experiment_helpers import RunLogs, make_spec

from rbmtools.emulator import Emulator
from rbmtools.experiment import plan_messages, run_experiment

pytestmark = pytest.mark.slow


def _start(spec_file: Path, data_dir: Path, emu: Emulator) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "rbmtools", "experiment", "run", str(spec_file),
        "--data-dir", str(data_dir), "--emulator-url", emu.base_url,
        "--key-file", str(emu.key_file), "--agent-id", emu.agent_id, "--no-progress",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_sends(outbox: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if outbox.exists() and outbox.read_bytes().count(b'"kind":"send"') >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} sends after 60 s")


def _spec(name: str):
    return make_spec(
        name=name,
        audience={"synthetic": 240, "profile": "default"},
        arms=[
            {"method": "ttl", "duration": "2m"},
            {"method": "api_after_unless_delivered", "duration": "2m"},
        ],
        send_rate=1.0,
        fallback="on_revoked_or_inconclusive",
        observe="30s",
    )


def _check_complete(spec, run_dir: Path, emu: Emulator) -> RunLogs:
    logs = RunLogs(run_dir)
    planned = {(m.message_id, m.phone, m.arm) for m in plan_messages(spec)[0]}
    assert logs.sent_keys() == planned  # exactly the messages of an uninterrupted run
    assert set(logs.send_counts().values()) == {1}
    assert max(Counter((r.message_id, r.attempt) for r in logs.revokes).values()) == 1
    assert max(Counter(f.message_id for f in logs.fallbacks).values(), default=1) == 1
    truth = emu.admin.messages()
    assert max(Counter(m["phone"] for m in truth).values()) == 1
    assert len(truth) == len([s for s in logs.answered_sends() if s.status == 200])
    sms = [json.loads(line) for line in (run_dir / "sms.jsonl").read_text().splitlines()]
    fallbacks = sorted(f.message_id for f in logs.fallbacks)
    assert sorted(s["messageId"] for s in sms) == fallbacks
    # The emulator's own sink (reached over its admin surface) got each SMS once.
    assert sorted(a["messageId"] for a in emu.admin.sms()) == fallbacks
    return logs


def test_a_killed_process_resumes_without_messaging_anyone_twice(tmp_path):
    spec = _spec("killed")
    spec_file = spec.save(tmp_path / "spec.yaml")
    data_dir = tmp_path / "data"
    run_dir = data_dir / "killed"
    with Emulator(speed=120.0, seed=4) as emu:
        proc = _start(spec_file, data_dir, emu)
        try:
            _wait_for_sends(run_dir / "outbox.jsonl", 80, proc)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        killed = RunLogs(run_dir)
        assert 80 <= len(killed.answered_sends()) < 240
        result = run_experiment(
            spec_file,
            data_dir=data_dir,
            resume=True,
            emulator=emu.base_url,
            key_file=emu.key_file,
            progress=False,
            echo=None,
        )
        assert result.status == "complete"
        logs = _check_complete(spec, run_dir, emu)
        # A send in flight at the kill may be repeated; the platform ignored the repeat.
        assert emu.admin.stats()["ignoredReusedIds"] <= 8
    assert len(logs.answered_sends()) == 240
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["status"] for s in sessions] == ["died", "complete"]


def test_ctrl_c_finishes_the_calls_in_flight_and_leaves_a_resumable_run(tmp_path):
    spec = _spec("ctrlc")
    spec_file = spec.save(tmp_path / "spec.yaml")
    data_dir = tmp_path / "data"
    run_dir = data_dir / "ctrlc"
    with Emulator(speed=120.0, seed=4) as emu:
        proc = _start(spec_file, data_dir, emu)
        try:
            _wait_for_sends(run_dir / "outbox.jsonl", 60, proc)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 1, stderr.decode()
        assert b"--resume" in stderr
        assert (run_dir / "outbox.jsonl").read_bytes().endswith(b"\n")  # no torn record
        session = json.loads((run_dir / "run.json").read_text())["sessions"][-1]
        assert session["status"] == "interrupted"
        assert session["stats"]["stop_reason"] == "interrupted (Ctrl-C)"
        assert emu.admin.stats()["ignoredReusedIds"] == 0
        result = run_experiment(
            spec_file,
            data_dir=data_dir,
            resume=True,
            emulator=emu.base_url,
            key_file=emu.key_file,
            progress=False,
            echo=None,
        )
        assert result.status == "complete"
        _check_complete(spec, run_dir, emu)
        assert emu.admin.stats()["ignoredReusedIds"] == 0  # a graceful stop repeats nothing
