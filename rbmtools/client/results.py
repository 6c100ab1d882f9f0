"""What the client's calls return: expected outcomes are values, not exceptions.

A send to a phone that cannot be reached over RCS returns ``SendResult(reachable=False)``; a
revoke of a message that was already delivered returns ``RevokeResult(revoked=False)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from rbmtools.client.sms import SmsReceipt

__all__ = ["AgentEventResult", "RevokeResult", "SendResult"]


@dataclass(frozen=True)
class SendResult:
    """The platform's answer to one send.

    ``status`` is 200 (accepted: the platform queues it even for an offline phone) or 404 (the
    phone is not RCS-reachable: the message never entered the platform; send it another way).
    ``send_time`` is the platform's time when it answered (the client's clock on a 404), and
    ``expire_time`` the absolute expiry the platform computed from ``ttl``/``expireTime``.
    ``attempts`` counts HTTP attempts; retries reuse the messageId, so they never double-send.
    Sent under a TTL policy: ``revoke_at`` is when an API-revoke rule wants the message revoked
    (the caller's to do), and ``fallback_sms`` the receipt of the SMS sent at once to a phone
    without RCS.
    """

    message_id: str
    phone: str
    status: int
    reachable: bool
    send_time: datetime
    expire_time: datetime | None = None
    attempts: int = 1
    revoke_at: datetime | None = None
    fallback_sms: SmsReceipt | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RevokeResult:
    """The platform's answer to one revoke.

    ``revoked`` is True when the platform answered 200: the message was removed from the
    user's queue and will not be delivered — except in the documented race, where a revoke
    that lands while the message is being handed to the device is answered 200 and a DELIVERED
    event still follows. ``status`` 404 means the message was already delivered (or the
    platform never saw that id). ``at`` is when the revoke was requested, on the platform's
    clock. When ``attempts`` > 1 and the answer is 404, an earlier attempt may have revoked the
    message before its answer was lost; treat that result as inconclusive.
    """

    message_id: str
    phone: str
    revoked: bool
    status: int
    at: datetime
    attempts: int = 1

    @property
    def inconclusive(self) -> bool:
        """A 404 after a retried attempt: the first attempt may have revoked the message."""
        return self.status == 404 and self.attempts > 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inconclusive": self.inconclusive}


@dataclass(frozen=True)
class AgentEventResult:
    """The answer to a READ receipt or typing indicator sent by the agent."""

    event_id: str
    phone: str
    event_type: str
    status: int
    reachable: bool
    attempts: int = 1
