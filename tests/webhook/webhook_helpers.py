"""Helpers shared by the webhook tests: events, signed pushes, free ports, raw log lines."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from rbmtools.wire import SIGNATURE_HEADER, build_push, event_payload

TOKEN = "test-client-token-7c1f"
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def make_event(index: int, event_type: str = "DELIVERED", **overrides: Any) -> dict[str, Any]:
    """A valid decoded event with a distinct eventId per index."""
    payload = event_payload(
        agent_id="test-agent",
        phone=f"+1222333{index % 10000:04d}",
        event_type=event_type,
        event_id=f"evt-{index:06d}",
        send_time=T0 + timedelta(milliseconds=index),
        message_id=f"msg-{index:06d}",
    )
    payload.update(overrides)
    return payload


def signed(event: dict[str, Any], token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    """A push body and its headers, signed with ``token``."""
    envelope, signature = build_push(event, token, message_id="1", publish_time=T0)
    return json.dumps(envelope).encode(), {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature,
    }


def wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lines_of(log_dir) -> list[dict[str, Any]]:
    """Every line of every segment, parsed, in write order (no de-duplication)."""
    from rbmtools.webhook.layout import list_segments

    out = []
    for path in list_segments(log_dir):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


class ServeProcess:
    """``rbmtools webhook serve`` as a real subprocess; its output is collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys
        import threading

        full_env = dict(os.environ)
        full_env.pop("RBM_CLIENT_TOKEN", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rbmtools", "webhook", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr)),
        ]
        for thread in self._readers:
            thread.daemon = True
            thread.start()

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for text in stream:
            into.append(text)

    def wait_listening(self, timeout: float = 20.0) -> str:
        """The URL from the "listening on" line (fails if the process exits first)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.stdout:
                if "listening on " in text:
                    return text.split("listening on ", 1)[1].split()[0]
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {self.output}")
            time.sleep(0.02)
        raise AssertionError(f"serve did not start: {self.output}")

    def finish(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        for thread in self._readers:
            thread.join(5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)
