"""Every outcome a test must be able to produce on demand, over real loopback HTTP.

Each scenario runs on a stepping-mode emulator (time moves only with ``admin.advance``), with
google-auth's real token flow, and checks the signed webhooks a real endpoint received.
"""

from __future__ import annotations

from datetime import timedelta

from rbmtools import wire

from .conftest import PHONE, START


def _at(seconds: float) -> str:
    return wire.format_timestamp(START + timedelta(seconds=seconds))


def _settle(emu, sink, seconds) -> None:
    emu.admin.advance(seconds)
    assert emu.admin.wait_idle(10)


def test_delivered_then_revoke_answers_404(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, online="always", latency=2, read_after="never")
    sent = api.send("m-delivered", ttl="10m")
    assert sent.status_code == 200
    assert sent.json()["sendTime"] == _at(0)
    assert sent.json()["expireTime"] == _at(600)
    _settle(stepping, sink, 60)
    delivered = sink.of_type("DELIVERED", "m-delivered")
    assert len(delivered) == 1
    assert delivered[0]["sendTime"] == _at(2)
    assert delivered[0]["senderPhoneNumber"] == PHONE
    assert delivered[0]["agentId"] == f"{stepping.agent_id}@rbm.goog"  # as Google sends it
    revoked = api.revoke("m-delivered")
    assert revoked.status_code == 404
    assert revoked.json()["error"]["status"] == "NOT_FOUND"
    assert stepping.admin.message("m-delivered")["state"] == "delivered"
    assert not sink.rejected


def test_revoked_by_api_is_never_delivered(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, offline_for="1d", latency=2)
    assert api.send("m-revoked", ttl="2h").status_code == 200
    _settle(stepping, sink, 300)
    answer = api.revoke("m-revoked")
    assert (answer.status_code, answer.json()) == (200, {})
    assert api.revoke("m-revoked").status_code == 200  # repeating a revoke is safe
    _settle(stepping, sink, 3 * 86_400)
    assert sink.types_for("m-revoked") == []
    message = stepping.admin.message("m-revoked")
    assert message["state"] == "revoked"
    assert message["revokedTime"] == _at(300)


def test_ttl_expiry_revokes_a_queued_message(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, offline_for="1d", latency=2)
    assert api.send("m-ttl", ttl="10m").status_code == 200
    _settle(stepping, sink, 599)
    assert sink.types_for("m-ttl") == []
    _settle(stepping, sink, 2 * 86_400)
    revoked = sink.of_type("TTL_EXPIRATION_REVOKED", "m-ttl")
    assert len(revoked) == 1
    assert revoked[0]["sendTime"] == _at(600)
    assert revoked[0]["phoneNumber"] == PHONE  # server events name phoneNumber
    assert "senderPhoneNumber" not in revoked[0]
    assert sink.types_for("m-ttl") == ["TTL_EXPIRATION_REVOKED"]
    assert api.revoke("m-ttl").status_code == 200  # already out of the queue


def test_expiry_during_handoff_fails_and_may_still_deliver(stepping, api, sink):
    stepping.admin.load_profile(
        {"extends": "always-online", "delivery": {"ttl_failed_delivered_probability": 1.0}}
    )
    stepping.admin.pin_phone(PHONE, online="always", latency=30, read_after="never")
    # The hand-off is the last second before delivery (29 s to 30 s): expire inside it.
    assert api.send("m-ttl-failed", ttl="29.5s").status_code == 200
    _settle(stepping, sink, 120)
    failed = sink.of_type("TTL_EXPIRATION_REVOKE_FAILED", "m-ttl-failed")
    assert [e["sendTime"] for e in failed] == [_at(29.5)]
    assert [e["sendTime"] for e in sink.of_type("DELIVERED", "m-ttl-failed")] == [_at(30)]
    assert api.revoke("m-ttl-failed").status_code == 404


def test_expiry_during_handoff_can_end_in_neither(stepping, api, sink):
    stepping.admin.load_profile(
        {"extends": "always-online", "delivery": {"ttl_failed_delivered_probability": 0.0}}
    )
    stepping.admin.pin_phone(PHONE, online="always", latency=30)
    assert api.send("m-neither", ttl="29.5s").status_code == 200
    _settle(stepping, sink, 3600)
    assert sink.types_for("m-neither") == ["TTL_EXPIRATION_REVOKE_FAILED"]
    assert stepping.admin.message("m-neither")["state"] == "revoke_failed"


def test_race_revoke_in_handoff_answers_200_then_delivered(stepping, api, sink):
    stepping.admin.load_profile({"extends": "always-online", "delivery": {"race_probability": 1.0}})
    stepping.admin.pin_phone(PHONE, online="always", latency=30, read_after="never")
    assert api.send("m-race", ttl="10m").status_code == 200
    _settle(stepping, sink, 29.5)
    message = stepping.admin.message("m-race")
    assert message["inHandoff"] is True
    assert api.revoke("m-race").status_code == 200
    _settle(stepping, sink, 60)
    delivered = sink.of_type("DELIVERED", "m-race")
    assert [e["sendTime"] for e in delivered] == [_at(30)]
    message = stepping.admin.message("m-race")
    assert message["state"] == "delivered"
    assert message["deliveredAfterRevoke"] is True
    assert api.revoke("m-race").status_code == 404  # the documented recovery: revoke again


