"""The dry-run plan: what a run would send, to how many numbers, in which arms, at what SMS cost.

Printed before every live run (and by ``--dry-run``), so a person sees the size of what is
about to happen before any message leaves. The SMS figure is an upper bound: every message of
the run could end up revoked and fall back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rbmtools.experiment.assign import PlannedMessage
from rbmtools.experiment.spec import ExperimentSpec

__all__ = ["ArmPlan", "ExperimentPlan", "build_plan"]


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
                "(if every message were revoked)"
            )
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
        fallback=spec.fallback.value,
        sms_at_most=0 if spec.fallback.value == "none" else len(messages) - already_settled,
        send_rate=spec.send_rate,
        already_sent=already_sent,
        already_settled=already_settled,
    )
