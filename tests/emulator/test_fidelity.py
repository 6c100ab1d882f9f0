"""The emulator as Google's own clients see the RBM API (issue 14): each deviation found by
running Google's samples against it, and each hostile input that once took it down."""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from datetime import UTC, datetime

import pytest
import requests

from rbmtools import RbmClient, wire
from rbmtools.emulator import Emulator
from rbmtools.emulator.devices import DevicePin
from rbmtools.emulator.model import MessageState, PlatformModel
from rbmtools.emulator.profiles import load_profile

from .conftest import PHONE, START, Api

AGENT = "fidelity-agent"
TEXT = {"contentMessage": {"text": "hello"}}


def _raw_send(api: Api, data: bytes | str, message_id: str, phone: str = PHONE):
    return api.session.post(
        api.base + wire.messages_path(phone),
        params={"messageId": message_id, "agentId": api.agent},
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


# ----------------------------------------------------------------- bodies as Google reads them


def test_single_quoted_json_bodies_are_read_as_googles_front_end_reads_them(api):
    """Google's curl samples send ``-d "{'contentMessage': {'text': 'Hello World'}}"``."""
    sent = _raw_send(api, "{'contentMessage': {'text': 'Hello World'}}", "quoted")
    assert sent.status_code == 200, sent.text
    assert sent.json()["contentMessage"] == {"text": "Hello World"}


def test_nulls_and_proto_names_in_bodies_mean_what_protobuf_says(api):
    """Google's Python helper sends ``"fallbackUrl": null`` and ``postback_data``."""
    body = {
        "contentMessage": {
            "text": "Where?",
            "suggestions": [
                {
                    "action": {
                        "text": "Share",
                        "postback_data": "share",
                        "fallback_url": None,
                        "shareLocationAction": {},
                    }
                }
            ],
        },
        "expireTime": None,
    }
    sent = _raw_send(api, json.dumps(body), "nulls")
    assert sent.status_code == 200, sent.text
    suggestion = sent.json()["contentMessage"]["suggestions"][0]["action"]
    assert suggestion["postbackData"] == "share" and "fallbackUrl" not in suggestion


def test_the_admin_surface_stays_strict_json(api):
    answer = requests.post(
        api.base + "/emulator/v1/clock/advance", data="{'seconds': 1}", timeout=10
    )
    assert answer.status_code == 400


# ---------------------------------------------------------------------------------- files


def test_files_create_and_a_card_using_the_file(api):
    created = api.session.post(
        api.base + wire.files_path(),
        params={"agentId": api.agent},
        json={
            "fileUrl": "https://example.com/dog.jpg",
            "thumbnailUrl": "https://example.com/t.jpg",
        },
        timeout=10,
    )
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    assert set(created.json()) == {"name"} and name.startswith("files/")
    card = {  # what Google's Python helper sends for StandaloneCard(file_resource_id=...)
        "contentMessage": {
            "richCard": {
                "standaloneCard": {
                    "cardOrientation": "VERTICAL",
                    "thumbnailImageAlignment": "RIGHT",
                    "cardContent": {
                        "title": "A dog",
                        "media": {"fileName": name, "height": None},
                    },
                }
            }
        }
    }
    sent = _raw_send(api, json.dumps(card), "card")
    assert sent.status_code == 200, sent.text
    uploaded = {"contentMessage": {"uploadedRbmFile": {"fileName": name}}}
    assert _raw_send(api, json.dumps(uploaded), "file").status_code == 200
    unknown = {"contentMessage": {"uploadedRbmFile": {"fileName": "files/never-made"}}}
    refused = _raw_send(api, json.dumps(unknown), "nofile")
    assert refused.status_code == 400 and "fileName" in refused.json()["error"]["message"]


def test_the_upload_form_takes_the_bytes(api):
    uploaded = api.session.post(
        api.base + "/upload" + wire.files_path(),
        params={"agentId": api.agent, "uploadType": "media"},
        data=b"\x89PNG" + bytes(200_000),
        headers={"Content-Type": "image/png"},
        timeout=10,
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["name"].startswith("files/")
    assert (
        api.session.post(
            api.base + wire.files_path(), params={"agentId": api.agent}, json={}, timeout=10
        ).status_code
        == 400
    )  # files.create by URL needs the URL


# ------------------------------------------------------------- capabilities, launch, testers


def test_capabilities_name_revocation_as_google_does(api):
    features = api.capabilities().json()["features"]
    assert "REVOCATION" in features and "REVOKE" not in features


def test_tester_invites_are_gone_since_google_removed_them(api):
    """testers.create was removed by Google on 2026-01-31: 404 from then on, served before."""
    invite = api.session.post(
        api.base + wire.testers_path(PHONE), params={"agentId": api.agent}, timeout=10
    )
    assert invite.status_code == 404
    assert "removed on 2026-01-31" in invite.json()["error"]["message"]
    with Emulator(profile="always-online", speed=0, start="2026-01-30T12:00:00Z") as earlier:
        early = Api(earlier)
        invite = early.session.post(
            early.base + wire.testers_path(PHONE), params={"agentId": early.agent}, timeout=10
        )
        assert invite.status_code == 200
        assert invite.json() == {"name": f"phones/{PHONE}/testers", "inviteStatus": "PENDING"}
        earlier.admin.advance("1d")
        invite = early.session.post(
            early.base + wire.testers_path(PHONE), params={"agentId": early.agent}, timeout=10
        )
        assert invite.status_code == 404


# ---------------------------------------------------------------------- messageTrafficType


def test_traffic_type_defaults_from_the_agents_use_case_and_is_echoed(api):
    sent = _raw_send(api, json.dumps(TEXT), "tt-default")
    assert sent.json()["messageTrafficType"] == "TRANSACTION"  # the default use case
    api.emu.admin._call("POST", f"/agents/{api.agent}", {"useCase": "OTP"})
    assert _raw_send(api, json.dumps(TEXT), "tt-otp").json()["messageTrafficType"] == (
        "AUTHENTICATION"
    )
    unspecified = {**TEXT, "messageTrafficType": "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED"}
    assert _raw_send(api, json.dumps(unspecified), "tt-unspec").json()["messageTrafficType"] == (
        "AUTHENTICATION"
    )
    named = {**TEXT, "messageTrafficType": "PROMOTION"}
    assert _raw_send(api, json.dumps(named), "tt-named").json()["messageTrafficType"] == (
        "PROMOTION"
    )
    assert api.emu.admin.message("tt-otp")["trafficType"] == "AUTHENTICATION"


@pytest.mark.parametrize("how", ["profile", "option"])
def test_a_multi_use_agent_must_name_the_traffic_type(how):
    options = (
        {"profile": {"extends": "always-online", "agent": {"use_case": "MULTI_USE"}}}
        if how == "profile"
        else {"profile": "always-online", "agent_use_case": "MULTI_USE"}
    )
    with Emulator(speed=0, start=START, **options) as emu:
        api = Api(emu)
        missing = _raw_send(api, json.dumps(TEXT), "mu-missing")
        assert missing.status_code == 400
        assert "messageTrafficType" in missing.json()["error"]["message"]
        unspecified = {**TEXT, "messageTrafficType": "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED"}
        assert _raw_send(api, json.dumps(unspecified), "mu-unspec").status_code == 400
        named = {**TEXT, "messageTrafficType": "TRANSACTION"}
        sent = _raw_send(api, json.dumps(named), "mu-named")
        assert (sent.status_code, sent.json()["messageTrafficType"]) == (200, "TRANSACTION")
        assert emu.admin._call("GET", f"/agents/{emu.agent_id}")["useCase"] == "MULTI_USE"


# ---------------------------------------------------------------------------------- ttl


@pytest.mark.parametrize("ttl", [600, 1.5, "600", "10m", "-5s", "1.5 s"])
def test_ttl_must_be_a_duration_string_on_the_wire(api, ttl):
    refused = _raw_send(api, json.dumps({**TEXT, "ttl": ttl}), "ttl-bad")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("Invalid argument: ttl")


@pytest.mark.parametrize(("ttl", "seconds"), [("600s", 600), ("1.5s", 1.5), ("0.000000001s", 0)])
def test_duration_strings_are_accepted(api, ttl, seconds):
    sent = _raw_send(api, json.dumps({**TEXT, "ttl": ttl}), f"ttl-{ttl}")
    assert sent.status_code == 200, sent.text
    expires = wire.parse_timestamp(sent.json()["expireTime"])
    sent_at = wire.parse_timestamp(sent.json()["sendTime"])
    assert (expires - sent_at).total_seconds() == pytest.approx(seconds, abs=1e-6)


def test_the_client_still_takes_numbers_and_serializes_them(stepping, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    with RbmClient.from_emulator(stepping, outbox=outbox) as client:
        sent = client.send(PHONE, message={"contentMessage": {"text": "hi"}}, ttl=600)
        assert sent.status == 200
        body = {"contentMessage": {"text": "hi"}, "ttl": 90}
        assert client.send(PHONE, message=body).status == 200
    records = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [r["ttl"] for r in records] == ["600s", "90s"]
    assert {r["trafficType"] for r in records} == {"TRANSACTION"}  # what the platform applied


# ------------------------------------------------------------------- revoke after failure


def test_revoke_after_ttl_expiration_revoke_failed_answers_200_while_undelivered(sink):
    profile = {"extends": "always-online", "delivery": {"ttl_failed_delivered_probability": 0}}
    with Emulator(
        profile=profile,
        speed=0,
        start=START,
        webhook_url=sink.url,
        client_token=sink.client_token,
    ) as emu:
        api = Api(emu)
        emu.admin.pin_phone(PHONE, online="always", latency=20, read_after="never")
        assert api.send("rf", ttl="19.5s").status_code == 200
        emu.admin.advance(30)
        assert emu.admin.wait_idle(10)
        assert sink.types_for("rf") == ["TTL_EXPIRATION_REVOKE_FAILED"]
        answer = api.revoke("rf")  # Google: "if the message was not delivered, revoke it"
        assert (answer.status_code, answer.json()) == (200, {})
        assert emu.admin.message("rf")["state"] == "revoked"


# ---------------------------------------------------------------------------- the TTL race


def _race_rate(ttl: float, count: int = 3000) -> tuple[int, int]:
    """(expired while online, delivered after TTL_EXPIRATION_REVOKED) for ``count`` messages
    whose phones came online just before their expiry."""
    profile = load_profile(
        {
            "extends": "always-online",
            "delivery": {"handoff_window": 0.001, "ttl_race_probability": 0.4},
        }
    )
    model = PlatformModel(profile, seed=3, epoch=START)
    for i in range(count):
        phone = f"+1555090{i:04d}"
        # Offline until just before the expiry, then a delivery that takes longer than what is
        # left: the expiry catches every message while it is on its way.
        pin = DevicePin(online="always", offline_until=ttl - 0.5, latency=5.0, read_after=math.inf)
        model.pin(phone, pin, 0.0)
        model.send(AGENT, phone, f"m{i}", {**TEXT, "ttl": f"{ttl}s"}, 0.0)
    events = model.advance(ttl + 60.0)
    kinds: dict[str, list[str]] = {}
    for event in events:
        kinds.setdefault(event.message_id, []).append(event.event_type)
    revoked = [k for k in kinds.values() if k[0] == "TTL_EXPIRATION_REVOKED"]
    raced = [k for k in revoked if k == ["TTL_EXPIRATION_REVOKED", "DELIVERED"]]
    return len(revoked), len(raced)


def test_ttl_races_appear_at_the_modelled_rate_and_more_often_the_shorter_the_ttl():
    rates = {}
    for ttl in (2.0, 10.0, 30.0):
        revoked, raced = _race_rate(ttl)
        assert revoked == 3000
        expected = 0.4 * math.exp(-ttl / 10.0)
        spread = 4 * math.sqrt(expected * (1 - expected) / revoked)
        assert abs(raced / revoked - expected) <= spread, (ttl, raced, expected)
        rates[ttl] = raced / revoked
    assert rates[2.0] > rates[10.0] > rates[30.0]


def test_no_ttl_race_while_the_phone_is_offline():
    profile = load_profile({"extends": "always-online", "delivery": {"ttl_race_probability": 1}})
    model = PlatformModel(profile, seed=3, epoch=START)
    model.pin(PHONE, DevicePin(online="always", offline_until=100.0), 0.0)
    model.send(AGENT, PHONE, "offline", {**TEXT, "ttl": "1s"}, 0.0)
    assert [e.event_type for e in model.advance(500.0)] == ["TTL_EXPIRATION_REVOKED"]
    assert model.message(AGENT, "offline").state is MessageState.EXPIRED


# ------------------------------------------------------------------ events and envelopes


def test_events_and_envelopes_are_shaped_as_google_pushes_them(api, sink):
    api.emu.admin.pin_phone(PHONE, online="always", latency=1, read_after="never")
    assert api.send("shape").status_code == 200
    api.emu.admin.advance(5)
    assert api.emu.admin.wait_idle(10)
    (event,) = sink.of_type("DELIVERED", "shape")
    assert event["agentId"] == f"{api.agent}@rbm.goog"
    message = sink.envelopes[-1]["message"]
    assert message["messageId"] == message["message_id"] and message["messageId"].isdigit()
    assert message["publishTime"] == message["publish_time"]
    assert message["attributes"] == {"product": "RBM"}
    assert set(sink.envelopes[-1]) == {"message", "subscription"}


# ------------------------------------------------------------------------------- clocks


def test_every_outbox_record_is_on_the_platform_clock(tmp_path):
    """A client reaching an emulator by URL (as the CLI does), whose clock started years
    away and runs 600 times faster: sends and revokes are stamped on the platform's clock."""
    with Emulator(profile="always-online", speed=600, start="2031-05-01T00:00:00Z") as emu:
        emu.admin.pin_phone(PHONE, offline_for="1d")
        outbox = tmp_path / "outbox.jsonl"
        with RbmClient.from_service_account_file(
            emu.key_file, emu.agent_id, base_url=emu.base_url, outbox=outbox
        ) as client:
            sent = client.send(PHONE, "hi", ttl="2h")
            time.sleep(0.2)
            revoked = client.revoke(PHONE, sent.message_id)
        assert revoked.revoked
        send, revoke = (json.loads(line) for line in outbox.read_text().splitlines())
        sent_at = wire.parse_timestamp(send["sendTime"])
        revoked_at = wire.parse_timestamp(revoke["requestedAt"])
        assert sent_at.year == revoked_at.year == 2031
        assert 60 <= (revoked_at - sent_at).total_seconds() < 3600  # 0.2 s at 600x


def test_revoke_csv_results_keep_whole_numbers(stepping, tmp_path):
    with RbmClient.from_emulator(stepping) as client:
        sent = client.send(PHONE, "hi", ttl="1h")
        rows = [
            {"phone": PHONE, "message_id": sent.message_id},
            {"phone": "bad", "message_id": "x"},
        ]
        frame = client.revoke_many(rows, progress=False)
    path = tmp_path / "results.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    first = dict(zip(header, lines[1].split(","), strict=False))
    assert first["status"] == "200" and first["attempts"] == "1"


# ------------------------------------------------------------------------- hostile input


def _still_serving(emu: Emulator, api: Api, message_id: str) -> None:
    assert requests.get(emu.base_url + "/emulator/v1/clock", timeout=10).status_code == 200
    assert requests.get(emu.base_url + "/emulator/v1/messages", timeout=10).status_code == 200
    assert requests.get(emu.base_url + "/emulator/v1/stats", timeout=10).status_code == 200
    assert api.send(message_id).status_code == 200


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("clock/advance", {"seconds": 1e12}),
        ("clock/advance", {"to": "9999-12-31T23:59:59Z"}),
        ("clock/speed", {"speed": 1e12}),
        (f"phones/{PHONE}", {"latency": 1e12}),
        (f"phones/{PHONE}", {"offlineFor": 1e15}),
        (f"phones/{PHONE}", {"readAfter": "100000000000d"}),
    ],
)
def test_out_of_range_admin_values_are_refused_and_the_emulator_keeps_serving(api, route, body):
    answer = requests.post(f"{api.base}/emulator/v1/{route}", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    _still_serving(api.emu, api, f"after-{len(answer.text)}")


def test_hostile_bodies_get_400_never_500(api):
    token_form = {"Content-Type": "application/x-www-form-urlencoded"}
    for path in ("/token", "/oauth2/v4/token"):
        binary = requests.post(
            api.base + path, data=bytes(range(256)) * 8, headers=token_form, timeout=10
        )
        assert binary.status_code == 400, binary.text
    deep = _raw_send(api, b"[" * 50_000 + b"]" * 50_000, "deep")
    assert deep.status_code == 400 and "nests deeper" in deep.text
    deep_object = _raw_send(api, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "deep2")
    assert deep_object.status_code == 400
    surrogate = _raw_send(api, b'{"contentMessage": {"text": "\\ud800"}}', "surrogate")
    assert surrogate.status_code == 400
    assert _raw_send(api, b"\xff\xfe{}", "binary").status_code == 400
    admin_deep = requests.post(
        api.base + "/emulator/v1/clock/advance", data=b"[" * 50_000 + b"]" * 50_000, timeout=10
    )
    assert admin_deep.status_code == 400
    _still_serving(api.emu, api, "after-hostile")


def test_profile_paths_read_only_profile_files_and_never_echo_them(api, tmp_path):
    secret = tmp_path / "settings.json"
    secret.write_text(json.dumps({"password": "hunter2-very-secret", "devices": "x"}))
    for path in ("/etc/passwd", str(secret), str(tmp_path / "missing.yaml")):
        answer = requests.post(api.base + "/emulator/v1/profile", json={"path": path}, timeout=10)
        assert answer.status_code == 400
        assert "hunter2" not in answer.text and "root:" not in answer.text
        assert "password" not in answer.text
    good = tmp_path / "mine.yaml"
    good.write_text("extends: always-online\ndelivery: {race_probability: 0.1}\n")
    answer = requests.post(api.base + "/emulator/v1/profile", json={"path": str(good)}, timeout=10)
    assert answer.status_code == 200 and answer.json()["delivery"]["race_probability"] == 0.1
    typo = tmp_path / "typo.yaml"
    typo.write_text("delivery: {race_probability: 7}\n")
    answer = requests.post(api.base + "/emulator/v1/profile", json={"path": str(typo)}, timeout=10)
    assert answer.status_code == 400 and "profile.delivery.race_probability" in answer.text
    assert "(got 7)" not in answer.text


def test_a_client_hanging_up_is_not_an_error(api, caplog):
    token = api.session.credentials.token
    port = int(api.base.rsplit(":", 1)[1])
    with caplog.at_level(logging.DEBUG):
        for path in (
            wire.messages_path(PHONE) + f"?agentId={api.agent}&messageId=gone",
            "/emulator/v1/clock/advance",
            "/token",
            "/upload/v1/files?agentId=a",
        ):
            with socket.create_connection(("127.0.0.1", port)) as raw:
                raw.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: 500000\r\n\r\n".encode()
                    + b"a" * 1000
                )
                time.sleep(0.1)
        time.sleep(0.3)
        _still_serving(api.emu, api, "after-hangups")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_the_clock_never_passes_its_horizon():
    with Emulator(profile="always-online", speed=1e6, start="8999-12-31T00:00:00Z") as emu:
        time.sleep(0.3)  # 300,000 platform seconds: past the horizon
        now = emu.clock.now()
        assert now == datetime(9000, 1, 1, tzinfo=UTC)
        assert requests.get(emu.base_url + "/emulator/v1/clock", timeout=10).status_code == 200
        assert requests.get(emu.base_url + "/emulator/v1/stats", timeout=10).status_code == 200
