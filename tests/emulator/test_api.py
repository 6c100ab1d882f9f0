"""The RBM API surface over loopback HTTP: paths, bad input, Google's curl revoke, faults."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from rbmtools import wire

from .conftest import PHONE, START, Api


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == response.status_code
    return body["error"]


def _post_raw(api: Api, data: bytes, message_id: str = "m-raw", **params):
    return api.session.post(
        api.base + wire.messages_path(PHONE),
        params={"messageId": message_id, "agentId": api.agent, **params},
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def test_phone_path_accepts_raw_plus_and_percent_2b(api):
    raw = api.session.post(
        f"{api.base}/v1/phones/+12223334444/agentMessages",
        params={"messageId": "m-raw-plus", "agentId": api.agent},
        json=wire.agent_message("hi"),
        timeout=10,
    )
    encoded = api.session.post(
        f"{api.base}/v1/phones/%2B12223334444/agentMessages",
        params={"messageId": "m-2b", "agentId": api.agent},
        json=wire.agent_message("hi"),
        timeout=10,
    )
    assert raw.status_code == encoded.status_code == 200
    assert raw.json()["name"] == "phones/+12223334444/agentMessages/m-raw-plus"
    assert encoded.json()["name"] == "phones/+12223334444/agentMessages/m-2b"


def test_googles_documented_curl_revoke_works_as_written(api):
    api.emu.admin.pin_phone(PHONE, offline_for="1d")
    assert api.send("curl-me", ttl="1h").status_code == 200
    token = api.session.credentials.token
    url = f"{api.base}/v1/phones/{PHONE}/agentMessages/curl-me?agentId={api.agent}"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "DELETE",
            url,
            "-H",
            "Content-Type: application/json",
            "-H",
            "User-Agent: curl/rcs-business-messaging",
            "-H",
            f"Authorization: Bearer {token}",
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert (status, json.loads(body)) == ("200", {})
    assert api.emu.admin.message("curl-me")["state"] == "revoked"


def test_missing_or_bad_token_gets_401_in_googles_envelope(api):
    url = api.base + wire.messages_path(PHONE)
    params = {"messageId": "m-401", "agentId": api.agent}
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        answer = requests.post(url, params=params, json={}, headers=headers, timeout=10)
        assert answer.status_code == 401
        assert _error(answer)["status"] == "UNAUTHENTICATED"


def test_agent_id_is_required(api):
    answer = api.session.post(
        api.base + wire.messages_path(PHONE),
        params={"messageId": "m-no-agent"},
        json=wire.agent_message("hi"),
        timeout=10,
    )
    assert answer.status_code == 403
    assert "agent" in _error(answer)["message"]
    assert _error(answer)["status"] == "PERMISSION_DENIED"


def test_only_the_named_agent_is_served(sink):
    from rbmtools.emulator import Emulator

    with Emulator(profile="always-online", speed=0, start=START, agent_id="only-me") as emu:
        api = Api(emu)
        assert emu.agent_id == "only-me"
        assert api.send("m-ok").status_code == 200
        api.agent = "someone-else"
        assert api.send("m-no").status_code == 403


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"{not json", "agentMessage"),
        (b"", "agentMessage"),
        (b"[]", "agentMessage"),
        (json.dumps({"contentMessage": {"text": 5}}).encode(), "contentMessage.text"),
        (json.dumps({"contentMessage": {}}).encode(), "contentMessage"),
        (
            json.dumps({"contentMessage": {"text": "x"}, "messageTrafficType": "SPAM"}).encode(),
            "messageTrafficType",
        ),
        (json.dumps({"contentMessage": {"text": "x"}, "ttl": "soon"}).encode(), "ttl"),
        (json.dumps({"contentMessage": {"text": "x"}, "ttl": "16d"}).encode(), "ttl"),
        (
            json.dumps(
                {
                    "contentMessage": {"text": "x"},
                    "ttl": "60s",
                    "expireTime": "2026-11-25T11:00:00Z",
                }
            ).encode(),
            "ttl/expireTime",
        ),
        (
            json.dumps(
                {"contentMessage": {"text": "x"}, "expireTime": "2026-11-25T09:00:00Z"}
            ).encode(),
            "expireTime",
        ),
        (
            json.dumps(
                {"contentMessage": {"text": "x"}, "expireTime": "2026-12-25T09:00:00Z"}
            ).encode(),
            "expireTime",
        ),
        (json.dumps({"contentMessage": {"text": "x"}, "colour": "red"}).encode(), "colour"),
        (
            json.dumps(
                {"contentMessage": {"uploadedRbmFile": {"fileName": "x" * 1000}, "text": "y"}}
            ).encode(),
            "contentMessage",
        ),
    ],
)
def test_bad_bodies_get_400_naming_the_field(api, data, field):
    answer = _post_raw(api, data)
    assert answer.status_code == 400
    error = _error(answer)
    assert error["status"] == "INVALID_ARGUMENT"
    assert field in error["message"]


def test_bad_phone_and_message_id_get_400(api):
    bad_phone = api.session.post(
        f"{api.base}/v1/phones/12345/agentMessages",
        params={"messageId": "m", "agentId": api.agent},
        json=wire.agent_message("hi"),
        timeout=10,
    )
    assert bad_phone.status_code == 400
    assert "phone" in _error(bad_phone)["message"]
    no_id = _post_raw(api, json.dumps(wire.agent_message("hi")).encode(), message_id="")
    assert no_id.status_code == 400
    assert "messageId" in _error(no_id)["message"]


def test_size_limits(api):
    big_text = {"contentMessage": {"contentInfo": {"fileUrl": "https://x/" + "a" * 2000}}}
    big_text["contentMessage"]["suggestions"] = [
        wire.reply("ok", "p" * 2048) for _ in range(11)
    ]  # under 250 KB: accepted
    assert _post_raw(api, json.dumps(big_text).encode(), message_id="m-ok").status_code == 200
    over = {"contentMessage": {"text": "x"}, "messageTrafficType": "PROMOTION"}
    over["contentMessage"]["suggestions"] = [
        {"reply": {"text": "a", "postbackData": "b" * 300_000}}
    ]
    answer = _post_raw(api, json.dumps(over).encode(), message_id="m-big")
    assert answer.status_code == 400  # postbackData too long is named first
    assert "postbackData" in _error(answer)["message"]
    huge = _post_raw(api, b'{"contentMessage": {"text": "' + b"x" * 2_000_000 + b'"}}')
    assert huge.status_code == 413
    assert _error(huge)["status"] == "INVALID_ARGUMENT"
    assert api.send("m-after").status_code == 200  # the server is still fine


def test_unknown_paths_and_methods_get_the_envelope(api):
    missing = api.session.get(f"{api.base}/v1/nothing-here", timeout=10)
    assert missing.status_code == 404
    assert _error(missing)["status"] == "NOT_FOUND"
    wrong = api.session.put(api.base + wire.messages_path(PHONE), timeout=10)
    assert wrong.status_code == 405
    assert _error(wrong)["code"] == 405


def test_capabilities_and_batch_get(api):
    api.emu.admin.pin_phone("+447700900001", rcs_capable=False)
    capable = api.capabilities()
    assert capable.status_code == 200
    assert "RICHCARD_STANDALONE" in capable.json()["features"]
    users = [PHONE, "+447700900001"] + [f"+1555000{i:04d}" for i in range(600)]
    answer = api.session.post(
        api.base + wire.batch_get_path(), json={"users": users, "agentId": api.agent}, timeout=10
    )
    assert answer.status_code == 200
    body = answer.json()
    assert PHONE in body["reachableUsers"]
    assert "+447700900001" not in body["reachableUsers"]
    assert 0.6 * len(users) < body["totalRandomSampleUserCount"] < 0.9 * len(users)
    assert body["reachableRandomSampleUserCount"] <= body["totalRandomSampleUserCount"]
    small = api.session.post(
        api.base + wire.batch_get_path(), json={"users": [PHONE], "agentId": api.agent}, timeout=10
    )
    assert small.json()["totalRandomSampleUserCount"] == 0  # under 500 numbers: no sample
    too_many = api.session.post(
        api.base + wire.batch_get_path(),
        json={"users": [PHONE] * 10_001, "agentId": api.agent},
        timeout=10,
    )
    assert too_many.status_code == 400
    assert "users" in _error(too_many)["message"]


def test_agent_event_bad_input(api):
    url = api.base + wire.agent_events_path(PHONE)
    for body, field in (
        ({"eventType": "WAVE"}, "eventType"),
        ({"eventType": "READ"}, "messageId"),
        ({"eventType": "IS_TYPING", "messageId": "x"}, "messageId"),
    ):
        answer = api.session.post(
            url, params={"eventId": "e1", "agentId": api.agent}, json=body, timeout=10
        )
        assert answer.status_code == 400
        assert field in _error(answer)["message"]


# -------------------------------------------------------------------------------- faults


def test_fault_before_answers_without_doing_the_request(api):
    api.emu.admin.inject_fault("send", 503, count=1, retry_after=2)
    failed = api.send("m-fault")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "2"
    assert _error(failed)["status"] == "UNAVAILABLE"
    assert api.emu.admin.message("m-fault") is None
    assert api.send("m-fault").status_code == 200  # the fault was used up


def test_fault_after_accepts_the_send_and_a_retry_is_idempotent(api, sink):
    api.emu.admin.pin_phone(PHONE, online="always", latency=3, read_after="never")
    api.emu.admin.inject_fault("send", 500, when="after")
    failed = api.send("m-after-fault", ttl="10m")
    assert failed.status_code == 500
    assert api.emu.admin.message("m-after-fault")["state"] == "queued"
    api.emu.admin.advance(1)
    retried = api.send("m-after-fault", ttl="10m")
    assert retried.status_code == 200
    assert retried.json()["sendTime"] == wire.format_timestamp(START)  # the original
    api.emu.admin.advance(60)
    assert api.emu.admin.wait_idle(10)
    assert sink.types_for("m-after-fault") == ["DELIVERED"]


def test_fault_matching_and_counts(api):
    admin = api.emu.admin
    admin.inject_fault("revoke", 429, count=2)
    assert api.send("m-counts").status_code == 200  # a send does not match
    assert [api.revoke("m-counts").status_code for _ in range(3)] == [429, 429, 200]
    admin.inject_fault("any", 504, count=None)
    assert api.capabilities().status_code == 504
    assert api.send("m-any").status_code == 504
    assert len(admin.faults()) == 1
    admin.clear_faults()
    assert api.capabilities().status_code == 200


def test_fault_delay_makes_the_answer_slow(api):
    api.emu.admin.inject_fault("capabilities", None, delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.session.get(
            api.base + wire.capabilities_path(PHONE), params={"agentId": api.agent}, timeout=0.3
        )
    started = time.monotonic()
    assert api.capabilities().status_code == 200  # used up; a fast, normal answer again
    assert time.monotonic() - started < 0.9


def test_bad_fault_requests_are_refused(api):
    from rbmtools.errors import ApiError

    with pytest.raises(ApiError) as info:
        api.emu.admin.inject_fault("teleport", 503)
    assert info.value.status == 400
    assert "method" in info.value.message
    with pytest.raises(ApiError):
        api.emu.admin.inject_fault("send", 299)
