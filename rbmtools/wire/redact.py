"""Redaction of secrets from foreign text before rbmtools keeps or shows it.

Error pages, proxies and forged requests can echo credentials back: an HTML 500 page that
repeats the ``Authorization`` header, a handshake-shaped body with a real ``clientToken``. Text
that came from elsewhere passes through here before it reaches an exception, a log line or a
file: bearer tokens, Google access tokens (``ya29.``), JWTs, PEM private keys and the values of
secret-named fields (``clientToken``, ``secret``, ``access_token``, ``password``...) become
``<redacted>``, as do any exact secrets the caller knows (its own current token).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "SECRET_KEYS", "redact_json", "redact_text"]

REDACTED = "<redacted>"
#: Field names whose values are secrets, compared without case, ``_`` or ``-``.
SECRET_KEYS = frozenset(
    {
        "accesstoken",
        "apikey",
        "assertion",
        "authorization",
        "clientsecret",
        "clienttoken",
        "idtoken",
        "password",
        "privatekey",
        "refreshtoken",
        "secret",
        "token",
    }
)
_KEY_NAMES = (
    r"access[_-]?token|api[_-]?key|assertion|authorization|client[_-]?secret|client[_-]?token"
    r"|id[_-]?token|password|private[_-]?key|refresh[_-]?token|secret|token"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
# "clientToken": "...", secret=..., 'password': '...', Authorization: Bearer ... (JSON, JSON
# escaped inside a string, form bodies, headers); group 2 is an opening quote kept as it was.
_KEY_VALUE = re.compile(
    rf"""(?i)(?<![A-Za-z0-9])((?:\\?["'])?(?:{_KEY_NAMES})(?:\\?["'])?\s*[:=]\s*)"""
    r"""(?:(?:bearer|basic)\s+)?(?:(\\?")(?:[^"\\]|\\.)*?\\?"|(')[^']*'|[^\s,;&}<>"']+)"""
)
_TOKENS = (
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bya29\.[A-Za-z0-9._-]+"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
)


def _key_value(match: re.Match[str]) -> str:
    quote = match[2] or match[3] or ""
    return f"{match[1]}{quote}{REDACTED}{quote}"


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every token-shaped part and every one of ``secrets`` replaced."""
    text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _KEY_VALUE.sub(_key_value, text)
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret and len(secret) >= 8:  # a short "secret" would blank out ordinary words
            text = text.replace(secret, REDACTED)
    return text


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("_", "").replace("-", "") in SECRET_KEYS


def redact_json(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A copy of decoded JSON with secret-named fields and token-shaped strings redacted."""
    known = tuple(secrets)
    if isinstance(value, dict):
        return {
            key: REDACTED if _is_secret_key(key) else redact_json(item, known)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item, known) for item in value]
    if isinstance(value, str):
        return redact_text(value, known)
    return value
