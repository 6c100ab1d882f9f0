"""What is known about each message, and the one rule that decides what to do next.

Facts come from two logs only: the outbox (what the runner did: send, revoke, fallback) and the
webhook event log (DELIVERED, READ, TTL_EXPIRATION_*). ``next_step`` is a pure function of
those facts, the arm, the fallback policy, the grace period and the platform time, so a fresh
run, a running one and a resumed one take the same decisions from the same facts.

Google's recovery procedure, as ``next_step`` applies it: a revoke answered 200 (or 404, or
an expiry reported as TTL_EXPIRATION_REVOKE_FAILED, or an expiry with no event at all) is not
the end: wait ``grace`` for a DELIVERED; if none came, revoke once more (attempt 2) and decide
on its answer: 200 means revoked, anything else is inconclusive. TTL_EXPIRATION_REVOKED
without DELIVERED means revoked at once. A DELIVERED seen before the decision always wins:
no fallback is sent for it. The fallback rule then says whether revoked / inconclusive
messages get the SMS, and whether a phone without RCS (the send answered 404) gets it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rbmtools.experiment.assign import PlannedMessage
from rbmtools.experiment.spec import Arm, FallbackPolicy, RevokeMethod
from rbmtools.wire import (
    EventType,
    FallbackRecord,
    OutboxRecord,
    RevokeRecord,
    SendRecord,
    UserEvent,
    parse_duration,
)
from rbmtools.wire.ttl_policy import FallbackRule

__all__ = [
    "Done",
    "Fallback",
    "MessageFacts",
    "Outcome",
    "Revoke",
    "RevokeAnswer",
    "Send",
    "Step",
    "Wait",
    "next_step",
]


class Outcome(StrEnum):
    """How the runner settled a message (its own view; the analysis derives the lifecycle)."""

    DELIVERED = "delivered"  # DELIVERED seen before any decision to fall back
    FALLBACK = "fallback"  # revoked (or inconclusive, by policy): the SMS went out
    REVOKED = "revoked"  # revoked, and the policy sends no SMS
    INCONCLUSIVE = "inconclusive"  # neither delivered nor surely revoked; no SMS by policy
    NOT_RCS = "not_rcs"  # the send was answered 404
    SEND_FAILED = "send_failed"  # the send failed (a resume tries it again)
    FALLBACK_FAILED = "fallback_failed"  # the SMS was refused (a resume tries it again)


@dataclass(frozen=True)
class Send:
    """The message has not been sent yet."""


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until`` (platform time) unless an event arrives."""

    until: datetime


@dataclass(frozen=True)
class Revoke:
    """Revoke by API now; ``attempt`` 1 is the arm's revoke, 2 the recovery revoke."""

    attempt: int


