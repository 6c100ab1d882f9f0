"""Sending by use case under a TTL policy, and the SMS for phones without RCS, against the
emulator (its SMS sink stands in for the provider)."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pytest

from rbmtools.cli import main
from rbmtools.client import RbmClient
from rbmtools.errors import ValidationError
from rbmtools.experiment import SinkSmsSender
from rbmtools.wire import FallbackRecord, SendRecord, parse_outbox_record
from rbmtools.wire.ttl_policy import TtlPolicy

PHONE = "+15550100001"
NO_RCS = "+15550100002"
POLICY = {
    "version": 3,
    "use_cases": {
        "otp": {
            "method": "ttl",
            "duration": "19s",
            "traffic_type": "AUTHENTICATION",
            "fallback": ["on_revoked_or_inconclusive", "not_rcs"],
        },
        "alert": {"method": "expire_time", "duration": "2m", "fallback": "on_revoked"},
        "promo": {
            "method": "api_after_unless_delivered",
            "duration": "3h",
            "traffic_type": "PROMOTION",
            "fallback": "none",
        },
    },
}


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    TtlPolicy.from_dict(POLICY).save(path)
    return path


def calls(emu) -> dict[str, int]:
    return dict(emu.admin.stats()["api"]["calls"])


def records(path):
    return [parse_outbox_record(line) for line in path.read_text().splitlines()]


def test_the_rule_of_the_use_case_gives_expiry_and_traffic_type(emu, tmp_path, policy_file):
    outbox = tmp_path / "outbox.jsonl"
    sink = SinkSmsSender(emu.sms)
    with RbmClient.from_emulator(emu, outbox=outbox, policy=policy_file, sms=sink) as client:
        otp = client.send(PHONE, "Your code is 123456", use_case="otp")
        alert = client.send(PHONE, "Card blocked", use_case="alert")
        promo = client.send(PHONE, "Sale", use_case="promo")
        mine = client.send(PHONE, "Code", use_case="otp", ttl="5m", traffic_type="TRANSACTION")
        plain = client.send(PHONE, "no use case")
        with pytest.raises(ValidationError, match="is not in TTL policy version 3"):
            client.send(PHONE, "Hi", use_case="newsletter")  # refused before any I/O
    assert otp.expire_time - otp.send_time == timedelta(seconds=19)
    # an absolute expireTime counts from the client's "now", a hair before the platform's
    window = alert.expire_time - alert.send_time
    assert timedelta(minutes=2) - timedelta(seconds=5) < window <= timedelta(minutes=2)
    assert promo.expire_time is None and promo.revoke_at == promo.send_time + timedelta(hours=3)
    assert mine.expire_time - mine.send_time == timedelta(minutes=5)  # explicit wins
    sends = {r.message_id: r for r in records(outbox)}
    assert len(sends) == 5  # the refused one never reached the outbox
    assert (sends[otp.message_id].ttl, sends[otp.message_id].traffic_type) == (
        "19s",
        "AUTHENTICATION",
    )
    assert sends[alert.message_id].ttl is None and sends[alert.message_id].expire_time
    assert sends[promo.message_id].traffic_type == "PROMOTION"
    assert sends[mine.message_id].traffic_type == "TRANSACTION"
    assert {r.policy_version for r in sends.values()} == {"3", None}
    assert sends[plain.message_id].policy_version is None
    assert sends[otp.message_id].use_case == "otp"
    platform = {m["messageId"]: m for m in emu.admin.messages()}
    assert platform[otp.message_id]["expireTime"] == sends[otp.message_id].to_dict()["expireTime"]


def test_a_phone_without_rcs_gets_exactly_one_sms_when_the_rule_says_so(emu, tmp_path, policy_file):
    emu.admin.pin_phone(NO_RCS, rcs_capable=False)
    outbox = tmp_path / "outbox.jsonl"
    sink = SinkSmsSender(emu.sms)
    with RbmClient.from_emulator(emu, outbox=outbox, policy=policy_file, sms=sink) as client:
        otp = client.send(NO_RCS, "Your code is 123456", use_case="otp")
        again = client.send(NO_RCS, "Your code is 123456", use_case="otp", message_id="m-again")
        promo = client.send(NO_RCS, "Sale", use_case="promo")  # fallback none
        alert = client.send(NO_RCS, "Card blocked", use_case="alert")  # on_revoked only
        reachable = client.send(PHONE, "Your code is 654321", use_case="otp")
    assert otp.status == 404 and otp.fallback_sms is not None and otp.fallback_sms.accepted
    assert again.fallback_sms.accepted
    assert promo.fallback_sms is None and alert.fallback_sms is None
    assert reachable.fallback_sms is None
    arrivals = emu.sms.arrivals(NO_RCS)
    assert sorted(a.message_id for a in arrivals) == sorted([otp.message_id, "m-again"])
    assert {a.text for a in arrivals} == {"Your code is 123456"}
    fallbacks = [r for r in records(outbox) if isinstance(r, FallbackRecord)]
    assert sorted((f.message_id, f.reason) for f in fallbacks) == sorted(
        [(otp.message_id, "not_rcs"), ("m-again", "not_rcs")]
    )
    assert all(f.sent_at == emu.sms.arrival(f.message_id).arrived_at for f in fallbacks)


def test_a_capability_check_skips_the_rbm_send_and_falls_back(emu, tmp_path, policy_file):
    emu.admin.pin_phone(NO_RCS, rcs_capable=False)
    outbox = tmp_path / "outbox.jsonl"
    sink = SinkSmsSender(emu.sms)
    before = calls(emu)
    with RbmClient.from_emulator(emu, outbox=outbox, policy=policy_file, sms=sink) as client:
        result = client.send(NO_RCS, "Code 1", use_case="otp", check_capabilities=True)
        fine = client.send(PHONE, "Code 2", use_case="otp", check_capabilities=True)
    assert (result.status, result.attempts, result.fallback_sms.accepted) == (404, 0, True)
    assert fine.status == 200
    after = calls(emu)
    made = {k: after.get(k, 0) - before.get(k, 0) for k in ("send", "capabilities")}
    assert made == {"send": 1, "capabilities": 2}  # no create call for NO_RCS
    kinds = [(type(r).__name__, r.status if isinstance(r, SendRecord) else r.reason)
             for r in records(outbox)]  # fmt: skip
    assert kinds == [("SendRecord", 404), ("FallbackRecord", "not_rcs"), ("SendRecord", 200)]


def test_a_rule_that_falls_back_needs_a_sender_and_a_text(emu, policy_file):
    before = calls(emu).get("send", 0)
    with RbmClient.from_emulator(emu, policy=policy_file) as client:
        with pytest.raises(ValidationError, match=r"sms: .*give the client an SMS sender"):
            client.send(NO_RCS, "Code", use_case="otp")
        client.sms = SinkSmsSender(emu.sms)
        card = {"richCard": {"standaloneCard": {"cardContent": {"title": "Code"}}}}
        with pytest.raises(ValidationError, match="sms_text"):
            client.send(NO_RCS, message=card, use_case="otp")
    assert calls(emu).get("send", 0) == before  # nothing was sent


def test_rbmtools_send_by_use_case(emu, tmp_path, policy_file, capsys, monkeypatch):
    monkeypatch.setenv("RBM_SERVICE_ACCOUNT", str(emu.key_file))
    monkeypatch.setenv("RBM_AGENT_ID", emu.agent_id)
    monkeypatch.setenv("RBM_BASE_URL", emu.base_url)
    adapter = tmp_path / "my_sms_adapter.py"
    adapter.write_text(
        textwrap.dedent(
            """
            SENT = []

            def send(phone, text, message_id):
                SENT.append((phone, text, message_id))
                return "provider-" + message_id
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    emu.admin.pin_phone(NO_RCS, rcs_capable=False)
    outbox = tmp_path / "outbox.jsonl"
    common = ["--policy", str(policy_file), "--outbox", str(outbox), "--sms", "my_sms_adapter:send"]
    assert main(["send", PHONE, "Code 1", "--use-case", "otp", *common]) == 0
    out = capsys.readouterr().out
    assert "under TTL policy 3 (otp)" in out and "expires" in out
    assert main(["send", NO_RCS, "Code 2", "--use-case", "otp", "--json", *common]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == 404 and answer["fallback_sms"]["accepted"] is True
    import my_sms_adapter

    assert [(p, t) for p, t, _ in my_sms_adapter.SENT] == [(NO_RCS, "Code 2")]
    assert main(["send", PHONE, "Code", "--policy", str(policy_file)]) == 2
    assert "--use-case: is required with --policy" in capsys.readouterr().err
    sends = [r for r in records(outbox) if isinstance(r, SendRecord)]
    assert [(s.ttl, s.policy_version) for s in sends] == [("19s", "3"), ("19s", "3")]
