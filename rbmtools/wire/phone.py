"""E.164 phone numbers as RBM wants them: ``+`` then 8 to 15 digits, the first not 0.

Input may carry the separators people type (spaces, dashes, dots, parentheses); they are
removed. Anything else (letters, a missing ``+``, ``00`` prefixes) is rejected rather than
guessed at. In URL paths the ``+`` travels raw, as in Google's samples; ``%2B`` is accepted
when parsing a path.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from rbmtools.errors import ValidationError

__all__ = ["E164_PATTERN", "normalize_phone", "phone_from_path", "phone_path_segment"]

E164_PATTERN = re.compile(r"\+[1-9][0-9]{7,14}")
_SEPARATORS = re.compile(r"[\s\-.()]")


def normalize_phone(phone: object, field: str = "phone") -> str:
    """Return ``phone`` in canonical E.164 (``+`` and digits), or raise ``ValidationError``."""
    if not isinstance(phone, str):
        raise ValidationError(field, phone, "must be a string in E.164 form like '+12223334444'")
    compact = _SEPARATORS.sub("", phone)
    if not compact.startswith("+"):
        raise ValidationError(field, phone, "must start with '+' and the country code (E.164)")
    if not E164_PATTERN.fullmatch(compact):
        raise ValidationError(
            field, phone, "must be '+' then 8 to 15 digits, the first not 0 (E.164)"
        )
    return compact


def phone_path_segment(phone: str) -> str:
    """The ``{E164}`` path segment for a normalised phone: the raw ``+`` is kept."""
    return normalize_phone(phone)


def phone_from_path(segment: str) -> str:
    """Parse a ``{E164}`` path segment that may spell ``+`` raw or as ``%2B``."""
    return normalize_phone(unquote(segment))
