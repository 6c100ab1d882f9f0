"""The receiver against a hostile or broken world, with real processes (issue 15).

A log directory removed while it runs, a directory it cannot write, slow and stalled clients,
clients that hang up mid-body, bodies carrying secrets: nothing acknowledged is lost, health
says whether events can be stored, no connection is held forever, nothing prints a traceback,
no secret lands in a file others can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests
from webhook_helpers import (
    TOKEN,
    ServeProcess,
    free_port,
    lines_of,
    make_event,
    signed,
    wait_for,
)

from rbmtools.webhook import Receiver, read_events
from rbmtools.webhook.layout import day_dir_name


@contextlib.contextmanager
def serving(log_dir, *flags: str):
    """``rbmtools webhook serve`` on a free port; yields (process, event URL, base URL)."""
    port = free_port()
    serve = ServeProcess(
        "--port", str(port), "--log-dir", str(log_dir), "--path", "/rbm", *flags,
        env={"RBM_CLIENT_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        url = serve.wait_listening()
        yield serve, url, f"http://127.0.0.1:{port}"
    finally:
        if serve.process.poll() is None:
            serve.process.send_signal(signal.SIGTERM)
        serve.finish()


def push(url: str, index: int) -> int:
    body, headers = signed(make_event(index))
    return requests.post(url, data=body, headers=headers, timeout=10).status_code


def logged_ids(log_dir) -> set[str]:
    return {logged.event.event_id for logged in read_events(log_dir, dedup=False)}


# ------------------------------------------------------------------ the log directory vanishes


def test_rm_rf_of_the_log_directory_while_serving_loses_no_acknowledged_event(tmp_path):
    log_dir = tmp_path / "events"
    with serving(log_dir) as (serve, url, base):
        assert push(url, 1) == 200
        shutil.rmtree(log_dir)  # rm -rf while it runs
        assert push(url, 2) == 200  # was a 200 into an unlinked file: lost
        assert "evt-000002" in logged_ids(log_dir)  # the directory was recreated
        assert requests.get(base + "/healthz", timeout=5).json()["status"] == "ok"
        shutil.move(log_dir, tmp_path / "moved-away")  # mv: the same, by another route
        assert push(url, 3) == 200
        assert logged_ids(log_dir) == {"evt-000003"}
        stats = requests.get(base + "/stats", timeout=5).json()
        assert stats["accepted"] == 3 and stats["segments_vanished"] == 2
        # The recreated directory is locked again: a second receiver is refused.
        second = ServeProcess(
            "--port", "0", "--log-dir", str(log_dir), env={"RBM_CLIENT_TOKEN": TOKEN}
        )
        assert second.finish() == 3 and "another receiver" in second.output
    assert serve.process.returncode == 0
    assert "Traceback" not in serve.output


def test_every_200_is_in_the_log_however_often_the_directory_is_removed(tmp_path):
    log_dir = tmp_path / "events"
    with serving(log_dir) as (_serve, url, _base):
        for round_ in range(4):
            ids = {f"evt-{round_ * 100 + i:06d}" for i in range(15)}
            for event_id in sorted(ids):
                assert push(url, int(event_id[4:])) == 200
            assert logged_ids(log_dir) == ids  # each 200 is in the log as it stands
            shutil.rmtree(log_dir)


# ------------------------------------------------------------------ health reflects storing


@contextlib.contextmanager
def unwritable(directory):
    """Make ``directory`` unwritable even for root (chattr +i), else by its mode bits."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o750)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(directory)], capture_output=True)
    if not done or done.returncode != 0:
        pytest.skip("running as root without a working chattr: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def test_healthz_is_not_ok_while_the_day_directory_is_read_only(tmp_path):
    log_dir = tmp_path / "events"
    day_dir = log_dir / day_dir_name(datetime.now(UTC).date())
    day_dir.mkdir(parents=True)
    with serving(log_dir) as (serve, url, base), unwritable(day_dir):
        assert push(url, 1) == 503  # cannot open a segment there
        health = requests.get(base + "/healthz", timeout=5)
        assert health.status_code == 503  # was 200 "ok" while every push got 503
        assert health.json()["status"] == "cannot_store" and "problem" in health.json()
    # Writable again (the context above restored it before the receiver stopped).
    with serving(log_dir) as (serve, url, base):
        assert requests.get(base + "/healthz", timeout=5).json()["status"] == "ok"
        assert push(url, 2) == 200
    assert "Traceback" not in serve.output
    assert not [p for p in day_dir.iterdir() if p.name.startswith(".probe")]


def test_healthz_recovers_once_the_directory_is_writable_again(tmp_path):
    log_dir = tmp_path / "events"
    day_dir = log_dir / day_dir_name(datetime.now(UTC).date())
    day_dir.mkdir(parents=True)
    with serving(log_dir) as (_serve, url, base):
        with unwritable(day_dir):
            assert requests.get(base + "/healthz", timeout=5).status_code == 503
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
        assert push(url, 1) == 200


# ------------------------------------------------------------------ slow, stalled, gone


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes ``sock`` within ``within`` seconds (we send nothing more)."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_connections_trickling_headers_are_closed_after_the_header_timeout(tmp_path):
    with serving(tmp_path / "events", "--header-timeout", "1") as (serve, url, base):
        trickling = [_connect(base) for _ in range(40)]
        started = time.monotonic()
        for sock in trickling:
            sock.sendall(b"POST /rbm HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # one header line now and then, never the end of the headers
            time.sleep(0.3)
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
        assert push(url, 1) == 200  # the receiver still serves everyone else
        assert all(_closed_by_server(sock, within=5) for sock in trickling)
        assert time.monotonic() - started < 8
        for sock in trickling:
            sock.close()
    assert "Traceback" not in serve.output


def test_an_idle_connection_that_never_sends_a_request_is_closed(tmp_path):
    with serving(tmp_path / "events", "--header-timeout", "1") as (_serve, _url, base):
        sock = _connect(base)
        try:
            assert _closed_by_server(sock, within=5)
        finally:
            sock.close()


def test_a_body_sent_too_slowly_gets_408_and_is_counted(tmp_path):
    with serving(tmp_path / "events", "--body-timeout", "1") as (serve, _url, base):
        body, headers = signed(make_event(1))
        with _connect(base) as sock:
            head = (
                f"POST /rbm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"X-Goog-Signature: {headers['X-Goog-Signature']}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode())
            sock.sendall(body[:10])  # and then nothing for longer than the body timeout
            sock.settimeout(10)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        stats = requests.get(base + "/stats", timeout=5).json()
        assert stats["rejected"]["body_timeout"] == 1 and stats["accepted"] == 0
    assert "Traceback" not in serve.output


def test_a_client_hanging_up_mid_body_is_counted_and_prints_no_traceback(tmp_path):
    with serving(tmp_path / "events") as (serve, url, base):
        for _ in range(3):
            with _connect(base) as sock:
                sock.sendall(
                    b"POST /rbm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"message": {"da'
                )
                time.sleep(0.1)
        stats_url = base + "/stats"
        wait_for(
            lambda: (
                requests.get(stats_url, timeout=5).json()["rejected"]["client_disconnected"] == 3
            )
        )
        assert push(url, 1) == 200
    assert serve.process.returncode == 0
    assert "Traceback" not in serve.output and "ConnectionResetError" not in serve.output


# ------------------------------------------------------------------ secrets and file modes


def test_the_rejects_log_redacts_secrets_and_no_log_file_is_readable_by_others(tmp_path):
    secret_token = "real-client-token-7d2a9f"
    bearer = "ya29.a0AfH6SMBexampleexampleexample"
    old = os.umask(0)  # even with the most permissive umask
    try:
        with Receiver(tmp_path / "events", client_token=TOKEN, path="/rbm") as rx:
            bodies = [
                json.dumps({"clientToken": secret_token, "secret": 5}).encode(),
                json.dumps({"message": {"data": "!!"}, "token": secret_token}).encode(),
                f"<html>Authorization: Bearer {bearer}</html>".encode(),
            ]
            for body in bodies:
                assert requests.post(rx.url, data=body, timeout=5).status_code == 400
            assert push(rx.url, 1) == 200
            rejects = rx.log_dir / "_rejects" / "rejects.log"
            kept = rejects.read_text()
    finally:
        os.umask(old)
    assert kept.count('"bad_envelope"') == 3
    assert secret_token not in kept and bearer not in kept
    assert "<redacted>" in kept
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    for path in (tmp_path / "events").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path
    assert len(lines_of(tmp_path / "events")) == 1


def test_the_rejects_log_is_reopened_after_its_directory_is_removed(receiver):
    assert requests.post(receiver.url, data=b"not json", timeout=5).status_code == 400
    shutil.rmtree(receiver.log_dir / "_rejects")
    assert requests.post(receiver.url, data=b"still not json", timeout=5).status_code == 400
    rejects = receiver.log_dir / "_rejects" / "rejects.log"
    assert rejects.read_text().count('"bad_envelope"') == 1