@dataclass(frozen=True)
class Fallback:
    """Send the SMS now; ``reason`` is ``revoked``, ``inconclusive`` or ``not_rcs``."""

    reason: str


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this message."""

    outcome: Outcome


Step = Send | Wait | Revoke | Fallback | Done


@dataclass(frozen=True, slots=True)
class RevokeAnswer:
    """The answer to one revoke attempt: 200, 404, or an error status (0: no answer)."""

    status: int
    at: datetime

    @property
    def is_error(self) -> bool:
        return self.status not in (200, 404)


class MessageFacts:
    """Everything the two logs say about one planned message (plus in-run flags)."""

    __slots__ = (
        "busy",
        "delivered_at",
        "expire_time",
        "fallback_at",
        "fallback_error",
        "fallback_reason",
        "planned",
        "read_at",
        "revokes",
        "send_error",
        "send_errors",
        "send_status",
        "send_time",
        "settled",
        "ttl_failed_at",
        "ttl_revoked_at",
    )

    def __init__(self, planned: PlannedMessage) -> None:
        self.planned = planned
        self.send_status: int | None = None
        self.send_time: datetime | None = None
        self.expire_time: datetime | None = None
        self.send_errors = 0
        self.send_error: str | None = None
        self.revokes: dict[int, RevokeAnswer] = {}
        self.delivered_at: datetime | None = None
        self.read_at: datetime | None = None
        self.ttl_revoked_at: datetime | None = None
        self.ttl_failed_at: datetime | None = None
        self.fallback_reason: str | None = None
        self.fallback_at: datetime | None = None
        self.fallback_error: str | None = None
        self.busy = False
        self.settled: Outcome | None = None

    def __repr__(self) -> str:
        p = self.planned
        return (
            f"MessageFacts({p.message_id!r}, arm={p.arm!r}, send={self.send_status}, "
            f"revokes={ {k: v.status for k, v in self.revokes.items()} }, "
            f"delivered={self.delivered_at is not None}, fallback={self.fallback_reason})"
        )

    @property
    def sent(self) -> bool:
        """The platform answered the send (200 accepted or 404 not RCS-reachable)."""
        return self.send_status in (200, 404)

    # ------------------------------------------------------------------ reading the logs

    def apply_record(self, record: OutboxRecord) -> None:
        """Take in one outbox record about this message."""
        if isinstance(record, SendRecord):
            if record.status in (200, 404):
                if self.send_status != 200:  # a 200 wins over a 404 (never both, in practice)
                    self.send_status = record.status
                    self.send_time = record.send_time
                    self.expire_time = record.expire_time
            else:
                self.send_errors += 1
                self.send_error = record.error or f"status {record.status}"
        elif isinstance(record, RevokeRecord):
            answer = RevokeAnswer(record.status, record.requested_at)
            attempt = record.attempt or 1
            known = self.revokes.get(attempt)
            if known is None or (known.is_error and not answer.is_error):
                self.revokes[attempt] = answer
        elif isinstance(record, FallbackRecord) and self.fallback_reason is None:
            self.fallback_reason = record.reason
            self.fallback_at = record.sent_at

    def apply_event(self, event: UserEvent, at: datetime) -> bool:
        """Take in one webhook event (``at``: its platform time); True if a fact changed."""
        kind = event.event_type
        if kind == EventType.DELIVERED:
            if self.delivered_at is None or at < self.delivered_at:
                first = self.delivered_at is None
                self.delivered_at = at
                return first
        elif kind == EventType.READ and self.read_at is None:
            self.read_at = at
            return True
        elif kind == EventType.TTL_EXPIRATION_REVOKED and self.ttl_revoked_at is None:
            self.ttl_revoked_at = at
            return True
        elif kind == EventType.TTL_EXPIRATION_REVOKE_FAILED and self.ttl_failed_at is None:
            self.ttl_failed_at = at
            return True
        return False

    # ------------------------------------------------------------------ derived times

    def window_end(self, arm: Arm) -> datetime | None:
        """When the arm stops waiting for RBM: the expiry, or the API revoke time."""
        if self.send_status != 200 or self.send_time is None:
            return None
        if arm.method.uses_api or self.expire_time is None:
            return self.send_time + parse_duration(arm.duration)
        return self.expire_time


def _decide(
    facts: MessageFacts, answer: RevokeAnswer | None, policy: FallbackRule, reason: str = ""
) -> Step:
    """The fallback decision after the recovery revoke (or a TTL_EXPIRATION_REVOKED)."""
    if facts.delivered_at is not None:
        return Done(Outcome.DELIVERED)
    if not reason:
        reason = "revoked" if answer is not None and answer.status == 200 else "inconclusive"
    if policy.allows(reason):
        return Fallback(reason)
    return Done(Outcome.REVOKED if reason == "revoked" else Outcome.INCONCLUSIVE)


def next_step(
    facts: MessageFacts,
    arm: Arm,
    policy: FallbackPolicy | FallbackRule,
    grace: timedelta,
    now: datetime,
) -> Step:
    """What to do next for one message (see the module doc); pure and deterministic.

    ``policy`` is the spec's fallback rule (a bare ``FallbackPolicy`` covers revoked and
    inconclusive messages only). A send answered 404 (no RCS) falls back at once when the rule
    includes ``not_rcs``: there is nothing to wait for.
    """
    rule = policy if isinstance(policy, FallbackRule) else FallbackRule(FallbackPolicy(policy))
    if facts.fallback_reason is not None:
        return Done(Outcome.FALLBACK)
    if facts.send_status is None:
        return Send()
    if facts.send_status == 404:
        return Fallback("not_rcs") if rule.allows("not_rcs") else Done(Outcome.NOT_RCS)
    if facts.send_status != 200 or facts.send_time is None:
        return Done(Outcome.SEND_FAILED)
    delivered = facts.delivered_at is not None
    first, second = facts.revokes.get(1), facts.revokes.get(2)
    if second is not None:
        return _decide(facts, second, rule)
    if arm.method.uses_api:
        if first is None:
            if delivered and arm.method is RevokeMethod.API_AFTER_UNLESS_DELIVERED:
                return Done(Outcome.DELIVERED)
            due = facts.send_time + parse_duration(arm.duration)
            return Wait(due) if now < due else Revoke(1)
        if delivered:
            return Done(Outcome.DELIVERED)
        due = first.at + grace
        return Wait(due) if now < due else Revoke(2)
    # ttl / expire_time: the platform revokes at expiry and reports it
    if delivered:
        return Done(Outcome.DELIVERED)
    if facts.ttl_revoked_at is not None:
        return _decide(facts, None, rule, "revoked")
    expiry = facts.window_end(arm)
    assert expiry is not None
    signal = facts.ttl_failed_at or expiry
    due = max(signal, expiry) + grace
    return Wait(due) if now < due else Revoke(2)
