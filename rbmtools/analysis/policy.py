"""Cost policies: what waiting, falling back, duplicates and late messages cost, per use case.

A policy prices the outcomes of choosing a TTL T (see ``ttl.py`` for the formula): the RCS
message (``rcs_cost``), the SMS fallback (``sms_cost``, arriving ``sms_latency`` later), every
hour the recipient waits (``wait_cost_per_hour``), a delivery after the ``deadline``
(``stale_cost``), a message that arrives twice when the revoke raced with delivery
(``duplicate_cost``), and, without fallback, a message that never arrives (``lost_cost``).
Costs are in one currency of your choice; durations accept ``"5s"``, ``"10m"``, ``"2h"``, seconds.

``DEFAULT_POLICIES``, in one notional currency unit (think euros), every number explained:

``otp`` (one-time passwords, AUTHENTICATION traffic): an RBM message costs 0.02 and an A2P
SMS 0.05, typical list prices; the SMS lands about 5 s after it is sent. The user is staring
at a login screen, so waiting costs 3.00 an hour (0.05 a minute: one minute of waiting is
worth one SMS, roughly the abandonment risk). Codes are typically valid for 5 minutes, so a
delivery after 5 min is stale and costs 0.10 (a confused user retries: about two SMS). Two
copies of the same code cost 0.01 (mild confusion). Fallback is on; ``lost_cost`` 1.00 (a
failed login) only applies if you turn fallback off.

``transaction`` (confirmations, receipts, bank notifications): same channel prices; the SMS
takes about 10 s. The user is not waiting actively, so an hour of delay costs 0.10. After
1 hour the notification has lost its point (stale, 0.02). A duplicate costs 0.02 (a second
copy of a receipt looks like a second charge to some users). Fallback on; 0.50 if lost.

``promo`` (PROMOTION traffic): rich RBM cards cost more, 0.03; an SMS would be 0.04 and arrive
in about 30 s. Promotions tolerate hours: waiting costs 0.002 an hour. After 24 hours the offer
has usually ended: a stale promotion costs 0.05 (annoyance, unsubscribes). Sending a promotion
twice costs 0.05 for the same reason. No SMS fallback for marketing; a promotion that never
arrives loses its expected margin, 0.10 (a 2 % conversion on a 5.00 margin).

``alert`` (fraud and security alerts, outage warnings): 0.02 / 0.05 per RBM / SMS, SMS in about
5 s. Every minute of delay lets a fraud run on, so waiting costs 6.00 an hour (0.10 a minute).
After 2 minutes the alert is late: stale costs 0.20. A duplicate alert is acceptable (0.00).
Fallback on; a lost alert would cost 5.00 (a missed fraud), used only without fallback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import yaml

from rbmtools.errors import ValidationError
from rbmtools.wire import duration_seconds, format_duration

__all__ = [
    "DEFAULT_POLICIES",
    "CostPolicy",
    "load_policies",
    "policy_for",
    "resolve_policies",
]

_DURATIONS = ("sms_latency", "deadline")
_BOOLEANS = ("fallback",)


@dataclass(frozen=True)
class CostPolicy:
    """The prices behind the best TTL of one use case. Durations (``sms_latency``,
    ``deadline``) are stored in seconds and may be given as strings such as ``"10m"``."""

    rcs_cost: float
    sms_cost: float
    sms_latency: float
    wait_cost_per_hour: float
    deadline: float
    stale_cost: float
    duplicate_cost: float
    fallback: bool
    lost_cost: float = 0.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in _BOOLEANS:
                if not isinstance(value, bool):
                    raise ValidationError(spec.name, value, "must be true or false")
                continue
            if spec.name in _DURATIONS and not isinstance(value, int | float):
                value = duration_seconds(value, spec.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(spec.name, value, "must be a number")
            if not value >= 0 or value == float("inf"):
                raise ValidationError(spec.name, value, "must be a finite number, zero or more")
            object.__setattr__(self, spec.name, float(value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: CostPolicy | None = None) -> CostPolicy:
        """Read a policy from a mapping (durations as strings or seconds). Fields missing from
        ``values`` come from ``base``; without a base every field except ``lost_cost`` is needed."""
        known = {spec.name for spec in fields(cls)}
        for key in values:
            if key not in known:
                raise ValidationError(
                    key, values[key], f"is not a policy field ({', '.join(sorted(known))})"
                )
        merged: dict[str, Any] = asdict(base) if base is not None else {}
        for key, value in values.items():
            merged[key] = duration_seconds(value, key) if key in _DURATIONS else value
        missing = [
            spec.name
            for spec in fields(cls)
            if spec.name not in merged and spec.name != "lost_cost"
        ]
        if missing:
            raise ValidationError(missing[0], None, "is required in a cost policy")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """The policy as a document would hold it (durations as protobuf strings)."""
        out = asdict(self)
        for key in _DURATIONS:
            out[key] = format_duration(out[key])
        return out

    def wait_cost(self, seconds: Any) -> Any:
        """w(t) = wait_cost_per_hour * t, with t in seconds."""
        return self.wait_cost_per_hour * seconds / 3600.0

    def delivery_cost(self, seconds: Any) -> Any:
        """What a message delivered ``seconds`` after its send costs: ``rcs_cost + w(t)``, plus
        ``stale_cost`` after the deadline (numbers or numpy arrays)."""
        stale = np.where(np.asarray(seconds) > self.deadline, self.stale_cost, 0.0)
        return self.rcs_cost + self.wait_cost(seconds) + stale

    def undelivered_cost(self, ttl: Any, p_race: Any = 0.0) -> Any:
        """What a message not delivered by its TTL costs: with fallback, the SMS, the wait
        until it lands and, with chance ``p_race``, a duplicate RCS delivery; without,
        ``lost_cost``."""
        if not self.fallback:
            return np.full(np.shape(ttl), self.lost_cost) if np.ndim(ttl) else self.lost_cost
        race = p_race * (self.rcs_cost + self.duplicate_cost)
        return self.sms_cost + self.wait_cost(ttl + self.sms_latency) + race


#: The default policy of each use case; the module docstring explains every number.
DEFAULT_POLICIES: dict[str, CostPolicy] = {
    "otp": CostPolicy(
        rcs_cost=0.02,
        sms_cost=0.05,
        sms_latency=5,
        wait_cost_per_hour=3.0,
        deadline=300,
        stale_cost=0.10,
        duplicate_cost=0.01,
        fallback=True,
        lost_cost=1.0,
    ),
    "transaction": CostPolicy(
        rcs_cost=0.02,
        sms_cost=0.05,
        sms_latency=10,
        wait_cost_per_hour=0.10,
        deadline=3600,
        stale_cost=0.02,
        duplicate_cost=0.02,
        fallback=True,
        lost_cost=0.50,
    ),
    "promo": CostPolicy(
        rcs_cost=0.03,
        sms_cost=0.04,
        sms_latency=30,
        wait_cost_per_hour=0.002,
        deadline=86400,
        stale_cost=0.05,
        duplicate_cost=0.05,
        fallback=False,
        lost_cost=0.10,
    ),
    "alert": CostPolicy(
        rcs_cost=0.02,
        sms_cost=0.05,
        sms_latency=5,
        wait_cost_per_hour=6.0,
        deadline=120,
        stale_cost=0.20,
        duplicate_cost=0.0,
        fallback=True,
        lost_cost=5.0,
    ),
}


def resolve_policies(policies: Mapping[str, Any] | None) -> dict[str, CostPolicy]:
    """The defaults, updated by ``policies`` (useCase -> CostPolicy or mapping of fields; a
    mapping for a use case with a default may give only the fields it changes)."""
    result = dict(DEFAULT_POLICIES)
    if policies is None:
        return result
    if not isinstance(policies, Mapping):
        raise ValidationError("policies", policies, "must map a useCase to policy fields")
    for use_case, value in policies.items():
        if isinstance(value, CostPolicy):
            result[str(use_case)] = value
        elif isinstance(value, Mapping):
            result[str(use_case)] = CostPolicy.from_mapping(value, base=result.get(str(use_case)))
        else:
            raise ValidationError(
                f"policies.{use_case}", value, "must be a mapping of policy fields"
            )
    return result


def policy_for(
    use_case: str | None, policies: Mapping[str, CostPolicy]
) -> tuple[str | None, CostPolicy | None]:
    """The policy a use case gets, and its name: its own, else the ``"*"`` policy, else none."""
    if use_case is not None and use_case in policies:
        return use_case, policies[use_case]
    if "*" in policies:
        return "*", policies["*"]
    return None, None


def load_policies(path: str | os.PathLike[str]) -> dict[str, CostPolicy]:
    """Read a YAML or JSON file mapping useCase -> policy fields, over the defaults."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ValidationError(
            "policy", os.fspath(path), f"cannot be read ({exc.strerror})"
        ) from None
    try:
        data = (
            json.loads(text) if os.fspath(path).lower().endswith(".json") else yaml.safe_load(text)
        )
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError(
            "policy", os.fspath(path), f"is not valid YAML or JSON ({exc})"
        ) from None
    return resolve_policies(data if data is not None else {})
