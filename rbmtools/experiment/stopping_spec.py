"""The ``stopping:`` section of an experiment spec: when a run may stop before its planned end.

```yaml
stopping:
  error_rate: 0.05        # the chance of declaring a wrong arm best or dropping the best one
  min_per_arm: 100        # settled messages an arm needs before it can be dropped or win
  max_messages: 12000     # the most the run sends (default: the spec's size)
  cost_policy: costs.yaml # a policy file (relative to the spec), or use case -> fields inline
  look_every: 200         # messages per batch; the runner looks after each
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbmtools.analysis.policy import CostPolicy, load_policies, resolve_policies
from rbmtools.errors import ValidationError

__all__ = ["StoppingSpec"]

_KEYS = ("error_rate", "min_per_arm", "max_messages", "cost_policy", "look_every")


def _whole(value: object, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"stopping.{where}", value, f"must be a whole number >= {minimum}")
    return value


@dataclass(frozen=True)
class StoppingSpec:
    """The ``stopping:`` section of a spec. ``error_rate``: the chance of declaring a wrong arm
    best or dropping the best one; ``min_per_arm``: settled messages an arm needs before it can
    be dropped or declared best; ``max_messages``: the most the run sends (default: the spec's
    size); ``cost_policy``: a policy file (relative to the spec) or a mapping in the policy-file
    form (use case -> fields), over the default policies; ``look_every``: messages per batch,
    a look after each."""

    error_rate: float = 0.05
    min_per_arm: int = 100
    max_messages: int | None = None
    cost_policy: Mapping[str, Any] | str | None = None
    look_every: int = 200

    def __post_init__(self) -> None:
        rate = self.error_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 0.5:
            raise ValidationError("stopping.error_rate", rate, "must be between 0 and 0.5")
        object.__setattr__(self, "error_rate", float(rate))
        _whole(self.min_per_arm, "min_per_arm")
        _whole(self.look_every, "look_every")
        if self.max_messages is not None:
            _whole(self.max_messages, "max_messages", minimum=2)
        policy = self.cost_policy
        if isinstance(policy, str | os.PathLike):
            policy = {k: v.to_dict() for k, v in load_policies(policy).items()}
        if isinstance(policy, Mapping):
            resolve_policies(policy)  # fails here, naming the field, not mid-run
            object.__setattr__(self, "cost_policy", json.loads(json.dumps(dict(policy))))
        elif policy is not None:
            raise ValidationError(
                "stopping.cost_policy", policy, "must be a policy file or a mapping"
            )

    @classmethod
    def from_dict(
        cls, data: object, base_dir: str | os.PathLike[str] | None = None
    ) -> StoppingSpec:
        """Read the plain form. A ``cost_policy`` file (relative to ``base_dir``) is read and
        kept inline, so the run folder's copy of the spec says which costs decided."""
        if not isinstance(data, Mapping):
            raise ValidationError("stopping", data, "must be a mapping")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ValidationError(
                f"stopping.{unknown[0]}", data[unknown[0]], f"is not one of {', '.join(_KEYS)}"
            )
        values = dict(data)
        policy = values.get("cost_policy")
        if isinstance(policy, str | os.PathLike):
            path = Path(policy)
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            values["cost_policy"] = {k: v.to_dict() for k, v in load_policies(path).items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error_rate": self.error_rate,
            "min_per_arm": self.min_per_arm,
            "look_every": self.look_every,
        }
        if self.max_messages is not None:
            out["max_messages"] = self.max_messages
        if self.cost_policy is not None:
            out["cost_policy"] = self.cost_policy
        return out

    def policies(self) -> dict[str, CostPolicy]:
        """The cost policies: the defaults, updated by ``cost_policy``."""
        return resolve_policies(self.cost_policy)
