"""AgentMessage bodies: build them from plain arguments, or validate one received as JSON.

Both the client (before any I/O) and the emulator (on every send) run ``validate_agent_message``,
so the two cannot disagree about what the platform accepts. Bodies are plain dicts ready for
JSON. Limits follow Google's reference: text at most 3072 characters, at most 11 suggestions
(4 on a card), suggestion text at most 25 characters and postback data at most 2048, card title
at most 200 and description at most 2000 characters, carousels of 2 to 10 cards, and the whole
serialized message at most 250 KB.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.wire.expiry import expiry_fields
from rbmtools.wire.phone import normalize_phone
from rbmtools.wire.text import require_unicode
from rbmtools.wire.times import is_proto_duration

__all__ = [
    "DEFAULT_TRAFFIC_TYPES",
    "MAX_CARD_DESCRIPTION",
    "MAX_CARD_SUGGESTIONS",
    "MAX_CARD_TITLE",
    "MAX_MESSAGE_BYTES",
    "MAX_POSTBACK_DATA",
    "MAX_SUGGESTIONS",
    "MAX_SUGGESTION_TEXT",
    "MAX_TEXT",
    "AgentUseCase",
    "TrafficType",
    "agent_message",
    "applied_traffic_type",
    "card_content",
    "carousel_card",
    "dial",
    "media",
    "normalize_traffic_type",
    "open_url",
    "reply",
    "standalone_card",
    "validate_agent_message",
]

MAX_TEXT = 3072
MAX_SUGGESTIONS = 11
MAX_CARD_SUGGESTIONS = 4
MAX_SUGGESTION_TEXT = 25
MAX_POSTBACK_DATA = 2048
MAX_CARD_TITLE = 200
MAX_CARD_DESCRIPTION = 2000
MIN_CAROUSEL_CARDS, MAX_CAROUSEL_CARDS = 2, 10
MAX_MESSAGE_BYTES = 250 * 1024

_CONTENT_KINDS = ("text", "richCard", "uploadedRbmFile", "contentInfo")
_ACTION_KINDS = (
    "dialAction",
    "openUrlAction",
    "viewLocationAction",
    "createCalendarEventAction",
    "shareLocationAction",
)
_MEDIA_HEIGHTS = ("SHORT", "MEDIUM", "TALL")
_MEDIA_KINDS = ("contentInfo", "uploadedRbmFile", "fileName")
_ORIENTATIONS = ("VERTICAL", "HORIZONTAL")
_ALIGNMENTS = ("LEFT", "RIGHT")
_CARD_WIDTHS = ("SMALL", "MEDIUM")
_TOP_LEVEL = {"contentMessage", "messageTrafficType", "ttl", "expireTime", "name", "sendTime"}


class TrafficType(StrEnum):
    """RBM ``messageTrafficType``: what the message is for (the natural use-case tag)."""

    UNSPECIFIED = "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED"
    AUTHENTICATION = "AUTHENTICATION"
    TRANSACTION = "TRANSACTION"
    PROMOTION = "PROMOTION"
    SERVICEREQUEST = "SERVICEREQUEST"
    ACKNOWLEDGEMENT = "ACKNOWLEDGEMENT"


class AgentUseCase(StrEnum):
    """The use case an agent is launched with; it decides the default ``messageTrafficType``."""

    OTP = "OTP"
    TRANSACTIONAL = "TRANSACTIONAL"
    PROMOTIONAL = "PROMOTIONAL"
    MULTI_USE = "MULTI_USE"


#: The traffic type the platform applies when a message names none (or UNSPECIFIED). A
#: multi-use agent has no default: it must name one on every message.
DEFAULT_TRAFFIC_TYPES = {
    AgentUseCase.OTP: TrafficType.AUTHENTICATION,
    AgentUseCase.TRANSACTIONAL: TrafficType.TRANSACTION,
    AgentUseCase.PROMOTIONAL: TrafficType.PROMOTION,
}


def applied_traffic_type(given: object, use_case: str | AgentUseCase) -> str:
    """The ``messageTrafficType`` the platform applies to a message of an agent.

    A message that names a type keeps it; one that names none or
    ``MESSAGE_TRAFFIC_TYPE_UNSPECIFIED`` gets its agent's default, and a multi-use agent,
    which has none, is refused (``ValidationError``: a 400 from the platform).
    """
    case = AgentUseCase(use_case)
    if given is not None:
        named = normalize_traffic_type(given)
        if named != TrafficType.UNSPECIFIED:
            return named
    default = DEFAULT_TRAFFIC_TYPES.get(case)
    if default is None:
        raise ValidationError(
            "messageTrafficType",
            given,
            "is required for a multi-use agent (one of "
            + ", ".join(t.value for t in TrafficType if t is not TrafficType.UNSPECIFIED)
            + ")",
        )
    return default.value


def normalize_traffic_type(value: object, field: str = "messageTrafficType") -> str:
    """Normalise a traffic type given as an enum member or its name in any case."""
    if isinstance(value, TrafficType):
        return value.value
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper in TrafficType.__members__.values():
            return upper
    allowed = ", ".join(t.value for t in TrafficType)
    raise ValidationError(field, value, f"must be one of {allowed}")


# ---------------------------------------------------------------- validation (shared, strict)


def _require_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "must be a JSON object")
    return value


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ValidationError(f"{field}.{unknown[0]}", obj[unknown[0]], "is not a known field")


def _check_text(value: object, field: str, limit: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be a string")
    if required and not value:
        raise ValidationError(field, value, "must not be empty")
    require_unicode(value, field)
    if len(value) > limit:
        raise ValidationError(field, value, f"must be at most {limit} characters, not {len(value)}")


def _check_enum(value: object, field: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValidationError(field, value, f"must be one of {', '.join(allowed)}")


def _exactly_one(obj: Mapping[str, Any], kinds: Iterable[str], field: str) -> str:
    present = [k for k in kinds if obj.get(k) is not None]
    if len(present) != 1:
        shown = ", ".join(kinds)
        problem = "has none of" if not present else "has more than one of"
        raise ValidationError(field, dict(obj), f"{problem} {shown}; exactly one is required")
    return present[0]


def _validate_content_info(value: object, field: str) -> None:
    info = _require_mapping(value, field)
    _check_keys(info, ("fileUrl", "thumbnailUrl", "forceRefresh"), field)
    _check_text(info.get("fileUrl"), f"{field}.fileUrl", 2048)
    _check_text(info.get("thumbnailUrl"), f"{field}.thumbnailUrl", 2048, required=False)
    if "forceRefresh" in info and not isinstance(info["forceRefresh"], bool):
        raise ValidationError(f"{field}.forceRefresh", info["forceRefresh"], "must be a boolean")


def _validate_uploaded_file(value: object, field: str) -> None:
    upload = _require_mapping(value, field)
    _check_keys(upload, ("fileName", "thumbnailName"), field)
    _check_text(upload.get("fileName"), f"{field}.fileName", 1024)
    _check_text(upload.get("thumbnailName"), f"{field}.thumbnailName", 1024, required=False)


def _validate_suggestion(value: object, field: str) -> None:
    suggestion = _require_mapping(value, field)
    _check_keys(suggestion, ("reply", "action"), field)
    kind = _exactly_one(suggestion, ("reply", "action"), field)
    inner = _require_mapping(suggestion[kind], f"{field}.{kind}")
    where = f"{field}.{kind}"
    _check_text(inner.get("text"), f"{where}.text", MAX_SUGGESTION_TEXT)
    _check_text(
        inner.get("postbackData"), f"{where}.postbackData", MAX_POSTBACK_DATA, required=False
    )
    if kind == "reply":
        _check_keys(inner, ("text", "postbackData"), where)
        return
    _check_keys(inner, ("text", "postbackData", "fallbackUrl", *_ACTION_KINDS), where)
    action = _exactly_one(inner, _ACTION_KINDS, where)
    detail = _require_mapping(inner[action], f"{where}.{action}")
    if action == "dialAction":
        normalize_phone(detail.get("phoneNumber"), f"{where}.dialAction.phoneNumber")
    elif action == "openUrlAction":
        _check_text(detail.get("url"), f"{where}.openUrlAction.url", 2048)


def _validate_suggestions(value: object, field: str, limit: int) -> None:
    if not isinstance(value, list):
        raise ValidationError(field, value, "must be a list")
    if len(value) > limit:
        raise ValidationError(field, f"{len(value)} suggestions", f"must hold at most {limit}")
    for i, suggestion in enumerate(value):
        _validate_suggestion(suggestion, f"{field}[{i}]")


def _validate_media(value: object, field: str) -> None:
    """Card media: ``contentInfo`` (a URL), ``uploadedRbmFile`` or ``fileName`` (the name
    ``files.create`` returned, which Google's Python helper uses for image cards)."""
    item = _require_mapping(value, field)
    _check_keys(item, ("height", *_MEDIA_KINDS), field)
    if "height" in item:
        _check_enum(item["height"], f"{field}.height", _MEDIA_HEIGHTS)
    kind = _exactly_one(item, _MEDIA_KINDS, field)
    if kind == "contentInfo":
        _validate_content_info(item[kind], f"{field}.contentInfo")
    elif kind == "uploadedRbmFile":
        _validate_uploaded_file(item[kind], f"{field}.uploadedRbmFile")
    else:
        _check_text(item[kind], f"{field}.fileName", 1024)


def _validate_card_content(value: object, field: str) -> None:
    card = _require_mapping(value, field)
    _check_keys(card, ("title", "description", "media", "suggestions"), field)
    if not any(card.get(k) for k in ("title", "description", "media")):
        raise ValidationError(field, dict(card), "needs at least one of title, description, media")
    _check_text(card.get("title"), f"{field}.title", MAX_CARD_TITLE, required=False)
    _check_text(
        card.get("description"), f"{field}.description", MAX_CARD_DESCRIPTION, required=False
    )
    if card.get("media") is not None:
        _validate_media(card["media"], f"{field}.media")
    if "suggestions" in card:
        _validate_suggestions(card["suggestions"], f"{field}.suggestions", MAX_CARD_SUGGESTIONS)


def _validate_rich_card(value: object, field: str) -> None:
    rich = _require_mapping(value, field)
    _check_keys(rich, ("standaloneCard", "carouselCard"), field)
    kind = _exactly_one(rich, ("standaloneCard", "carouselCard"), field)
    where = f"{field}.{kind}"
    card = _require_mapping(rich[kind], where)
    if kind == "standaloneCard":
        _check_keys(card, ("cardOrientation", "thumbnailImageAlignment", "cardContent"), where)
        if "cardOrientation" in card:
            _check_enum(card["cardOrientation"], f"{where}.cardOrientation", _ORIENTATIONS)
        if "thumbnailImageAlignment" in card:
            _check_enum(
                card["thumbnailImageAlignment"], f"{where}.thumbnailImageAlignment", _ALIGNMENTS
            )
        _validate_card_content(card.get("cardContent"), f"{where}.cardContent")
        return
    _check_keys(card, ("cardWidth", "cardContents"), where)
    if "cardWidth" in card:
        _check_enum(card["cardWidth"], f"{where}.cardWidth", _CARD_WIDTHS)
    contents = card.get("cardContents")
    if not isinstance(contents, list):
        raise ValidationError(f"{where}.cardContents", contents, "must be a list of cards")
    if not MIN_CAROUSEL_CARDS <= len(contents) <= MAX_CAROUSEL_CARDS:
        raise ValidationError(
            f"{where}.cardContents",
            f"{len(contents)} cards",
            f"must hold {MIN_CAROUSEL_CARDS} to {MAX_CAROUSEL_CARDS} cards",
        )
    for i, content in enumerate(contents):
        _validate_card_content(content, f"{where}.cardContents[{i}]")


def validate_agent_message(
    body: object, *, now: datetime | None = None, warn: bool = True
) -> dict[str, Any]:
    """Check an AgentMessage body against the protocol; return it with canonical expiry.

    Raises ``ValidationError`` naming the first offending field (as a JSON path such as
    ``contentMessage.suggestions[2].reply.text``). ``ttl`` must be what travels on the wire, a
    Duration string (``"600s"``); ``agent_message`` and the client turn friendlier forms
    (``600``, ``"10m"``) into it first. ``now`` is the submission time used to
    judge an ``expireTime``; ``warn=False`` silences the short-expiry warning (servers).
    """
    message = _require_mapping(body, "agentMessage")
    _check_keys(message, _TOP_LEVEL, "agentMessage")
    content = _require_mapping(message.get("contentMessage"), "contentMessage")
    _check_keys(content, (*_CONTENT_KINDS, "suggestions"), "contentMessage")
    kind = _exactly_one(content, _CONTENT_KINDS, "contentMessage")
    if kind == "text":
        _check_text(content["text"], "contentMessage.text", MAX_TEXT)
    elif kind == "richCard":
        _validate_rich_card(content["richCard"], "contentMessage.richCard")
    elif kind == "uploadedRbmFile":
        _validate_uploaded_file(content[kind], "contentMessage.uploadedRbmFile")
    else:
        _validate_content_info(content[kind], "contentMessage.contentInfo")
    if "suggestions" in content:
        _validate_suggestions(content["suggestions"], "contentMessage.suggestions", MAX_SUGGESTIONS)
    result = {k: v for k, v in message.items() if k not in ("ttl", "expireTime")}
    ttl = message.get("ttl")
    if ttl is not None and not is_proto_duration(ttl):
        raise ValidationError(
            "ttl", ttl, 'must be a Duration string: seconds with an "s", such as "600s" or "1.5s"'
        )
    if message.get("messageTrafficType") is not None:
        _check_enum(message["messageTrafficType"], "messageTrafficType", list(TrafficType))
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore")
        result.update(expiry_fields(message.get("ttl"), message.get("expireTime"), now=now))
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    size = len(require_unicode(text, "agentMessage").encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise ValidationError(
            "agentMessage", f"{size} bytes", f"must serialize to at most {MAX_MESSAGE_BYTES} bytes"
        )
    return result


# ---------------------------------------------------------------- builders (convenient, checked)


def reply(text: str, postback_data: str | None = None) -> dict[str, Any]:
    """A suggested reply chip; ``postback_data`` defaults to the text."""
    return {"reply": {"text": text, "postbackData": postback_data or text}}


def open_url(text: str, url: str, postback_data: str | None = None) -> dict[str, Any]:
    """A suggested action that opens ``url``."""
    return {
        "action": {
            "text": text,
            "postbackData": postback_data or text,
            "openUrlAction": {"url": url},
        }
    }


def dial(text: str, phone_number: str, postback_data: str | None = None) -> dict[str, Any]:
    """A suggested action that dials ``phone_number`` (E.164)."""
    number = normalize_phone(phone_number, "dialAction.phoneNumber")
    return {
        "action": {
            "text": text,
            "postbackData": postback_data or text,
            "dialAction": {"phoneNumber": number},
        }
    }


def media(
    file_url: str,
    *,
    height: str = "MEDIUM",
    thumbnail_url: str | None = None,
    force_refresh: bool = False,
) -> dict[str, Any]:
    """Card media served from ``file_url``."""
    info: dict[str, Any] = {"fileUrl": file_url, "forceRefresh": force_refresh}
    if thumbnail_url:
        info["thumbnailUrl"] = thumbnail_url
    return {"height": height, "contentInfo": info}


def card_content(
    title: str | None = None,
    description: str | None = None,
    *,
    media: dict[str, Any] | None = None,
    suggestions: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One card's content: at least one of title, description, media; at most 4 suggestions."""
    content: dict[str, Any] = {}
    if title is not None:
        content["title"] = title
    if description is not None:
        content["description"] = description
    if media is not None:
        content["media"] = media
    chips = list(suggestions)
    if chips:
        content["suggestions"] = chips
    return content


def standalone_card(
    content: dict[str, Any],
    *,
    orientation: str = "VERTICAL",
    thumbnail_alignment: str | None = None,
) -> dict[str, Any]:
    """A ``richCard`` holding one card."""
    card: dict[str, Any] = {"cardOrientation": orientation, "cardContent": content}
    if thumbnail_alignment:
        card["thumbnailImageAlignment"] = thumbnail_alignment
    return {"standaloneCard": card}


def carousel_card(contents: Iterable[dict[str, Any]], *, width: str = "MEDIUM") -> dict[str, Any]:
    """A ``richCard`` holding a carousel of 2 to 10 cards."""
    return {"carouselCard": {"cardWidth": width, "cardContents": list(contents)}}


def agent_message(
    text: str | None = None,
    *,
    rich_card: dict[str, Any] | None = None,
    content_info: dict[str, Any] | None = None,
    uploaded_file: dict[str, Any] | None = None,
    suggestions: Iterable[dict[str, Any]] = (),
    traffic_type: str | TrafficType | None = None,
    ttl: object = None,
    expire_time: str | datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build and validate an AgentMessage body (a plain dict ready for JSON).

    Give exactly one content: ``text``, ``rich_card`` (see ``standalone_card`` and
    ``carousel_card``), ``content_info`` (``{"fileUrl": ...}``) or ``uploaded_file``.
    ``ttl`` takes seconds, a ``timedelta`` or strings such as ``"10m"``; ``expire_time`` an
    aware datetime or RFC 3339 string. Everything is checked here, before any I/O.
    """
    content: dict[str, Any] = {}
    for key, value in (
        ("text", text),
        ("richCard", rich_card),
        ("contentInfo", content_info),
        ("uploadedRbmFile", uploaded_file),
    ):
        if value is not None:
            content[key] = value
    chips = list(suggestions)
    if chips:
        content["suggestions"] = chips
    body: dict[str, Any] = {"contentMessage": content}
    if traffic_type is not None:
        body["messageTrafficType"] = normalize_traffic_type(traffic_type)
    body.update(expiry_fields(ttl, expire_time, now=now))  # warns here on a short expiry
    return validate_agent_message(body, now=now, warn=False)
