"""The webhook's HTTP face (aiohttp): handshake, signature check, durable append, then 200.

The platform POSTs each event as a Pub/Sub push body signed with ``X-Goog-Signature`` and
retries anything but 200 for days, so the receiver answers 200 only after the event's line is
fsynced (``EventLog`` group-commits concurrent requests) and answers fast otherwise. Statuses:
200 stored (or the handshake's bare secret), 400 malformed envelope or base64, 401 signature
missing/malformed/mismatch, 403 handshake with a wrong clientToken, 408 body too slow,
413 body over ``max_body``, 503 the log cannot take it now (the platform retries).

An authentic push (its signature verified) is never refused for its content: Google would
redeliver it for 7 days. One that is no event rbmtools models (an agent launch event), whose
time is outside the timestamp grammar, that holds ``NaN`` or is no JSON at all, is answered 200
and kept, fsynced, in the other log (``<log_dir>/_other/``, ``rbmtools.wire.OtherRecord``) and
counted by reason, so the event log holds only lines every reader takes as events. Unverified
pushes (``verify=False``) of that kind are refused with 400 as before.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from rbmtools.errors import RbmError, SignatureError, ValidationError
from rbmtools.webhook.dedup import RecentKeys
from rbmtools.webhook.layout import OTHER_DIR, OTHER_STEM, REJECTS_DIR
from rbmtools.webhook.rejects import DEFAULT_REJECTS_BYTES, RejectsLog
from rbmtools.webhook.store import DEFAULT_SEGMENT_BYTES, EventLog
from rbmtools.wire import (
    OTHER_REASONS,
    SIGNATURE_HEADER,
    OtherRecord,
    PushMessage,
    error_body,
    format_timestamp,
    parse_event,
    parse_handshake,
    parse_push,
    utc_now,
    verify_signature,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY",
    "REJECT_REASONS",
    "ReceiverServer",
    "Timeouts",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BODY = 1024 * 1024
#: Every reason a request can be rejected for, as counted under ``stats()["rejected"]``.
REJECT_REASONS = (
    "signature_missing",
    "signature_malformed",
    "signature_mismatch",
    "body_too_large",
    "bad_envelope",
    "bad_json",
    "bad_event",
    "bad_time",
    "handshake_token",
    "body_timeout",
    "client_disconnected",
    "unavailable",
)
#: The event fields ``parse_event`` reads as times (an unreadable one is ``unreadable_time``).
_TIME_FIELDS = ("sendTime",)
_RESERVED_PATHS = ("/healthz", "/stats")
_RETRY_AFTER_SECONDS = "5"
#: After in-flight requests have drained, how long aiohttp may wait for the rest to close.
_CLOSE_IDLE_TIMEOUT = 0.5

logger = logging.getLogger("rbmtools.webhook")


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may take, in seconds.

    ``header``: to send a request's line and headers, counted from the connection (or the end
    of its previous answer), which is also how long an idle kept-alive connection stays open
    (aiohttp has one timer for both; 60 s is nginx's header timeout, and equals its default
    upstream keep-alive); ``body``: to send the body once the headers are in (slower gets
    408). Slow or stalled clients cannot hold connections open.
    """

    header: float = 60.0
    body: float = 30.0

    def __post_init__(self) -> None:
        for name in ("header", "body"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValidationError(f"{name}_timeout", value, "must be a positive number")


@dataclass(frozen=True)
class _Arrival:
    """A push whose envelope and signature have been checked."""

    request: web.Request
    body: bytes
    push: PushMessage
    verified: bool


def _push_facts(push: PushMessage) -> dict[str, Any]:
    """What the envelope said about a push, for the other log (as text UTF-8 can carry)."""
    facts: dict[str, Any] = {}
    if push.message_id is not None:
        facts["messageId"] = _writable(push.message_id)
    if push.publish_time is not None:
        facts["publishTime"] = format_timestamp(push.publish_time)
    if push.attributes:
        facts["attributes"] = {_writable(k): _writable(v) for k, v in push.attributes.items()}
    if push.subscription is not None:
        facts["subscription"] = _writable(push.subscription)
    return facts


def _writable(text: str) -> str:
    """``text`` with any lone surrogate written as its escape (the envelope is not signed)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unwritable(exc: BaseException) -> str:
    """Why a decoded event cannot be one strict JSON line, in words."""
    if isinstance(exc, RecursionError):
        return "is nested too deeply to be written as one JSON line"
    if isinstance(exc, ValidationError):  # from require_unicode
        return "holds text that is not valid Unicode (a lone surrogate)"
    return "holds NaN or an infinite number, which strict JSON cannot carry"


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValidationError("path", path, "must start with '/'")
    if path in _RESERVED_PATHS:
        raise ValidationError("path", path, f"is reserved ({', '.join(_RESERVED_PATHS)})")
    return path


class ReceiverServer:
    """The receiver on the current asyncio loop: ``await start()``, ``await stop()``.

    ``client_token`` verifies signatures and the handshake (it never appears in a repr, a log
    line or an answer). ``verify=False`` stores unverified pushes with ``"verified": false``
    (for replaying trusted captures); a push that does carry a valid signature is still
    recorded as verified. ``port=0`` picks a free port; ``url`` is known after ``start``.
    ``max_batch`` caps the events per fsync (``None``, the default, lets a batch take every
    request that is waiting; 1 means one fsync per event, for comparison). ``timeouts``
    bounds slow or stalled requests (see ``Timeouts``).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        client_token: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        path: str = "/",
        verify: bool = True,
        max_body: int = DEFAULT_MAX_BODY,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        rejects_bytes: int | None = DEFAULT_REJECTS_BYTES,
        drain_timeout: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
        dedup_capacity: int | None = 1_000_000,
        max_batch: int | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        if client_token is not None and (not isinstance(client_token, str) or not client_token):
            raise ValidationError("clientToken", "<hidden>", "must be a non-empty string")
        if verify and client_token is None:
            raise ValidationError(
                "clientToken",
                None,
                "is required to verify X-Goog-Signature (pass verify=False only to replay "
                "trusted captures)",
            )
        if not isinstance(max_body, int) or max_body < 1:
            raise ValidationError("max_body", max_body, "must be a positive number of bytes")
        self.log_dir = Path(log_dir)
        self.host = host
        self.port = port
        self.path = _check_path(path)
        self.verify = verify
        self.max_body = max_body
        self.drain_timeout = drain_timeout
        self.timeouts = timeouts
        self._token = client_token
        self.log = EventLog(
            self.log_dir, max_segment_bytes=max_segment_bytes, clock=clock, max_batch=max_batch
        )
        self.other_log = EventLog(
            self.log_dir / OTHER_DIR,
            max_segment_bytes=max_segment_bytes,
            clock=clock,
            stem=OTHER_STEM,
        )
        self.rejects = (
            None if rejects_bytes is None else RejectsLog(self.log_dir / REJECTS_DIR, rejects_bytes)
        )
        self._recent = RecentKeys(dedup_capacity)
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self.started_at: datetime | None = None
        self.accepted = 0
        self.duplicates = 0
        self.handshakes = 0
        self.bytes_received = 0
        self.in_flight = 0
        self.rejected: Counter[str] = Counter()
        self.other: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"ReceiverServer(url={self.url!r}, log_dir={str(self.log_dir)!r}, verify={self.verify})"
        )

    @property
    def url(self) -> str:
        """The full webhook URL (including the path) to register with the platform."""
        return f"http://{self.host}:{self.port}{self.path}"

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        # aiohttp enforces the limit itself too when a body arrives without Content-Length.
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post(self.path, self._handle_post)
        app.router.add_get("/healthz", self._handle_health)
        app.router.add_get("/stats", self._handle_stats)
        return app

    async def start(self) -> None:
        """Open the log (taking its writer lock), then bind and listen."""
        self._stopping = False
        self.log.open()
        try:
            self.other_log.open()
            runner = web.AppRunner(
                self.make_app(),
                access_log=None,
                shutdown_timeout=_CLOSE_IDLE_TIMEOUT,
                # aiohttp closes a connection that has not sent a whole request (line and
                # headers) this long after it opened or after its previous answer.
                keepalive_timeout=self.timeouts.header,
            )
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port, backlog=1024)
            await site.start()
        except BaseException:
            self.log.close()
            self.other_log.close()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.started_at = utc_now()
        if not self.verify:
            logger.warning(
                "signature verification is OFF: X-Goog-Signature is NOT checked, so anyone "
                "who can reach %s can write events (stored as verified=false). Use this only "
                "to replay trusted captures.",
                self.url,
            )

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (their lines fsynced), close the log."""
        self._stopping = True  # from now on a request is answered 503 at once
        runner = self._runner
        if runner is not None:
            for site in list(runner.sites):
                await site.stop()  # no new connections
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.drain_timeout
            while self.in_flight and loop.time() < deadline:
                await asyncio.sleep(0.005)  # handlers waiting for their fsync finish
            await runner.cleanup()  # then close the remaining (idle) connections
            self._runner = None
        self.log.close()
        self.other_log.close()
        if self.rejects is not None:
            self.rejects.close()

    # ------------------------------------------------------------------ handlers

    def _reject(
        self,
        reason: str,
        status: int,
        message: str,
        request: web.Request,
        body: bytes | None = None,
    ) -> web.Response:
        self.rejected[reason] += 1
        if self.rejects is not None:
            self.rejects.record(reason, status, body=body, remote=request.remote)
        response = web.json_response(error_body(status, message), status=status)
        if status == 503:
            response.headers["Retry-After"] = _RETRY_AFTER_SECONDS
        return response

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._receive(request)
        finally:
            self.in_flight -= 1

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            return self._reject("unavailable", 503, "the receiver is shutting down", request)
        body = await self._read_body(request)
        if isinstance(body, web.StreamResponse):
            return body
        self.bytes_received += len(body)
        try:
            obj = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._reject("bad_envelope", 400, "the body is not JSON", request, body)
        handshake = parse_handshake(obj) if isinstance(obj, dict) else None
        if handshake is not None:
            return self._handshake(handshake, request)
        try:
            push = parse_push(obj)
        except ValidationError as exc:
            return self._reject("bad_envelope", 400, str(exc), request, body)
        signature = request.headers.get(SIGNATURE_HEADER)
        verified = False
        if self.verify or (self._token is not None and signature):
            try:
                verify_signature(push.data, signature, self._token)  # type: ignore[arg-type]
                verified = True
            except SignatureError as exc:
                if self.verify:
                    return self._reject(f"signature_{exc.reason}", 401, str(exc), request, body)
        return await self._store(_Arrival(request, body, push, verified))

    async def _read_body(self, request: web.Request) -> bytes | web.StreamResponse:
        """The whole body, or the answer when it is too large, too slow or never came."""
        declared = request.content_length
        too_large = f"body over {self.max_body} bytes"
        if declared is not None and declared > self.max_body:
            return self._closing(self._reject("body_too_large", 413, too_large, request))
        try:
            async with asyncio.timeout(self.timeouts.body):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._closing(self._reject("body_too_large", 413, too_large, request))
        except TimeoutError:
            message = f"the body did not arrive within {self.timeouts.body:g} s"
            return self._closing(self._reject("body_timeout", 408, message, request))
        except (ConnectionError, web.RequestPayloadError):
            # The client hung up mid-body: nothing to answer, nothing stored; counted.
            self.rejected["client_disconnected"] += 1
            return self._closing(web.Response(status=400))

    @staticmethod
    def _closing(response: web.StreamResponse) -> web.StreamResponse:
        response.force_close()  # do not read what is left of this connection
        return response

    async def _store(self, arrival: _Arrival) -> web.StreamResponse:
        """Log the push's event, or keep it in the other log (or refuse it, if unverified)."""
        try:
            payload = arrival.push.event()
        except (ValidationError, RecursionError) as exc:
            problem = str(exc) if isinstance(exc, ValidationError) else "is nested too deeply"
            return await self._not_an_event(arrival, "not_json", "bad_json", problem)
        try:
            event = parse_event(payload)
        except ValidationError as exc:
            if exc.field in _TIME_FIELDS:
                reason, rejected = "unreadable_time", "bad_time"
            else:
                reason, rejected = "unmodelled", "bad_event"
            return await self._not_an_event(arrival, reason, rejected, str(exc), payload)
        try:
            await self.log.append(payload, arrival.verified)
        except (ValueError, RecursionError) as exc:  # not writable as a strict JSON line
            problem = _unwritable(exc)
            return await self._not_an_event(arrival, "not_strict_json", "bad_json", problem)
        except (OSError, RbmError) as exc:
            logger.error("could not store an event: %s", exc)
            message = "the event log cannot store it now"
            return self._reject("unavailable", 503, message, arrival.request)
        self.accepted += 1
        if self._recent.seen(event.dedup_key):
            self.duplicates += 1
        return web.Response(status=200)

    async def _not_an_event(
        self, arrival: _Arrival, reason: str, rejected: str, problem: str, payload: Any = None
    ) -> web.StreamResponse:
        """An authentic push: 200 once it is durable in the other log. Else refuse it."""
        if not arrival.verified:
            message = f"not an RBM event rbmtools logs: {problem}"
            return self._reject(rejected, 400, message, arrival.request, arrival.body)
        push = arrival.push
        facts = _push_facts(push)

        def render(stamp: datetime) -> str:
            return OtherRecord(stamp, True, reason, problem, push.data, payload, facts).to_line()

        try:
            await self.other_log.append_line(render)
        except (OSError, RbmError) as exc:
            logger.error("could not store a push in the other log: %s", exc)
            message = "the other log cannot store it now"
            return self._reject("unavailable", 503, message, arrival.request)
        self.other[reason] += 1
        return web.Response(status=200)

    def _handshake(self, handshake: tuple[str, str], request: web.Request) -> web.Response:
        token, secret = handshake
        expected = self._token
        if expected is None or not hmac.compare_digest(
            token.encode("utf-8", "surrogatepass"), expected.encode("utf-8")
        ):
            # The body holds a clientToken: never keep it, even in the rejects log.
            return self._reject("handshake_token", 403, "clientToken does not match", request)
        try:
            answer = secret.encode("utf-8")
        except UnicodeEncodeError:
            message = "the handshake's secret is not valid Unicode"
            return self._reject("bad_envelope", 400, message, request)
        self.handshakes += 1
        return web.Response(body=answer, content_type="text/plain", charset="utf-8")

    async def _handle_health(self, request: web.Request) -> web.Response:
        """200 ``ok`` only when an event could be stored right now (a real write probe)."""
        body: dict[str, Any] = {"verify": self.verify}
        if self._stopping or self.log.closed:
            body["status"] = "stopping"
        else:
            problem = await asyncio.to_thread(self.log.storable_problem)
            body["status"] = "ok" if problem is None else "cannot_store"
            if problem is not None:
                body["problem"] = problem
        return web.json_response(body, status=200 if body["status"] == "ok" else 503)

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Accepted, kept in the other log and rejected by reason, duplicates, bytes, fsyncs...

        Call it on the server's loop (``Receiver.stats()`` does that for you).
        """
        log = self.log.stats()
        return {
            "accepted": self.accepted,
            "other": {reason: self.other.get(reason, 0) for reason in OTHER_REASONS},
            "other_total": sum(self.other.values()),
            "rejected": {reason: self.rejected.get(reason, 0) for reason in REJECT_REASONS},
            "rejected_total": sum(self.rejected.values()),
            "duplicates": self.duplicates,
            "handshakes": self.handshakes,
            "bytes_received": self.bytes_received,
            "bytes_logged": log["bytes"],
            "fsync_batches": log["fsync_batches"],
            "events_per_batch_mean": round(log["events_per_batch_mean"], 3),
            "events_per_batch_max": log["events_per_batch_max"],
            "events_per_batch_histogram": log["events_per_batch_histogram"],
            "fsync_seconds_total": log["fsync_seconds_total"],
            "segments_opened": log["segments_opened"],
            "write_errors": log["write_errors"] + self.other_log.stats()["write_errors"],
            "segments_vanished": log["segments_vanished"],
            "segment": log["segment"],
            "in_flight": self.in_flight,
            "verify": self.verify,
            "started_at": None if self.started_at is None else format_timestamp(self.started_at),
            "log_dir": str(self.log_dir),
            "rejects_logged": 0 if self.rejects is None else self.rejects.written,
        }
