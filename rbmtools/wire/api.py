"""Where the RBM API lives: base URLs, the OAuth scope, and the path of every method.

The global host is ``rcsbusinessmessaging.googleapis.com``; regional hosts put ``us-``,
``europe-`` or ``asia-`` in front, and Google recommends the one nearest the caller. Paths carry
the phone number with its raw ``+``. Every call also needs the ``agentId`` query parameter.
"""

from __future__ import annotations

from urllib.parse import quote

from rbmtools.errors import ValidationError
from rbmtools.wire.phone import phone_path_segment

__all__ = [
    "GLOBAL_BASE_URL",
    "GOOGLE_TOKEN_AUDIENCE",
    "REGIONS",
    "SCOPE",
    "agent_events_path",
    "base_url_for",
    "batch_get_path",
    "capabilities_path",
    "message_name",
    "messages_path",
    "revoke_path",
    "testers_path",
    "validate_agent_id",
    "validate_message_id",
]

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"
GLOBAL_BASE_URL = "https://rcsbusinessmessaging.googleapis.com"
REGIONS = ("us", "europe", "asia")
#: google-auth always signs service-account JWTs for this audience, whatever the token_uri.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
MAX_ID_LENGTH = 256


def base_url_for(region: str | None = None) -> str:
    """The API base for ``region`` (``us``, ``europe``, ``asia``) or the global one."""
    if region is None or region == "" or region == "global":
        return GLOBAL_BASE_URL
    key = region.strip().lower()
    if key not in REGIONS:
        raise ValidationError("region", region, f"must be one of {', '.join(REGIONS)} or unset")
    return f"https://{key}-rcsbusinessmessaging.googleapis.com"


def _validate_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, value, "must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, value, f"must be at most {MAX_ID_LENGTH} characters")
    if any(ch.isspace() or ch in "/?#%" or not ch.isprintable() for ch in value):
        raise ValidationError(field, value, "must not contain spaces, '/', '?', '#' or '%'")
    return value


def validate_message_id(value: object, field: str = "messageId") -> str:
    """A message or event id: any non-empty printable string of sane length (not only UUIDs)."""
    return _validate_id(value, field)


def validate_agent_id(value: object, field: str = "agentId") -> str:
    """The agent id, i.e. the part of the agent's address before ``@rbm.goog``."""
    agent = _validate_id(value, field)
    return agent.removesuffix("@rbm.goog")


def messages_path(phone: str) -> str:
    """``agentMessages.create``: POST, query ``messageId`` and ``agentId``."""
    return f"/v1/phones/{phone_path_segment(phone)}/agentMessages"


def revoke_path(phone: str, message_id: str) -> str:
    """``agentMessages.delete``: DELETE with an empty body, query ``agentId``."""
    return f"{messages_path(phone)}/{quote(validate_message_id(message_id), safe='')}"


def message_name(phone: str, message_id: str) -> str:
    """The resource name the platform gives a created message."""
    return f"phones/{phone_path_segment(phone)}/agentMessages/{message_id}"


def capabilities_path(phone: str) -> str:
    """``getCapabilities``: GET, query ``requestId`` and ``agentId``."""
    return f"/v1/phones/{phone_path_segment(phone)}/capabilities"


def agent_events_path(phone: str) -> str:
    """``agentEvents.create`` (READ, IS_TYPING): POST, query ``eventId`` and ``agentId``."""
    return f"/v1/phones/{phone_path_segment(phone)}/agentEvents"


def testers_path(phone: str) -> str:
    """``testers.create``: POST, query ``agentId``."""
    return f"/v1/phones/{phone_path_segment(phone)}/testers"


def batch_get_path() -> str:
    """``users.batchGet``: POST ``{"users": [...], "agentId": ...}``."""
    return "/v1/users:batchGet"
