"""Sending by use case: what a TTL policy adds to a send, and the SMS for phones without RCS.

A client given a TTL policy (``RbmClient(..., policy="policy.yaml")``) looks up the rule of a
send's ``use_case`` and fills in what the caller left out: the expiry (``ttl`` or
``expire_time``; nothing for the API revoke methods, whose revoke time comes back in
``SendResult.revoke_at``) and the traffic type. Explicit arguments always win. When the rule's
fallback includes ``not_rcs``, a send answered 404 (or skipped because a capability check said
the phone has no RCS) is followed at once by the SMS, through the client's SMS sender, and a
``fallback`` record with reason ``not_rcs`` joins the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rbmtools.client.outbox import OutboxWriter
from rbmtools.client.sms import SmsReceipt, SmsSender
from rbmtools.errors import ValidationError
from rbmtools.wire.records import FallbackRecord
from rbmtools.wire.ttl_policy import TtlPolicy, UseCaseRule

__all__ = ["SendPlan", "plan_send", "send_fallback_sms"]


@dataclass(frozen=True)
class SendPlan:
    """A send's arguments once the policy's rule is applied."""

    rule: UseCaseRule | None
    policy_version: str | None
    ttl: object
    expire_time: object
    traffic_type: str | None
    sms_text: str | None

    @property
    def falls_back_for_no_rcs(self) -> bool:
        return self.rule is not None and self.rule.fallback.allows("not_rcs")


def _message_text(message: Mapping[str, Any] | None) -> str | None:
    if not isinstance(message, Mapping):
        return None
    content = message.get("contentMessage", message)
    text = content.get("text") if isinstance(content, Mapping) else None
    return text if isinstance(text, str) else None


def plan_send(
    policy: TtlPolicy | None,
    use_case: str | None,
    *,
    text: str | None,
    message: Mapping[str, Any] | None,
    ttl: object,
    expire_time: object,
    traffic_type: str | None,
    sms_text: str | None,
    sms: SmsSender | None,
    now: Callable[[], datetime],
) -> SendPlan:
    """Apply the rule of ``use_case`` (if the client has a policy) to a send's arguments.

    The policy's expiry applies only when the send names none (argument or message body); its
    traffic type only when none is given. A rule that sends the SMS to phones without RCS
    needs an SMS sender and a text (``sms_text``, else the message's text): both are checked
    here, before any I/O.
    """
    if policy is None or use_case is None:
        return SendPlan(None, None, ttl, expire_time, traffic_type, sms_text)
    rule = policy.rule(use_case)
    body_expiry = isinstance(message, Mapping) and ("ttl" in message or "expireTime" in message)
    if ttl is None and expire_time is None and not body_expiry:
        expiry = rule.expiry(now())
        ttl, expire_time = expiry.get("ttl"), expiry.get("expire_time")
    traffic_type = traffic_type or rule.traffic_type
    plan = SendPlan(rule, policy.version, ttl, expire_time, traffic_type, sms_text)
    if plan.falls_back_for_no_rcs:
        if sms is None:
            raise ValidationError(
                "sms",
                None,
                f"the TTL policy's fallback for {use_case!r} ({rule.fallback}) sends the SMS to "
                "phones without RCS: give the client an SMS sender (sms=...)",
            )
        fallback_text = sms_text or text or _message_text(message)
        if not fallback_text:
            raise ValidationError(
                "sms_text", None, "a rich message needs sms_text for the no-RCS fallback SMS"
            )
        plan = SendPlan(rule, policy.version, ttl, expire_time, traffic_type, fallback_text)
    return plan


def send_fallback_sms(
    sms: SmsSender,
    outbox: OutboxWriter | None,
    *,
    phone: str,
    text: str,
    message_id: str,
    reason: str,
    agent_id: str,
    clock: Callable[[], datetime],
    experiment: str | None = None,
    arm: str | None = None,
) -> SmsReceipt:
    """Send one fallback SMS and, once the provider accepted it, record it in the outbox
    (``reason``: ``revoked``, ``inconclusive`` or ``not_rcs``). A provider that raises gives a
    refused receipt whose ``error`` says why, not an exception: the RBM send before it is
    recorded already, and the caller decides what a refusal means (a resume tries again)."""
    try:
        receipt = sms.send_sms(phone, text, message_id=message_id)
    except Exception as exc:  # the provider's failure is this SMS's outcome
        return SmsReceipt(False, clock(), error=f"{type(exc).__name__}: {exc}"[:300])
    if receipt.accepted and outbox is not None:
        outbox.write(
            FallbackRecord(
                message_id=message_id,
                phone=phone,
                channel="sms",
                sent_at=receipt.at,
                reason=reason,
                agent_id=agent_id,
                experiment=experiment,
                arm=arm,
            )
        )
    return receipt
