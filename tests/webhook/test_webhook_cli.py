"""``rbmtools webhook serve`` and ``tail`` as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import requests
from webhook_helpers import TOKEN, ServeProcess, free_port, make_event, signed

from rbmtools.webhook import Receiver


def test_serve_takes_the_token_from_the_environment_and_never_prints_it(tmp_path):
    port = free_port()
    serve = ServeProcess(
        "--port", str(port), "--log-dir", str(tmp_path), "--path", "/rbm",
        env={"RBM_CLIENT_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        url = serve.wait_listening()
        assert url == f"http://127.0.0.1:{port}/rbm"
        body, headers = signed(make_event(1))
        assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
        forged = dict(headers, **{"X-Goog-Signature": "AAAA"})
        assert requests.post(url, data=body, headers=forged, timeout=10).status_code == 401
        stats = requests.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()
        assert stats["accepted"] == 1 and stats["rejected"]["signature_malformed"] == 1
    finally:
        serve.process.send_signal(signal.SIGTERM)
    assert serve.finish() == 0
    assert "accepted 1" in serve.output
    assert TOKEN not in serve.output
    assert len(list(tmp_path.rglob("*.jsonl"))) == 1


def test_serve_reads_a_token_file(tmp_path):
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    serve = ServeProcess(
        "--port", "0", "--log-dir", str(tmp_path / "events"),
        "--client-token-file", str(token_file),
    )  # fmt: skip
    try:
        url = serve.wait_listening()
        body, headers = signed(make_event(1))
        assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    finally:
        serve.process.send_signal(signal.SIGINT)
    assert serve.finish() == 0 and TOKEN not in serve.output


def test_serve_without_a_token_is_a_usage_error(tmp_path):
    serve = ServeProcess("--port", "0", "--log-dir", str(tmp_path))
    assert serve.finish() == 2
    assert "clientToken" in serve.output and "RBM_CLIENT_TOKEN" in serve.output


def test_serve_no_verify_says_so_loudly(tmp_path):
    serve = ServeProcess("--port", "0", "--log-dir", str(tmp_path), "--no-verify")
    try:
        url = serve.wait_listening()
        body, _ = signed(make_event(1))
        assert requests.post(url, data=body, timeout=10).status_code == 200
    finally:
        serve.process.send_signal(signal.SIGTERM)
    assert serve.finish() == 0
    assert "WARNING" in serve.output and "NOT checked" in serve.output
    assert "signature check OFF" in serve.output


def test_serve_refuses_a_log_dir_another_receiver_holds(tmp_path):
    with Receiver(tmp_path, client_token=TOKEN):
        serve = ServeProcess("--port", "0", "--log-dir", str(tmp_path),
                             env={"RBM_CLIENT_TOKEN": TOKEN})  # fmt: skip
        assert serve.finish() == 3
    assert "already writing" in serve.output


def test_serve_on_a_busy_port_fails_cleanly(tmp_path):
    with Receiver(tmp_path / "a", client_token=TOKEN) as rx:
        serve = ServeProcess("--port", str(rx.port), "--log-dir", str(tmp_path / "b"),
                             env={"RBM_CLIENT_TOKEN": TOKEN})  # fmt: skip
        assert serve.finish() == 3
    assert "cannot serve" in serve.output and "Traceback" not in serve.output


def _tail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbmtools", "webhook", "tail", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_tail_prints_logged_events(tmp_path):
    with Receiver(tmp_path, client_token=TOKEN) as rx:
        for index in (1, 2, 1):
            body, headers = signed(make_event(index))
            requests.post(rx.url, data=body, headers=headers, timeout=10)
    (tmp_path / "date=2026-11-25").mkdir(exist_ok=True)
    (tmp_path / "date=2026-11-25" / "events-999999.jsonl").write_text("junk\n")
    result = _tail(str(tmp_path), "--from-start", "--timeout", "0")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "DELIVERED message=msg-000001 phone=+12223330001 event=evt-000001" in lines[0]
    assert "skipped 1 malformed" in result.stderr
    as_json = _tail(str(tmp_path), "--from-start", "--timeout", "0", "--json")
    records = [json.loads(text) for text in as_json.stdout.splitlines()]
    assert [r["event"]["eventId"] for r in records] == ["evt-000001", "evt-000002"]
    assert all("receivedAt" in r for r in records)
    # Without --from-start, history is skipped.
    assert _tail(str(tmp_path), "--timeout", "0").stdout == ""


def test_webhook_help_lists_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "rbmtools", "webhook"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "serve" in result.stdout and "tail" in result.stdout
