"""Google's JSON error envelope, both ways.

Every RBM error answer is ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``
with ``code`` equal to the HTTP status and ``status`` the canonical gRPC name. The emulator writes
it with ``error_body``; the client reads it back into an ``ApiError`` with ``api_error``, which
redacts anything token-shaped first (error pages of proxies echo ``Authorization`` headers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rbmtools.errors import ApiError
from rbmtools.wire.redact import redact_json, redact_text

__all__ = ["STATUS_NAMES", "api_error", "error_body"]

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """The envelope for an error answer with HTTP status ``code``."""
    name = status or STATUS_NAMES.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": name}}


def api_error(
    http_status: int,
    body: bytes | str | dict[str, Any] | None,
    *,
    method: str | None = None,
    url: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ApiError:
    """Turn an error answer into an ``ApiError``, tolerating bodies that are not the envelope.

    Token-shaped text (bearer tokens, ``ya29.`` tokens, JWTs, secret-named fields) and each of
    ``secrets`` (e.g. the caller's current token) are redacted from the message and details.
    """
    known = tuple(secrets)
    envelope: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            envelope = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            envelope = {"error": {"message": redact_text(text, known).strip()[:500]}}
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(error, dict):
        error = {}
    try:
        details = redact_json(error.get("details"), known)
    except RecursionError:  # nested deeper than we care to walk: not worth keeping
        details = None
    name = error.get("status") or STATUS_NAMES.get(http_status, "UNKNOWN")
    message = error.get("message") or f"HTTP {http_status} without an error message"
    return ApiError(
        http_status,
        redact_text(str(name), known),
        redact_text(str(message), known),
        method=method,
        url=url,
        details=details,
    )
