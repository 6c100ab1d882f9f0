"""The TTL policy file: how each use case's messages expire and fall back, and the evidence why.

A TTL policy is a small YAML file that an analyst reviews and versions beside the code that
sends. Per use case it names the revoke ``method`` (``ttl``, ``expire_time``, ``api_after``,
``api_after_unless_delivered``), its ``duration``, the RBM ``traffic_type``, the ``fallback``
rule (SMS for revoked and/or inconclusive messages, and for phones without RCS) and the
``evidence`` it came from (window, messages, best TTL with its interval, expected cost per
message, where the data stops, the cost policy and the analysis version). The analysis writes
it (``rbmtools policy write``), the client reads it to send (``RbmClient(policy=...)``), and the
analysis reads it back to say whether it still holds (``rbmtools analyze --active-policy``).
It lives here, on the protocol floor, because the client and the analysis both import it.

Not to be confused with a *cost* policy (``rbmtools.analysis.CostPolicy``): the prices under
which the analysis chooses the best TTL. A TTL policy records which cost policy it was chosen
under, in its evidence.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from rbmtools.errors import ValidationError
from rbmtools.wire.expiry import MAX_EXPIRY
from rbmtools.wire.message import normalize_traffic_type
from rbmtools.wire.times import (
    duration_nanos,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

__all__ = [
    "FALLBACK_CHOICES",
    "TTL_POLICY_SCHEMA",
    "FallbackPolicy",
    "FallbackRule",
    "RevokeMethod",
    "TtlPolicy",
    "UseCaseRule",
    "load_ttl_policy",
]

TTL_POLICY_SCHEMA = "rbmtools.ttl-policy/1"
#: What a ``fallback`` may say: one of these, or a list of them (``[on_revoked, not_rcs]``).
FALLBACK_CHOICES = ("none", "on_revoked", "on_revoked_or_inconclusive", "not_rcs")
#: The use case a rule named ``"*"`` stands for: any use case the policy does not name.
ANY_USE_CASE = "*"
_USE_CASE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


class RevokeMethod(StrEnum):
    """How undelivered messages are taken back."""

    TTL = "ttl"
    EXPIRE_TIME = "expire_time"
    API_AFTER = "api_after"
    API_AFTER_UNLESS_DELIVERED = "api_after_unless_delivered"

    @property
    def uses_api(self) -> bool:
        """True when the sender revokes by API at send + duration (no expiry on the message)."""
        return self in (RevokeMethod.API_AFTER, RevokeMethod.API_AFTER_UNLESS_DELIVERED)


class FallbackPolicy(StrEnum):
    """When a message that was taken back (revoked, or inconclusive) gets the SMS."""

    NONE = "none"
    ON_REVOKED = "on_revoked"
    ON_REVOKED_OR_INCONCLUSIVE = "on_revoked_or_inconclusive"

    def allows(self, reason: str) -> bool:
        """Whether a message settled with ``reason`` (revoked / inconclusive) falls back."""
        if self is FallbackPolicy.NONE:
            return False
        if reason == "revoked":
            return True
        return reason == "inconclusive" and self is FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE


@dataclass(frozen=True)
class FallbackRule:
    """Who gets the SMS: messages taken back (``on_revoke``) and phones without RCS (``not_rcs``).

    The plain form is one choice of ``FALLBACK_CHOICES`` or a list of them:
    ``on_revoked_or_inconclusive``, ``[on_revoked, not_rcs]``, ``not_rcs`` (only phones without
    RCS), ``none``. A phone without RCS is known from a send answered 404 or a capability check.
    """

    on_revoke: FallbackPolicy = FallbackPolicy.NONE
    not_rcs: bool = False

    @classmethod
    def parse(cls, value: object, where: str = "fallback") -> FallbackRule:
        """Read the plain form (a ``FallbackRule`` passes through)."""
        if isinstance(value, FallbackRule):
            return value
        choices = [value] if isinstance(value, str) else value
        if not isinstance(choices, list | tuple) or not choices:
            raise ValidationError(
                where, value, f"must be one of {', '.join(FALLBACK_CHOICES)}, or a list of them"
            )
        on_revoke: FallbackPolicy | None = None
        not_rcs = False
        for choice in choices:
            if choice not in FALLBACK_CHOICES:
                raise ValidationError(
                    where, value, f"must be one of {', '.join(FALLBACK_CHOICES)}, or a list of them"
                )
            if choice == "not_rcs":
                not_rcs = True
            elif on_revoke is not None and len(choices) > 1:
                raise ValidationError(where, value, "give at most one of none, on_revoked, ...")
            else:
                on_revoke = FallbackPolicy(choice)
        if on_revoke is FallbackPolicy.NONE and not_rcs:
            raise ValidationError(where, value, "'none' contradicts 'not_rcs'")
        return cls(on_revoke or FallbackPolicy.NONE, not_rcs)

    def allows(self, reason: str) -> bool:
        """Whether a message settled with ``reason`` (revoked, inconclusive, not_rcs) falls back."""
        if reason == "not_rcs":
            return self.not_rcs
        return self.on_revoke.allows(reason)

    @property
    def sends_sms(self) -> bool:
        """Whether any message can get an SMS under this rule."""
        return self.not_rcs or self.on_revoke is not FallbackPolicy.NONE

    def to_plain(self) -> str | list[str]:
        """The plain form: one choice, or a list when phones without RCS fall back as well."""
        if not self.not_rcs:
            return self.on_revoke.value
        if self.on_revoke is FallbackPolicy.NONE:
            return "not_rcs"
        return [self.on_revoke.value, "not_rcs"]

    def __str__(self) -> str:
        plain = self.to_plain()
        return plain if isinstance(plain, str) else " + ".join(plain)


class _ReviewDumper(yaml.SafeDumper):
    """YAML for review: short lists and small flat mappings on one line
    (``fallback: [on_revoked, not_rcs]``, ``best_ttl: {seconds: 19, lo: 15, hi: 25}``)."""


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(map(_scalar, data))  # a list of pairs: one pair a line
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _flow_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flat = len(data) <= 4 and all(_scalar(v) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flat)


_ReviewDumper.add_representer(list, _flow_list)
_ReviewDumper.add_representer(dict, _flow_dict)


def _check_duration(value: object, where: str) -> str:
    text = format_duration(value, where)
    if duration_nanos(text, where) <= 0:
        raise ValidationError(where, value, "must be longer than zero")
    if parse_duration(text) > MAX_EXPIRY:
        raise ValidationError(where, value, "must be at most 15 days")
    return text


def _plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (times as RFC 3339 text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def _unknown(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise ValidationError(
            f"{where}.{extra[0]}", data[extra[0]], f"is not a known field ({', '.join(allowed)})"
        )


@dataclass(frozen=True)
class UseCaseRule:
    """How one use case's messages are sent: expiry (``method``, ``duration``), traffic type,
    fallback, and the ``evidence`` the rule was chosen on (a plain mapping, kept as written)."""

    method: RevokeMethod
    duration: str
    traffic_type: str | None = None
    fallback: FallbackRule = field(default_factory=FallbackRule)
    evidence: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", RevokeMethod(self.method))
        except ValueError:
            allowed = ", ".join(m.value for m in RevokeMethod)
            raise ValidationError("method", self.method, f"must be one of {allowed}") from None
        object.__setattr__(self, "duration", _check_duration(self.duration, "duration"))
        if self.traffic_type is not None:
            object.__setattr__(self, "traffic_type", normalize_traffic_type(self.traffic_type))
        object.__setattr__(self, "fallback", FallbackRule.parse(self.fallback))
        if self.evidence is not None:
            if not isinstance(self.evidence, Mapping):
                raise ValidationError("evidence", self.evidence, "must be a mapping")
            object.__setattr__(self, "evidence", _plain(self.evidence))

    @property
    def seconds(self) -> float:
        return parse_duration(self.duration).total_seconds()

    def expiry(self, now: datetime) -> dict[str, Any]:
        """The send arguments this rule gives a message submitted at ``now`` (platform time):
        ``{"ttl": ...}``, ``{"expire_time": ...}``, or ``{}`` for the API methods, whose
        revoke at ``revoke_at(send_time)`` is the sender's to make."""
        if self.method is RevokeMethod.TTL:
            return {"ttl": self.duration}
        if self.method is RevokeMethod.EXPIRE_TIME:
            return {"expire_time": now + parse_duration(self.duration)}
        return {}

    def revoke_at(self, send_time: datetime) -> datetime | None:
        """When an API-method message is due for its revoke (None for ttl / expire_time)."""
        if self.method.uses_api:
            return send_time + parse_duration(self.duration)
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method.value, "duration": self.duration}
        if self.traffic_type is not None:
            out["traffic_type"] = self.traffic_type
        out["fallback"] = self.fallback.to_plain()
        if self.evidence is not None:
            out["evidence"] = _plain(self.evidence)
        return out

    @classmethod
    def from_dict(cls, data: object, where: str) -> UseCaseRule:
        if not isinstance(data, Mapping):
            raise ValidationError(where, data, "must be a mapping")
        allowed = ("method", "duration", "traffic_type", "fallback", "evidence")
        _unknown(data, allowed, where)
        for key in ("method", "duration"):
            if key not in data:
                raise ValidationError(f"{where}.{key}", None, "is required")
        try:
            return cls(
                method=data["method"],
                duration=data["duration"],
                traffic_type=data.get("traffic_type"),
                fallback=data.get("fallback", "none"),
                evidence=data.get("evidence"),
            )
        except ValidationError as exc:  # name the use case in the field
            raise ValidationError(f"{where}.{exc.field}", exc.value, exc.problem) from None


