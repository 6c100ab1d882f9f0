"""The live target: guard rails first, then a real run against an emulator at speed 1 (its
clock is the wall clock), with our own receiver and an SMS provider adapter."""

from __future__ import annotations

import secrets

import pytest
from experiment_helpers import RunLogs, make_spec

from rbmtools.emulator import Emulator
from rbmtools.errors import RbmError, ValidationError
from rbmtools.experiment import CallableSmsSender, run_experiment
from rbmtools.webhook import Receiver

PHONES = ["+15550100001", "+15550100002", "+15550100003", "+15550100004"]


@pytest.fixture
def phone_spec(tmp_path):
    phones = tmp_path / "phones.txt"
    phones.write_text("\n".join(PHONES) + "\n")
    return make_spec(
        name="live",
        audience={"phones_file": str(phones)},
        arms=[{"method": "api_after_unless_delivered", "duration": "2s"}],
        grace="1s",
        observe="1s",
    )


def test_live_needs_a_phone_list(tmp_path):
    with pytest.raises(ValidationError) as caught:
        run_experiment(make_spec(), "live", tmp_path, confirm=True, echo=None)
    assert caught.value.field == "audience" and "phone list" in str(caught.value)


def test_live_caps_the_recipients_unless_allowed(tmp_path, phone_spec):
    with pytest.raises(ValidationError) as caught:
        run_experiment(phone_spec, "live", tmp_path, max_recipients=3, dry_run=True, echo=None)
    assert caught.value.field == "recipients" and "allow_many" in str(caught.value)
    plan = run_experiment(
        phone_spec, "live", tmp_path, max_recipients=3, allow_many=True, dry_run=True, echo=None
    ).plan
    assert plan.recipients == 4 and plan.sms_at_most == 4


def test_live_prints_the_plan_and_sends_nothing_without_confirmation(tmp_path, phone_spec):
    printed: list[str] = []
    result = run_experiment(phone_spec, "live", tmp_path, dry_run=True, echo=printed.append)
    assert result.status == "dry-run" and not (tmp_path / "live").exists()
    assert "4 RBM messages to 4 numbers" in printed[0] and "at most 4 SMS" in printed[0]
    printed.clear()
    with pytest.raises(ValidationError) as caught:
        run_experiment(phone_spec, "live", tmp_path, sms=None, echo=printed.append)
    assert caught.value.field == "confirm" and printed  # the plan came first
    shown = []
    with pytest.raises(ValidationError, match="confirm"):
        run_experiment(phone_spec, "live", tmp_path, confirm=lambda p: shown.append(p) and False)
    assert shown[0].messages == 4
    with pytest.raises(ValidationError) as caught:
        run_experiment(phone_spec, "live", tmp_path, confirm=True, echo=None)
    assert caught.value.field == "sms"
    assert not (tmp_path / "live").exists()


def test_a_live_run_revokes_rechecks_and_falls_back(tmp_path, phone_spec):
    sent_sms: list[tuple[str, str, str]] = []

    def provider(phone: str, text: str, message_id: str) -> str:
        sent_sms.append((phone, text, message_id))
        return f"sms-{len(sent_sms)}"

    token = secrets.token_urlsafe(16)
    with (
        Emulator(profile="always-online", speed=1.0, seed=9) as emu,
        Receiver(tmp_path / "webhook-log", client_token=token) as rx,
    ):
        emu.admin.register_webhook(rx.url, token)
        for phone in PHONES[:2]:
            emu.admin.pin_phone(phone, latency="0.2s")
        for phone in PHONES[2:]:
            emu.admin.pin_phone(phone, online="never")
        result = run_experiment(
            phone_spec,
            "live",
            tmp_path,
            key_file=emu.key_file,
            agent_id=emu.agent_id,
            base_url=emu.base_url,
            events_dir=rx.log_dir,
            sms=CallableSmsSender(provider),
            confirm=lambda plan: plan.recipients == 4,  # what a prompt would check
            progress=False,
            echo=None,
        )
    assert result.status == "complete"
    assert result.stats.outcomes == {"delivered": 2, "fallback": 2}
    assert sorted(phone for phone, _, _ in sent_sms) == PHONES[2:]
    logs = RunLogs(result.run_dir)
    assert sorted((r.phone, r.attempt, r.status) for r in logs.revokes) == [
        (PHONES[2], 1, 200), (PHONES[2], 2, 200), (PHONES[3], 1, 200), (PHONES[3], 2, 200),
    ]  # fmt: skip
    for revoke in (r for r in logs.revokes if r.attempt == 2):
        first = next(
            r for r in logs.revokes if r.message_id == revoke.message_id and r.attempt == 1
        )
        assert (revoke.requested_at - first.requested_at).total_seconds() >= 1.0
    assert {f.reason for f in logs.fallbacks} == {"revoked"}
    assert result.summary["fallbacks"].sum() == 2


def test_a_silent_webhook_log_holds_every_fallback_and_stops_the_run(tmp_path, phone_spec):
    """The receiver is not logging where the run looks: without the guard, delivered messages
    would look inconclusive and get the SMS as well."""
    spec = phone_spec.replace(fallback="on_revoked_or_inconclusive")
    sent_sms: list[str] = []
    token = secrets.token_urlsafe(16)
    options = {
        "key_file": None,
        "sms": CallableSmsSender(lambda phone, text, message_id: sent_sms.append(phone)),
        "confirm": True,
        "progress": False,
        "echo": None,
    }
    with (
        Emulator(profile="always-online", speed=1.0, seed=9) as emu,
        Receiver(tmp_path / "webhook-log", client_token=token) as rx,
    ):
        options.update(key_file=emu.key_file, agent_id=emu.agent_id, base_url=emu.base_url)
        for phone in PHONES[:2]:
            emu.admin.pin_phone(phone, latency="0.2s")
        for phone in PHONES[2:]:
            emu.admin.pin_phone(phone, online="never")
        with pytest.raises(RbmError, match="no webhook event about this run"):
            run_experiment(
                spec, "live", tmp_path, events_dir=rx.log_dir, event_timeout="3s", **options
            )
        assert sent_sms == [] and not RunLogs(tmp_path / "live").fallbacks
        emu.admin.register_webhook(rx.url, token)  # the backlog of events now flows
        result = run_experiment(
            spec, "live", tmp_path, events_dir=rx.log_dir, resume=True, **options
        )
    assert result.status == "complete"
    assert sorted(sent_sms) == PHONES[2:]  # only the undelivered ones
    assert result.stats.outcomes == {"delivered": 2, "fallback": 2}
