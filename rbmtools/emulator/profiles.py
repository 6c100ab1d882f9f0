"""Population profiles: how the emulator's simulated phones behave, as plain YAML or JSON files.

A profile describes a population, not a phone: the share of numbers that are RCS-capable, the
share that goes offline and never comes back, how long phones stay online and offline (an
alternating process of log-normal spells), how long a delivery takes while online, how often
and how soon users read, and the hand-off window in which revokes and expiries race with a
delivery. Every field is optional in a file: what a file leaves out comes from the shipped
profile its ``extends`` field names (``default`` unless given). Durations are seconds or
duration strings such as ``"90s"`` or ``"4h"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from rbmtools.errors import ValidationError
from rbmtools.wire import AgentUseCase, duration_seconds

__all__ = [
    "DEFAULT_FEATURES",
    "PROFILE_SUFFIXES",
    "Profile",
    "Spell",
    "load_profile",
    "load_profile_file",
    "profile_names",
]

#: What a profile file may be called: the admin surface reads no other files.
PROFILE_SUFFIXES = (".yaml", ".yml", ".json")
MAX_PROFILE_BYTES = 256 * 1024

#: What getCapabilities answers for an RCS-capable phone unless a profile says otherwise.
DEFAULT_FEATURES = (
    "REVOCATION",
    "RICHCARD_STANDALONE",
    "RICHCARD_CAROUSEL",
    "ACTION_CREATE_CALENDAR_EVENT",
    "ACTION_DIAL",
    "ACTION_OPEN_URL",
    "ACTION_SHARE_LOCATION",
    "ACTION_VIEW_LOCATION",
)

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class Spell:
    """A log-normal duration in seconds: ``median`` and ``sigma`` (0 means always the median)."""

    median: float
    sigma: float = 0.0

    def draw(self, u: float) -> float:
        """The duration at quantile ``u`` (0 < u < 1): deterministic given the uniform draw."""
        if self.sigma == 0.0:
            return self.median
        u = min(max(u, 1e-12), 1.0 - 1e-12)
        return self.median * math.exp(self.sigma * _STANDARD_NORMAL.inv_cdf(u))

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma * self.sigma / 2.0)

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "sigma": self.sigma}


@dataclass(frozen=True)
class Profile:
    """One population of phones and the platform's hand-off behaviour (see the module doc)."""

    name: str
    description: str = ""
    rcs_capable_share: float = 0.9
    never_back_share: float = 0.01
    online: Spell = Spell(4 * 3600.0, 1.0)
    offline: Spell = Spell(600.0, 1.8)
    latency: Spell = Spell(2.0, 0.7)
    handoff_window: float = 1.0
    race_probability: float = 0.5
    ttl_failed_delivered_probability: float = 0.8
    ttl_race_probability: float = 0.0
    ttl_race_scale: float = 10.0
    read_probability: float = 0.6
    read_delay: Spell = Spell(90.0, 1.4)
    agent_launched: bool = True
    agent_use_case: str = "TRANSACTIONAL"
    features: tuple[str, ...] = field(default=DEFAULT_FEATURES)

    def ttl_race_chance(self, ttl: float) -> float:
        """The chance that a message revoked at its expiry (TTL_EXPIRATION_REVOKED) while its
        phone is online is delivered all the same: ``ttl_race_probability`` for a TTL near
        zero, falling as exp(-ttl / ttl_race_scale), so short TTLs race far more often
        (Google recommends at least 10 s to make both notifications unlikely)."""
        if self.ttl_race_probability == 0.0:
            return 0.0
        return self.ttl_race_probability * math.exp(-max(ttl, 0.0) / self.ttl_race_scale)

    @property
    def online_share(self) -> float:
        """The long-run share of time a (coming-back) phone is online."""
        on, off = self.online.mean, self.offline.mean
        return on / (on + off) if on + off > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        """The profile in its file layout (what ``load_profile`` reads back)."""
        return {
            "name": self.name,
            "description": self.description,
            "devices": {
                "rcs_capable_share": self.rcs_capable_share,
                "never_back_share": self.never_back_share,
                "online": self.online.to_dict(),
                "offline": self.offline.to_dict(),
            },
            "delivery": {
                "latency": self.latency.to_dict(),
                "handoff_window": self.handoff_window,
                "race_probability": self.race_probability,
                "ttl_failed_delivered_probability": self.ttl_failed_delivered_probability,
                "ttl_race_probability": self.ttl_race_probability,
                "ttl_race_scale": self.ttl_race_scale,
            },
            "read": {"probability": self.read_probability, "delay": self.read_delay.to_dict()},
            "agent": {"launched": self.agent_launched, "use_case": self.agent_use_case},
            "capabilities": list(self.features),
        }


