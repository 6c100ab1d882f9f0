import json
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from rbmtools import ShortExpiryWarning, ValidationError
from rbmtools.wire import (
    MAX_MESSAGE_BYTES,
    TrafficType,
    agent_message,
    card_content,
    carousel_card,
    dial,
    media,
    open_url,
    reply,
    standalone_card,
    validate_agent_message,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_doc_example_validates(platform_examples):
    body = platform_examples["agent_message"]
    assert validate_agent_message(body) == body


def test_text_message_with_everything():
    body = agent_message(
        "Your code is 123456",
        suggestions=[
            reply("Thanks"),
            open_url("Site", "https://example.com"),
            dial("Call", "+44 20 7123 4567"),
        ],
        traffic_type="authentication",
        ttl="10m",
    )
    assert body == {
        "contentMessage": {
            "text": "Your code is 123456",
            "suggestions": [
                {"reply": {"text": "Thanks", "postbackData": "Thanks"}},
                {
                    "action": {
                        "text": "Site",
                        "postbackData": "Site",
                        "openUrlAction": {"url": "https://example.com"},
                    }
                },
                {
                    "action": {
                        "text": "Call",
                        "postbackData": "Call",
                        "dialAction": {"phoneNumber": "+442071234567"},
                    }
                },
            ],
        },
        "messageTrafficType": "AUTHENTICATION",
        "ttl": "600s",
    }
    json.dumps(body)  # plain JSON-ready dicts


def test_expire_time_is_canonical_utc():
    body = agent_message("hi", expire_time="2026-11-25T15:40:00+05:30", now=NOW)
    assert body["expireTime"] == "2026-11-25T10:10:00Z"
    assert "ttl" not in body


def test_both_expiries_are_refused():
    with pytest.raises(ValidationError, match="at most one"):
        agent_message("hi", ttl="10m", expire_time=NOW + timedelta(minutes=10))


def test_expiry_limits():
    with pytest.raises(ValidationError, match="15 days"):
        agent_message("hi", ttl=timedelta(days=15, seconds=1))
    agent_message("hi", ttl=timedelta(days=15))
    with pytest.raises(ValidationError, match="15 days ahead"):
        agent_message("hi", expire_time=NOW + timedelta(days=16), now=NOW)
    with pytest.raises(ValidationError, match="in the future"):
        agent_message("hi", expire_time=NOW - timedelta(seconds=1), now=NOW)
    with pytest.raises(ValidationError, match="longer than zero"):
        agent_message("hi", ttl=0)


def test_short_expiry_warns_but_passes():
    with pytest.warns(ShortExpiryWarning, match="10 s"):
        body = agent_message("hi", ttl=5)
    assert body["ttl"] == "5s"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent_message("hi", ttl=10)
        validate_agent_message({"contentMessage": {"text": "x"}, "ttl": "1s"}, warn=False)


def test_naive_expire_time_is_refused():
    with pytest.raises(ValidationError, match="naive"):
        agent_message("hi", expire_time=datetime(2026, 11, 25, 10, 10))


def test_standalone_card_and_carousel():
    card = card_content(
        "Sale", "Half price today", media=media("https://x.test/a.png"), suggestions=[reply("Shop")]
    )
    body = agent_message(rich_card=standalone_card(card), traffic_type=TrafficType.PROMOTION)
    assert body["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]["title"] == "Sale"
    body = agent_message(rich_card=carousel_card([card, card_content("Two")]))
    assert len(body["contentMessage"]["richCard"]["carouselCard"]["cardContents"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": "x" * 3073}, "contentMessage.text"),
        ({"text": ""}, "contentMessage.text"),
        ({}, "contentMessage"),
        ({"text": "a", "content_info": {"fileUrl": "https://x"}}, "contentMessage"),
        ({"text": "a", "suggestions": [reply("r")] * 12}, "contentMessage.suggestions"),
        (
            {"text": "a", "suggestions": [reply("x" * 26)]},
            "contentMessage.suggestions[0].reply.text",
        ),
        (
            {"text": "a", "suggestions": [reply("ok", "p" * 2049)]},
            "contentMessage.suggestions[0].reply.postbackData",
        ),
        ({"text": "a", "traffic_type": "SPAM"}, "messageTrafficType"),
        (
            {"rich_card": standalone_card(card_content("t" * 201))},
            "contentMessage.richCard.standaloneCard.cardContent.title",
        ),
        (
            {"rich_card": standalone_card(card_content("t", "d" * 2001))},
            "contentMessage.richCard.standaloneCard.cardContent.description",
        ),
        (
            {"rich_card": standalone_card(card_content("t", suggestions=[reply("a")] * 5))},
            "contentMessage.richCard.standaloneCard.cardContent.suggestions",
        ),
        (
            {"rich_card": standalone_card(card_content())},
            "contentMessage.richCard.standaloneCard.cardContent",
        ),
        (
            {"rich_card": carousel_card([card_content("only one")])},
            "contentMessage.richCard.carouselCard.cardContents",
        ),
        (
            {"rich_card": carousel_card([card_content("c")] * 11)},
            "contentMessage.richCard.carouselCard.cardContents",
        ),
        (
            {"rich_card": standalone_card(card_content("t"), orientation="DIAGONAL")},
            "contentMessage.richCard.standaloneCard.cardOrientation",
        ),
        (
            {"rich_card": standalone_card(card_content(media=media("u", height="HUGE")))},
            "contentMessage.richCard.standaloneCard.cardContent.media.height",
        ),
    ],
)
def test_builder_rejections_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as info:
        agent_message(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_size_limit_counts_utf8_bytes():
    wide = "\U0001f600"  # 4 bytes in UTF-8: field limits count characters, the size bytes
    chips = [reply("ok", wide * 2048)] * 4
    card = card_content("t", wide * 1000, suggestions=chips)
    fits = agent_message(rich_card=carousel_card([card] * 6))
    assert len(json.dumps(fits, ensure_ascii=False).encode()) <= MAX_MESSAGE_BYTES
    with pytest.raises(ValidationError, match=f"at most {MAX_MESSAGE_BYTES} bytes") as info:
        agent_message(rich_card=carousel_card([card] * 10))
    assert info.value.field == "agentMessage"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "agentMessage"),
        ({"contentMessage": "hi"}, "contentMessage"),
        ({"contentMessage": {"text": 5}}, "contentMessage.text"),
        ({"contentMessage": {"text": "a"}, "colour": "red"}, "agentMessage.colour"),
        ({"contentMessage": {"text": "a", "emoji": 1}}, "contentMessage.emoji"),
        (
            {"contentMessage": {"text": "a", "suggestions": [{"action": {"text": "go"}}]}},
            "contentMessage.suggestions[0].action",
        ),
        (
            {
                "contentMessage": {
                    "text": "a",
                    "suggestions": [{"action": {"text": "go", "dialAction": {"phoneNumber": "5"}}}],
                }
            },
            "contentMessage.suggestions[0].action.dialAction.phoneNumber",
        ),
        ({"contentMessage": {"text": "a"}, "ttl": "soon"}, "ttl"),
        ({"contentMessage": {"text": "a"}, "expireTime": "tomorrow"}, "expireTime"),
        ({"contentMessage": {"uploadedRbmFile": {}}}, "contentMessage.uploadedRbmFile.fileName"),
    ],
)
def test_server_side_validation(body, field):
    with pytest.raises(ValidationError) as info:
        validate_agent_message(body)
    assert info.value.field == field
