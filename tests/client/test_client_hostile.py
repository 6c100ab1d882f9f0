"""The client against a hostile or broken world (issue 15).

An error page that echoes the bearer token, a 200 whose body is odd, text that is not valid
Unicode: no token is shown or written, every accepted send is in the outbox, bad input is a
validation error (exit 2) before any I/O, and nothing prints a traceback.

The misbehaving party is a small real HTTP server on loopback standing in for a broken proxy or
front end (it answers the RBM paths the way the test says); tokens still come from the
emulator's token endpoint through google-auth's real flow.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rbmtools import ApiError, ValidationError
from rbmtools.client import RbmClient, RetryPolicy
from rbmtools.wire import api_error, parse_outbox_record

PHONE = "+12223334444"
Answer = Callable[[dict[str, str]], tuple[int, str, str]]  # headers -> (status, type, body)


class BrokenFrontEnd:
    """A loopback HTTP server answering every request with ``answer(headers)``."""

    def __init__(self, answer: Answer) -> None:
        self.tokens: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = {name.title(): value for name, value in self.headers.items()}
                auth = headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    owner.tokens.append(auth.removeprefix("Bearer "))
                status, kind, body = answer(headers)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_DELETE = do_GET = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BrokenFrontEnd:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def echo_page(headers: dict[str, str]) -> tuple[int, str, str]:
    """An HTML 500 page that repeats the request headers, Authorization included."""
    shown = "".join(f"<li>{k}: {v}</li>" for k, v in headers.items())
    return 500, "text/html", f"<html><h1>Internal error</h1><ul>{shown}</ul></html>"


def echo_json(headers: dict[str, str]) -> tuple[int, str, str]:
    """A JSON error envelope whose message and details quote the token bare."""
    token = headers.get("Authorization", "").removeprefix("Bearer ")
    body = {
        "error": {
            "code": 403,
            "status": "PERMISSION_DENIED",
            "message": f"token {token} is not allowed",
            "details": [{"seen": {"authorization": f"Bearer {token}", "raw": token}}],
        }
    }
    return 403, "application/json", json.dumps(body)


@pytest.fixture
def broken(request) -> Iterator[BrokenFrontEnd]:
    with BrokenFrontEnd(request.param) as server:
        yield server


def run_send(emu, url: str, *args: str | bytes, text: bool = True):
    """``rbmtools send ARGS`` as a real process, with the emulator's key and ``url`` as API."""
    env = dict(os.environ, RBM_SERVICE_ACCOUNT=str(emu.key_file), RBM_AGENT_ID=emu.agent_id)
    env["RBM_BASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "rbmtools", "send", *args],
        capture_output=True, text=text, env=env, timeout=120, check=False,
    )  # fmt: skip


