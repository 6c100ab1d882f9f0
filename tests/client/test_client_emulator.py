"""RbmClient against the emulator over loopback HTTP, with google-auth's real token flow."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from rbmtools import ApiError, ShortExpiryWarning, ValidationError
from rbmtools.client import RbmClient, RetryPolicy
from rbmtools.wire import parse_outbox_record, reply

PHONE = "+12223334444"
OFFLINE = "+15550000001"
NOT_RCS = "+15550000002"


def outbox_records(client):
    return [parse_outbox_record(line) for line in client.outbox.path.read_text().splitlines()]


def test_send_returns_the_platform_answer(emu, client):
    result = client.send(PHONE, "Your code is 123456", ttl="10m", traffic_type="authentication",
                         use_case="otp")  # fmt: skip
    assert (result.status, result.reachable, result.attempts) == (200, True, 1)
    assert result.expire_time - result.send_time == timedelta(minutes=10)
    assert abs(result.send_time - emu.clock.now()) < timedelta(minutes=5)
    stored = emu.admin.message(result.message_id)
    assert stored is not None and stored["phone"] == PHONE
    (record,) = outbox_records(client)
    assert (record.kind, record.message_id, record.status) == ("send", result.message_id, 200)
    assert (record.use_case, record.traffic_type, record.ttl) == ("otp", "AUTHENTICATION", "600s")
    assert record.expire_time == result.expire_time


def test_send_with_expire_time_and_rich_message(emu, client):
    expires = emu.clock.now() + timedelta(hours=1)
    body = {"contentMessage": {"text": "Sale!", "suggestions": [reply("Shop")]}}
    result = client.send(PHONE, message=body, expire_time=expires, traffic_type="PROMOTION")
    assert result.expire_time == expires.replace(microsecond=expires.microsecond)
    with pytest.raises(ValidationError, match="give exactly one"):
        client.send(PHONE, "text", message=body)


def test_unreachable_phone_is_a_result_not_an_exception(emu, client):
    emu.admin.pin_phone(NOT_RCS, rcs_capable=False)
    result = client.send(NOT_RCS, "hello")
    assert (result.status, result.reachable) == (404, False)
    assert outbox_records(client)[0].status == 404
    assert client.capabilities(NOT_RCS) is None


def test_revoke_undelivered_then_already_delivered(emu, client):
    emu.admin.pin_phone(OFFLINE, online="never")
    queued = client.send(OFFLINE, "will be revoked")
    revoked = client.revoke(OFFLINE, queued.message_id)
    assert (revoked.revoked, revoked.status, revoked.inconclusive) == (True, 200, False)

    emu.admin.pin_phone(PHONE, online="always", latency="1s")
    delivered = client.send(PHONE, "will be delivered")
    emu.admin.advance("1m")
    late = client.revoke(PHONE, delivered.message_id)
    assert (late.revoked, late.status) == (False, 404)
    kinds = [(r.kind, r.status) for r in outbox_records(client)]
    assert kinds == [("send", 200), ("revoke", 200), ("send", 200), ("revoke", 404)]


def test_validation_happens_before_any_http_call(emu, client, monkeypatch):
    calls = []
    real = client._session.request
    monkeypatch.setattr(
        client._session, "request", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    for bad in [
        lambda: client.send("12345", "no plus"),
        lambda: client.send(PHONE, "x" * 3073),
        lambda: client.send(PHONE, "both", ttl="10m", expire_time="2026-11-25T10:00:00Z"),
        lambda: client.send(PHONE, "too long", ttl="16d"),
        lambda: client.send(PHONE, "bad type", traffic_type="SPAM"),
        lambda: client.revoke(PHONE, "has space"),
        lambda: client.capabilities("+0"),
    ]:
        with pytest.raises(ValidationError):
            bad()
    assert calls == []
    with pytest.warns(ShortExpiryWarning):
        client.send(PHONE, "short", ttl=5)
    assert len(calls) == 1


def test_request_shape_matches_the_protocol(emu, client):
    seen = []
    client._session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    result = client.send(PHONE, "shape", ttl="600s", message_id="shape-1")
    client.revoke(PHONE, result.message_id)
    send, revoke = [r for r in seen if "/v1/" in r.url]
    parts = urlsplit(send.url)
    assert send.method == "POST"
    assert parts.path == f"/v1/phones/{PHONE}/agentMessages"  # the raw +, as Google's samples
    assert parse_qs(parts.query) == {"messageId": ["shape-1"], "agentId": [emu.agent_id]}
    assert send.headers["Authorization"].startswith("Bearer ")
    assert send.headers["Content-Type"] == "application/json"
    assert json.loads(send.body) == {"contentMessage": {"text": "shape"}, "ttl": "600s"}
    parts = urlsplit(revoke.url)
    assert revoke.method == "DELETE"
    assert parts.path == f"/v1/phones/{PHONE}/agentMessages/shape-1"
    assert parse_qs(parts.query) == {"agentId": [emu.agent_id]}
    assert not revoke.body
    assert revoke.headers["Authorization"].startswith("Bearer ")


def test_503_after_processing_then_success_sends_exactly_one_message(emu, client, sleeps):
    emu.admin.inject_fault("send", 503, count=1, when="after")
    result = client.send(PHONE, "once", message_id="exactly-once")
    assert (result.status, result.attempts) == (200, 2)
    assert len(sleeps.calls) == 1
    assert [m["messageId"] for m in emu.admin.messages(phone=PHONE)] == ["exactly-once"]


def test_timeout_is_retried_with_the_same_message_id(emu, tmp_path, sleeps):
    emu.admin.inject_fault("send", None, count=1, delay=1.5, when="after")
    with RbmClient.from_emulator(emu, timeout=(2.0, 0.5), sleep=sleeps) as client:
        result = client.send(PHONE, "slow", message_id="slow-1")
    assert (result.status, result.attempts) == (200, 2)
    assert len(emu.admin.messages(phone=PHONE)) == 1


def test_429_honours_retry_after(emu, client, sleeps):
    emu.admin.inject_fault("revoke", 429, count=2, retry_after=3)
    emu.admin.pin_phone(OFFLINE, online="never")
    sent = client.send(OFFLINE, "throttled revoke")
    result = client.revoke(OFFLINE, sent.message_id)
    assert (result.revoked, result.attempts) == (True, 3)
    assert sleeps.calls == [3.0, 3.0]


def test_non_retryable_failure_raises_and_is_logged(emu, client, sleeps):
    emu.admin.inject_fault("send", 500, count=None)
    with pytest.raises(ApiError) as info:
        client.send(PHONE, "never", message_id="fails-1")
    assert (info.value.status, info.value.status_name, info.value.retryable) == (
        500,
        "INTERNAL",
        True,
    )
    assert len(sleeps.calls) == 3  # 4 attempts
    emu.admin.clear_faults()
    emu.admin.inject_fault("revoke", 403, count=1)
    with pytest.raises(ApiError) as info:
        client.revoke(PHONE, "fails-1")
    assert info.value.status == 403 and not info.value.retryable
    records = outbox_records(client)
    assert [(r.kind, r.status) for r in records] == [("send", 500), ("revoke", 403)]
    assert all(r.error for r in records)


def test_transport_failure_is_an_api_error_with_status_zero(tmp_path, emu, sleeps):
    client = RbmClient.from_service_account_file(
        emu.key_file, emu.agent_id, base_url="http://127.0.0.1:9",  # nothing listens on port 9
        retry=RetryPolicy(max_attempts=2), sleep=sleeps,
    )  # fmt: skip
    with client, pytest.raises(ApiError) as info:
        client.capabilities(PHONE)
    assert (info.value.status, info.value.retryable) == (0, True)


def test_capabilities_events_and_batch(emu, client):
    features = client.capabilities(PHONE)
    assert features and all(isinstance(f, str) for f in features)
    emu.admin.pin_phone(NOT_RCS, rcs_capable=False)
    reach = client.batch_capabilities([PHONE, NOT_RCS, "+1 222 333 4444"])
    assert reach == {PHONE: True, NOT_RCS: False}
    sent = client.send(PHONE, "read me")
    read = client.send_read(PHONE, sent.message_id)
    assert (read.status, read.reachable, read.event_type) == (200, True, "READ")
    typing = client.send_typing(NOT_RCS)
    assert (typing.status, typing.reachable) == (404, False)


def test_bulk_revoke_of_1000_mixed_rows(emu, client):
    emu.admin.pin_phone(OFFLINE, online="never")
    emu.admin.pin_phone(PHONE, online="always", latency="1s")
    queued = [client.send(OFFLINE, f"q{i}", message_id=f"q-{i}") for i in range(400)]
    delivered = [client.send(PHONE, f"d{i}", message_id=f"d-{i}") for i in range(300)]
    emu.admin.advance("1m")
    rows = (
        [{"phone": OFFLINE, "message_id": r.message_id} for r in queued]
        + [{"phone": PHONE, "message_id": r.message_id} for r in delivered]
        + [{"phone": "not a phone", "message_id": f"x-{i}"} for i in range(150)]
        + [{"phone": PHONE, "message_id": "bad id/with slash"} for _ in range(100)]
        + [{"phone": PHONE} for _ in range(50)]
    )
    results = client.revoke_many(rows, concurrency=8, progress=False)
    assert len(results) == 1000
    assert list(results.columns[:4]) == ["phone", "message_id", "revoked", "status"]
    assert results["revoked"].iloc[:400].all()
    assert (results["status"].iloc[400:700] == 404).all()
    assert results["error"].iloc[:700].isna().all()
    assert results["error"].iloc[700:].notna().all()
    assert results["error"].iloc[700:850].str.contains("phone").all()


def test_bulk_send_from_a_dataframe_keeps_the_index(emu, client):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "phone": [PHONE, "bad", PHONE],
            "text": ["a", "b", "c"],
            "ttl": ["10m", None, float("nan")],
        },
        index=[10, 20, 30],
    )
    results = client.send_many(frame, concurrency=2, progress=False)
    assert list(results.index) == [10, 20, 30]
    assert results.loc[10, "status"] == 200 and results.loc[30, "status"] == 200
    assert results.loc[10, "expire_time"] is not None and pd.isna(results.loc[30, "expire_time"])
    assert "phone" in results.loc[20, "error"]


def test_secrets_never_leak(emu, tmp_path, caplog, capsys):
    key = json.loads(emu.key_file.read_text())
    caplog.set_level(logging.DEBUG)
    with RbmClient.from_emulator(emu, outbox=tmp_path / "o.jsonl") as client:
        client.send(PHONE, "secret-free", ttl="1m")
        client.revoke_many([{"phone": PHONE, "message_id": "nope"}], progress=True)
        emu.admin.inject_fault("send", 400, count=1)
        with pytest.raises(ApiError) as info:
            client.send(PHONE, "x")
        token = client._session.credentials.token
        texts = [caplog.text, repr(client), str(info.value), repr(info.value),
                 capsys.readouterr().err, (tmp_path / "o.jsonl").read_text()]  # fmt: skip
    assert token
    secrets = [token, key["private_key"].splitlines()[1], key["private_key_id"]]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_from_env_and_the_ad_hoc_surface(emu, monkeypatch):
    import rbmtools

    monkeypatch.setenv("RBM_SERVICE_ACCOUNT", str(emu.key_file))
    monkeypatch.setenv("RBM_AGENT_ID", emu.agent_id)
    monkeypatch.setenv("RBM_BASE_URL", emu.base_url)
    rbmtools.set_default_client(None)
    try:
        emu.admin.pin_phone(OFFLINE, online="never")
        sent = rbmtools.send(OFFLINE, "ad hoc")
        assert rbmtools.revoke(OFFLINE, sent.message_id).revoked
        monkeypatch.delenv("RBM_AGENT_ID")
        rbmtools.set_default_client(None)
        with pytest.raises(ValidationError, match="RBM_AGENT_ID: is not set"):
            rbmtools.send(OFFLINE, "no agent")
    finally:
        rbmtools.set_default_client(None)
