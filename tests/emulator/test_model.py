"""The pure platform model: determinism, device draws, and each state transition."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from rbmtools.emulator.devices import Device, DevicePin
from rbmtools.emulator.model import HOLD_SECONDS, MessageState, PlatformModel
from rbmtools.emulator.profiles import load_profile
from rbmtools.errors import ValidationError
from rbmtools.wire import format_timestamp

from .conftest import START

AGENT = "agent-1"
TEXT = {"contentMessage": {"text": "hello"}}


def _model(profile: object = "default", seed: int = 7, **kwargs) -> PlatformModel:
    return PlatformModel(load_profile(profile), seed=seed, epoch=START, **kwargs)


def _run(model: PlatformModel, count: int = 300) -> list[tuple]:
    for i in range(count):
        model.send(AGENT, f"+1555030{i:04d}", f"m{i}", {**TEXT, "ttl": "900s"}, i * 2.0)
    events = model.advance(10 * 86_400.0)
    return sorted((e.message_id, e.event_type, round(e.at, 6)) for e in events)


def test_same_seed_same_events_other_seed_other_events():
    assert _run(_model(seed=3)) == _run(_model(seed=3))
    assert _run(_model(seed=3)) != _run(_model(seed=4))


def test_outcomes_do_not_depend_on_other_traffic():
    quiet = _model(seed=5)
    busy = _model(seed=5)
    for i in range(50):
        busy.send(AGENT, f"+1666000{i:04d}", f"noise{i}", TEXT, 0.5)
    for model in (quiet, busy):
        model.send(AGENT, "+15550001111", "target", {**TEXT, "ttl": "3600s"}, 1.0)
    quiet_events = [(e.event_type, e.at) for e in quiet.advance(86_400) if e.message_id == "target"]
    busy_events = [(e.event_type, e.at) for e in busy.advance(86_400) if e.message_id == "target"]
    assert quiet_events == busy_events and quiet_events


def test_device_draws_follow_the_profile():
    profile = load_profile("default")
    devices = [Device(f"+1555040{i:04d}", profile, 11, None) for i in range(4000)]
    capable = sum(d.rcs_capable for d in devices) / len(devices)
    assert abs(capable - profile.rcs_capable_share) < 0.03
    times = [3600.0 * k for k in range(1, 40)]
    online = [d.is_online(t) for d in devices[:500] for t in times if not d.never_back]
    share = sum(online) / len(online)
    assert abs(share - profile.online_share) < 0.05


def test_forgetting_old_spells_does_not_change_the_future():
    profile = load_profile("flaky-network")
    kept, pruned = (
        Device("+15550002222", profile, 1, None),
        Device("+15550002222", profile, 1, None),
    )
    for t in range(0, 40 * 86_400, 1800):
        pruned.forget_before(float(t))
        assert pruned.online_window(float(t)) == kept.online_window(float(t))


def test_delivery_waits_for_the_phone_and_then_takes_the_latency():
    model = _model("always-online")
    model.pin("+15550003333", DevicePin(offline_until=500.0, latency=4.0, read_after=10.0), 0.0)
    model.send(AGENT, "+15550003333", "m1", TEXT, 0.0)
    assert model.advance(499.0) == []
    events = model.advance(1000.0)
    assert [(e.event_type, e.at) for e in events] == [("DELIVERED", 504.0), ("READ", 514.0)]
    assert model.message(AGENT, "m1").state is MessageState.READ


def test_phone_going_offline_mid_delivery_waits_for_the_next_spell():
    model = _model({"extends": "default", "devices": {"never_back_share": 0.0}})
    # Find a phone whose first online spell ends within the latency of a late send.
    for i in range(2000):
        phone = f"+1555050{i:04d}"
        device = model.device(phone)
        window = device.online_window(0.0)
        if device.rcs_capable and window and window[0] == 0.0 and window[1] < 1e6:
            break
    end = window[1]
    model.pin(phone, DevicePin(latency=30.0), 0.0)
    model.send(AGENT, phone, "late", TEXT, end - 10.0)
    msg = model.message(AGENT, "late")
    next_window = model.device(phone).online_window(end)
    assert msg.deliver_at == pytest.approx(next_window[0] + 30.0)


def test_ttl_revoked_exactly_at_expiry_unless_in_handoff():
    model = _model("always-online")
    model.pin("+15550004444", DevicePin(online="never"), 0.0)
    model.send(AGENT, "+15550004444", "queued", {**TEXT, "ttl": "600s"}, 0.0)
    events = model.advance(10_000.0)
    assert [(e.event_type, e.at) for e in events] == [("TTL_EXPIRATION_REVOKED", 600.0)]
    assert model.revoke(AGENT, "+15550004444", "queued", 700.0).status == 200


@pytest.mark.parametrize(("chance", "delivered"), [(1.0, True), (0.0, False)])
def test_expiry_in_handoff_fails_and_delivery_follows_by_chance(chance, delivered):
    model = _model(
        {"extends": "always-online", "delivery": {"ttl_failed_delivered_probability": chance}}
    )
    model.pin("+15550005555", DevicePin(online="always", latency=20.0, read_after=math.inf), 0.0)
    model.send(AGENT, "+15550005555", "m", {**TEXT, "ttl": "19.5s"}, 0.0)
    kinds = [e.event_type for e in model.advance(100.0)]
    expected = ["TTL_EXPIRATION_REVOKE_FAILED"] + (["DELIVERED"] if delivered else [])
    assert kinds == expected
    # Google: after TTL_EXPIRATION_REVOKE_FAILED, revoke by API if it was not delivered. A
    # delivered message answers 404; an undelivered one is revoked (200), for good.
    status = model.revoke(AGENT, "+15550005555", "m", 200.0).status
    assert status == (404 if delivered else 200)
    assert model.message(AGENT, "m").state is (
        MessageState.DELIVERED if delivered else MessageState.REVOKED
    )
    assert model.advance(HOLD_SECONDS * 2) == []


def test_revoke_after_revoke_failed_inside_the_handoff_takes_the_message_back():
    """Still being handed over when the agent revokes after TTL_EXPIRATION_REVOKE_FAILED:
    200, and the delivery does not follow (unless the hand-off race says so)."""
    model = _model(
        {
            "extends": "always-online",
            "delivery": {
                "handoff_window": 5,
                "ttl_failed_delivered_probability": 1.0,
                "race_probability": 0.0,
            },
        }
    )
    model.pin("+15550005556", DevicePin(online="always", latency=20.0, read_after=math.inf), 0.0)
    model.send(AGENT, "+15550005556", "m", {**TEXT, "ttl": "16s"}, 0.0)
    assert [e.event_type for e in model.advance(17.0)] == ["TTL_EXPIRATION_REVOKE_FAILED"]
    assert model.revoke(AGENT, "+15550005556", "m", 18.0).status == 200
    assert model.advance(100.0) == []
    assert model.message(AGENT, "m").state is MessageState.REVOKED
    assert model.revoke(AGENT, "+15550005556", "m", 101.0).status == 200  # repeating is safe


@pytest.mark.parametrize(("chance", "delivered"), [(1.0, True), (0.0, False)])
def test_revoke_in_handoff_answers_200_and_races(chance, delivered):
    model = _model({"extends": "always-online", "delivery": {"race_probability": chance}})
    model.pin("+15550006666", DevicePin(online="always", latency=20.0, read_after=math.inf), 0.0)
    model.send(AGENT, "+15550006666", "m", TEXT, 0.0)
    model.advance(19.5)
    assert model.message(AGENT, "m").in_handoff(19.5)
    assert model.revoke(AGENT, "+15550006666", "m", 19.5).status == 200
    kinds = [e.event_type for e in model.advance(100.0)]
    assert kinds == (["DELIVERED"] if delivered else [])


def test_revoke_before_handoff_always_wins():
    model = _model({"extends": "always-online", "delivery": {"race_probability": 1.0}})
    model.pin("+15550007777", DevicePin(online="always", latency=20.0), 0.0)
    model.send(AGENT, "+15550007777", "m", TEXT, 0.0)
    assert model.revoke(AGENT, "+15550007777", "m", 5.0).status == 200
    assert model.advance(100.0) == []


def test_api_settles_a_message_before_answering_even_if_the_ticker_lags():
    model = _model("always-online")
    model.pin("+15550008888", DevicePin(online="always", latency=2.0, read_after=math.inf), 0.0)
    model.send(AGENT, "+15550008888", "m", TEXT, 0.0)
    # No advance(): the revoke at t=10 must still see the delivery at t=2.
    assert model.revoke(AGENT, "+15550008888", "m", 10.0).status == 404
    assert [(e.event_type, e.at) for e in model.advance(10.0)] == [("DELIVERED", 2.0)]


def test_never_back_is_dropped_after_thirty_days():
    model = _model("always-online")
    model.pin("+15550009999", DevicePin(online="never"), 0.0)
    model.send(AGENT, "+15550009999", "m", TEXT, 0.0)
    assert model.advance(HOLD_SECONDS - 1) == []
    assert model.message(AGENT, "m").state is MessageState.QUEUED
    assert model.advance(HOLD_SECONDS + 1) == []
    assert model.message(AGENT, "m").state is MessageState.DROPPED
    assert model.revoke(AGENT, "+15550009999", "m", HOLD_SECONDS + 2).status == 404


def test_unknown_id_or_other_phone_revoke_is_404_and_legacy_is_200():
    model = _model("always-online")
    model.send(AGENT, "+15550001010", "m", TEXT, 0.0)
    assert model.revoke(AGENT, "+15550001010", "nope", 1.0).status == 404
    assert model.revoke(AGENT, "+15550002020", "m", 1.0).status == 404
    legacy = _model("always-online", legacy_revoke=True)
    assert legacy.revoke(AGENT, "+15550001010", "nope", 1.0).status == 200


def test_ids_are_per_agent():
    model = _model("always-online")
    first = model.send("agent-a", "+15550001010", "same", TEXT, 0.0)
    second = model.send("agent-b", "+15550001010", "same", TEXT, 5.0)
    assert first.status == second.status == 200
    assert first.body["sendTime"] != second.body["sendTime"]


def test_agent_checks():
    assert _model().send(None, "+15550001010", "m", TEXT, 0.0).status == 403
    only = _model(only_agent="mine")
    assert only.send("theirs", "+15550001010", "m", TEXT, 0.0).status == 403
    assert only.send("mine@rbm.goog", "+15550001010", "m", {**TEXT}, 0.0).status in (200, 404)


def test_expiry_validation_uses_platform_time():
    model = _model("always-online")
    past = format_timestamp(START - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="expireTime"):
        model.send(AGENT, "+15550001010", "m", {**TEXT, "expireTime": past}, 0.0)
    later = format_timestamp(START + timedelta(days=20))
    model.advance(10 * 86_400.0)
    answer = model.send(AGENT, "+15550001010", "m", {**TEXT, "expireTime": later}, 10 * 86_400.0)
    assert answer.status == 200  # 10 days ahead of the platform's now, not the wall clock's


def test_counts_and_heap_stay_consistent_with_many_messages():
    model = _model("commuters", seed=9)
    for i in range(3000):
        model.send(AGENT, f"+1555060{i:04d}", f"m{i}", {**TEXT, "ttl": "600s"}, i * 0.1)
    model.advance(40 * 86_400.0)
    counts = model.counts()
    assert sum(counts.values()) == len(list(model.messages()))
    assert counts["queued"] == 0
    assert model.scheduled == 0
    kinds = Counter(e for m in model.messages() for e, _ in m.events)
    assert kinds["DELIVERED"] == counts["delivered"] + counts["read"]
    assert kinds["TTL_EXPIRATION_REVOKED"] == counts["expired"]


def test_pin_replans_queued_messages():
    model = _model("always-online")
    model.pin("+15550001212", DevicePin(online="never"), 0.0)
    model.send(AGENT, "+15550001212", "m", TEXT, 0.0)
    assert model.advance(1000.0) == []
    model.pin("+15550001212", DevicePin(online="always", latency=1.0), 1000.0)
    assert next((e.event_type, e.at) for e in model.advance(1002.0)) == ("DELIVERED", 1001.0)


def test_a_feature_the_device_lacks_is_a_400():
    from rbmtools import wire

    model = _model({"extends": "always-online", "capabilities": ["RICHCARD_STANDALONE"]})
    carousel = wire.agent_message(
        rich_card=wire.carousel_card([wire.card_content("a"), wire.card_content("b")])
    )
    answer = model.send(AGENT, "+15550001313", "c1", carousel, 0.0)
    assert answer.status == 400
    assert "RICHCARD_CAROUSEL" in answer.body["error"]["message"]
    dial = wire.agent_message(
        rich_card=wire.standalone_card(
            wire.card_content("a", suggestions=[wire.dial("Call", "+15550001313")])
        )
    )
    assert (
        "ACTION_DIAL" in model.send(AGENT, "+15550001313", "c2", dial, 0.0).body["error"]["message"]
    )
    card = wire.agent_message(rich_card=wire.standalone_card(wire.card_content("a")))
    assert model.send(AGENT, "+15550001313", "c3", card, 0.0).status == 200
