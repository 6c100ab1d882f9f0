"""Provider adapters for ``load_sms_sender`` tests (what a user's module would hold)."""

from __future__ import annotations

from datetime import UTC, datetime

from rbmtools.experiment import SmsReceipt

SENT: list[tuple[str, str, str]] = []


def send_function(phone: str, text: str, message_id: str) -> str:
    SENT.append((phone, text, message_id))
    return f"ref-{len(SENT)}"


class ProviderSender:
    def send_sms(self, phone: str, text: str, *, message_id: str) -> SmsReceipt:
        return SmsReceipt(True, datetime.now(UTC), provider_id=message_id)


def make_sender() -> ProviderSender:
    return ProviderSender()


READY = ProviderSender()
NOT_A_SENDER = 42
