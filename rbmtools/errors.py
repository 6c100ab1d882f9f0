"""The rbmtools exception family.

Expected outcomes (a revoke answered 404, an unreachable phone) are return values; these
exceptions are for failures a person must look at. Each says what went wrong in terms of the
caller's input or the platform's answer, and never carries credentials.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RETRYABLE_STATUSES",
    "ApiError",
    "AuthError",
    "NothingToReport",
    "RbmError",
    "SignatureError",
    "ValidationError",
]

#: HTTP statuses after which the same request may succeed when repeated (with backoff).
RETRYABLE_STATUSES = frozenset({429, 500, 503, 504})

_MAX_SHOWN_VALUE = 80


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    if len(text) > _MAX_SHOWN_VALUE:
        text = text[: _MAX_SHOWN_VALUE - 5] + "...>" + text[-1]
    return text


class RbmError(Exception):
    """Base class of every error rbmtools raises on purpose."""


class ValidationError(RbmError, ValueError):
    """Input that the RBM protocol (or rbmtools) does not accept.

    The message names the field and shows the bad value, e.g.
    ``ttl: must be at most 15 days (got '16d')``.
    """

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}: {problem} (got {_show(value)})")


class ApiError(RbmError):
    """The platform answered with an error, or could not be reached at all.

    ``status`` is the HTTP status (0 when no answer arrived), ``status_name`` the canonical
    gRPC name from Google's error envelope (``NOT_FOUND``, ``UNAVAILABLE``...), and
    ``retryable`` says whether repeating the same request later may succeed.
    ``method`` and ``url`` describe the request (never its headers: they hold the token).
    """

    def __init__(
        self,
        status: int,
        status_name: str,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        retryable: bool | None = None,
        details: Any = None,
    ) -> None:
        self.status = status
        self.status_name = status_name
        self.message = message
        self.method = method
        self.url = url
        self.details = details
        self.retryable = status in RETRYABLE_STATUSES if retryable is None else retryable
        where = f" [{method} {url}]" if method and url else ""
        super().__init__(f"{status} {status_name}: {message}{where}")

    def __repr__(self) -> str:
        return (
            f"ApiError(status={self.status}, status_name={self.status_name!r}, "
            f"message={self.message!r}, retryable={self.retryable})"
        )


class AuthError(RbmError):
    """Credentials are missing, unreadable, or were refused by the token endpoint."""

    retryable = False


class NothingToReport(RbmError):
    """A report found nothing to say: no messages in its window, or too few for any estimate.
    ``rbmtools report`` exits with code 4, so a scheduled job fails loudly."""


class SignatureError(RbmError):
    """A webhook push whose ``X-Goog-Signature`` is missing, malformed or does not match.

    ``reason`` is one of ``"missing"``, ``"malformed"`` or ``"mismatch"``; receivers count
    rejections by it.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