def test_revoke_in_handoff_can_win(stepping, api, sink):
    stepping.admin.load_profile({"extends": "always-online", "delivery": {"race_probability": 0.0}})
    stepping.admin.pin_phone(PHONE, online="always", latency=30)
    assert api.send("m-won", ttl="10m").status_code == 200
    _settle(stepping, sink, 29.5)
    assert api.revoke("m-won").status_code == 200
    _settle(stepping, sink, 3600)
    assert sink.types_for("m-won") == []


def test_offline_for_days_then_back(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, offline_for="3d", latency=2, read_after=60)
    assert api.send("m-days").status_code == 200
    _settle(stepping, sink, 2 * 86_400)
    assert sink.types_for("m-days") == []
    assert stepping.admin.message("m-days")["state"] == "queued"
    _settle(stepping, sink, 2 * 86_400)
    delivered = sink.of_type("DELIVERED", "m-days")
    assert [e["sendTime"] for e in delivered] == [_at(3 * 86_400 + 2)]
    assert [e["sendTime"] for e in sink.of_type("READ", "m-days")] == [_at(3 * 86_400 + 62)]


def test_never_back_is_held_30_days_then_dropped(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, online="never")
    assert api.send("m-gone").status_code == 200
    _settle(stepping, sink, 29 * 86_400)
    assert stepping.admin.message("m-gone")["state"] == "queued"
    _settle(stepping, sink, 2 * 86_400)
    message = stepping.admin.message("m-gone")
    assert message["state"] == "dropped"
    assert message["dropTime"] == _at(30 * 86_400)
    assert sink.types_for("m-gone") == []
    assert api.revoke("m-gone").status_code == 404


def test_not_rcs_capable_answers_404(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, rcs_capable=False)
    sent = api.send("m-sms-only")
    assert sent.status_code == 404
    assert sent.json()["error"]["status"] == "NOT_FOUND"
    assert api.capabilities().status_code == 404
    assert stepping.admin.message("m-sms-only") is None


def test_unlaunched_agent_may_only_message_testers(stepping, api, sink):
    """Google answers 404 NOT_FOUND (not 403) to a send or capability check of an unlaunched
    agent to someone who is not its tester."""
    stepping.admin.set_launched(False)
    sent = api.send("m-unlaunched")
    assert sent.status_code == 404
    assert sent.json()["error"]["status"] == "NOT_FOUND"
    assert api.capabilities().status_code == 404
    assert api.capabilities().json()["error"]["status"] == "NOT_FOUND"
    assert PHONE in stepping.admin.add_testers([PHONE])
    assert api.send("m-to-tester").status_code == 200
    assert api.capabilities().status_code == 200
    other = "+447700900123"
    assert api.send("m-other", phone=other).status_code == 404
    assert other in stepping.admin.add_testers([other])
    assert api.send("m-other", phone=other).status_code == 200


def test_a_reused_message_id_is_ignored_and_answers_the_original(stepping, api, sink):
    stepping.admin.pin_phone(PHONE, online="always", latency=5, read_after="never")
    first = api.send("m-dup", ttl="10m")
    stepping.admin.advance(1)
    again = api.send("m-dup", ttl="1h")  # a retry (even with another body) changes nothing
    assert again.status_code == 200
    assert again.json() == first.json()
    _settle(stepping, sink, 60)
    assert sink.types_for("m-dup") == ["DELIVERED"]
    assert stepping.admin.stats()["ignoredReusedIds"] == 1


def test_messages_and_agent_events_share_one_id_namespace(stepping, api, sink):
    assert api.send("shared-id").status_code == 200
    event = api.session.post(
        api.base + wire.agent_events_path(PHONE),
        params={"eventId": "shared-id", "agentId": api.agent},
        json={"eventType": "READ", "messageId": "user-msg-1"},
        timeout=10,
    )
    assert event.status_code == 200
    assert event.json()["name"] == f"phones/{PHONE}/agentMessages/shared-id"  # the original
    typing = api.session.post(
        api.base + wire.agent_events_path(PHONE),
        params={"eventId": "evt-typing", "agentId": api.agent},
        json={"eventType": "IS_TYPING"},
        timeout=10,
    )
    assert typing.json() == {
        "name": f"phones/{PHONE}/agentEvents/evt-typing",
        "eventType": "IS_TYPING",
    }


def test_legacy_revoke_always_answers_200(sink):
    from rbmtools.emulator import Emulator

    from .conftest import Api

    with Emulator(profile="always-online", speed=0, start=START, legacy_revoke=True) as emu:
        api = Api(emu)
        emu.admin.pin_phone(PHONE, online="always", latency=2)
        assert api.send("m-legacy").status_code == 200
        emu.admin.advance(10)
        assert emu.admin.message("m-legacy")["state"] in ("delivered", "read")
        assert api.revoke("m-legacy").status_code == 200  # although it was delivered
        assert api.revoke("never-sent").status_code == 200
