"""The receiver over real loopback HTTP: handshake, every documented status, stats, shutdown."""

from __future__ import annotations

import base64
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from webhook_helpers import T0, TOKEN, lines_of, make_event, signed

from rbmtools import ValidationError
from rbmtools.webhook import REJECT_REASONS, Receiver, read_events
from rbmtools.webhook.loadgen import SignedLoad, sample_events
from rbmtools.wire import SIGNATURE_HEADER, build_push, encode_event, sign


def post(rx: Receiver, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(rx.url, data=body, headers=headers or {}, timeout=10)


def test_a_signed_event_is_stored_before_the_200(receiver):
    body, headers = signed(make_event(1))
    response = post(receiver, body, headers)
    assert response.status_code == 200
    # Already on disk when the answer arrives (the fsync happened before it).
    (line,) = lines_of(receiver.log_dir)
    assert line["verified"] is True and line["event"] == make_event(1)


def test_the_handshake_echoes_the_secret_only_for_the_right_client_token(receiver):
    ok = post(receiver, json.dumps({"clientToken": TOKEN, "secret": "s-123"}).encode())
    assert ok.status_code == 200
    assert ok.text == "s-123" and ok.headers["Content-Type"].startswith("text/plain")
    wrong = post(receiver, json.dumps({"clientToken": "nope", "secret": "s-123"}).encode())
    assert wrong.status_code == 403 and "s-123" not in wrong.text
    stats = receiver.stats()
    assert stats["handshakes"] == 1 and stats["rejected"]["handshake_token"] == 1
    assert lines_of(receiver.log_dir) == []
    # The rejected handshake's body (it carries a clientToken) is not kept for forensics.
    rejects = (receiver.log_dir / "_rejects" / "rejects.log").read_text()
    assert "nope" not in rejects and "handshake_token" in rejects


def _envelope_with(data: str) -> bytes:
    return json.dumps({"message": {"data": data, "messageId": "1"}, "subscription": "s"}).encode()


def _bad_requests() -> dict[str, tuple[bytes, dict[str, str], int, str]]:
    """Requests refused whatever their signature. (Authentic pushes that are no event are
    kept in the other log: test_webhook_other.py.)"""
    event = make_event(7)
    body, headers = signed(event)
    forged = dict(headers, **{SIGNATURE_HEADER: sign(encode_event(event), "another-token")})
    unsigned = {"Content-Type": "application/json"}
    good_b64 = base64.b64encode(encode_event(event)).decode()
    not_json = b"this is { not json"
    return {
        "forged signature": (body, forged, 401, "signature_mismatch"),
        "missing signature header": (body, unsigned, 401, "signature_missing"),
        "signature not base64": (
            body,
            dict(headers, **{SIGNATURE_HEADER: "***"}),
            401,
            "signature_malformed",
        ),
        "truncated base64": (_envelope_with(good_b64[:-3]), headers, 400, "bad_envelope"),
        "non-JSON body": (not_json, headers, 400, "bad_envelope"),
        "envelope without message": (b'{"subscription": "s"}', headers, 400, "bad_envelope"),
        "5 MiB body": (b"{" + b" " * (5 * 1024 * 1024) + b"}", headers, 413, "body_too_large"),
        "deeply nested body": (b"[" * 200_000, headers, 400, "bad_envelope"),
    }


BAD = _bad_requests()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_their_status_and_are_never_stored(receiver, case):
    body, headers, status, reason = BAD[case]
    response = post(receiver, body, headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert TOKEN not in response.text
    stats = receiver.stats()
    assert stats["rejected"][reason] == 1 and stats["rejected_total"] == 1
    assert stats["accepted"] == 0 and lines_of(receiver.log_dir) == []
    # It did not crash: it is healthy and still takes a good event.
    assert requests.get(receiver.base_url + "/healthz", timeout=5).json()["status"] == "ok"
    good_body, good_headers = signed(make_event(8))
    assert post(receiver, good_body, good_headers).status_code == 200


def test_all_bad_requests_in_a_row_leave_only_the_good_events(receiver):
    for body, headers, _status, _reason in BAD.values():
        post(receiver, body, headers)
    body, headers = signed(make_event(1))
    assert post(receiver, body, headers).status_code == 200
    stats = receiver.stats()
    assert stats["rejected_total"] == len(BAD) and stats["accepted"] == 1
    assert [line["event"]["eventId"] for line in lines_of(receiver.log_dir)] == ["evt-000001"]
    assert set(stats["rejected"]) == set(REJECT_REASONS)


def test_an_oversized_chunked_body_without_content_length_gets_413(receiver):
    def chunks():
        for _ in range(80):
            yield b" " * 65_536

    response = requests.post(receiver.url, data=chunks(), timeout=10)
    assert response.status_code == 413
    assert receiver.stats()["rejected"]["body_too_large"] == 1


def test_unknown_event_types_and_user_messages_are_kept(receiver):
    unknown = make_event(1, event_type="SOMETHING_NEW")
    reply = {
        "agentId": "test-agent",
        "senderPhoneNumber": "+12223334444",
        "messageId": "user-msg-1",
        "sendTime": "2026-11-25T10:00:01.045123456Z",
        "text": "yes",
    }
    server_event = make_event(2, event_type="TTL_EXPIRATION_REVOKED")
    for event in (unknown, reply, server_event):
        body, headers = signed(event)
        assert post(receiver, body, headers).status_code == 200
    frame = read_events(receiver.log_dir, as_frame=True)
    assert list(frame["kind"]) == ["user_event", "user_message", "server_event"]
    assert frame["event_type"].iloc[0] == "SOMETHING_NEW"
    assert frame["message_kind"].iloc[1] == "text"


def test_redeliveries_are_stored_and_counted_as_duplicates(receiver):
    body, headers = signed(make_event(1))
    for _ in range(3):
        assert post(receiver, body, headers).status_code == 200
    assert receiver.stats()["duplicates"] == 2
    assert len(lines_of(receiver.log_dir)) == 3  # the raw log keeps every delivery
    reader = read_events(receiver.log_dir)
    assert len(list(reader)) == 1 and reader.counts.duplicates == 2


def test_every_acknowledged_event_is_in_the_log_under_concurrency(receiver):
    """64 concurrent senders: each 200 means the line is already in the log."""
    load = SignedLoad(receiver.url, TOKEN, sample_events(600), concurrency=64).run()
    assert len(load.acked) == 600 and not load.given_up
    logged = {line["event"]["eventId"] for line in lines_of(receiver.log_dir)}
    assert set(load.acked) <= logged
    stats = receiver.stats()
    assert stats["accepted"] == 600 and stats["fsync_batches"] < 600
    assert stats["bytes_logged"] > 0 and stats["bytes_received"] > stats["bytes_logged"] / 2


def test_graceful_shutdown_answers_or_refuses_but_never_acks_unstored(tmp_path):
    """Closing under load: whatever got a 200 is in the log; nothing hangs."""
    rx = Receiver(tmp_path, client_token=TOKEN).start()
    events = [make_event(i) for i in range(400)]
    outcomes: dict[str, int | None] = {}
    started = threading.Event()

    def send(event):
        body, headers = signed(event)
        started.set()
        try:
            status = requests.post(rx.url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            status = None
        outcomes[event["eventId"]] = status

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, event) for event in events]
        started.wait(5)
        while sum(1 for s in outcomes.values() if s == 200) < 50:
            threading.Event().wait(0.005)
        rx.close()
        for future in futures:
            future.result()
    acked = {event_id for event_id, status in outcomes.items() if status == 200}
    logged = {line["event"]["eventId"] for line in lines_of(tmp_path)}
    assert len(acked) >= 50
    assert acked <= logged
    assert set(outcomes.values()) <= {200, 503, None}
    assert not rx.running


def test_no_verify_stores_unsigned_pushes_as_unverified(tmp_path):
    with Receiver(tmp_path, client_token=TOKEN, verify=False) as rx:
        body, headers = signed(make_event(1))
        assert post(rx, body, headers).status_code == 200  # valid: still marked verified
        unsigned = {"Content-Type": "application/json"}
        assert post(rx, body.replace(b"evt", b"EVT"), unsigned).status_code == 200
        forged_headers = dict(headers, **{SIGNATURE_HEADER: sign(b"other", TOKEN)})
        body2, _ = signed(make_event(2))
        assert post(rx, body2, forged_headers).status_code == 200
        assert rx.stats()["verify"] is False
        health = requests.get(rx.base_url + "/healthz", timeout=5).json()
        assert health["verify"] is False
    assert [line["verified"] for line in lines_of(tmp_path)] == [True, False, False]


def test_no_verify_without_a_token_refuses_every_handshake(tmp_path):
    with Receiver(tmp_path, verify=False) as rx:
        body = json.dumps({"clientToken": "anything", "secret": "s"}).encode()
        assert post(rx, body).status_code == 403


def test_only_the_configured_path_takes_events_and_stats_are_served(receiver):
    body, headers = signed(make_event(1))
    response = requests.post(receiver.base_url + "/", data=body, headers=headers, timeout=5)
    assert response.status_code == 404
    assert requests.get(receiver.url, timeout=5).status_code == 405
    stats = requests.get(receiver.base_url + "/stats", timeout=5).json()
    for key in ("accepted", "rejected", "duplicates", "bytes_received", "fsync_batches"):
        assert key in stats
    assert receiver.url.endswith("/rbm") and receiver.url.startswith("http://127.0.0.1:")


def test_the_client_token_never_shows(receiver):
    body, headers = signed(make_event(1))
    post(receiver, body, headers)
    post(receiver, body, {SIGNATURE_HEADER: "bad"})
    shown = [repr(receiver), json.dumps(receiver.stats())]
    shown.append((receiver.log_dir / "_rejects" / "rejects.log").read_text())
    shown.extend(path.read_text() for path in receiver.log_dir.rglob("*.jsonl"))
    assert all(TOKEN not in text for text in shown)


def test_configuration_errors_are_clear(tmp_path):
    with pytest.raises(ValidationError, match="clientToken"):
        Receiver(tmp_path)
    with pytest.raises(ValidationError, match="reserved"):
        Receiver(tmp_path, client_token=TOKEN, path="/stats")
    with pytest.raises(ValidationError, match="start with"):
        Receiver(tmp_path, client_token=TOKEN, path="rbm")
    with pytest.raises(ValidationError, match="clientToken") as info:
        Receiver(tmp_path, client_token="")
    assert "<hidden>" in str(info.value)


def test_a_busy_port_or_a_locked_log_fails_at_start(tmp_path):
    with Receiver(tmp_path / "a", client_token=TOKEN) as first:
        with pytest.raises(OSError):
            Receiver(tmp_path / "b", client_token=TOKEN, port=first.port).start()
        from rbmtools.webhook import LogLockedError

        with pytest.raises(LogLockedError):
            Receiver(tmp_path / "a", client_token=TOKEN).start()
    # The failed starts released what they took: the log directory is free again.
    with Receiver(tmp_path / "b", client_token=TOKEN) as rx:
        body, headers = signed(make_event(1))
        assert post(rx, body, headers).status_code == 200


def test_raw_socket_garbage_does_not_crash_it(receiver):
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        sock.recv(1024)
    body, headers = signed(make_event(1))
    assert post(receiver, body, headers).status_code == 200


def test_a_push_signed_for_other_data_is_a_mismatch(receiver):
    envelope, signature = build_push(make_event(1), TOKEN, message_id="1", publish_time=T0)
    envelope["message"]["data"] = base64.b64encode(encode_event(make_event(2))).decode()
    response = post(receiver, json.dumps(envelope).encode(), {SIGNATURE_HEADER: signature})
    assert response.status_code == 401
    assert receiver.stats()["rejected"]["signature_mismatch"] == 1


def test_a_receiver_can_be_stopped_and_started_again_on_the_same_url(tmp_path):
    rx = Receiver(tmp_path, client_token=TOKEN)
    with rx:
        url = rx.url
        body, headers = signed(make_event(1))
        assert post(rx, body, headers).status_code == 200
    assert not rx.running
    with rx:
        assert rx.url == url
        body, headers = signed(make_event(2))
        assert post(rx, body, headers).status_code == 200
        assert rx.stats()["accepted"] == 2
    reader = read_events(tmp_path)
    assert [e.event.event_id for e in reader] == ["evt-000001", "evt-000002"]
    assert len(reader.files) == 2  # each start begins its own segment
