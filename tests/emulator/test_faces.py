"""The two faces: the in-process ``Emulator`` handle and the ``rbmtools emulator`` command."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from rbmtools import wire
from rbmtools.emulator import Emulator
from rbmtools.errors import ValidationError

from .conftest import PHONE, SINK_TOKEN, START, Api


def test_handle_starts_on_a_free_port_and_stops_cleanly():
    emu = Emulator(profile="always-online", speed=600, seed=1)
    with emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.base_url)
        assert emu.key_file.exists()
        assert emu.agent_id == "rbmtools-emulator"
        before = emu.clock.now()
        time.sleep(0.2)
        assert (emu.clock.now() - before).total_seconds() >= 100  # 600x: 0.2 s is 120 s
        assert emu.clock.speed == 600
        assert emu.admin.clock()["speed"] == 600
        assert any(t.name == "rbmtools-emulator" for t in threading.enumerate())
    assert not any(t.name == "rbmtools-emulator" for t in threading.enumerate())
    assert not emu.key_file.exists()  # the temporary key is removed with the emulator
    assert "Emulator(" in repr(emu)


def test_handle_refuses_half_a_webhook():
    with pytest.raises(ValidationError, match="clientToken"):
        Emulator(webhook_url="http://127.0.0.1:9/rbm")


def test_handle_at_speed_delivers_and_pushes(sink):
    with Emulator(
        profile="always-online", speed=600, webhook_url=sink.url, client_token=SINK_TOKEN
    ) as emu:
        api = Api(emu)
        assert api.send("fast", ttl="10m").status_code == 200
        assert sink.wait_for(lambda: sink.types_for("fast")[:1] == ["DELIVERED"], 10)
        stats = emu.admin.stats()
        assert stats["lagSeconds"] < 1.0


# ---------------------------------------------------------------------------------- CLI


def _read_banner(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """The serve banner (up to its admin line), read by a thread so a hang cannot block."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
            if line.startswith("  admin "):
                return

    threading.Thread(target=pump, daemon=True).start()
    text, deadline = "", time.monotonic() + timeout
    while "  admin " not in text and time.monotonic() < deadline:
        try:
            text += lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
    return text


def _serve(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rbmtools", "emulator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_cli_serve_registers_the_webhook_and_serves_google_auth(tmp_path, sink):
    key = tmp_path / "key.json"
    process = _serve(
        "--key-file",
        str(key),
        "--profile",
        "always-online",
        "--speed",
        "600",
        "--seed",
        "7",
        "--webhook",
        sink.url,
        env={"RBM_CLIENT_TOKEN": SINK_TOKEN},
    )
    try:
        banner = _read_banner(process)
        assert "registered" in banner, banner
        base = re.search(r"listening on (http://\S+)", banner).group(1)
        assert base.startswith("http://127.0.0.1:")
        credentials = service_account.Credentials.from_service_account_file(
            str(key), scopes=[wire.SCOPE]
        )
        session = AuthorizedSession(credentials)
        sent = session.post(
            base + wire.messages_path(PHONE),
            params={"messageId": "cli-1", "agentId": "any-agent"},
            json=wire.agent_message("hi", ttl="10m"),
            timeout=10,
        )
        assert sent.status_code == 200
        assert sink.wait_for(lambda: "DELIVERED" in sink.types_for("cli-1"), 10)

        other = tmp_path / "second-key.json"
        made = subprocess.run(
            [sys.executable, "-m", "rbmtools", "emulator", "keygen", str(other), "--url", base],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        assert "now trusts it" in made.stdout
        second = service_account.Credentials.from_service_account_file(
            str(other), scopes=[wire.SCOPE]
        )
        answer = AuthorizedSession(second).get(
            base + wire.capabilities_path(PHONE), params={"agentId": "a"}, timeout=10
        )
        assert answer.status_code == 200

        stats = subprocess.run(
            [sys.executable, "-m", "rbmtools", "emulator", "stats", "--url", base],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert json.loads(stats.stdout)["api"]["calls"]["send"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert SINK_TOKEN not in banner + out + err


def test_cli_serve_says_clearly_when_the_handshake_fails(tmp_path, sink):
    sink.handshake = "wrong"
    token_file = tmp_path / "token.txt"
    token_file.write_text(SINK_TOKEN + "\n")
    process = _serve(
        "--key-file",
        str(tmp_path / "k.json"),
        "--webhook",
        sink.url,
        "--client-token-file",
        str(token_file),
        "--register-timeout",
        "0",
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3
    assert "webhook registration failed" in err
    assert "secret" in err
    assert SINK_TOKEN not in out + err


def test_cli_serve_needs_a_client_token_with_a_webhook(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RBM_CLIENT_TOKEN"}
    process = subprocess.run(
        [sys.executable, "-m", "rbmtools", "emulator", "serve", "--webhook", "http://x/y"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert process.returncode == 2
    assert "clientToken" in process.stderr


def test_cli_keygen_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k.json"
    args = [sys.executable, "-m", "rbmtools", "emulator", "keygen", str(path)]
    url = ["--url", "http://127.0.0.1:9", "--no-register"]
    first = subprocess.run([*args, *url], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert json.loads(Path(path).read_text())["token_uri"] == "http://127.0.0.1:9/token"
    second = subprocess.run([*args, *url], capture_output=True, text=True, check=False)
    assert second.returncode == 2
    assert "already exists" in second.stderr


def test_stepping_handle_fixes_the_start(sink):
    with Emulator(speed=0, start=START) as emu:
        assert emu.clock.now() == START
        assert emu.admin.advance("1h") == START.replace(hour=11)
        assert emu.admin.advance(to="2026-11-25T12:00:00Z") == START.replace(hour=12)


def test_cli_serve_runs_in_real_time_by_default_and_serves_the_google_proxy(tmp_path):
    """A client computing expireTime from its own clock (Google's Node helper does) must not
    find it "in the past": the standalone server keeps real time unless asked for speed."""
    process = _serve(
        "--key-file", str(tmp_path / "key.json"), "--agent-use-case", "OTP",
        "--google-proxy", "0",
    )  # fmt: skip
    try:
        banner = _read_banner(process)
        assert "real time" in banner and "use case OTP" in banner, banner
        assert "HTTPS_PROXY=http://127.0.0.1:" in banner
        base = re.search(r"listening on (http://\S+)", banner).group(1)
        clock = requests.get(base + "/emulator/v1/clock", timeout=10).json()
        assert clock["speed"] == 1
        credentials = service_account.Credentials.from_service_account_file(
            str(tmp_path / "key.json"), scopes=[wire.SCOPE]
        )
        session = AuthorizedSession(credentials)
        expire = wire.format_timestamp(wire.utc_now() + timedelta(seconds=60))
        sent = session.post(
            base + wire.messages_path(PHONE),
            params={"messageId": "own-clock", "agentId": "a"},
            json={"contentMessage": {"text": "hi"}, "expireTime": expire},
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["messageTrafficType"] == "AUTHENTICATION"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