@dataclass(frozen=True)
class TtlPolicy:
    """A versioned TTL policy: one ``UseCaseRule`` per use case (``"*"``: any other one).

    ``version`` is free text (``policy write`` counts 1, 2, 3...); the client records it on
    every send it makes under the policy (``policyVersion`` in the outbox).
    """

    version: str
    use_cases: Mapping[str, UseCaseRule]
    written: datetime | None = None
    description: str = ""

    def __post_init__(self) -> None:
        version = self.version
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not version.strip() or len(version) > 100:
            raise ValidationError("version", self.version, "must be short non-empty text")
        object.__setattr__(self, "version", version.strip())
        if not isinstance(self.use_cases, Mapping) or not self.use_cases:
            raise ValidationError("use_cases", self.use_cases, "name at least one use case")
        for name, rule in self.use_cases.items():
            if not isinstance(name, str) or not _USE_CASE.fullmatch(name):
                raise ValidationError("use_cases", name, "a use case is 1 to 100 characters")
            if not isinstance(rule, UseCaseRule):
                raise ValidationError(f"use_cases.{name}", rule, "must be a UseCaseRule")
        object.__setattr__(self, "use_cases", dict(self.use_cases))
        if self.written is not None:
            object.__setattr__(self, "written", parse_timestamp(self.written, "written"))
        if not isinstance(self.description, str):
            raise ValidationError("description", self.description, "must be text")

    def rule(self, use_case: str) -> UseCaseRule:
        """The rule for ``use_case`` (or the ``"*"`` rule); ``ValidationError`` if none applies."""
        found = self.use_cases.get(use_case) or self.use_cases.get(ANY_USE_CASE)
        if found is None:
            known = ", ".join(sorted(self.use_cases))
            raise ValidationError(
                "use_case", use_case, f"is not in TTL policy version {self.version} ({known})"
            )
        return found

    def next_version(self) -> str:
        """The version a successor of this policy gets: the next number, else ``<version>.1``."""
        return str(int(self.version) + 1) if self.version.isdigit() else f"{self.version}.1"

    # ------------------------------------------------------------------ the plain form

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": TTL_POLICY_SCHEMA, "version": self.version}
        if self.written is not None:
            out["written"] = format_timestamp(self.written)
        if self.description:
            out["description"] = self.description
        out["use_cases"] = {name: rule.to_dict() for name, rule in self.use_cases.items()}
        return out

    @classmethod
    def from_dict(cls, data: object) -> TtlPolicy:
        if not isinstance(data, Mapping):
            raise ValidationError("ttl policy", data, "must be a mapping")
        if "use_cases" not in data and "version" not in data:
            raise ValidationError(
                "ttl policy",
                sorted(map(str, data))[:4],
                "is not a TTL policy (no version, no use_cases); a cost policy file, which maps "
                "use cases to prices, goes to analyze --policy or policy write --costs",
            )
        _unknown(data, ("schema", "version", "written", "description", "use_cases"), "policy")
        schema = data.get("schema", TTL_POLICY_SCHEMA)
        if schema != TTL_POLICY_SCHEMA:
            raise ValidationError(
                "schema", schema, f"is not a TTL policy ({TTL_POLICY_SCHEMA}); a cost policy?"
            )
        if "version" not in data:
            raise ValidationError("version", None, "is required")
        cases = data.get("use_cases")
        if not isinstance(cases, Mapping) or not cases:
            raise ValidationError("use_cases", cases, "name at least one use case")
        return cls(
            version=data["version"],
            use_cases={
                str(name): UseCaseRule.from_dict(rule, f"use_cases.{name}")
                for name, rule in cases.items()
            },
            written=data.get("written"),
            description=data.get("description", ""),
        )

    def to_yaml(self) -> str:
        """The file's text: a comment saying what it is, then the policy."""
        header = (
            f"# rbmtools TTL policy, version {self.version}: how each use case's RBM messages\n"
            "# expire (method, duration), their traffic type, and who gets the SMS fallback.\n"
            "# Review it like code; `rbmtools policy diff OLD NEW` shows what a change does.\n"
        )
        body = yaml.dump(
            self.to_dict(), Dumper=_ReviewDumper, sort_keys=False, allow_unicode=True, width=100
        )
        return header + body

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy as YAML (``.json``: as JSON)."""
        target = Path(path)
        if target.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        else:
            text = self.to_yaml()
        target.write_text(text, encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TtlPolicy:
        """Read a TTL policy file (YAML or JSON)."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(
                "policy", os.fspath(path), f"cannot be read ({exc.strerror})"
            ) from None
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValidationError(
                "policy", os.fspath(path), f"is not valid YAML or JSON ({exc})"
            ) from None
        try:
            return cls.from_dict(data)
        except ValidationError as exc:
            raise ValidationError(f"{source.name}: {exc.field}", exc.value, exc.problem) from None


def load_ttl_policy(
    source: TtlPolicy | Mapping[str, Any] | str | os.PathLike[str],
) -> TtlPolicy:
    """A TTL policy from a ``TtlPolicy``, its plain mapping, or a YAML/JSON file path."""
    if isinstance(source, TtlPolicy):
        return source
    if isinstance(source, Mapping):
        return TtlPolicy.from_dict(source)
    return TtlPolicy.load(source)
