"""Text the protocol and the logs carry is Unicode that UTF-8 can encode.

Python strings can hold lone surrogates (``"\\ud800"``, or ``"\\udcff"`` from a command-line
argument that was not valid UTF-8), which no JSON body and no UTF-8 log line can carry: encoding
them fails mid-request or mid-write. They are refused up front as bad input.
"""

from __future__ import annotations

from rbmtools.errors import ValidationError

__all__ = ["require_unicode"]


def require_unicode(value: str, field: str) -> str:
    """``value`` itself, or ``ValidationError`` when it holds a lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field,
            value,
            f"is not valid Unicode text (a lone surrogate at position {exc.start}; "
            "was it given in another encoding than UTF-8?)",
        ) from None
    return value
