"""The recovery rule (``next_step``), the facts read from the logs, and the time helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from experiment_helpers import make_spec

from rbmtools.emulator import Emulator, VirtualClock
from rbmtools.experiment import (
    FallbackPolicy,
    FallbackRule,
    MessageFacts,
    MirroredClock,
    Outcome,
    next_step,
)
from rbmtools.experiment.assign import PlannedMessage
from rbmtools.experiment.schedule import DueHeap, SendSpacing, WallClock, real_wait
from rbmtools.experiment.state import Done, Fallback, Revoke, RevokeAnswer, Send, Wait
from rbmtools.wire import FallbackRecord, RevokeRecord, SendRecord, parse_event

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)
SPEC = make_spec(
    arms=[
        {"name": "ttl", "method": "ttl", "duration": "10m"},
        {"name": "exp", "method": "expire_time", "duration": "10m"},
        {"name": "api", "method": "api_after", "duration": "10m"},
        {"name": "unless", "method": "api_after_unless_delivered", "duration": "10m"},
    ]
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def facts(arm: str, *, sent: int | None = 200) -> MessageFacts:
    f = MessageFacts(PlannedMessage(0, "+15550000001", arm, "m-1"))
    if sent is not None:
        f.send_status, f.send_time = sent, T0
        if arm in ("ttl", "exp") and sent == 200:
            f.expire_time = at(600)
    return f


def step(f: MessageFacts, now: float, policy: str = "on_revoked"):
    return next_step(f, SPEC.arm(f.planned.arm), FallbackPolicy(policy), GRACE, at(now))


def test_unsent_not_rcs_and_failed_sends():
    assert step(facts("ttl", sent=None), 0) == Send()
    assert step(facts("api", sent=404), 0) == Done(Outcome.NOT_RCS)
    assert step(facts("api", sent=503), 0) == Done(Outcome.SEND_FAILED)


def test_a_phone_without_rcs_falls_back_at_once_when_the_rule_says_not_rcs():
    rule = FallbackRule.parse(["on_revoked", "not_rcs"])
    arm = SPEC.arm("api")
    no_rcs = facts("api", sent=404)
    assert next_step(no_rcs, arm, rule, GRACE, at(0)) == Fallback("not_rcs")
    only_rcs = FallbackRule.parse("not_rcs")
    assert next_step(no_rcs, arm, only_rcs, GRACE, at(0)) == Fallback("not_rcs")
    no_rcs.fallback_reason = "not_rcs"  # the SMS went out: nothing more, ever
    assert next_step(no_rcs, arm, rule, GRACE, at(0)) == Done(Outcome.FALLBACK)
    revoked = facts("api")
    revoked.revokes[1] = RevokeAnswer(200, at(600))
    revoked.revokes[2] = RevokeAnswer(200, at(630))
    assert next_step(revoked, arm, only_rcs, GRACE, at(631)) == Done(Outcome.REVOKED)


@pytest.mark.parametrize("arm", ["api", "unless"])
def test_api_arms_revoke_at_send_plus_duration(arm):
    f = facts(arm)
    assert step(f, 10) == Wait(at(600))
    assert step(f, 600) == Revoke(1)


def test_only_the_unless_delivered_arm_skips_the_revoke_after_delivery():
    for arm, expected in (("api", Wait(at(600))), ("unless", Done(Outcome.DELIVERED))):
        f = facts(arm)
        f.delivered_at = at(5)
        assert step(f, 10) == expected
    f = facts("api")
    f.delivered_at = at(5)
    f.revokes[1] = RevokeAnswer(404, at(600))
    assert step(f, 601) == Done(Outcome.DELIVERED)


def test_a_200_revoke_waits_the_grace_period_then_revokes_once_more():
    f = facts("api")
    f.revokes[1] = RevokeAnswer(200, at(600))
    assert step(f, 610) == Wait(at(630))
    assert step(f, 630) == Revoke(2)
    f.revokes[2] = RevokeAnswer(200, at(631))
    assert step(f, 631) == Fallback("revoked")
    assert step(f, 631, "none") == Done(Outcome.REVOKED)


def test_a_delivered_seen_in_the_grace_period_wins():
    f = facts("api")
    f.revokes[1] = RevokeAnswer(200, at(600))
    f.delivered_at = at(600.5)  # the documented race
    assert step(f, 610) == Done(Outcome.DELIVERED)


@pytest.mark.parametrize("first", [404, 503])
def test_a_refused_or_failed_first_revoke_is_rechecked_then_inconclusive(first):
    f = facts("unless")
    f.revokes[1] = RevokeAnswer(first, at(600))
    assert step(f, 620) == Wait(at(630))
    assert step(f, 640) == Revoke(2)
    f.revokes[2] = RevokeAnswer(404, at(640))
    assert step(f, 641) == Done(Outcome.INCONCLUSIVE)
    assert step(f, 641, "on_revoked_or_inconclusive") == Fallback("inconclusive")


def test_no_fallback_once_delivered_even_after_the_recovery_revoke():
    f = facts("api")
    f.revokes[1] = RevokeAnswer(200, at(600))
    f.revokes[2] = RevokeAnswer(404, at(630))
    f.delivered_at = at(630.2)
    assert step(f, 631, "on_revoked_or_inconclusive") == Done(Outcome.DELIVERED)


@pytest.mark.parametrize("arm", ["ttl", "exp"])
def test_expiry_arms(arm):
    f = facts(arm)
    assert step(f, 100) == Wait(at(630))  # expiry + grace, in case no TTL event comes
    revoked = facts(arm)
    revoked.ttl_revoked_at = at(600)
    assert step(revoked, 600) == Fallback("revoked")  # TTL_EXPIRATION_REVOKED: at once
    assert step(revoked, 600, "none") == Done(Outcome.REVOKED)
    failed = facts(arm)
    failed.ttl_failed_at = at(600)
    assert step(failed, 610) == Wait(at(630))  # may still be delivered: wait for it
    assert step(failed, 630) == Revoke(2)
    failed.revokes[2] = RevokeAnswer(404, at(630))
    assert step(failed, 631) == Done(Outcome.INCONCLUSIVE)
    silent = facts(arm)
    assert step(silent, 631) == Revoke(2)  # no event at all: ask the platform
    silent.revokes[2] = RevokeAnswer(200, at(631))
    assert step(silent, 632) == Fallback("revoked")
    delivered = facts(arm)
    delivered.delivered_at = at(700)  # stale, but a DELIVERED always wins
    delivered.ttl_failed_at = at(600)
    assert step(delivered, 701) == Done(Outcome.DELIVERED)


def test_a_recorded_fallback_is_final():
    f = facts("api")
    f.fallback_reason = "revoked"
    assert step(f, 0) == Done(Outcome.FALLBACK)


def test_facts_from_outbox_records_and_events():
    f = facts("api", sent=None)
    base = {"message_id": "m-1", "phone": "+15550000001", "agent_id": "a"}
    f.apply_record(SendRecord(send_time=T0, status=503, error="boom", **base))
    assert not f.sent and f.send_errors == 1
    f.apply_record(SendRecord(send_time=at(1), status=200, **base))
    assert f.sent and f.send_time == at(1)
    f.apply_record(RevokeRecord(requested_at=at(600), status=503, attempt=1, **base))
    f.apply_record(RevokeRecord(requested_at=at(601), status=200, attempt=1, **base))
    f.apply_record(RevokeRecord(requested_at=at(602), status=404, attempt=1, **base))
    assert f.revokes[1] == RevokeAnswer(200, at(601))  # an answer beats an error; first wins
    f.apply_record(FallbackRecord(sent_at=at(640), channel="sms", reason="revoked", **base))
    assert (f.fallback_reason, f.fallback_at) == ("revoked", at(640))
    delivered = parse_event(
        {"senderPhoneNumber": "+15550000001", "messageId": "m-1", "eventType": "DELIVERED"}
    )
    assert f.apply_event(delivered, at(700)) is True
    assert f.apply_event(delivered, at(650)) is False  # an earlier copy moves the time only
    assert f.delivered_at == at(650)
    expired = parse_event(
        {"phoneNumber": "+15550000001", "messageId": "m-1", "eventType": "TTL_EXPIRATION_REVOKED"}
    )
    assert f.apply_event(expired, at(600)) and not f.apply_event(expired, at(600))


# ------------------------------------------------------------------------------ time


def test_due_heap_orders_and_limits():
    heap = DueHeap()
    for key, seconds in ((1, 30), (2, 10), (3, 20)):
        heap.push(at(seconds), key)
    assert heap.next_due() == at(10)
    assert heap.pop_due(at(25)) == [2, 3]
    assert heap.pop_due(at(100), limit=0) == [] and len(heap) == 1
    assert heap.pop_due(at(100)) == [1] and heap.next_due() is None


def test_send_spacing_never_bursts_to_catch_up():
    spacing = SendSpacing(2.0)
    assert spacing.ready(at(0))
    spacing.take(at(0))
    assert not spacing.ready(at(0.4)) and spacing.next_slot() == at(0.5)
    spacing.take(at(10))  # far behind: the next slot counts from now
    assert spacing.next_slot() == at(10.5)
    unlimited = SendSpacing(None)
    unlimited.take(at(0))
    assert unlimited.ready(at(0))


def test_real_wait_converts_platform_time_with_the_speed():
    clock = VirtualClock(speed=600.0, start=T0)
    assert real_wait(clock, T0, at(600), cap=5.0) == pytest.approx(1.0)
    assert real_wait(clock, T0, at(6000), cap=5.0) == 5.0
    assert real_wait(clock, T0, None, cap=0.25) == 0.25
    assert real_wait(clock, T0, at(-5), cap=1.0) == 0.0
    paused = VirtualClock(speed=0.0, start=T0)
    assert real_wait(paused, T0, at(10), cap=1.0) == 0.05
    assert real_wait(WallClock(), T0, at(2), cap=5.0) == 2.0


def test_mirrored_clock_follows_a_served_emulator():
    with Emulator(speed=600.0, seed=1) as emu:
        mirror = MirroredClock(emu.admin)
        assert mirror.speed == 600.0
        gap = abs((mirror.now() - emu.clock.now()).total_seconds())
        assert gap < 30.0  # 50 ms of real-time skew at most
        assert mirror.real_delay(600) == pytest.approx(1.0)
