"""Secrets out of foreign text: what is redacted, and what is left alone."""

import pytest

from rbmtools.wire import REDACTED, redact_json, redact_text

# PEM armour built at run time: no key-shaped literal sits in the repository (secret scanners)
KEY = "PRIVATE" + " KEY"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"clientToken": "real-token-xyz", "secret": 5}', "real-token-xyz"),
        ("<pre>Authorization: Bearer ya29.a0AfH6SMBx-y_z</pre>", "ya29.a0AfH6SMBx-y_z"),
        ("authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("access_token=abc123def&token_type=Bearer", "abc123def"),
        ('{\\"clientToken\\": \\"esc4ped\\"}', "esc4ped"),
        ("assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln", "eyJhbGciOiJSUzI1NiJ9"),
        (f"-----BEGIN {KEY}-----\nMIIEvQIBADANBg\n-----END {KEY}-----", "MIIEvQ"),
        (f"-----BEGIN RSA {KEY}-----\nMIIEowIBAAKCAQ (cut off", "MIIEow"),
        ("password: hunter2", "hunter2"),
    ],
)
def test_token_shaped_text_is_redacted(text, secret):
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Requested entity was not found.",
        "the secret garden; token_type: Bearer",
        'contentMessage.text: must be at most 3072 characters (got "...")',
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact_text(text) == text


def test_exact_secrets_are_redacted_wherever_they_appear():
    assert redact_text("got opaque-abcdefgh back", ["opaque-abcdefgh", None, "short"]) == (
        f"got {REDACTED} back"
    )
    assert redact_text("a short one stays", ["short"]) == "a short one stays"


def test_json_fields_named_like_secrets_are_redacted_at_any_depth():
    body = {"message": {"data": "eA=="}, "Client_Token": "x", "list": [{"SECRET": 1}],
            "note": "Bearer abcdefgh"}  # fmt: skip
    assert redact_json(body) == {
        "message": {"data": "eA=="},
        "Client_Token": REDACTED,
        "list": [{"SECRET": REDACTED}],
        "note": f"Bearer {REDACTED}",
    }
