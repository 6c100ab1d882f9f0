"""The experiment spec: what to send, to whom, in which arms, and what to do when RBM fails.

A spec is a frozen dataclass with a plain YAML/JSON form (so papermill can pass it as
parameters and a run folder can keep a copy). Each arm names how undelivered messages are
taken back: ``ttl`` or ``expire_time`` (the platform revokes at expiry and says so with a
TTL_EXPIRATION_* event), ``api_after`` (an API revoke a fixed time after the send) or
``api_after_unless_delivered`` (the same, skipped when DELIVERED was already seen).
Durations accept the forms of ``rbmtools.wire`` ("600s", "10m", "1h30m") and are kept as
canonical protobuf strings.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rbmtools.analysis.policy import policy_for
from rbmtools.errors import ValidationError
from rbmtools.experiment.stopping_spec import StoppingSpec
from rbmtools.wire import (
    MAX_EXPIRY,
    agent_message,
    duration_nanos,
    format_duration,
    normalize_traffic_type,
    parse_duration,
    validate_agent_message,
)
from rbmtools.wire.ttl_policy import FallbackPolicy, FallbackRule, RevokeMethod

__all__ = [
    "TEMPLATE_FIELDS",
    "Arm",
    "Audience",
    "ExperimentSpec",
    "FallbackPolicy",
    "RevokeMethod",
    "load_spec",
]

#: Placeholders a message template may use (``str.format`` syntax, e.g. "Code {code}").
TEMPLATE_FIELDS = ("phone", "code", "arm", "experiment", "message_id", "index")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ARM_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_MAX_SYNTHETIC = 10_000_000


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(where, value, "must be a mapping")
    return value


def _unknown(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        prefix = f"{where}." if where else ""
        raise ValidationError(
            f"{prefix}{extra[0]}", data[extra[0]], f"is not a known field ({', '.join(allowed)})"
        )


def _count(value: object, where: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(where, value, "must be a whole number")
    if value < minimum:
        raise ValidationError(where, value, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValidationError(where, value, f"must be at most {maximum:,}")
    return value


def _duration(value: object, where: str, *, positive: bool = True) -> str:
    text = format_duration(value, where)
    nanos = duration_nanos(text, where)
    if positive and nanos == 0:
        raise ValidationError(where, value, "must be longer than zero")
    return text


@dataclass(frozen=True)
class Arm:
    """One arm: a revoke ``method`` and its ``duration`` (the TTL, or the revoke delay).

    ``name`` labels the arm on every outbox record (default ``"<method>=<duration>"``, e.g.
    ``ttl=600s``); ``use_case`` and ``traffic_type`` override the spec's for this arm.
    """

    method: RevokeMethod
    duration: str
    name: str = ""
    use_case: str | None = None
    traffic_type: str | None = None

    def __post_init__(self) -> None:
        where = f"arms[{self.name or self.method}]"
        try:
            method = RevokeMethod(self.method)
        except ValueError:
            allowed = ", ".join(m.value for m in RevokeMethod)
            raise ValidationError(
                f"{where}.method", self.method, f"must be one of {allowed}"
            ) from None
        object.__setattr__(self, "method", method)
        duration = _duration(self.duration, f"{where}.duration")
        if parse_duration(duration) > MAX_EXPIRY:
            raise ValidationError(f"{where}.duration", self.duration, "must be at most 15 days")
        object.__setattr__(self, "duration", duration)
        name = self.name or f"{method.value}={duration}"
        if not isinstance(name, str) or not _ARM_NAME.fullmatch(name) or name != name.strip():
            raise ValidationError(
                f"{where}.name", name, "must be 1 to 64 printable characters, no outer spaces"
            )
        object.__setattr__(self, "name", name)
        if self.use_case is not None and (not isinstance(self.use_case, str) or not self.use_case):
            raise ValidationError(f"{where}.use_case", self.use_case, "must be a non-empty string")
        if self.traffic_type is not None:
            traffic = normalize_traffic_type(self.traffic_type, f"{where}.traffic_type")
            object.__setattr__(self, "traffic_type", traffic)

    @property
    def seconds(self) -> float:
        return parse_duration(self.duration).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "method": self.method.value,
            "duration": self.duration,
        }
        if self.use_case is not None:
            out["use_case"] = self.use_case
        if self.traffic_type is not None:
            out["traffic_type"] = self.traffic_type
        return out

    @classmethod
    def from_dict(cls, data: object, index: int) -> Arm:
        where = f"arms[{index}]"
        arm = _mapping(data, where)
        _unknown(arm, ("name", "method", "duration", "use_case", "traffic_type"), where)
        for key in ("method", "duration"):
            if key not in arm:
                raise ValidationError(f"{where}.{key}", None, "is required")
        name = arm.get("name", "")
        if not isinstance(name, str):
            raise ValidationError(f"{where}.name", name, "must be a string")
        return cls(
            method=arm["method"],
            duration=arm["duration"],
            name=name,
            use_case=arm.get("use_case"),
            traffic_type=arm.get("traffic_type"),
        )


@dataclass(frozen=True)
class Audience:
    """Who receives the messages: a phone-list file, or N synthetic phones of a profile.

    ``phones_file`` holds one E.164 number per line (blank lines and ``#`` comments are
    skipped) or is a CSV file with a ``phone`` column. ``synthetic`` numbers are generated
    (``+1555`` and seven digits) for the emulator, whose ``profile`` (a shipped name, a
    YAML/JSON file or a mapping) decides how their phones behave.
    """

    phones_file: str | None = None
    synthetic: int | None = None
    profile: str | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.phones_file is None) == (self.synthetic is None):
            raise ValidationError(
                "audience",
                {"phones_file": self.phones_file, "synthetic": self.synthetic},
                "give exactly one of phones_file and synthetic",
            )
        if self.synthetic is not None:
            _count(self.synthetic, "audience.synthetic", maximum=_MAX_SYNTHETIC)
        if self.phones_file is not None and (
            not isinstance(self.phones_file, str) or not self.phones_file
        ):
            raise ValidationError("audience.phones_file", self.phones_file, "must be a path")
        if self.profile is not None and not isinstance(self.profile, str | Mapping):
            raise ValidationError(
                "audience.profile", self.profile, "must be a profile name, a path or a mapping"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.phones_file is not None:
            out["phones_file"] = self.phones_file
        if self.synthetic is not None:
            out["synthetic"] = self.synthetic
        if self.profile is not None:
            out["profile"] = _plain(self.profile)
        return out

    @classmethod
    def from_dict(cls, data: object, base_dir: Path | None) -> Audience:
        audience = _mapping(data, "audience")
        _unknown(audience, ("phones_file", "synthetic", "profile"), "audience")
        phones_file = audience.get("phones_file")
        if isinstance(phones_file, str | os.PathLike):
            path = Path(phones_file).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            phones_file = str(path)
        return cls(
            phones_file=phones_file,
            synthetic=audience.get("synthetic"),
            profile=audience.get("profile"),
        )


def _plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (mappings from YAML stay plain)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_template(template: object, where: str) -> None:
    """A template is message text with placeholders, or an AgentMessage content mapping."""
    if isinstance(template, str):
        if not template.strip():
            raise ValidationError(where, template, "must not be empty")
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValidationError(where, template, f"is not a valid template ({exc})") from None
        for _text, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in TEMPLATE_FIELDS:
                allowed = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                raise ValidationError(where, template, f"uses {{{name}}}; allowed: {allowed}")
            if spec or conversion:
                raise ValidationError(where, template, "placeholders take no format options")
        return
    if isinstance(template, Mapping):
        body = dict(template) if "contentMessage" in template else {"contentMessage": template}
        validate_agent_message(body, warn=False)
        return
    raise ValidationError(where, template, "must be message text or a contentMessage mapping")


@dataclass(frozen=True)
class ExperimentSpec:
    """A revoke experiment (see the module doc and the README's "Experiments" section).

    Exactly one of ``per_arm`` (messages in each arm) and ``total`` (split as evenly as
    possible) may be given; neither means the whole audience. Recipients are drawn and
    assigned to arms by a random shuffle seeded with ``seed``: each recipient is in one arm
    and gets one RBM message. ``send_rate`` caps sends per second of platform time.
    ``grace`` is how long the runner waits for DELIVERED after a revoke before revoking once
    more; ``observe`` how long it keeps logging events after the last expiry. ``fallback`` says
    who gets the SMS: ``none``, ``on_revoked``, ``on_revoked_or_inconclusive``, or a list that
    adds ``not_rcs`` (phones whose send is answered 404 get it at once), e.g.
    ``[on_revoked, not_rcs]``; ``fallback_not_rcs`` is that last choice as a field.
    """

    name: str
    arms: tuple[Arm, ...]
    audience: Audience
    template: str | Mapping[str, Any] = "Your code is {code}"
    use_case: str = "experiment"
    traffic_type: str | None = None
    sms_template: str | None = None
    per_arm: int | None = None
    total: int | None = None
    seed: int = 0
    send_rate: float | None = None
    fallback: FallbackPolicy = FallbackPolicy.ON_REVOKED
    fallback_not_rcs: bool = False
    grace: str = "30s"
    observe: str = "10m"
    description: str = ""
    stopping: StoppingSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValidationError(
                "name", self.name, "must be 1 to 100 letters, digits, '.', '_' or '-'"
            )
        arms = tuple(self.arms)
        if not arms:
            raise ValidationError("arms", list(arms), "give at least one arm")
        if not all(isinstance(a, Arm) for a in arms):
            raise ValidationError("arms", list(arms), "must be Arm values")
        names = [a.name for a in arms]
        for name in names:
            if names.count(name) > 1:
                raise ValidationError("arms", name, "arm names must be unique")
        object.__setattr__(self, "arms", arms)
        if not isinstance(self.audience, Audience):
            raise ValidationError("audience", self.audience, "must be an Audience")
        _check_template(self.template, "template")
        if isinstance(self.template, Mapping):
            object.__setattr__(self, "template", _plain(self.template))
            if self.sms_template is None:
                raise ValidationError(
                    "sms_template", None, "is required when the template is not plain text"
                )
        if self.sms_template is not None:
            if not isinstance(self.sms_template, str):
                raise ValidationError("sms_template", self.sms_template, "must be text")
            _check_template(self.sms_template, "sms_template")
        if not isinstance(self.use_case, str) or not self.use_case:
            raise ValidationError("use_case", self.use_case, "must be a non-empty string")
        if self.traffic_type is not None:
            object.__setattr__(self, "traffic_type", normalize_traffic_type(self.traffic_type))
        if self.per_arm is not None and self.total is not None:
            raise ValidationError(
                "per_arm/total", {"per_arm": self.per_arm, "total": self.total}, "give one"
            )
        if self.per_arm is not None:
            _count(self.per_arm, "per_arm")
        if self.total is not None:
            _count(self.total, "total", minimum=len(arms))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError("seed", self.seed, "must be a whole number")
        if self.send_rate is not None:
            rate = self.send_rate
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
                raise ValidationError("send_rate", rate, "must be a positive number per second")
            object.__setattr__(self, "send_rate", float(rate))
        rule = FallbackRule.parse(self.fallback)
        if not isinstance(self.fallback_not_rcs, bool):
            raise ValidationError(
                "fallback_not_rcs", self.fallback_not_rcs, "must be true or false"
            )
        object.__setattr__(self, "fallback", rule.on_revoke)
        object.__setattr__(self, "fallback_not_rcs", rule.not_rcs or self.fallback_not_rcs)
        object.__setattr__(self, "grace", _duration(self.grace, "grace"))
        object.__setattr__(self, "observe", _duration(self.observe, "observe", positive=False))
        if not isinstance(self.description, str):
            raise ValidationError("description", self.description, "must be text")
        self._check_stopping()
        if isinstance(self.template, str):
            # Render once with the longest values so size limits fail here, not mid-run.
            sample = self.render(self.template, "+123456789012345", "0" * 36, arms[0].name, 10**9)
            agent_message(sample)

    def _check_stopping(self) -> None:
        """A stopping rule needs paced sends (otherwise every message is sent before the first
        one settles) and two arms to compare in some use case."""
        if self.stopping is None:
            return
        if isinstance(self.stopping, Mapping):
            object.__setattr__(self, "stopping", StoppingSpec.from_dict(self.stopping))
        if not isinstance(self.stopping, StoppingSpec):
            raise ValidationError("stopping", self.stopping, "must be a mapping")
        if self.send_rate is None:
            raise ValidationError(
                "send_rate", None, "is required with a stopping rule: unpaced, every message "
                "would be sent before the first one settles",
            )  # fmt: skip
        per_use_case: dict[str, int] = {}
        for arm in self.arms:
            use_case = arm.use_case or self.use_case
            per_use_case[use_case] = per_use_case.get(use_case, 0) + 1
        if max(per_use_case.values()) < 2:
            raise ValidationError("stopping", None, "needs two arms of one use case to compare")
        policies = self.stopping.policies()
        for use_case, count in per_use_case.items():
            if count > 1 and policy_for(use_case, policies)[1] is None:
                raise ValidationError(
                    "stopping.cost_policy", use_case, "gives no cost policy for this use case "
                    "(its arms are compared by cost; add it, or a '*' policy)",
                )  # fmt: skip

    # ------------------------------------------------------------------ derived values

    @property
    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ValidationError("arm", name, f"is not an arm of {self.name!r}")

    @property
    def grace_seconds(self) -> float:
        return parse_duration(self.grace).total_seconds()

    @property
    def observe_seconds(self) -> float:
        return parse_duration(self.observe).total_seconds()

    @property
    def fallback_rule(self) -> FallbackRule:
        """Who gets the SMS: revoked / inconclusive messages (``fallback``), and phones without
        RCS when ``fallback`` lists ``not_rcs`` (the send was answered 404)."""
        return FallbackRule(self.fallback, self.fallback_not_rcs)

    @property
    def sms_text_template(self) -> str:
        """The SMS text template: ``sms_template``, else the message template."""
        return self.sms_template if self.sms_template is not None else str(self.template)

    def render(self, template: str, phone: str, message_id: str, arm: str, index: int) -> str:
        """Fill a text template for one recipient (``code`` is six digits from the id)."""
        digits = int.from_bytes(message_id.encode(), "big") % 1_000_000
        return template.format(
            phone=phone,
            code=f"{digits:06d}",
            arm=arm,
            experiment=self.name,
            message_id=message_id,
            index=index,
        )

    # ------------------------------------------------------------------ the plain form

    def to_dict(self) -> dict[str, Any]:
        """The plain form (what ``from_dict`` and the YAML/JSON files hold)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["use_case"] = self.use_case
        if self.traffic_type is not None:
            out["traffic_type"] = self.traffic_type
        out["template"] = _plain(self.template)
        if self.sms_template is not None:
            out["sms_template"] = self.sms_template
        out["audience"] = self.audience.to_dict()
        out["arms"] = [a.to_dict() for a in self.arms]
        if self.per_arm is not None:
            out["per_arm"] = self.per_arm
        if self.total is not None:
            out["total"] = self.total
        out["seed"] = self.seed
        if self.send_rate is not None:
            out["send_rate"] = self.send_rate
        out["fallback"] = self.fallback_rule.to_plain()
        out["grace"] = self.grace
        out["observe"] = self.observe
        if self.stopping is not None:
            out["stopping"] = self.stopping.to_dict()
        return out

    @classmethod
    def from_dict(
        cls, data: object, *, base_dir: str | os.PathLike[str] | None = None
    ) -> ExperimentSpec:
        """Read the plain form; ``base_dir`` resolves a relative ``audience.phones_file``."""
        spec = _mapping(data, "spec")
        allowed = (
            "name", "description", "use_case", "traffic_type", "template", "sms_template",
            "audience", "arms", "per_arm", "total", "seed", "send_rate", "fallback", "grace",
            "observe", "stopping",
        )  # fmt: skip
        _unknown(spec, allowed, "")
        for key in ("name", "arms", "audience"):
            if key not in spec:
                raise ValidationError(key, None, "is required")
        arms = spec["arms"]
        if not isinstance(arms, list | tuple):
            raise ValidationError("arms", arms, "must be a list of arms")
        values = {k: spec[k] for k in allowed if k in spec and k not in ("arms", "audience")}
        if spec.get("stopping") is not None:
            values["stopping"] = StoppingSpec.from_dict(spec["stopping"], base_dir)
        return cls(
            arms=tuple(Arm.from_dict(a, i) for i, a in enumerate(arms)),
            audience=Audience.from_dict(
                spec["audience"], None if base_dir is None else Path(base_dir)
            ),
            **values,
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec as YAML (``.json``: as JSON)."""
        target = Path(path)
        text = self.to_json() if target.suffix == ".json" else self.to_yaml()
        target.write_text(text, encoding="utf-8")
        return target

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with some fields changed (checked again)."""
        data = self.to_dict()
        data.update(changes)
        return ExperimentSpec.from_dict(data)


def load_spec(
    source: ExperimentSpec | Mapping[str, Any] | str | os.PathLike[str],
) -> ExperimentSpec:
    """A spec from an ``ExperimentSpec``, a plain mapping, or a YAML/JSON file path.

    A relative ``audience.phones_file`` in a file is read relative to that file's folder.
    """
    if isinstance(source, ExperimentSpec):
        return source
    if isinstance(source, Mapping):
        return ExperimentSpec.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise ValidationError("spec", str(source), "is not a readable spec file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError("spec", str(path), f"is not valid YAML or JSON ({exc})") from None
    return ExperimentSpec.from_dict(data, base_dir=path.resolve().parent)