def client_for(emu, url: str, outbox) -> RbmClient:
    """A client with the emulator's key (real token flow) whose API calls go to ``url``."""
    return RbmClient.from_service_account_file(
        emu.key_file, emu.agent_id, base_url=url, outbox=outbox,
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip


@pytest.mark.parametrize("broken", [echo_page, echo_json], indirect=True)
def test_an_error_body_echoing_the_bearer_token_never_shows_it(emu, broken, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    with client_for(emu, broken.url, outbox) as client:
        with pytest.raises(ApiError) as info:
            client.send(PHONE, "hello")
        with pytest.raises(ApiError) as revoke_info:
            client.revoke(PHONE, "msg-1")
    [token] = set(broken.tokens)
    assert token.startswith("ya29.")
    shown = [str(info.value), repr(info.value), str(revoke_info.value), outbox.read_text()]
    shown.append(json.dumps(info.value.details))
    for text in shown:
        assert token not in text
        assert token.split(".", 1)[1][:12] not in text  # not even a part of it
    assert "<redacted>" in str(info.value)
    kinds = [parse_outbox_record(line).kind for line in outbox.read_text().splitlines()]
    assert kinds == ["send", "revoke"]
    assert stat.S_IMODE(outbox.stat().st_mode) & 0o007 == 0  # not readable by others


@pytest.mark.parametrize("broken", [echo_page], indirect=True)
def test_the_command_line_prints_no_token_on_stderr(emu, broken, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    result = run_send(emu, broken.url, PHONE, "hello", "--outbox", str(outbox))
    assert result.returncode == 3
    assert "500 INTERNAL" in result.stderr and "Traceback" not in result.stderr
    assert broken.tokens
    for token in set(broken.tokens):
        assert token not in result.stderr + result.stdout + outbox.read_text()


def test_api_error_redacts_the_exact_secrets_it_is_given():
    body = b'{"error": {"message": "you sent opaque-token-123456789, not allowed"}}'
    error = api_error(403, body, secrets=["opaque-token-123456789"])
    assert "opaque-token-123456789" not in str(error) and "<redacted>" in error.message


def odd_send_answer(answer: dict) -> Answer:
    return lambda headers: (200, "application/json", json.dumps(answer))


@pytest.mark.parametrize(
    "broken",
    [
        odd_send_answer({"sendTime": "not-a-time"}),
        odd_send_answer({"sendTime": "2026-11-25T10:00:00Z", "expireTime": 17}),
        odd_send_answer({"sendTime": "9999-12-31T23:59:59-01:00"}),
        lambda headers: (200, "application/json", "[" * 100_000),
    ],
    indirect=True,
)
def test_a_200_with_an_odd_body_still_writes_the_outbox_record(emu, broken, tmp_path, caplog):
    outbox = tmp_path / "outbox.jsonl"
    with client_for(emu, broken.url, outbox) as client:
        result = client.send(PHONE, "hello", ttl="10m", message_id="odd-1", use_case="otp")
    assert (result.status, result.reachable, result.message_id) == (200, True, "odd-1")
    [line] = outbox.read_text().splitlines()
    record = parse_outbox_record(line)
    assert (record.kind, record.status, record.message_id, record.use_case) == (
        "send", 200, "odd-1", "otp"
    )  # fmt: skip
    assert record.send_time == result.send_time and record.ttl == "600s"
    assert "answer is odd" in record.error
    assert "answer is odd" in caplog.text


@pytest.mark.parametrize("broken", [odd_send_answer({"sendTime": "not-a-time"})], indirect=True)
def test_the_command_line_reports_an_odd_200_as_sent(emu, broken, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    result = run_send(emu, broken.url, PHONE, "hi", "--outbox", str(outbox))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent ") and "Traceback" not in result.stderr
    assert parse_outbox_record(outbox.read_text()).status == 200


# ------------------------------------------------------------------ text that is not Unicode


@pytest.mark.parametrize(
    "arguments",
    [
        {"text": "\ud800"},
        {"text": "fine", "use_case": "\udcff"},
        {"text": "fine", "experiment": "exp-\ud800"},
        {"message": {"text": "fine", "suggestions": [{"reply": {"text": "ok\ud800"}}]}},
    ],
)
def test_lone_surrogates_are_validation_errors_before_any_io(emu, client, arguments):
    with pytest.raises(ValidationError, match="not valid Unicode"):
        client.send(PHONE, **arguments)
    assert emu.admin.messages() == []  # nothing reached the platform
    assert not client.outbox.path.read_text()  # and nothing half-written


def test_a_revoke_label_that_is_not_unicode_is_refused_before_any_io(emu, client):
    with pytest.raises(ValidationError, match="not valid Unicode"):
        client.revoke(PHONE, "msg-1", arm="arm-\udcff")
    assert not client.outbox.path.read_text()


def test_send_with_bytes_that_are_not_utf8_is_exit_2_without_a_traceback(emu, tmp_path):
    result = run_send(emu, emu.base_url, PHONE, b"\xff\xfe", text=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    assert "invalid input: contentMessage.text" in stderr and "Traceback" not in stderr
