"""The emulator's SMS channel: senders that hand fallback SMS to the emulator's sink.

The protocol (``SmsSender``, ``SmsReceipt``) and the provider adapter (``CallableSmsSender``,
``load_sms_sender``) live in ``rbmtools.client.sms`` and are re-exported here. Offline,
``SinkSmsSender`` hands SMS to the emulator's ``SmsSink`` (``emu.sms``); ``EmulatorSmsSender``
reaches the sink of an emulator served elsewhere.
"""

from __future__ import annotations

from typing import Any

from rbmtools.client.sms import CallableSmsSender, SmsReceipt, SmsSender, load_sms_sender

__all__ = [
    "CallableSmsSender",
    "EmulatorSmsSender",
    "SinkSmsSender",
    "SmsReceipt",
    "SmsSender",
    "load_sms_sender",
]


class SinkSmsSender:
    """Sends to an emulator ``SmsSink`` (``emu.sms``): accepted at once, stamped on its clock.

    A repeat for the same message is accepted again and keeps the first arrival time; the sink
    counts it as a duplicate and does not deliver it twice.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def send_sms(self, phone: str, text: str, *, message_id: str) -> SmsReceipt:
        arrival, _duplicate = self.sink.receive(phone, text, message_id)
        return SmsReceipt(True, arrival.arrived_at, provider_id=message_id)

    def __repr__(self) -> str:
        return f"SinkSmsSender({self.sink!r})"


class EmulatorSmsSender:
    """Sends to the SMS sink of an emulator served elsewhere, through its admin surface
    (``POST /emulator/v1/sms``); ``mirror``, when given, keeps a local copy of each arrival
    (the run folder's ``sms.jsonl``)."""

    def __init__(self, admin: Any, mirror: Any = None) -> None:
        self.admin = admin
        self.mirror = mirror

    def send_sms(self, phone: str, text: str, *, message_id: str) -> SmsReceipt:
        from rbmtools.emulator.sms import SmsArrival

        answer = self.admin.send_sms(phone, text, message_id)
        arrival = SmsArrival.from_dict(answer["arrival"])
        if self.mirror is not None:
            self.mirror.record(arrival)
        return SmsReceipt(True, arrival.arrived_at, provider_id=message_id)

    def __repr__(self) -> str:
        return f"EmulatorSmsSender({self.admin!r})"
