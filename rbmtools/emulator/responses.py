"""JSON answers in the shapes the emulator speaks: plain JSON, and Google's error envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from rbmtools.wire import error_body

__all__ = ["error_answer", "json_answer"]


def json_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """A compact UTF-8 JSON response."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)


def error_answer(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error in Google's envelope: ``{"error": {"code", "message", "status"}}``."""
    return json_answer(status, error_body(status, message), headers)
