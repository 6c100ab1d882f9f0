"""Webhook dispatch: the platform's signed Pub/Sub pushes to the agent's webhook, with retries.

What a webhook sees (this is the contract receivers are tested against):

- **Registration.** ``register(url, client_token)`` POSTs ``{"clientToken": ..., "secret": ...}``
  (``rbmtools.wire.handshake_body``) as JSON; the webhook must answer 200 with the bare secret
  as the body (surrounding whitespace is ignored). Anything else raises ``RegistrationError``
  saying what came back (never the clientToken), and no webhook is registered.
- **Pushes.** Each event is one POST of a Pub/Sub push envelope built by
  ``rbmtools.wire.build_push``: ``message.data`` is the base64 of the event JSON (built with
  ``rbmtools.wire.event_payload``), ``message.messageId`` a numeric string that stays the same
  across retries and duplicates of that event, ``message.publishTime`` the platform time of the
  first publish, ``message.attributes`` ``{"product": "RBM"}``. Headers: ``Content-Type:
  application/json`` and ``X-Goog-Signature`` = base64(HMAC-SHA512(clientToken, decoded
  data)). Every timestamp is platform time.
- **Success is HTTP 200 only.** Any other status, a refused connection or no answer within
  ``timeout`` real seconds is a failure: the push is retried after ``min(600, 10·2^(n-1))``
  platform seconds (±10 % deterministic jitter) and dropped 7 platform days after its first
  publish. At-least-once: a push whose 200 was lost is sent again; order is not guaranteed.
- **Flow control.** At most ``max_in_flight`` pushes are outstanding. Each failure halves that
  window (down to 1) and pauses all pushes for 50 real milliseconds, so a dead webhook costs
  at most about 20 attempts a second whatever the backlog; each success widens the window by
  one. A slow or failing webhook therefore only makes events wait: it never blocks the caller
  (the API).
- **No webhook yet.** Events published before a webhook is registered wait in the backlog and
  go out once one is registered (still dropped after 7 platform days).
- **Faults** (for testing receivers): ``duplicate`` (each event is pushed twice, for the next
  ``count`` events or with a ``probability``), ``delay`` (events wait ``seconds`` more platform
  seconds before their first push), ``outage`` (for ``seconds`` platform seconds every push
  attempt fails without reaching the webhook, and is retried as above).

Time is read from a ``VirtualClock``; the owner calls ``release_due(now)`` on every tick so
that retries and delayed pushes become due as platform time passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from rbmtools.emulator.clock import VirtualClock
from rbmtools.emulator.devices import stable_uniform
from rbmtools.errors import RbmError, ValidationError
from rbmtools.wire import SIGNATURE_HEADER, build_push, handshake_body

__all__ = [
    "MAX_BACKOFF",
    "MIN_BACKOFF",
    "RETRY_FOR",
    "Dispatcher",
    "RegistrationError",
    "WebhookFault",
]

MIN_BACKOFF = 10.0  # platform seconds before the first retry
MAX_BACKOFF = 600.0  # the longest gap between retries
RETRY_FOR = 7 * 86_400.0  # how long an event is retried before it is dropped
_FAILURE_PAUSE = 0.05  # real seconds every push waits after a failed attempt
_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
_FAULT_KINDS = ("duplicate", "delay", "outage")


class RegistrationError(RbmError):
    """The webhook did not complete the registration handshake."""


@dataclass
class WebhookFault:
    """One injected webhook fault (see the module doc); ``count`` None means until cleared."""

    kind: str
    count: int | None = None
    probability: float | None = None
    seconds: float = 0.0
    until: float | None = None  # platform second an outage ends

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.count is not None:
            out["count"] = self.count
        if self.probability is not None:
            out["probability"] = self.probability
        if self.kind in ("delay", "outage"):
            out["seconds"] = self.seconds
        return out


class _Push:
    __slots__ = ("attempts", "cache", "event", "publish_at", "pubsub_id")

    def __init__(self, event: Any, pubsub_id: str, publish_at: float) -> None:
        self.event = event
        self.pubsub_id = pubsub_id
        self.publish_at = publish_at
        self.attempts = 0
        self.cache: tuple[str, bytes, str] | None = None  # (token, body, signature)


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValidationError("url", url, "must be an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", url, "must be an http(s) URL with a host")
    return url


class Dispatcher:
    """Pushes events to the registered webhook (see the module doc for the behaviour)."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        render: Callable[[Any], Mapping[str, Any]] = lambda event: event,
        seed: int | str = 0,
        max_in_flight: int = 64,
        timeout: float = 10.0,
    ) -> None:
        self.clock = clock
        self.render = render
        self.seed = seed
        self.max_in_flight = max(1, int(max_in_flight))
        self.timeout = float(timeout)
        self._url: str | None = None
        self._token: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._faults: list[WebhookFault] = []
        self._closing = False
        self._in_flight = 0
        self._generation = 0  # bumped by clear(): pushes of an older generation are forgotten
        self._reset_queues()

    def _reset_queues(self) -> None:
        self._ready: deque[_Push] = deque()
        self._waiting: list[tuple[float, int, _Push]] = []
        self._seq = 0
        self._next_id = 0
        self._window = self.max_in_flight
        self._pause_until = 0.0  # time.monotonic() before which no push starts
        self.published = 0
        self.sent = 0
        self.attempts_failed = 0
        self.retries = 0
        self.duplicates = 0
        self.dropped = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"Dispatcher(url={self._url!r}, backlog={self.backlog})"

    # ---------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start pushing (call from the event loop that will run the dispatcher)."""
        self._wake = asyncio.Event()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_in_flight, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": _USER_AGENT},
        )
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def close(self) -> None:
        """Stop pushing; pushes in flight are cancelled (their events stay undelivered)."""
        self._closing = True
        if self._wake:
            self._wake.set()
        tasks = [t for t in (self._pump_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------------- registration

    @property
    def url(self) -> str | None:
        """The registered webhook URL (the clientToken is never exposed)."""
        return self._url

    async def register(self, url: str, client_token: str) -> None:
        """Run the registration handshake; on success pushes go to ``url`` signed with the token.

        Raises ``RegistrationError`` (what the webhook answered) or ``ValidationError``.
        """
        url = _check_url(url)
        if not isinstance(client_token, str) or not client_token:
            raise ValidationError("clientToken", "<hidden>", "must be a non-empty string")
        assert self._session is not None, "start() the dispatcher first"
        secret = secrets.token_urlsafe(24)
        try:
            async with self._session.post(
                url, json=handshake_body(client_token, secret)
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RegistrationError(
                f"webhook registration failed: could not reach {url} ({reason})"
            ) from None
        if status != 200:
            raise RegistrationError(
                f"webhook registration failed: {url} answered HTTP {status}, not 200"
            )
        if text.strip() != secret:
            raise RegistrationError(
                f"webhook registration failed: {url} answered 200 but not with the secret "
                "(the body must be exactly the secret from the handshake)"
            )
        self._url, self._token = url, client_token
        self._kick()

    def unregister(self) -> None:
        """Stop pushing; events wait in the backlog until a webhook is registered again."""
        self._url = self._token = None

    # ----------------------------------------------------------------------------- publish

    def publish(self, events: Iterable[Any], now: float | None = None) -> int:
        """Queue events for pushing (cheap: rendering and signing happen at push time)."""
        at = self.clock.seconds() if now is None else now
        count = 0
        for event in events:
            count += 1
            self._next_id += 1
            push = _Push(event, str(4_000_000_000_000_000 + self._next_id), at)
            self.published += 1
            copies = 2 if self._take_fault("duplicate", push) else 1
            self.duplicates += copies - 1
            delay = self._delay_for(push)
            for _ in range(copies):
                if delay > 0:
                    self._wait(at + delay, push)
                else:
                    self._ready.append(push)
        if count:
            self._kick()
        return count

    def release_due(self, now: float) -> None:
        """Make retries and delayed pushes whose time has come ready (called every tick)."""
        moved = False
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            self._ready.append(heapq.heappop(waiting)[2])
            moved = True
        for fault in self._faults:
            if fault.kind == "outage" and fault.until is not None and fault.until <= now:
                fault.count = 0
        self._faults = [f for f in self._faults if f.count != 0]
        if moved:
            self._kick()

    def next_due(self) -> float | None:
        """The platform second at which a waiting push becomes due, if any."""
        return self._waiting[0][0] if self._waiting else None

    def clear(self) -> None:
        """Forget every queued push and reset the counters (pushes in flight still finish,
        but are neither counted nor retried)."""
        self._generation += 1
        self._reset_queues()
        self._faults.clear()

    # ------------------------------------------------------------------------------- faults

    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        probability: float | None = None,
        seconds: float = 0.0,
    ) -> WebhookFault:
        """Add a webhook fault: ``duplicate``, ``delay`` or ``outage`` (see the module doc)."""
        if kind not in _FAULT_KINDS:
            raise ValidationError("kind", kind, f"must be one of {', '.join(_FAULT_KINDS)}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValidationError("count", count, "must be a whole number")
        if count is not None and count < 1:
            raise ValidationError("count", count, "must be at least 1")
        if probability is not None and not (
            isinstance(probability, int | float) and 0.0 <= probability <= 1.0
        ):
            raise ValidationError("probability", probability, "must be a number from 0 to 1")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValidationError("seconds", seconds, "must be a number of seconds, 0 or more")
        if kind in ("delay", "outage") and seconds <= 0:
            raise ValidationError("seconds", seconds, f"a {kind} needs seconds greater than 0")
        fault = WebhookFault(kind, count, probability, float(seconds))
        if kind == "outage":
            fault.until = self.clock.seconds() + fault.seconds
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()
        self._kick()

    @property
    def faults(self) -> list[WebhookFault]:
        return list(self._faults)

    def _take_fault(self, kind: str, push: _Push) -> WebhookFault | None:
        for fault in self._faults:
            if fault.kind != kind or fault.count == 0:
                continue
            if fault.probability is not None:
                draw = stable_uniform(self.seed, "webhook-fault", kind, push.pubsub_id)
                if draw >= fault.probability:
                    continue
            if fault.count is not None:
                fault.count -= 1
            return fault
        return None

    def _delay_for(self, push: _Push) -> float:
        fault = self._take_fault("delay", push)
        return fault.seconds if fault else 0.0

    def _in_outage(self, now: float) -> bool:
        return any(
            f.kind == "outage" and f.until is not None and now < f.until for f in self._faults
        )

    # ------------------------------------------------------------------------------ pushing

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _wait(self, due: float, push: _Push) -> None:
        self._seq += 1
        heapq.heappush(self._waiting, (due, self._seq, push))

    def _paused(self) -> bool:
        return time.monotonic() < self._pause_until

    async def _pump(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._closing:
            if not (
                self._url and self._ready and self._in_flight < self._window and not self._paused()
            ):
                self._wake.clear()
                pause = self._pause_until - time.monotonic()
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), pause)
                    continue
                await self._wake.wait()
                continue
            push = self._ready.popleft()
            self._in_flight += 1
            task = loop.create_task(self._attempt(push))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _encoded(self, push: _Push, token: str) -> tuple[bytes, str]:
        cache = push.cache
        if cache is None or cache[0] is not token:
            envelope, signature = build_push(
                self.render(push.event),
                token,
                message_id=push.pubsub_id,
                publish_time=self.clock.to_datetime(push.publish_at),
            )
            body = json.dumps(envelope, separators=(",", ":")).encode("ascii")
            cache = push.cache = (token, body, signature)
        return cache[1], cache[2]

    async def _attempt(self, push: _Push) -> None:
        url, token = self._url, self._token
        generation = self._generation
        ok = False
        try:
            if url is None or token is None:
                self._ready.appendleft(push)  # unregistered meanwhile: back to the queue
                return
            push.attempts += 1
            if self._in_outage(self.clock.seconds()):
                self.last_error = "injected outage"
            else:
                body, signature = self._encoded(push, token)
                headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
                assert self._session is not None
                async with self._session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
                    if not ok:
                        self.last_error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self._in_flight -= 1
        if url is None or generation != self._generation:
            self._kick()
            return
        if ok:
            self.sent += 1
            self._window = min(self.max_in_flight, self._window + 1)
        else:
            self._failed(push)
        self._kick()

    def _failed(self, push: _Push) -> None:
        now = self.clock.seconds()
        self.attempts_failed += 1
        self._window = max(1, self._window // 2)
        self._pause_until = time.monotonic() + _FAILURE_PAUSE
        jitter = 0.9 + 0.2 * stable_uniform(self.seed, "backoff", push.pubsub_id, push.attempts)
        backoff = min(MAX_BACKOFF, MIN_BACKOFF * 2.0 ** (push.attempts - 1) * jitter)
        if now + backoff > push.publish_at + RETRY_FOR:
            self.dropped += 1
            return
        self.retries += 1
        self._wait(now + backoff, push)

    # ---------------------------------------------------------------------------- read-outs

    @property
    def backlog(self) -> int:
        """Pushes not yet acknowledged: ready, waiting for a retry or delay, or in flight."""
        return len(self._ready) + len(self._waiting) + self._in_flight

    @property
    def idle(self) -> bool:
        """True when no push is in flight and none can start (none is ready, or no webhook is
        registered). Pushes waiting for a later platform time do not count."""
        return not self._in_flight and (not self._ready or self._url is None)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait (real seconds) until ``idle``; returns whether it got there in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle:
                return True
            await asyncio.sleep(0.005)
        return self.idle

    def stats(self) -> dict[str, Any]:
        return {
            "registered": self._url is not None,
            "url": self._url,
            "published": self.published,
            "sent": self.sent,
            "failedAttempts": self.attempts_failed,
            "retriesScheduled": self.retries,
            "duplicatesInjected": self.duplicates,
            "dropped": self.dropped,
            "backlog": self.backlog,
            "ready": len(self._ready),
            "waiting": len(self._waiting),
            "inFlight": self._in_flight,
            "window": self._window,
            "lastError": self.last_error,
            "faults": [f.to_dict() for f in self._faults],
        }