# ------------------------------------------------------------------------------------ reading

_LAYOUT: dict[str, dict[str, str]] = {
    "devices": {
        "rcs_capable_share": "share",
        "never_back_share": "share",
        "online": "spell",
        "offline": "spell",
    },
    "delivery": {
        "latency": "spell",
        "handoff_window": "seconds",
        "race_probability": "share",
        "ttl_failed_delivered_probability": "share",
        "ttl_race_probability": "share",
        "ttl_race_scale": "positive_seconds",
    },
    "read": {"probability": "share", "delay": "spell"},
    "agent": {"launched": "bool", "use_case": "use_case"},
}
_ATTRIBUTE = {
    ("devices", "rcs_capable_share"): "rcs_capable_share",
    ("devices", "never_back_share"): "never_back_share",
    ("devices", "online"): "online",
    ("devices", "offline"): "offline",
    ("delivery", "latency"): "latency",
    ("delivery", "handoff_window"): "handoff_window",
    ("delivery", "race_probability"): "race_probability",
    ("delivery", "ttl_failed_delivered_probability"): "ttl_failed_delivered_probability",
    ("delivery", "ttl_race_probability"): "ttl_race_probability",
    ("delivery", "ttl_race_scale"): "ttl_race_scale",
    ("read", "probability"): "read_probability",
    ("read", "delay"): "read_delay",
    ("agent", "launched"): "agent_launched",
    ("agent", "use_case"): "agent_use_case",
}


def _seconds(value: object, where: str) -> float:
    return duration_seconds(value, where)


def _share(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(where, value, "must be a number from 0 to 1")
    if not 0.0 <= float(value) <= 1.0:
        raise ValidationError(where, value, "must be from 0 to 1")
    return float(value)


def _spell(value: object, where: str) -> Spell:
    if not isinstance(value, Mapping):
        raise ValidationError(where, value, "must be a mapping with 'median' and 'sigma'")
    unknown = sorted(set(value) - {"median", "sigma"})
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}", value[unknown[0]], "is not a known field")
    if "median" not in value:
        raise ValidationError(f"{where}.median", None, "is required")
    median = _seconds(value["median"], f"{where}.median")
    if median <= 0:
        raise ValidationError(f"{where}.median", value["median"], "must be longer than zero")
    sigma = value.get("sigma", 0.0)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 <= sigma <= 10:
        raise ValidationError(f"{where}.sigma", sigma, "must be a number from 0 to 10")
    return Spell(median, float(sigma))


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(where, value, "must be true or false")
    return value


def _positive_seconds(value: object, where: str) -> float:
    seconds = _seconds(value, where)
    if seconds <= 0:
        raise ValidationError(where, value, "must be longer than zero")
    return seconds


def _use_case(value: object, where: str) -> str:
    try:
        return AgentUseCase(value).value
    except ValueError:
        allowed = ", ".join(u.value for u in AgentUseCase)
        raise ValidationError(where, value, f"must be one of {allowed}") from None


_READERS = {
    "share": _share,
    "spell": _spell,
    "seconds": _seconds,
    "positive_seconds": _positive_seconds,
    "bool": _bool,
    "use_case": _use_case,
}


