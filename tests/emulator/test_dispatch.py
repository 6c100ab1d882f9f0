"""Webhook dispatch over loopback: handshake, signatures, retries, faults, isolation."""

from __future__ import annotations

import threading
import time

import pytest

from rbmtools import wire
from rbmtools.emulator import Emulator, RegistrationError
from rbmtools.errors import ApiError

from .conftest import PHONE, SINK_TOKEN, START, Api, WebhookSink


def _deliver(api: Api, count: int, prefix: str = "m") -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(count)]
    for i, message_id in enumerate(ids):
        assert api.send(message_id, phone=f"+1555010{i:04d}").status_code == 200
    return ids


@pytest.fixture
def pinned_online(stepping):
    """Every phone the dispatch tests use is online with a 2 s latency and never reads."""
    stepping.admin.load_profile(
        {
            "extends": "always-online",
            "delivery": {"latency": {"median": 2, "sigma": 0}},
            "read": {"probability": 0.0},
        }
    )
    return stepping


def test_pushes_are_signed_pubsub_envelopes(pinned_online, api, sink):
    ids = _deliver(api, 5)
    pinned_online.admin.advance(10)
    assert pinned_online.admin.wait_idle(10)
    assert sorted(e["messageId"] for e in sink.of_type("DELIVERED")) == sorted(ids)
    assert not sink.rejected
    push = sink.pushes[0]
    assert push.attributes == {"product": "RBM"}
    assert push.message_id and push.message_id.isdigit()
    assert push.publish_time is not None and push.publish_time >= START
    assert push.subscription


def test_registration_handshake_failures_are_clear(sink):
    with Emulator(profile="always-online", speed=0, start=START) as emu:
        sink.handshake = "wrong"
        with pytest.raises(ApiError) as info:
            emu.admin.register_webhook(sink.url, SINK_TOKEN)
        assert "not with the secret" in info.value.message
        sink.handshake = 500
        with pytest.raises(ApiError) as info:
            emu.admin.register_webhook(sink.url, SINK_TOKEN)
        assert "HTTP 500" in info.value.message
        with pytest.raises(ApiError) as info:
            emu.admin.register_webhook("http://127.0.0.1:9/rbm", SINK_TOKEN)
        assert "could not reach" in info.value.message
        assert SINK_TOKEN not in info.value.message
        assert emu.admin.webhook() == {"registered": False, "url": None}
        sink.handshake = "ok"
        assert emu.admin.register_webhook(sink.url, SINK_TOKEN)["registered"] is True


def test_emulator_refuses_to_start_when_the_handshake_fails(sink):
    sink.handshake = "wrong"
    with pytest.raises(RegistrationError, match="secret"):
        Emulator(speed=0, webhook_url=sink.url, client_token=SINK_TOKEN).start()


def test_events_wait_for_a_webhook_then_go_out(sink):
    with Emulator(profile="always-online", speed=0, start=START) as emu:
        api = Api(emu)
        emu.admin.pin_phone(PHONE, online="always", latency=1, read_after="never")
        assert api.send("m-early").status_code == 200
        emu.admin.advance(5)
        assert emu.admin.stats()["webhook"]["backlog"] == 1
        emu.admin.register_webhook(sink.url, SINK_TOKEN)
        assert sink.wait_for(lambda: sink.types_for("m-early") == ["DELIVERED"])


def test_failing_webhook_is_retried_with_backoff_until_it_recovers(pinned_online, api, sink):
    sink.mode = 500
    ids = _deliver(api, 3)
    admin = pinned_online.admin
    admin.advance(5)
    assert sink.wait_for(lambda: admin.stats()["webhook"]["failedAttempts"] >= 1)
    stats = admin.stats()["webhook"]
    assert stats["sent"] == 0 and stats["backlog"] == 3
    assert stats["lastError"] == "HTTP 500"
    sink.mode = "ok"
    for _ in range(12):  # backoff grows to at most 600 platform seconds
        admin.advance(600)
        admin.wait_idle(5)
    assert sorted(e["messageId"] for e in sink.of_type("DELIVERED")) == sorted(ids)
    stats = admin.stats()["webhook"]
    assert stats["backlog"] == 0 and stats["retriesScheduled"] >= 3


def test_events_are_dropped_after_seven_days_of_failure(pinned_online, api, sink):
    sink.mode = 503
    _deliver(api, 2)
    admin = pinned_online.admin
    admin.advance(5)
    sink.wait_for(lambda: admin.stats()["webhook"]["failedAttempts"] >= 1)
    for _ in range(8):  # a day at a time: each step lets the due retries fail once more
        admin.advance(86_400)
        assert admin.wait_idle(5)
    stats = admin.stats()["webhook"]
    assert stats["dropped"] == 2
    assert stats["backlog"] == 0


