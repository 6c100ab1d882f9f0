"""Signed webhook load, sent the way the platform sends it: for tests, rehearsals and benchmarks.

Each event is wrapped in a Pub/Sub push body and signed with the clientToken
(``rbmtools.wire.build_push``) before the clock starts, so the sender spends its time on HTTP.
``concurrency`` senders POST them; like the platform, a sender repeats an event that did not
get a 200 (after ``backoff`` seconds) until ``deadline``, so a receiver that crashes and comes
back still gets everything. Every 200 is recorded live in ``acked`` with its latency.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from rbmtools.wire import SIGNATURE_HEADER, build_push, event_payload, utc_now

__all__ = ["SignedLoad", "sample_events"]


@dataclass(frozen=True)
class _Prepared:
    event_id: str
    body: bytes
    signature: str


def sample_events(
    count: int, *, agent_id: str = "rbmtools-load", start: datetime | None = None, seed: int = 7
) -> list[dict[str, Any]]:
    """``count`` distinct, realistic user and server events (deterministic for a seed)."""
    rng = random.Random(seed)
    base = start or utc_now()
    kinds = ("DELIVERED", "READ", "DELIVERED", "TTL_EXPIRATION_REVOKED", "IS_TYPING")
    events = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        events.append(
            event_payload(
                agent_id=agent_id,
                phone=f"+1555{rng.randrange(10**7):07d}",
                event_type=kind,
                event_id=f"evt-{seed}-{index:08d}",
                send_time=base,
                message_id=None if kind == "IS_TYPING" else f"msg-{seed}-{index // 3:08d}",
            )
        )
    return events


class SignedLoad:
    """POST ``events`` to ``url`` with ``concurrency`` senders; see the module doc.

    After ``run()`` (blocking) or ``await run_async()``: ``acked`` (eventIds answered 200, in
    answer order), ``latencies`` (seconds, one per 200), ``failures`` (counts by status or
    exception name), ``given_up`` (eventIds never acknowledged before ``deadline``), ``elapsed``.
    """

    def __init__(
        self,
        url: str,
        client_token: str,
        events: Sequence[Mapping[str, Any]],
        *,
        concurrency: int = 64,
        retry: bool = True,
        backoff: float = 0.05,
        deadline: float = 60.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.concurrency = concurrency
        self.retry = retry
        self.backoff = backoff
        self.deadline = deadline
        self.request_timeout = request_timeout
        publish = utc_now()
        self._prepared = []
        for index, event in enumerate(events):
            envelope, signature = build_push(
                event, client_token, message_id=str(index), publish_time=publish
            )
            self._prepared.append(
                _Prepared(
                    str(event.get("eventId", index)),
                    json.dumps(envelope).encode("utf-8"),
                    signature,
                )
            )
        self.acked: list[str] = []
        self.latencies: list[float] = []
        self.failures: Counter[str] = Counter()
        self.given_up: list[str] = []
        self.attempts = 0
        self.elapsed = 0.0

    def __repr__(self) -> str:
        return f"SignedLoad({self.url!r}, {len(self._prepared)} events, acked={len(self.acked)})"

    def run(self) -> SignedLoad:
        """Send everything on a fresh event loop; returns self."""
        asyncio.run(self.run_async())
        return self

    async def run_async(self) -> SignedLoad:
        queue = iter(self._prepared)
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        started = time.perf_counter()
        give_up_at = time.monotonic() + self.deadline
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(
                *(self._sender(session, queue, give_up_at) for _ in range(self.concurrency))
            )
        self.elapsed = time.perf_counter() - started
        return self

    async def _sender(self, session: aiohttp.ClientSession, queue: Any, give_up_at: float) -> None:
        for item in queue:
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: item.signature}
            while True:
                self.attempts += 1
                sent = time.perf_counter()
                try:
                    async with session.post(self.url, data=item.body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    self.failures[type(exc).__name__] += 1
                    status = None
                if status == 200:
                    self.latencies.append(time.perf_counter() - sent)
                    self.acked.append(item.event_id)
                    break
                if status is not None:
                    self.failures[str(status)] += 1
                if not self.retry or time.monotonic() >= give_up_at:
                    self.given_up.append(item.event_id)
                    break
                await asyncio.sleep(self.backoff)
