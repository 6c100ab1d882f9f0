"""Request bodies of the RBM API, read the way Google's API front end reads them.

Google's own curl samples send single-quoted JSON (``-d "{'contentMessage': {'text': 'Hi'}}"``)
and Google accepts it; Google's Python helper sends ``null`` for fields it leaves unset and a
few snake_case names (``postback_data``), which protobuf's JSON mapping accepts (null means
"not set", and a field may be written with its proto name). So API bodies are parsed as JSON5
(a superset of JSON with single-quoted strings and bare names; pyjson5, a compiled parser,
keeps even a hostile 1 MiB body cheap) and then normalised: ``null`` members are dropped and
snake_case names become lowerCamelCase. Everything else the emulator reads (the admin surface,
the token endpoint's form) stays strict.

Hostile input is a 400, never a 500: invalid UTF-8, nesting deeper than ``MAX_DEPTH``, lone
surrogates (``"\\ud800"``: no UTF-8 encoding exists for them) and trailing garbage.
"""

from __future__ import annotations

from typing import Any

import pyjson5

from rbmtools.errors import ValidationError

__all__ = ["MAX_DEPTH", "read_api_body"]

#: Nesting an RBM body never needs more than about ten levels of (a carousel's suggestion).
MAX_DEPTH = 32


def read_api_body(raw: bytes, field: str, *, required: bool = True) -> Any:
    """The decoded, normalised JSON value of an API request body (``None`` when empty and
    not ``required``); ``ValidationError`` naming ``field`` when it cannot be read."""
    if not raw.strip():
        if not required:
            return None
        raise ValidationError(field, "", "the request body is empty; a JSON object is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            field, f"{len(raw)} bytes", f"is not UTF-8 text (byte {exc.start})"
        ) from None
    try:
        value = pyjson5.decode(text, maxdepth=MAX_DEPTH)
    except pyjson5.Json5NestingTooDeep:
        raise ValidationError(
            field, f"{len(raw)} bytes", f"nests deeper than {MAX_DEPTH}"
        ) from None
    except (pyjson5.Json5Exception, ValueError, RecursionError) as exc:
        problem = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
        raise ValidationError(field, text[:60], f"is not valid JSON ({problem})") from None
    return _proto_json(value)


def _proto_json(value: Any) -> Any:
    """Drop ``null`` members and accept proto (snake_case) names, as protobuf's JSON mapping
    does. Strings are checked to be encodable (pyjson5 already refuses lone surrogates)."""
    if isinstance(value, dict):
        return {_camel(str(k)): _proto_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_proto_json(v) for v in value]
    return value


def _camel(name: str) -> str:
    if "_" not in name.strip("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
