"""Helpers shared by the webhook tests: events, signed pushes, free ports, raw log lines."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from rbmtools.wire import SIGNATURE_HEADER, build_push, event_payload

TOKEN = "test-client-token-7c1f"
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def make_event(index: int, event_type: str = "DELIVERED", **overrides: Any) -> dict[str, Any]:
    """A valid decoded event with a distinct eventId per index."""
    payload = event_payload(
        agent_id="test-agent",
        phone=f"+1222333{index % 10000:04d}",
        event_type=event_type,
        event_id=f"evt-{index:06d}",
        send_time=T0 + timedelta(milliseconds=index),
        message_id=f"msg-{index:06d}",
    )
    payload.update(overrides)
    return payload


def signed(event: dict[str, Any], token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    """A push body and its headers, signed with ``token``."""
    envelope, signature = build_push(event, token, message_id="1", publish_time=T0)
    return json.dumps(envelope).encode(), {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lines_of(log_dir) -> list[dict[str, Any]]:
    """Every line of every segment, parsed, in write order (no de-duplication)."""
    from rbmtools.webhook.layout import list_segments

    out = []
    for path in list_segments(log_dir):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out
