"""Webhook pushes: Pub/Sub push envelopes, ``X-Goog-Signature``, and the registration handshake.

The platform POSTs each event as a Pub/Sub push body whose ``message.data`` is the base64 of the
event JSON. ``X-Goog-Signature`` is base64(HMAC-SHA512(key = clientToken as UTF-8, message = the
base64-*decoded* ``message.data``)), compared in constant time. Registering a webhook, the
platform POSTs ``{"clientToken", "secret"}`` and expects 200 with the bare secret as text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rbmtools.errors import SignatureError, ValidationError
from rbmtools.wire.times import format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_SUBSCRIPTION",
    "SIGNATURE_HEADER",
    "PushMessage",
    "build_push",
    "encode_event",
    "handshake_body",
    "parse_handshake",
    "parse_push",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Goog-Signature"
DEFAULT_SUBSCRIPTION = "projects/rbm-emulator/subscriptions/rbm-sub"


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The compact UTF-8 JSON bytes of an event: what ``message.data`` carries (and is signed)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _key(client_token: str) -> bytes:
    if not isinstance(client_token, str) or not client_token:
        raise ValidationError("clientToken", "<hidden>", "must be a non-empty string")
    return client_token.encode("utf-8")


def sign(data: bytes, client_token: str) -> str:
    """The ``X-Goog-Signature`` value for the decoded ``message.data`` bytes."""
    digest = hmac.new(_key(client_token), data, hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(data: bytes, signature: str | None, client_token: str) -> None:
    """Raise ``SignatureError`` unless ``signature`` is the valid signature of ``data``.

    The reason is ``missing`` (no header), ``malformed`` (not base64 of a SHA-512 digest) or
    ``mismatch``. The comparison is constant-time.
    """
    if not signature:
        raise SignatureError("missing", f"the {SIGNATURE_HEADER} header is missing")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed", f"{SIGNATURE_HEADER} is not base64") from None
    if len(given) != hashlib.sha512().digest_size:
        raise SignatureError("malformed", f"{SIGNATURE_HEADER} is not an HMAC-SHA512 digest")
    expected = hmac.new(_key(client_token), data, hashlib.sha512).digest()
    if not hmac.compare_digest(given, expected):
        raise SignatureError("mismatch", f"{SIGNATURE_HEADER} does not match the body")


@dataclass(frozen=True)
class PushMessage:
    """A parsed Pub/Sub push body. ``data`` holds the decoded bytes that are signed."""

    data: bytes = field(repr=False)
    message_id: str | None
    publish_time: datetime | None
    attributes: Mapping[str, str]
    subscription: str | None

    def event(self) -> Any:
        """The event JSON inside ``data`` (raises ``ValidationError`` if it is not JSON)."""
        try:
            return json.loads(self.data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationError("message.data", self.data[:60], f"is not JSON ({exc})") from None


def build_push(
    event: Mapping[str, Any],
    client_token: str,
    *,
    message_id: str,
    publish_time: datetime,
    subscription: str = DEFAULT_SUBSCRIPTION,
    attributes: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """A signed push of ``event``: the envelope and its ``X-Goog-Signature`` value.

    As Pub/Sub's push carries them: ``messageId`` and ``publishTime`` both in camelCase and
    in snake_case (``message_id``, ``publish_time``), the attributes, the subscription.
    """
    data = encode_event(event)
    published = format_timestamp(publish_time, "publishTime")
    envelope = {
        "message": {
            "attributes": dict(attributes or {"product": "RBM"}),
            "data": base64.b64encode(data).decode("ascii"),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription,
    }
    return envelope, sign(data, client_token)


def _as_object(body: bytes | str | Mapping[str, Any], field_name: str) -> Mapping[str, Any]:
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationError(field_name, str(body)[:60], f"is not JSON ({exc})") from None
    if not isinstance(body, Mapping):
        raise ValidationError(field_name, body, "must be a JSON object")
    return body


def parse_push(body: bytes | str | Mapping[str, Any]) -> PushMessage:
    """Parse a Pub/Sub push body (raw bytes or decoded JSON); ``ValidationError`` if malformed."""
    envelope = _as_object(body, "body")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        raise ValidationError("message", message, "must be an object with a 'data' field")
    encoded = message.get("data")
    if not isinstance(encoded, str) or not encoded:
        raise ValidationError("message.data", encoded, "must be a non-empty base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("message.data", encoded[:60], "is not valid base64") from None
    attributes = message.get("attributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, Mapping):
        raise ValidationError("message.attributes", attributes, "must be an object")
    publish = message.get("publishTime")
    message_id = message.get("messageId")
    subscription = envelope.get("subscription")
    return PushMessage(
        data=data,
        message_id=None if message_id is None else str(message_id),
        publish_time=None if publish is None else parse_timestamp(publish, "message.publishTime"),
        attributes={str(k): str(v) for k, v in attributes.items()},
        subscription=None if subscription is None else str(subscription),
    )


def handshake_body(client_token: str, secret: str) -> dict[str, str]:
    """The body the platform POSTs to register a webhook."""
    return {"clientToken": client_token, "secret": secret}


def parse_handshake(body: bytes | str | Mapping[str, Any]) -> tuple[str, str] | None:
    """``(clientToken, secret)`` when ``body`` is a registration handshake, else ``None``."""
    try:
        obj = _as_object(body, "body")
    except ValidationError:
        return None
    token, secret = obj.get("clientToken"), obj.get("secret")
    if isinstance(token, str) and isinstance(secret, str) and "message" not in obj:
        return token, secret
    return None
