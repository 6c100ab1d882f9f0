"""Looks at a running experiment: the ``stopping:`` section, what a look reads, what it records.

A spec with a stopping section sends its recipients in batches of ``look_every`` messages;
after every batch the runner looks: the facts it holds about each message (``MessageFacts``,
as of the platform instant of the look) become per-arm tallies and, per use case, a decision
(``analysis.stopping``). Arms the look eliminates get no more recipients; the next batch is
split evenly among the arms still running (``allocation.batch_arms``); the run ends sending on
Ready for every use case or at the maximum, and a final look follows once everything sent has
settled. Every look is one line of ``looks.jsonl`` in the run folder, with the tallies it read,
so ``replay_looks`` recomputes each one from the outbox and the event log, and a resume
continues from the last one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.analysis.policy import CostPolicy, policy_for
from rbmtools.analysis.stopping import (
    Decision,
    Look,
    StoppingRule,
    decide,
    eliminated_arms,
    tally_arms,
)
from rbmtools.errors import ValidationError
from rbmtools.experiment.assign import PlannedMessage, stopping_plan
from rbmtools.experiment.state import MessageFacts
from rbmtools.experiment.stopping_spec import StoppingSpec
from rbmtools.wire import (
    OutboxRecord,
    SendRecord,
    UserEvent,
    format_timestamp,
    parse_timestamp,
)

__all__ = [
    "LookRecord",
    "RunLooks",
    "expected_assignments",
    "facts_from_logs",
    "message_frame",
    "read_looks",
    "replay_looks",
    "take_look",
    "write_look",
]


def use_case_arms(spec: Any) -> dict[str, dict[str, float]]:
    """Use case -> {arm name: duration in seconds}, in the spec's order."""
    groups: dict[str, dict[str, float]] = {}
    for arm in spec.arms:
        groups.setdefault(arm.use_case or spec.use_case, {})[arm.name] = arm.seconds
    return groups


def _seconds(value: datetime | None) -> float:
    return math.nan if value is None else value.timestamp()


def message_frame(facts: Iterable[MessageFacts], now: datetime) -> pd.DataFrame:
    """The per-message facts a look reads (``analysis.stopping.MESSAGE_COLUMNS``), as of
    platform instant ``now``: only what was known then (events and answers stamped later are
    left out), in the order of the sends, so a look computed again from the logs reads the
    same, to the last bit."""
    rows = []
    for fact in facts:
        if not fact.sent or fact.send_time is None or fact.send_time > now:
            continue
        delivered = fact.delivered_at if fact.delivered_at and fact.delivered_at <= now else None
        revoked = [a.at for a in fact.revokes.values() if a.status == 200 and a.at <= now]
        rows.append(
            (
                fact.planned.message_id,
                fact.planned.arm,
                _seconds(fact.send_time),
                _seconds(delivered) - _seconds(fact.send_time),
                delivered is not None and any(at <= delivered for at in revoked),
                fact.fallback_at is not None and fact.fallback_at <= now,
                fact.send_status == 200,
            )
        )
    rows.sort(key=lambda row: (row[2], row[0]))  # one order, so sums repeat to the last bit
    frame = pd.DataFrame(
        [row[1:] for row in rows],
        columns=["arm", "sent", "latency", "raced", "fallback", "reachable"],
    )
    types = {"sent": float, "latency": float, "raced": bool, "fallback": bool, "reachable": bool}
    return frame.astype(types)


