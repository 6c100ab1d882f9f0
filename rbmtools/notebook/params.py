"""Notebook parameters from the command line and from YAML or JSON files.

``-p KEY VALUE`` values are read as JSON when they are JSON (numbers, ``true``/``false``,
``null``, lists, objects, quoted strings), as ``true``/``false``/``none`` in any case, and as
plain text otherwise: ``-p ttl 10m`` is the string "10m", ``-p bootstrap 50`` the number 50,
``-p by '["useCase","arm"]'`` a list. A parameters file is a YAML or JSON mapping; values given
with ``-p`` win over the file's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from rbmtools.errors import ValidationError

__all__ = ["merge_parameters", "parse_value", "read_parameters_file"]

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """A command-line parameter value: JSON if it is JSON, a boolean or None by name, else
    the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    word = text.strip().lower()
    if word in _WORDS:
        return _WORDS[word]
    return text


def _plain_dates(value: Any) -> Any:
    """YAML reads 2026-11-23 as a date: keep it as the text the user wrote (ISO 8601)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain_dates(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_dates(v) for k, v in value.items()}
    return value


def read_parameters_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML or JSON file mapping parameter names to values."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(
            "parameters file", str(path), f"cannot be read ({exc.strerror})"
        ) from None
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        problem = str(exc).splitlines()[0]
        raise ValidationError(
            "parameters file", str(path), f"is not valid YAML or JSON ({problem})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise ValidationError("parameters file", str(path), "must map parameter names to values")
    return {k: _plain_dates(v) for k, v in data.items()}


def merge_parameters(
    file: str | os.PathLike[str] | None, pairs: Iterable[tuple[str, str]] | None
) -> dict[str, Any]:
    """The file's parameters (if any), then each ``(KEY, VALUE)`` pair parsed over them."""
    values = read_parameters_file(file) if file is not None else {}
    for key, text in pairs or ():
        if not key.isidentifier():
            raise ValidationError("parameter", key, "must be a Python name (letters, digits, _)")
        values[key] = parse_value(text)
    return values
