"""The rehearsal: one wiring of emulator, receiver and client, in its three emulator modes."""

from __future__ import annotations

import asyncio

import pytest

from rbmtools.emulator import Emulator
from rbmtools.errors import RbmError, ValidationError
from rbmtools.experiment import Rehearsal
from rbmtools.webhook import read_events
from rbmtools.wire import parse_outbox_record

PHONE = "+15550100009"


def _send_and_see_delivered(rehearsal: Rehearsal) -> str:
    rehearsal.admin.pin_phone(PHONE, online="always", latency=1)
    sent = rehearsal.client.send(PHONE, "hello", ttl="1m", use_case="otp")
    rehearsal.admin.advance(5)
    rehearsal.settle()
    kinds = [e.event.event_type for e in read_events(rehearsal.events_dir)]
    assert "DELIVERED" in kinds
    return sent.message_id


def test_an_owned_emulator_is_wired_and_stopped(tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    with Rehearsal.open(tmp_path / "events", speed=0, seed=3, outbox=outbox) as rehearsal:
        assert rehearsal.owned and rehearsal.emulator is not None
        message_id = _send_and_see_delivered(rehearsal)
        sms = rehearsal.sms_sender(tmp_path / "sms.jsonl")
        receipt = sms.send_sms(PHONE, "code", message_id=message_id)
        assert receipt.accepted and receipt.at == rehearsal.clock.now()
        emulator = rehearsal.emulator
    with pytest.raises(RbmError, match="not running"):  # close() stopped it
        emulator.call(asyncio.sleep(0))
    (record,) = [parse_outbox_record(line) for line in outbox.read_text().splitlines()]
    assert record.message_id == message_id and record.use_case == "otp"
    assert (tmp_path / "sms.jsonl").read_text().count(message_id) == 1


def test_a_running_emulator_is_used_then_detached(tmp_path):
    with Emulator(profile="default", speed=0, seed=1) as emu:
        with Rehearsal.open(tmp_path / "events", emulator=emu, profile="always-online") as r:
            assert not r.owned and r.emulator is emu
            assert emu.admin.webhook()["registered"] is True
            assert emu.admin.profile()["name"] == "always-online"  # the profile was loaded
            _send_and_see_delivered(r)
        assert emu.admin.webhook()["registered"] is False  # ours no more; still running
        assert emu.admin.clock()["now"]


def test_an_emulator_served_elsewhere_is_attached_by_url(tmp_path):
    with Emulator(speed=0, seed=2) as emu:
        with pytest.raises(ValidationError, match="key_file"):
            Rehearsal.open(tmp_path / "events", emulator=emu.base_url)
        with Rehearsal.open(
            tmp_path / "events", emulator=emu.base_url, key_file=emu.key_file
        ) as rehearsal:
            assert rehearsal.emulator is None and not rehearsal.owned
            message_id = _send_and_see_delivered(rehearsal)
            sms = rehearsal.sms_sender(tmp_path / "sms.jsonl")  # through the admin surface
            sms.send_sms(PHONE, "code", message_id=message_id)
        assert [a.message_id for a in emu.sms.arrivals()] == [message_id]
        assert emu.admin.webhook()["registered"] is False
