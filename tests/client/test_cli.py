"""``rbmtools send / revoke / capabilities`` against the emulator, with their exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from rbmtools.cli import main

PHONE = "+12223334444"
OFFLINE = "+15550000001"
NOT_RCS = "+15550000002"


@pytest.fixture
def env(emu, monkeypatch):
    monkeypatch.setenv("RBM_SERVICE_ACCOUNT", str(emu.key_file))
    monkeypatch.setenv("RBM_AGENT_ID", emu.agent_id)
    monkeypatch.setenv("RBM_BASE_URL", emu.base_url)
    monkeypatch.delenv("RBM_REGION", raising=False)
    return emu


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_send_and_revoke_exit_codes(env, capsys, tmp_path):
    env.admin.pin_phone(OFFLINE, online="never")
    outbox = tmp_path / "outbox.jsonl"
    code, out, _ = run(capsys, "send", OFFLINE, "hello", "--ttl", "10m", "--json",
                       "--outbox", str(outbox), "--use-case", "otp")  # fmt: skip
    assert code == 0
    sent = json.loads(out)
    assert sent["reachable"] is True and sent["expire_time"].endswith("Z")
    code, out, _ = run(capsys, "revoke", OFFLINE, sent["message_id"], "--outbox", str(outbox))
    assert code == 0 and out.startswith("revoked")
    code, out, _ = run(capsys, "revoke", OFFLINE, "never-sent")
    assert code == 1 and out.startswith("not revoked")
    assert len(outbox.read_text().splitlines()) == 2


def test_unreachable_is_exit_1(env, capsys):
    env.admin.pin_phone(NOT_RCS, rcs_capable=False)
    code, out, _ = run(capsys, "send", NOT_RCS, "hello")
    assert code == 1 and "not reachable" in out
    assert run(capsys, "capabilities", NOT_RCS)[0] == 1
    code, out, _ = run(capsys, "capabilities", PHONE, "--json")
    assert code == 0 and json.loads(out)["features"]


def test_usage_and_validation_errors_are_exit_2(env, capsys, monkeypatch):
    code, _, err = run(capsys, "send", "12345", "hello")
    assert code == 2 and "phone:" in err
    code, _, err = run(capsys, "send", PHONE, "hello", "--ttl", "forever")
    assert code == 2 and "ttl:" in err
    code, _, err = run(capsys, "revoke", PHONE)
    assert code == 2
    monkeypatch.delenv("RBM_AGENT_ID")
    code, _, err = run(capsys, "send", PHONE, "hello")
    assert code == 2 and "RBM_AGENT_ID: is not set" in err


def test_api_failure_is_exit_3(env, capsys):
    env.admin.inject_fault("send", 403, count=1)
    code, _, err = run(capsys, "send", PHONE, "hello")
    assert code == 3 and "403 PERMISSION_DENIED" in err


def test_bulk_revoke_from_csv(env, capsys, tmp_path):
    env.admin.pin_phone(OFFLINE, online="never")
    ids = []
    for i in range(5):
        code, out, _ = run(capsys, "send", OFFLINE, f"m{i}", "--message-id", f"csv-{i}", "--json")
        ids.append(json.loads(out)["message_id"])
    source = tmp_path / "ids.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "message_id"])
        writer.writerows([(OFFLINE, i) for i in ids] + [("bad", "x")])
    out_path = tmp_path / "results.csv"
    code, out, _ = run(capsys, "revoke", "--csv", str(source), "--out", str(out_path),
                       "--no-progress", "--json")  # fmt: skip
    summary = json.loads(out)
    assert code == 3  # one row failed validation
    assert (summary["rows"], summary["revoked"], summary["errors"]) == (6, 5, 1)
    rows = list(csv.DictReader(out_path.open()))
    assert len(rows) == 6 and rows[-1]["error"]


def test_real_process(env):
    result = subprocess.run(
        [sys.executable, "-m", "rbmtools", "send", PHONE, "from a process", "--json"],
        capture_output=True, text=True, env=dict(os.environ), timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == 200