def test_duplicate_fault_sends_the_same_event_twice(pinned_online, api, sink):
    pinned_online.admin.inject_webhook_fault("duplicate", count=2)
    _deliver(api, 3)
    pinned_online.admin.advance(10)
    assert pinned_online.admin.wait_idle(10)
    assert sink.wait_for(lambda: len(sink.events) == 5)
    event_ids = [e["eventId"] for e in sink.events]
    assert len(set(event_ids)) == 3
    twice = {e for e in event_ids if event_ids.count(e) == 2}
    assert len(twice) == 2
    pubsub_ids = {p.message_id for p in sink.pushes if p.event()["eventId"] in twice}
    assert len(pubsub_ids) == 2  # a redelivery keeps its Pub/Sub messageId


def test_delay_fault_holds_events_back(pinned_online, api, sink):
    pinned_online.admin.inject_webhook_fault("delay", seconds="5m", count=1)
    _deliver(api, 1, "late")
    pinned_online.admin.advance(10)
    pinned_online.admin.wait_idle(5)
    assert sink.events == []
    pinned_online.admin.advance(300)
    assert pinned_online.admin.wait_idle(5)
    assert sink.wait_for(lambda: len(sink.of_type("DELIVERED", "late-0")) == 1)
    assert sink.of_type("DELIVERED", "late-0")[0]["sendTime"] == wire.format_timestamp(
        START.replace(second=2)
    )  # the event keeps its platform time; only the push is late


def test_outage_fault_fails_pushes_then_they_recover(pinned_online, api, sink):
    admin = pinned_online.admin
    admin.inject_webhook_fault("outage", seconds="30m")
    _deliver(api, 2, "outage")
    admin.advance(10)
    sink.wait_for(lambda: admin.stats()["webhook"]["failedAttempts"] >= 1)
    assert sink.events == []
    assert admin.stats()["webhook"]["lastError"] == "injected outage"
    for _ in range(8):
        admin.advance(600)
        admin.wait_idle(5)
    assert len(sink.of_type("DELIVERED")) == 2


def test_probability_duplicates_are_deterministic(pinned_online, api, sink):
    pinned_online.admin.inject_webhook_fault("duplicate", probability=0.5)
    _deliver(api, 40, "p")
    pinned_online.admin.advance(10)
    assert pinned_online.admin.wait_idle(10)
    duplicated = pinned_online.admin.stats()["webhook"]["duplicatesInjected"]
    assert 8 <= duplicated <= 32
    assert sink.wait_for(lambda: len(sink.events) == 40 + duplicated)


@pytest.mark.parametrize("mode", ["hang", 500])
def test_a_slow_or_failing_webhook_never_slows_the_api(mode):
    sink = WebhookSink().start()
    try:
        with Emulator(
            profile="always-online",
            speed=6000,
            start=START,
            webhook_url=sink.url,
            client_token=SINK_TOKEN,
            webhook_timeout=30,
        ) as emu:
            api = Api(emu)
            sink.mode = mode
            assert api.send("warm-up").status_code == 200
            time.sleep(0.3)  # deliveries happen; pushes hang or fail
            latencies = []
            for i in range(40):
                started = time.monotonic()
                assert api.send(f"fast-{i}", phone=f"+1555020{i:04d}").status_code == 200
                latencies.append(time.monotonic() - started)
            stats = emu.admin.stats()["webhook"]
            assert stats["backlog"] >= 1  # the webhook really is stuck
            assert max(latencies) < 1.0, latencies
    finally:
        sink.mode = "ok"
        sink.stop()


def test_dispatcher_is_usable_on_its_own(sink):
    """The receiver engineer's entry point: a Dispatcher pushing plain event dicts."""
    import asyncio

    from rbmtools.emulator import Dispatcher, VirtualClock

    clock = VirtualClock(speed=0, start=START)
    event = wire.event_payload(
        agent_id="a",
        phone=PHONE,
        event_type="DELIVERED",
        event_id="e-1",
        send_time=START,
        message_id="m-1",
    )

    async def run() -> dict:
        dispatcher = Dispatcher(clock)
        await dispatcher.start()
        await dispatcher.register(sink.url, SINK_TOKEN)
        dispatcher.publish([event])
        assert await dispatcher.wait_idle(10)
        await dispatcher.close()
        return dispatcher.stats()

    done: list[dict] = []
    thread = threading.Thread(target=lambda: done.append(asyncio.run(run())))
    thread.start()
    thread.join(20)
    assert done and done[0]["sent"] == 1
    assert sink.events == [event]


def test_reset_while_pushes_are_in_flight_leaves_clean_counters(pinned_online, api, sink):
    sink.mode, sink.hang_seconds = "hang", 0.5
    _deliver(api, 3, "stuck")
    admin = pinned_online.admin
    admin.advance(10)
    assert sink.wait_for(lambda: admin.stats()["webhook"]["inFlight"] == 3)
    admin.reset()
    sink.mode = "ok"
    assert sink.wait_for(lambda: admin.stats()["webhook"]["inFlight"] == 0)
    webhook = admin.stats()["webhook"]
    assert (webhook["backlog"], webhook["retriesScheduled"], webhook["sent"]) == (0, 0, 0)
    assert admin.wait_idle(1)
