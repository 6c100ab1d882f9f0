"""The SMS channel: the emulator's sink and the provider adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sms_adapters

from rbmtools.emulator import VirtualClock
from rbmtools.emulator.sms import SmsSink
from rbmtools.errors import ApiError, ValidationError
from rbmtools.experiment import (
    CallableSmsSender,
    SinkSmsSender,
    SmsSender,
    load_sms_sender,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_the_sink_records_arrivals_on_the_platform_clock(tmp_path):
    clock = VirtualClock(speed=0.0, start=T0)
    sink = SmsSink(clock.now, tmp_path / "sms.jsonl")
    first, duplicate = sink.receive("+1 555 000 0001", "Code 123456", "m-1")
    assert not duplicate and first.arrived_at == T0 and first.phone == "+15550000001"
    clock.advance(90)
    again, duplicate = sink.receive("+15550000001", "Code 123456", "m-1")
    assert duplicate and again == first  # idempotent per messageId
    second, _ = sink.receive("+15550000002", "Code 654321", "m-2")
    assert second.arrived_at == T0 + timedelta(seconds=90)
    assert len(sink) == 2 and sink.stats() == {"arrivals": 2, "duplicates": 1}
    assert sink.arrival("m-2") == second and sink.arrivals("+15550000002") == [second]
    sink.close()
    lines = (tmp_path / "sms.jsonl").read_text().splitlines()
    assert lines[0] == (
        '{"phone":"+15550000001","messageId":"m-1","text":"Code 123456",'
        '"arrivedAt":"2026-11-25T10:00:00Z"}'
    )
    assert len(lines) == 2


def test_a_reopened_sink_keeps_deduplicating_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "sms.jsonl"
    sink = SmsSink(lambda: T0, path)
    sink.receive("+15550000001", "a", "m-1")
    sink.close()
    with open(path, "a") as handle:
        handle.write('{"phone":"+155')  # a crash mid-write
    reopened = SmsSink(lambda: T0 + timedelta(hours=1), path)
    assert reopened.receive("+15550000001", "a", "m-1")[1] is True
    reopened.receive("+15550000003", "c", "m-3")
    reopened.close()
    lines = path.read_text().splitlines()
    assert [(line[10:22], line[-23:]) for line in lines] == [
        ("+15550000001", '"2026-11-25T10:00:00Z"}'),
        ("+15550000003", '"2026-11-25T11:00:00Z"}'),
    ]
    again = SmsSink(lambda: T0, path)
    again.open_log(path)  # the same file a second time adds nothing twice
    assert len(again) == 2
    again.close()
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(ValidationError, match="line 1"):
        SmsSink(lambda: T0, tmp_path / "bad.jsonl")


def test_the_sink_checks_its_input():
    sink = SmsSink(lambda: T0)
    with pytest.raises(ValidationError):
        sink.receive("5550000001", "x")
    with pytest.raises(ValidationError):
        sink.receive("+15550000001", "")
    with pytest.raises(ValidationError):
        sink.receive("+15550000001", "x" * 1601)


def test_sink_sender_is_an_sms_sender():
    sink = SmsSink(lambda: T0)
    sender = SinkSmsSender(sink)
    assert isinstance(sender, SmsSender)
    receipt = sender.send_sms("+15550000001", "hi", message_id="m-1")
    assert receipt.accepted and receipt.at == T0 and receipt.provider_id == "m-1"
    assert sender.send_sms("+15550000001", "hi", message_id="m-1").accepted
    assert len(sink) == 1


def test_callable_sender_turns_provider_answers_into_receipts():
    answers = iter(["ref-1", None, False])

    def provider(phone, text, message_id):
        answer = next(answers, None)
        if answer is None and message_id == "boom":
            raise ConnectionError("provider down")
        return answer

    sender = CallableSmsSender(provider, clock=lambda: T0)
    accepted = sender.send_sms("+15550000001", "hi", message_id="m-1")
    assert (accepted.accepted, accepted.provider_id, accepted.at) == (True, "ref-1", T0)
    assert sender.send_sms("+15550000001", "hi", message_id="m-2").accepted
    refused = sender.send_sms("+15550000001", "hi", message_id="m-3")
    assert not refused.accepted and "refused" in refused.error
    failed = sender.send_sms("+15550000001", "hi", message_id="boom")
    assert not failed.accepted and failed.error == "ConnectionError: provider down"
    with pytest.raises(ValidationError):
        CallableSmsSender("not callable")  # type: ignore[arg-type]


def test_load_sms_sender_accepts_functions_classes_factories_and_objects():
    function = load_sms_sender("sms_adapters:send_function")
    assert isinstance(function, CallableSmsSender)
    assert function.send_sms("+15550000001", "hi", message_id="m-1").provider_id == "ref-1"
    assert sms_adapters.SENT == [("+15550000001", "hi", "m-1")]
    for name in ("ProviderSender", "make_sender", "READY"):
        assert isinstance(load_sms_sender(f"sms_adapters:{name}"), SmsSender)
    for bad, problem in (
        ("sms_adapters", "package.module:name"),
        ("no_such_module_here:x", "cannot import"),
        ("sms_adapters:missing", "has no missing"),
        ("sms_adapters:NOT_A_SENDER", "neither"),
    ):
        with pytest.raises(ValidationError, match=problem):
            load_sms_sender(bad)


def test_the_emulator_provides_the_sink_in_process_and_over_its_admin_surface(tmp_path):
    from rbmtools.emulator import Emulator
    from rbmtools.experiment import EmulatorSmsSender

    with Emulator(speed=0.0, seed=1) as emu:
        assert isinstance(emu.sms, SmsSink)
        sent = emu.admin.send_sms("+15550000001", "Code 1", "m-1")
        assert sent["duplicate"] is False
        assert sent["arrival"]["arrivedAt"] == emu.admin.clock()["now"]  # the platform clock
        emu.admin.advance("10m")
        mirror = SmsSink(lambda: T0, tmp_path / "mirror.jsonl")
        sender = EmulatorSmsSender(emu.admin, mirror)
        receipt = sender.send_sms("+15550000002", "Code 2", message_id="m-2")
        again = sender.send_sms("+15550000002", "Code 2", message_id="m-2")
        assert again.at == receipt.at == emu.clock.now()  # the first arrival, kept
        assert [a.message_id for a in emu.sms.arrivals()] == ["m-1", "m-2"]
        assert [a["messageId"] for a in emu.admin.sms()] == ["m-1", "m-2"]
        assert emu.admin.sms(phone="+15550000002")[0]["text"] == "Code 2"
        assert emu.admin.sms(message_id="m-1")[0]["phone"] == "+15550000001"
        assert emu.admin.stats()["sms"] == {"arrivals": 2, "duplicates": 1}
        assert [a.message_id for a in mirror.arrivals()] == ["m-2"]  # mirrored once
        assert mirror.arrival("m-2").arrived_at == receipt.at
        with pytest.raises(ApiError) as caught:
            emu.admin.send_sms("5550000003", "bad number")
        assert caught.value.status == 400
        emu.admin.reset()
        assert emu.admin.sms() == [] and len(emu.sms) == 0