@dataclass(frozen=True)
class LookRecord:
    """One look of a run: its number, the platform instant, how many messages had been sent
    (answered), whether it was the final one, the arms the next batch goes to, the look of each
    use case, and the seconds after its duration a message needed to count as settled (the
    grace period, stretched by the webhook's recent lag)."""

    index: int
    at: datetime
    sent: int
    final: bool
    running: tuple[str, ...]
    use_cases: dict[str, Look] = field(default_factory=dict)
    settle_after: float = 0.0

    @property
    def decided(self) -> bool:
        """Every use case is Ready: nothing more to send."""
        return all(look.decision is Decision.READY for look in self.use_cases.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "look": self.index,
            "at": format_timestamp(self.at),
            "sent": self.sent,
            "final": self.final,
            "running": list(self.running),
            "settle_after": self.settle_after,
            "use_cases": {name: look.to_dict() for name, look in self.use_cases.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LookRecord:
        return cls(
            index=int(data["look"]),
            at=parse_timestamp(data["at"], "at"),
            sent=int(data["sent"]),
            final=bool(data["final"]),
            running=tuple(data["running"]),
            use_cases={k: Look.from_dict(v) for k, v in data["use_cases"].items()},
            settle_after=float(data["settle_after"]),
        )


def take_look(
    spec: Any,
    stopping: StoppingSpec,
    facts: Sequence[MessageFacts],
    now: datetime,
    *,
    previous: Sequence[LookRecord] = (),
    policies: Mapping[str, CostPolicy] | None = None,
    max_messages: int,
    final: bool = False,
    settle_after: float | None = None,
) -> LookRecord:
    """The next look of a run at platform instant ``now``: per use case with two arms or more and
    a cost policy, the decision over its arms (``previous`` looks keep their eliminations); the
    maximum is split among use cases by their number of arms. A message counts for a duration
    once ``settle_after`` seconds (the spec's grace period unless given) have passed after it."""
    settle = spec.grace_seconds if settle_after is None else settle_after
    policies = dict(policies) if policies is not None else stopping.policies()
    frame = message_frame(facts, now)
    already = eliminated_arms(look for record in previous for look in record.use_cases.values())
    groups = use_case_arms(spec)
    total_arms = sum(len(arms) for arms in groups.values())
    index = len(previous) + 1
    looks: dict[str, Look] = {}
    for use_case, arms in groups.items():
        if len(arms) < 2:  # nothing to compare: the arm runs to the maximum
            continue
        _, policy = policy_for(use_case, policies)
        if policy is None:  # nothing to price the arms by (a spec with a rule is checked)
            continue
        share = max(round(max_messages * len(arms) / total_arms), len(arms))
        rule = StoppingRule(stopping.error_rate, stopping.min_per_arm, share)
        tallies = tally_arms(frame, arms, policy, now=now.timestamp(), settle_after=settle)
        looks[use_case] = decide(
            tallies, policy, rule, index=index,
            eliminated={a: i for a, i in already.items() if a in arms}, final=final,
        )  # fmt: skip
    running = tuple(
        arm
        for use_case, arms in groups.items()
        for arm in arms
        if use_case not in looks or looks[use_case].decision is not Decision.READY
        if use_case not in looks or arm in looks[use_case].running
    )
    return LookRecord(index, now, len(frame), final, running, looks, settle)


def write_look(path: str | os.PathLike[str], record: LookRecord) -> None:
    """Append one look to ``looks.jsonl`` (flushed and synced: a resume reads it back)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_looks(path: str | os.PathLike[str], *, repair: bool = False) -> list[LookRecord]:
    """The looks a run recorded (none when the file is missing). A torn last line from a
    crash is left out (the look is taken again on resume); ``repair=True`` also cuts it from
    the file, so the next look starts on a fresh line."""
    source = Path(path)
    if not source.exists():
        return []
    raw = source.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end != len(raw) and repair:
        with open(source, "r+b") as handle:
            handle.truncate(end)
    records = []
    for number, line in enumerate(raw[:end].decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(LookRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(str(source), f"line {number}", f"is not a look ({exc})") from None
    return records


def expected_assignments(
    arms: Sequence[str], looks: Sequence[LookRecord], sent: int, look_every: int
) -> dict[str, float]:
    """How many of ``sent`` messages each arm should have got: every batch of ``look_every``
    split evenly among the arms the look before it left running (the first among all)."""
    expected = dict.fromkeys(arms, 0.0)
    running: Sequence[str] = arms
    start = 0
    for batch in range(math.ceil(sent / look_every)):
        if batch > 0 and batch - 1 < len(looks):
            running = looks[batch - 1].running or running
        size = min(look_every, sent - start)
        for arm in running:
            expected[arm] += size / len(running)
        start += size
    return expected


def facts_from_logs(
    records: Iterable[OutboxRecord], events: Iterable[Any], experiment: str
) -> list[MessageFacts]:
    """What the two logs say about each message of ``experiment``, in the order the messages
    were first sent: the outbox ``records`` (sends name their arm) and the logged webhook
    ``events`` (``webhook.read_events``), each event at its platform time."""
    facts: dict[str, MessageFacts] = {}
    for record in records:
        if record.experiment not in (None, experiment):
            continue
        fact = facts.get(record.message_id)
        if fact is None:
            if not isinstance(record, SendRecord) or record.arm is None:
                continue
            planned = PlannedMessage(len(facts), record.phone, record.arm, record.message_id)
            fact = facts[record.message_id] = MessageFacts(planned)
        fact.apply_record(record)
    for logged in events:
        event = logged.event
        if isinstance(event, UserEvent) and event.message_id in facts:
            facts[event.message_id].apply_event(event, event.send_time or logged.received_at)
    return list(facts.values())


def replay_looks(
    spec: Any, facts: Sequence[MessageFacts], looks: Sequence[LookRecord], max_messages: int
) -> list[LookRecord]:
    """Every recorded look taken again from the logs' facts, at its own instant, each after
    the replayed ones before it: what the run folder says the runner should have decided."""
    replayed: list[LookRecord] = []
    policies = spec.stopping.policies()
    for record in looks:
        look = take_look(
            spec, spec.stopping, facts, record.at, previous=replayed, policies=policies,
            max_messages=max_messages, final=record.final, settle_after=record.settle_after,
        )  # fmt: skip
        replayed.append(look)
    return replayed


class RunLooks:
    """The looks of one run as its runner takes them: whether one is due before a send, taking
    it (appended to ``path``), and the plan of the messages that follow from it."""

    def __init__(
        self,
        spec: Any,
        path: str | os.PathLike[str],
        phones: Sequence[str],
        *,
        max_messages: int,
        records: Sequence[LookRecord] = (),
    ) -> None:
        if spec.stopping is None:
            raise ValidationError("stopping", None, "the spec has no stopping rule")
        self.spec = spec
        self.path = Path(path)
        self.phones = list(phones)
        self.max_messages = max_messages
        self.records = list(records)
        self.policies = spec.stopping.policies()

    @property
    def finished(self) -> bool:
        """The final look has been taken."""
        return bool(self.records) and self.records[-1].final

    def due(self, index: int) -> bool:
        """A look comes before sending message ``index``: it starts a batch after the first
        and the look after the previous batch has not been taken yet."""
        size = self.spec.stopping.look_every
        return index > 0 and index % size == 0 and len(self.records) < index // size

    def take(
        self,
        facts: Sequence[MessageFacts],
        now: datetime,
        *,
        final: bool = False,
        settle_after: float | None = None,
    ) -> LookRecord:
        """Look at ``now`` and record it (``settle_after``: see ``take_look``)."""
        record = take_look(
            self.spec, self.spec.stopping, facts, now, previous=self.records,
            policies=self.policies, max_messages=self.max_messages, final=final,
            settle_after=settle_after,
        )  # fmt: skip
        write_look(self.path, record)
        self.records.append(record)
        return record

    def plan(self) -> list[PlannedMessage]:
        """Every message of the run as the looks so far have planned it."""
        return stopping_plan(self.spec, self.phones, [r.running for r in self.records])
