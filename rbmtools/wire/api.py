"""Where the RBM API lives: base URLs, the OAuth scope, and the path of every method.

The global host is ``rcsbusinessmessaging.googleapis.com``; regional hosts put ``us-``,
``europe-`` or ``asia-`` in front, and Google recommends the one nearest the caller. Paths carry
the phone number with its raw ``+``. Every call also needs the ``agentId`` query parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from rbmtools.errors import ValidationError
from rbmtools.wire.phone import phone_path_segment

__all__ = [
    "AGENT_DOMAIN",
    "GLOBAL_BASE_URL",
    "GOOGLE_TOKEN_AUDIENCE",
    "GOOGLE_TOKEN_AUDIENCES",
    "PLATFORM_TIME_HEADER",
    "REGIONS",
    "SCOPE",
    "TESTERS_CREATE_REMOVED",
    "agent_address",
    "agent_events_path",
    "base_url_for",
    "batch_get_path",
    "capabilities_path",
    "files_path",
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
#: Every audience Google's token endpoint accepts in a service-account JWT. Google's Node
#: client (googleapis -> gtoken) signs for the v4 URL, sends no ``kid`` and posts to that URL
#: whatever the key file's ``token_uri`` says.
GOOGLE_TOKEN_AUDIENCES = (
    GOOGLE_TOKEN_AUDIENCE,
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
#: ``testers.create`` was removed by Google on this day (replaced by the Business
#: Communications API's testers); the emulator serves it only before that platform time.
TESTERS_CREATE_REMOVED = datetime(2026, 1, 31, tzinfo=UTC)
#: A header only the emulator sends: the platform time at which it handled the call (RFC
#: 3339). Clients stamp their records with it, so everything logged while talking to an
#: emulator whose clock runs fast or starts elsewhere is on the platform's one clock.
PLATFORM_TIME_HEADER = "X-Rbmtools-Platform-Time"
MAX_ID_LENGTH = 256
#: An agent's full address is its id and this domain (``my-agent@rbm.goog``): webhook events
#: name the agent so, while API calls take the bare id.
AGENT_DOMAIN = "@rbm.goog"


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
    return agent.removesuffix(AGENT_DOMAIN)


def agent_address(agent_id: str) -> str:
    """The agent's full address as webhook events carry it: ``my-agent@rbm.goog``."""
    return validate_agent_id(agent_id) + AGENT_DOMAIN


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


def files_path() -> str:
    """``files.create``: POST ``{"fileUrl", "thumbnailUrl"?, "contentDescription"?}`` with
    query ``agentId``; the answer's ``name`` (``files/...``) is what cards use as
    ``fileName``. Uploads of the bytes themselves go to ``/upload`` + this path."""
    return "/v1/files"


def batch_get_path() -> str:
    """``users.batchGet``: POST ``{"users": [...], "agentId": ...}``."""
    return "/v1/users:batchGet"
