import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbmtools import SignatureError, ValidationError
from rbmtools.wire import (
    build_push,
    encode_event,
    handshake_body,
    parse_event,
    parse_handshake,
    parse_push,
    sign,
    verify_signature,
)

tokens = st.text(min_size=1, max_size=64).filter(lambda t: "\x00" not in t)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def independent_signature(data: bytes, token: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


@given(st.binary(max_size=512), tokens)
def test_signature_matches_an_independent_computation(data, token):
    assert sign(data, token) == independent_signature(data, token)
    verify_signature(data, sign(data, token), token)


@given(st.binary(max_size=256), tokens, tokens)
def test_another_token_is_a_mismatch(data, token, other):
    if other == token:
        return
    with pytest.raises(SignatureError) as info:
        verify_signature(data, sign(data, other), token)
    assert info.value.reason == "mismatch"


@given(st.binary(min_size=1, max_size=256), tokens, st.integers(0, 255))
def test_a_flipped_byte_is_a_mismatch(data, token, position):
    signature = sign(data, token)
    tampered = bytearray(data)
    tampered[position % len(data)] ^= 0x01
    with pytest.raises(SignatureError):
        verify_signature(bytes(tampered), signature, token)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(None, "missing"), ("", "missing"), ("not base64!", "malformed"), ("YWJj", "malformed")],
)
def test_signature_rejections(signature, reason):
    with pytest.raises(SignatureError) as info:
        verify_signature(b"{}", signature, "token")
    assert info.value.reason == reason


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), tokens)
def test_push_envelope_round_trip(event, token):
    now = datetime(2026, 11, 25, 10, 0, 2, 120000, tzinfo=UTC)
    envelope, signature = build_push(event, token, message_id="123", publish_time=now)
    raw = json.dumps(envelope).encode()
    push = parse_push(raw)
    assert push.event() == event
    assert push.data == encode_event(event)
    assert push.message_id == "123"
    assert push.publish_time == now
    assert push.attributes == {"product": "RBM"}
    verify_signature(push.data, signature, token)


def test_doc_example_envelope(platform_examples):
    push = parse_push(platform_examples["push_envelope"])
    assert push.subscription == "projects/rbm-partner/subscriptions/rbm-sub"
    event = parse_event(push.event())
    assert event.event_type == "DELIVERED"
    assert event.phone == "+12223334444"
    assert push.event() == platform_examples["user_event"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b"{}", "message"),
        (b'{"message": {}}', "message.data"),
        (b'{"message": {"data": "abc"}}', "message.data"),  # truncated base64
        (b'{"message": {"data": "!!!!"}}', "message.data"),
        (b'{"message": {"data": "e30=", "publishTime": "noon"}}', "message.publishTime"),
        (b'{"message": {"data": "e30=", "attributes": []}}', "message.attributes"),
    ],
)
def test_malformed_envelopes(body, field):
    with pytest.raises(ValidationError) as info:
        parse_push(body)
    assert info.value.field == field


def test_non_json_data_is_reported_when_read():
    push = parse_push({"message": {"data": base64.b64encode(b"\xff\xfe").decode()}})
    with pytest.raises(ValidationError, match=r"message\.data"):
        push.event()


def test_handshake():
    body = handshake_body("tok", "s3cret")
    assert parse_handshake(json.dumps(body)) == ("tok", "s3cret")
    assert parse_handshake(b"garbage") is None
    assert parse_handshake({"message": {"data": "e30="}}) is None


def test_empty_client_token_is_refused_without_echo():
    with pytest.raises(ValidationError) as info:
        sign(b"x", "")
    assert "<hidden>" in str(info.value)
