"""The emulator's HTTP face: the RBM API under ``/v1`` (files under ``/v1/files`` and the
upload form ``/upload/v1/files``), OAuth at ``/token`` and ``/oauth2/v4/token`` (where Google's
Node client posts), admin under ``/emulator/v1``, all on one aiohttp application.

API calls need a bearer token from the token endpoint (401 in Google's envelope otherwise) and
the ``agentId`` query parameter (403 without). Bodies are read as Google's front end reads them
(``bodies``: single-quoted JSON too). Bad input gets a Google-style 400 whose message names the
field; bodies over 1 MiB get 413; an unexpected error gets 500 and is logged, so no request
crashes the server, and a client that hangs up is no error at all. Every API answer carries
the platform time it was handled at (``wire.PLATFORM_TIME_HEADER``). The model is touched only
from the event loop. A ticker task applies due transitions as platform time passes and hands
the events to the dispatcher, whose pushes never hold up an API answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from rbmtools.emulator.admin import ADMIN_PREFIX, add_admin_routes
from rbmtools.emulator.auth import TOKEN_PATH, TOKEN_PATHS, TokenIssuer, TrustedKey, ensure_key_file
from rbmtools.emulator.bodies import read_api_body
from rbmtools.emulator.clock import VirtualClock
from rbmtools.emulator.dispatch import Dispatcher
from rbmtools.emulator.faults import ApiFault, ApiFaults
from rbmtools.emulator.google_proxy import GoogleProxy
from rbmtools.emulator.model import Answer, PlatformEvent, PlatformModel
from rbmtools.emulator.profiles import Profile, load_profile
from rbmtools.emulator.responses import error_answer, json_answer
from rbmtools.emulator.sms import SmsSink
from rbmtools.errors import ValidationError
from rbmtools.wire import (
    PLATFORM_TIME_HEADER,
    agent_address,
    error_body,
    event_payload,
    files_path,
    format_timestamp,
    phone_from_path,
)

__all__ = ["ADMIN_PREFIX", "MAX_BODY_BYTES", "EmulatorServer"]

log = logging.getLogger("rbmtools.emulator")

MAX_BODY_BYTES = 1024 * 1024
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # Google's limit for a media file
TICK_SECONDS = 0.02  # the longest the ticker sleeps (real seconds)
SHUTDOWN_SECONDS = 2.0  # how long stop() lets requests in flight finish
CHUNK = 500  # heap entries applied per model call within a slice
SLICE_SECONDS = 0.01  # real time one slice of due transitions may take before yielding...
BEHIND_SLICE_SECONDS = 0.05  # ...or this much while the model trails the clock
BEHIND_LAG = 0.05  # real seconds of lag from which the model gets the longer slices
FREEZE_EVERY = 20_000  # long-lived objects (messages + queued pushes) between gc.freeze()s

_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    502: "Bad gateway.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What a client that hangs up mid-request raises in its handler: not the server's error.
_HANG_UPS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class EmulatorServer:
    """Everything one emulator runs: clock, model, token issuer, dispatcher, faults, routes."""

    def __init__(
        self,
        *,
        profile: str | Path | Mapping[str, Any] | Profile = "default",
        speed: float = 600.0,
        seed: int | str = 7,
        agent_id: str | None = None,
        legacy_revoke: bool = False,
        start: datetime | str | None = None,
        max_in_flight: int = 64,
        webhook_timeout: float = 10.0,
        agent_use_case: str | None = None,
        google_proxy: int | None = None,
    ) -> None:
        self.clock = VirtualClock(speed, start)
        self._google_proxy_port = google_proxy
        #: The proxy for clients that hard-code Google's URLs (``google_proxy`` given), once
        #: started: its ``url`` and ``ca_file``.
        self.google_proxy: GoogleProxy | None = None
        self.model = PlatformModel(
            load_profile(profile),
            seed=seed,
            epoch=self.clock.start,
            only_agent=agent_id,
            legacy_revoke=legacy_revoke,
            use_case=agent_use_case,
        )
        self.dispatcher = Dispatcher(
            self.clock,
            render=self._render,
            seed=seed,
            max_in_flight=max_in_flight,
            timeout=webhook_timeout,
        )
        self.issuer = TokenIssuer()
        self.faults = ApiFaults()
        self.sms = SmsSink(self.clock.now)  # the SMS gateway stand-in for fallbacks
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.base_url: str | None = None
        self.token_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._ticker_task: asyncio.Task[None] | None = None
        self._tick_wake: asyncio.Event | None = None
        self._max_lag = 0.0
        self._frozen_at = 0
        self.gc_freezes = 0
        self._stopping = False

    # ---------------------------------------------------------------------------- lifecycle

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._errors])
        r = app.router
        for path in TOKEN_PATHS:
            r.add_post(path, self._token)
        r.add_post("/v1/phones/{phone}/agentMessages", self._api("send", self._send))
        r.add_delete(
            "/v1/phones/{phone}/agentMessages/{messageId}", self._api("revoke", self._revoke)
        )
        r.add_get("/v1/phones/{phone}/capabilities", self._api("capabilities", self._capabilities))
        r.add_post("/v1/phones/{phone}/agentEvents", self._api("agentEvents", self._agent_event))
        r.add_post("/v1/phones/{phone}/testers", self._api("testers", self._tester))
        r.add_post("/v1/users:batchGet", self._api("batchGet", self._batch_get))
        r.add_post(files_path(), self._api("files", self._create_file))
        r.add_post("/upload" + files_path(), self._api("files", self._upload_file))
        add_admin_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind, start the ticker and the dispatcher; returns the base URL."""
        self._runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = self._runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 (a check)
        if ":" in shown:
            shown = f"[{shown}]"
        self.base_url = f"http://{shown}:{bound}"
        self.token_url = self.base_url + TOKEN_PATH
        self.issuer.audiences.update(
            f"{base}{path}"
            for base in (self.base_url, f"http://127.0.0.1:{bound}", f"http://localhost:{bound}")
            for path in TOKEN_PATHS
        )
        if self._google_proxy_port is not None:
            self.google_proxy = GoogleProxy("127.0.0.1" if ":" not in shown else "::1", bound)
            await self.google_proxy.start(host, self._google_proxy_port)
        await self.dispatcher.start()
        self._tick_wake = asyncio.Event()
        self._ticker_task = asyncio.get_running_loop().create_task(self._ticker())
        return self.base_url

    async def stop(self) -> None:
        """Stop the ticker, the dispatcher and the HTTP server."""
        if self._ticker_task is not None:
            # A flag as well as cancel(): on Python 3.11, asyncio.wait_for can swallow a
            # cancellation that arrives just as its timeout fires, and the ticker would go on.
            self._stopping = True
            self.wake()
            self._ticker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker_task
        await self.dispatcher.close()
        if self.google_proxy is not None:
            await self.google_proxy.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.gc_freezes:
            gc.unfreeze()

    def use_key_file(self, path: str | Path) -> TrustedKey:
        """Write (or reuse) a service-account key at ``path`` pointing here, and trust it."""
        assert self.token_url is not None, "start() first: the key names the token URL"
        key = ensure_key_file(path, self.token_url)
        self.issuer.trust(key)
        return key

    # ------------------------------------------------------------------------------- ticker

    def wake(self) -> None:
        if self._tick_wake is not None:
            self._tick_wake.set()

    def _step(self, now: float, budget: float = SLICE_SECONDS) -> bool:
        """Apply due transitions for up to ``budget`` real seconds and publish their events.

        Returns True if more transitions are due by ``now``.
        """
        deadline = time.perf_counter() + budget
        model = self.model
        more = True
        while more:
            events = model.advance(now, CHUNK)
            if events:
                self.dispatcher.publish(events, now)
            next_due = model.next_due()
            more = next_due is not None and next_due <= now
            if time.perf_counter() >= deadline:
                break
        self.dispatcher.release_due(now)
        self._freeze_long_lived()
        return more

    def _freeze_long_lived(self) -> None:
        """Keep CPython's cycle collector off the emulator's long-lived state.

        Messages, devices and queued pushes live long and hold no reference cycles (they are
        freed by reference counting). With hundreds of thousands of them, each full pass of
        the cycle collector would stall the loop for a large part of a second, so every
        ``FREEZE_EVERY`` new objects they are moved to the permanent generation
        (``gc.freeze``); ``stop`` unfreezes.
        """
        size = self.model.size + self.dispatcher.backlog
        if size - self._frozen_at >= FREEZE_EVERY:
            gc.freeze()
            self._frozen_at = size
            self.gc_freezes += 1
        elif size < self._frozen_at:
            self._frozen_at = size

    async def catch_up(self) -> None:
        """Apply everything due by the clock's now, yielding to the loop between slices."""
        while self._step(self.clock.seconds(), BEHIND_SLICE_SECONDS):
            await asyncio.sleep(0)

    async def _ticker(self) -> None:
        assert self._tick_wake is not None
        while not self._stopping:
            try:
                now = self.clock.seconds()
                behind = self.lag_seconds() > BEHIND_LAG
                more = self._step(now, BEHIND_SLICE_SECONDS if behind else SLICE_SECONDS)
                self._max_lag = max(self._max_lag, self.lag_seconds())
                if more:
                    await asyncio.sleep(0)
                    continue
                due = [t for t in (self.model.next_due(), self.dispatcher.next_due()) if t]
                delay = self.clock.real_delay(min(due) - now) if due else None
                sleep = TICK_SECONDS if delay is None else min(TICK_SECONDS, max(delay, 0.001))
                self._tick_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tick_wake.wait(), sleep)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep ticking whatever one slice did
                log.exception("emulator ticker failed; continuing")
                await asyncio.sleep(TICK_SECONDS)

    def lag_seconds(self) -> float:
        """How far (in real seconds) the model's applied transitions trail the clock."""
        now = self.clock.seconds()
        behind = now - self.model.processed_until(now)
        speed = self.clock.speed
        return behind / speed if speed else 0.0

    def take_max_lag(self) -> float:
        """The largest lag seen by the ticker since the last call (and reset it)."""
        worst, self._max_lag = max(self._max_lag, self.lag_seconds()), 0.0
        return worst

    def _render(self, event: PlatformEvent) -> dict[str, Any]:
        return event_payload(
            agent_id=agent_address(event.agent_id),
            phone=event.phone,
            event_type=event.event_type,
            event_id=self.model.event_id(event),
            send_time=self.clock.to_datetime(event.at),
            message_id=event.message_id,
        )

    # ------------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Google's envelope for every error, including unknown paths and oversized bodies."""
        try:
            return await handler(request)
        except _HANG_UPS:
            log.debug("emulator: the client hung up during %s %s", request.method, request.path)
            return web.Response(status=499)  # nobody is left to read it
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 413:
                # The rest of the body is not worth reading: answer and close the connection.
                response = error_answer(
                    413, f"The request body is larger than {MAX_BODY_BYTES} bytes"
                )
                response.force_close()
                return response
            elif exc.status == 404:
                message = f"Method not found: {request.method} {request.path}"
            elif exc.status == 405:
                message = f"{request.method} is not allowed on {request.path}"
            else:
                message = exc.reason
            return error_answer(exc.status, message)
        except ValidationError as exc:
            return error_answer(400, f"Invalid argument: {exc}")
        except UnicodeError:  # a lone surrogate in a path or query parameter
            return error_answer(400, "Invalid argument: the request is not valid UTF-8")
        except Exception:
            log.exception("emulator: unexpected error on %s %s", request.method, request.path)
            return error_answer(500, "Internal error encountered.")

    def _api(
        self, method: str, action: Callable[[web.Request, str | None, float], Awaitable[Answer]]
    ) -> Handler:
        """Wrap an RBM method: auth, agentId, injected faults, bad input, bookkeeping."""

        async def handle(request: web.Request) -> web.StreamResponse:
            self.calls[method] += 1
            if not self.issuer.authorized(request.headers.get("Authorization")):
                self.statuses["401"] += 1
                return error_answer(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    {"WWW-Authenticate": 'Bearer realm="rbmtools-emulator"'},
                )
            fault = self.faults.take(method)
            if fault is not None and fault.when == "before":
                response = await self._fault_answer(fault)
                if response is not None:
                    return response
            try:
                answer = await action(request, request.query.get("agentId"), self.clock.seconds())
            except ValidationError as exc:
                answer = Answer(400, error_body(400, f"Invalid argument: {exc}"))
            if fault is not None and fault.when == "after":
                response = await self._fault_answer(fault)
                if response is not None:
                    return response
            self.statuses[str(answer.status)] += 1
            stamp = format_timestamp(self.clock.now())
            return json_answer(answer.status, answer.body, {PLATFORM_TIME_HEADER: stamp})

        return handle

    async def _fault_answer(self, fault: ApiFault) -> web.Response | None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        self.statuses[str(fault.status)] += 1
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        message = _FAULT_MESSAGES.get(fault.status, "Injected fault")
        return error_answer(fault.status, f"{message} (injected fault)", headers)

    # ---------------------------------------------------------------------------- endpoints

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.calls["token"] += 1
        fault = self.faults.take("token")
        if fault is not None:
            response = await self._fault_answer(fault)
            if response is not None:
                return response
        status, body = self.issuer.exchange(_form(await request.read()))
        return json_answer(status, body, {"Cache-Control": "no-store"})

    async def _send(self, request: web.Request, agent: str | None, now: float) -> Answer:
        phone = phone_from_path(request.match_info["phone"])
        body = read_api_body(await request.read(), "agentMessage")
        answer = self.model.send(agent, phone, request.query.get("messageId"), body, now)
        self.wake()
        return answer

    async def _revoke(self, request: web.Request, agent: str | None, now: float) -> Answer:
        # Google's documented curl sends Content-Type: application/json and no body: the body
        # of a DELETE is never read.
        phone = phone_from_path(request.match_info["phone"])
        return self.model.revoke(agent, phone, request.match_info["messageId"], now)

    async def _capabilities(self, request: web.Request, agent: str | None, now: float) -> Answer:
        return self.model.capabilities(agent, phone_from_path(request.match_info["phone"]), now)

    async def _agent_event(self, request: web.Request, agent: str | None, now: float) -> Answer:
        phone = phone_from_path(request.match_info["phone"])
        body = read_api_body(await request.read(), "agentEvent")
        return self.model.agent_event(agent, phone, request.query.get("eventId"), body, now)

    async def _tester(self, request: web.Request, agent: str | None, now: float) -> Answer:
        return self.model.invite_tester(agent, phone_from_path(request.match_info["phone"]), now)

    async def _batch_get(self, request: web.Request, agent: str | None, now: float) -> Answer:
        body = read_api_body(await request.read(), "body")
        if not isinstance(body, dict):
            raise ValidationError("body", body, "must be a JSON object with 'users'")
        unknown = sorted(set(body) - {"users", "agentId"})
        if unknown:
            raise ValidationError(unknown[0], body[unknown[0]], "is not a known field")
        agent = body.get("agentId") or agent
        return self.model.batch_get(
            agent if isinstance(agent, str) else None, body.get("users"), now
        )

    async def _create_file(self, request: web.Request, agent: str | None, now: float) -> Answer:
        body = read_api_body(await request.read(), "body")
        return self.model.create_file(agent, body, now)

    async def _upload_file(self, request: web.Request, agent: str | None, now: float) -> Answer:
        """The upload form: the file's bytes (``uploadType=media``) or a multipart body with
        the metadata and the bytes. They are counted and dropped: nobody looks at them."""
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD_BYTES, actual_size=size)
        return self.model.create_file(agent, {}, now, upload=size)

    # ------------------------------------------------------------------------------ helpers

    async def register_webhook(self, url: str, client_token: str) -> None:
        await self.dispatcher.register(url, client_token)

    def trust_keys(self, keys: Iterable[TrustedKey]) -> None:
        for key in keys:
            self.issuer.trust(key)

    def stats(self) -> dict[str, Any]:
        model = self.model.stats()
        return {
            "now": format_timestamp(self.clock.now()),
            "speed": self.clock.speed,
            "lagSeconds": round(self.lag_seconds(), 6),
            "maxLagSeconds": round(self.take_max_lag(), 6),
            **model,
            "api": {"calls": dict(self.calls), "statuses": dict(self.statuses)},
            "faultsUsed": self.faults.used,
            "gcFreezes": self.gc_freezes,
            "tokens": {"issued": self.issuer.issued, "refused": self.issuer.refused},
            "webhook": self.dispatcher.stats(),
            "sms": self.sms.stats(),
        }


def _form(raw: bytes) -> dict[str, str]:
    """A token request's url-encoded form, strictly: a body that is not one (binary, bad
    percent-escapes) reads as no fields, which the issuer answers with 400 invalid_request."""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, max_num_fields=20)
        return dict(pairs)
    except (UnicodeDecodeError, ValueError):
        return {}