def _merge(base: Profile, data: Mapping[str, Any], origin: str) -> Profile:
    """``base`` with every field that ``data`` names replaced (and checked)."""
    known = {"name", "description", "extends", "capabilities", *_LAYOUT}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(f"profile.{unknown[0]}", data[unknown[0]], "is not a known field")
    changes: dict[str, Any] = {}
    for section, fields_ in _LAYOUT.items():
        block = data.get(section)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            raise ValidationError(f"profile.{section}", block, "must be a mapping")
        for key, value in block.items():
            if key not in fields_:
                raise ValidationError(f"profile.{section}.{key}", value, "is not a known field")
            where = f"profile.{section}.{key}"
            changes[_ATTRIBUTE[section, key]] = _READERS[fields_[key]](value, where)
    if "capabilities" in data:
        features = data["capabilities"]
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValidationError("profile.capabilities", features, "must be a list of strings")
        changes["features"] = tuple(features)
    name = data.get("name", origin)
    if not isinstance(name, str) or not name:
        raise ValidationError("profile.name", name, "must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValidationError("profile.description", description, "must be a string")
    merged = {**base.__dict__, **changes, "name": name, "description": description}
    return Profile(**merged)


def profile_names() -> list[str]:
    """The names of the profiles shipped with rbmtools."""
    folder = resources.files("rbmtools.emulator") / "profiles"
    names = (p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    return sorted(names)


def _read_text(source: str | Path) -> tuple[str, str]:
    """The text of a shipped profile (by name) or a file (by path), and its origin name."""
    text_source = str(source)
    shipped = resources.files("rbmtools.emulator") / "profiles" / f"{text_source}.yaml"
    if "/" not in text_source and "\\" not in text_source and shipped.is_file():
        return shipped.read_text(encoding="utf-8"), text_source
    path = Path(source)
    if not path.is_file():
        raise ValidationError(
            "profile",
            text_source,
            f"is neither a shipped profile ({', '.join(profile_names())}) nor a readable file",
        )
    return path.read_text(encoding="utf-8"), path.stem


def _parse(text: str, origin: str) -> Mapping[str, Any]:
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValidationError(
            "profile", origin, f"is not valid JSON ({exc.msg} at {where})"
        ) from None
    except yaml.YAMLError as exc:
        # Name the problem and its place, never the file's text (it may not be a profile).
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ValidationError("profile", origin, f"is not valid YAML ({problem}{where})") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError("profile", origin, "must hold a mapping of fields")
    return data


def _default() -> Profile:
    text, _ = _read_text("default")
    return _merge(Profile(name="default"), _parse(text, "default"), "default")


def load_profile(source: str | Path | Mapping[str, Any] | Profile = "default") -> Profile:
    """A profile from a shipped name, a YAML/JSON file path, a mapping, or a ``Profile``.

    Fields the source leaves out take the values of the shipped profile named by its
    ``extends`` field (``default`` unless given); unknown fields,
    out-of-range shares and bad durations raise ``ValidationError`` naming the field.
    """
    if isinstance(source, Profile):
        return source
    if isinstance(source, Mapping):
        data, origin = source, str(source.get("name", "custom"))
    elif str(source) == "default":
        return _default()
    else:
        text, origin = _read_text(source)
        data = _parse(text, origin)
    extends = data.get("extends", "default")
    if not isinstance(extends, str) or "/" in extends or extends not in profile_names():
        raise ValidationError(
            "profile.extends",
            extends,
            f"must name a shipped profile ({', '.join(profile_names())})",
        )
    base = _default() if extends == "default" else load_profile(extends)
    return _merge(base, data, origin)


def load_profile_file(path: Path) -> Profile:
    """A profile from a file named by someone else (the admin surface's ``{"path"}``).

    Only a regular ``.yaml``, ``.yml`` or ``.json`` file of at most 256 KiB is read, and an
    error never repeats what the file holds: it names the path, and the profile field at
    fault only when it is one of the profile's own fields (so pointing the emulator at some
    other file reveals nothing of it).
    """
    shown = str(path)
    if path.suffix.lower() not in PROFILE_SUFFIXES:
        raise ValidationError("path", shown, "must name a .yaml, .yml or .json profile file")
    try:
        if not path.is_file() or path.stat().st_size > MAX_PROFILE_BYTES:
            raise ValidationError(
                "path",
                shown,
                f"must be a readable profile file of at most {MAX_PROFILE_BYTES} bytes",
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ValidationError("path", shown, "cannot be read as a UTF-8 text file") from None
    try:
        data = _parse(text, path.stem)
        extends = data.get("extends", "default")
        if not isinstance(extends, str) or extends not in profile_names():
            raise ValidationError("profile.extends", None, "must name a shipped profile")
        base = _default() if extends == "default" else load_profile(extends)
        return _merge(base, data, path.stem)
    except ValidationError as exc:
        raise ValidationError("path", shown, f"is not a valid profile ({_where(exc)})") from None


def _where(exc: ValidationError) -> str:
    """The part of a profile error that names only the profile's own layout, never values."""
    parts = exc.field.split(".")
    known = parts[0] == "profile" and len(parts) > 1 and parts[1] in _KNOWN_TOP
    if known and (len(parts) == 2 or parts[2] in _LAYOUT.get(parts[1], {})):
        return f"{exc.field}: {exc.problem}"
    if exc.field == "profile":
        return "it is not a YAML or JSON mapping of profile fields"
    return "it holds fields that are not profile fields"


_KNOWN_TOP = {"name", "description", "extends", "capabilities", *_LAYOUT}
