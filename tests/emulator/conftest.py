"""Shared parts for the emulator tests: a real webhook endpoint that verifies every signature,
emulators over loopback, and google-auth sessions from the key the emulator issued."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from rbmtools import wire
from rbmtools.background import BackgroundLoop
from rbmtools.emulator import Emulator
from rbmtools.errors import SignatureError

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PHONE = "+12223334444"
SINK_TOKEN = "sink-client-token-123"


class WebhookSink:
    """A real webhook on 127.0.0.1: answers the handshake, verifies every push's signature.

    ``mode`` steers what pushes get: ``"ok"`` (200), an int status, or ``"hang"`` (no answer
    for ``hang_seconds``). ``handshake`` is ``"ok"``, ``"wrong"`` (200 with another body) or
    an int status.
    """

    def __init__(self, client_token: str = SINK_TOKEN) -> None:
        self.client_token = client_token
        self.mode: Any = "ok"
        self.handshake: Any = "ok"
        self.hang_seconds = 3.0
        self.pushes: list[wire.PushMessage] = []
        self.events: list[dict[str, Any]] = []
        self.envelopes: list[dict[str, Any]] = []  # the push bodies exactly as received
        self.rejected: list[str] = []
        self.handshakes = 0
        self._lock = threading.Lock()
        self._background = BackgroundLoop("webhook-sink")
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        handshake = wire.parse_handshake(body)
        if handshake is not None:
            self.handshakes += 1
            if handshake[0] != self.client_token:
                return web.Response(status=403, text="wrong clientToken")
            if self.handshake == "ok":
                return web.Response(text=handshake[1])
            if self.handshake == "wrong":
                return web.Response(text="not-the-secret")
            return web.Response(status=int(self.handshake))
        push = wire.parse_push(body)
        try:
            wire.verify_signature(
                push.data, request.headers.get(wire.SIGNATURE_HEADER), self.client_token
            )
        except SignatureError as exc:
            with self._lock:
                self.rejected.append(exc.reason)
            return web.Response(status=401, text=exc.reason)
        if self.mode == "hang":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=503)
        if self.mode != "ok":
            return web.Response(status=int(self.mode))
        with self._lock:
            self.pushes.append(push)
            self.events.append(push.event())
            self.envelopes.append(json.loads(body))
        return web.Response(text="ok")

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/rbm", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/rbm"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> WebhookSink:
        self.url = self._background.start(self._start, self._stop)
        return self

    def stop(self) -> None:
        self._background.stop(timeout=10)

    def of_type(self, event_type: str, message_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e.get("eventType") == event_type
                and (message_id is None or e.get("messageId") == message_id)
            ]

    def types_for(self, message_id: str) -> list[str]:
        with self._lock:
            return sorted(e["eventType"] for e in self.events if e.get("messageId") == message_id)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    hook = WebhookSink().start()
    yield hook
    hook.stop()


def session_for(emu: Emulator) -> AuthorizedSession:
    """google-auth's real service-account flow against the emulator's token endpoint."""
    credentials = service_account.Credentials.from_service_account_file(
        str(emu.key_file), scopes=[wire.SCOPE]
    )
    return AuthorizedSession(credentials)


class Api:
    """Thin helpers over an AuthorizedSession: the RBM calls the tests make."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.session = session_for(emu)
        self.base = emu.base_url
        self.agent = emu.agent_id

    def send(self, message_id: str, phone: str = PHONE, **body: Any):
        message = body.pop("message", None) or wire.agent_message("Your code is 123456", **body)
        return self.session.post(
            self.base + wire.messages_path(phone),
            params={"messageId": message_id, "agentId": self.agent},
            json=message,
            timeout=10,
        )

    def revoke(self, message_id: str, phone: str = PHONE):
        return self.session.delete(
            self.base + wire.revoke_path(phone, message_id),
            params={"agentId": self.agent},
            timeout=10,
        )

    def capabilities(self, phone: str = PHONE):
        return self.session.get(
            self.base + wire.capabilities_path(phone),
            params={"agentId": self.agent, "requestId": "req-1"},
            timeout=10,
        )


@pytest.fixture
def stepping(sink: WebhookSink) -> Iterator[Emulator]:
    """A stepping-mode emulator (time moves only with admin.advance) with the sink registered."""
    with Emulator(
        profile="always-online",
        speed=0,
        seed=7,
        start=START,
        webhook_url=sink.url,
        client_token=sink.client_token,
    ) as emu:
        yield emu


@pytest.fixture
def api(stepping: Emulator) -> Api:
    return Api(stepping)
