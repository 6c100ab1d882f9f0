"""The dry-run plan: what a run would send, to how many numbers, in which arms, at what SMS cost.

Printed before every run (and by ``--dry-run``), so a person sees the size of what is about
to happen before any message leaves. Two SMS figures: an upper bound (every message could end
up revoked and fall back) and, when the spec names an emulator profile, an estimate: the
emulator's own model (pure and seeded) is run on the planned messages, and a message counts
when the profile's phones would not have it delivered within its arm's window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rbmtools.experiment.assign import PlannedMessage
from rbmtools.experiment.spec import ExperimentSpec

__all__ = ["ArmPlan", "ExperimentPlan", "build_plan", "estimate_sms"]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ArmPlan:
    """One arm of the plan: how its messages are revoked, and how many it gets."""

    name: str
    method: str
    duration: str
    messages: int


@dataclass(frozen=True)
class ExperimentPlan:
    """What a run of ``experiment`` would do (see ``build_plan``)."""

    experiment: str
    target: str
    messages: int
    recipients: int
    audience: int
    arms: tuple[ArmPlan, ...]
    fallback: str
    sms_at_most: int
    send_rate: float | None
    already_sent: int = 0
    already_settled: int = 0
    sms_estimate: int | None = None
    profile: str | None = None
    stopping: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["arms"] = [asdict(a) for a in self.arms]
        return out

    def text(self) -> str:
        """The plan as a short human-readable block."""
        rate = "as fast as the client goes"
        if self.send_rate is not None:
            rate = f"at most {self.send_rate:g} per second"
        lines = [
            f"Experiment {self.experiment!r} on the {self.target} platform:",
            f"  {self.messages:,} RBM messages to {self.recipients:,} numbers "
            f"(audience {self.audience:,}; one message per number), sent {rate}",
        ]
        for arm in self.arms:
            lines.append(
                f"  arm {arm.name!r}: {arm.messages:,} messages, {arm.method} {arm.duration}"
            )
        if self.fallback == "none":
            lines.append("  SMS fallback: none (policy 'none')")
        else:
            lines.append(
                f"  SMS fallback ({self.fallback}): at most {self.sms_at_most:,} SMS "
                "(if every message fell back)"
            )
            if self.sms_estimate is not None:
                lines.append(
                    f"  estimated SMS: about {self.sms_estimate:,} if the phones behave like "
                    f"the emulator profile {self.profile!r}"
                )
        if self.stopping is not None:
            lines.append(f"  stopping rule: {self.stopping}")
        if self.already_sent:
            lines.append(
                f"  resuming: {self.already_sent:,} already sent, "
                f"{self.messages - self.already_sent:,} still to send"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def build_plan(
    spec: ExperimentSpec,
    messages: Sequence[PlannedMessage],
    *,
    target: str,
    audience: int,
    already_sent: int = 0,
    already_settled: int = 0,
) -> ExperimentPlan:
    """The plan of ``spec`` for its planned ``messages``."""
    per_arm = Counter(m.arm for m in messages)
    estimate = None
    rule = spec.fallback_rule
    if spec.audience.profile is not None and rule.sends_sms:
        estimate = estimate_sms(spec, messages)
    arms = tuple(
        ArmPlan(a.name, a.method.value, a.duration, per_arm.get(a.name, 0)) for a in spec.arms
    )
    return ExperimentPlan(
        experiment=spec.name,
        target=target,
        messages=len(messages),
        recipients=len({m.phone for m in messages}),
        audience=audience,
        arms=arms,
        fallback=str(rule),
        sms_at_most=len(messages) - already_settled if rule.sends_sms else 0,
        send_rate=spec.send_rate,
        already_sent=already_sent,
        already_settled=already_settled,
        sms_estimate=estimate,
        profile=_profile_name(spec.audience.profile),
        stopping=_stopping_text(spec),
    )


def _stopping_text(spec: ExperimentSpec) -> str | None:
    """The stopping rule in a line: the messages above are then a maximum."""
    rule = spec.stopping
    if rule is None:
        return None
    return (
        f"a look every {rule.look_every:,} messages; arms whose cost is surely higher than "
        f"the best's are dropped and the run ends once one arm per use case is best at an error "
        f"rate of {rule.error_rate:g} (each arm needs {rule.min_per_arm:,} settled messages "
        "first): the messages above are a maximum"
    )


def _profile_name(profile: object) -> str | None:
    if profile is None or isinstance(profile, str):
        return profile
    name = profile.get("name") if isinstance(profile, Mapping) else None
    return str(name) if name else "custom"


def estimate_sms(spec: ExperimentSpec, messages: Sequence[PlannedMessage]) -> int:
    """How many SMS a run would send by the emulator's model (the spec's profile and seed):
    messages left undelivered at the end of their arm's window when revoked messages fall
    back, plus phones without RCS when they do; give or take the races, ignoring the rule's
    inconclusive cases."""
    from rbmtools.emulator import DEFAULT_AGENT_ID, PlatformModel, load_profile

    model = PlatformModel(
        load_profile(spec.audience.profile or "default"), seed=spec.seed, epoch=_EPOCH
    )
    spacing = 0.0 if spec.send_rate is None else 1.0 / spec.send_rate
    windows = {arm.name: arm.seconds for arm in spec.arms}
    body = {"contentMessage": {"text": "estimate"}}
    for message in messages:
        model.send(
            DEFAULT_AGENT_ID, message.phone, message.message_id, body, message.index * spacing
        )
    end = len(messages) * spacing + max(windows.values()) + 1.0
    model.advance(end)
    rule = spec.fallback_rule
    count = 0
    for message in messages:
        sent = model.message(DEFAULT_AGENT_ID, message.message_id)
        if sent is None:  # not RCS-reachable: the send is answered 404
            count += rule.not_rcs
            continue
        due = sent.send_at + windows[message.arm]
        if rule.allows("revoked") and (sent.delivered_at is None or sent.delivered_at > due):
            count += 1
    return count
