"""Where an experiment stands, decision first: ``rbmtools experiment status RUN_DIR``.

Per use case, above everything else: Ready (the best arm, its always-valid interval, what it
saves per 1,000 messages), Keep running (about how many messages are left), Inconclusive (the
maximum was sent and no arm is surely cheapest) or Not enough data; then one row per arm with
its raw counts under every rate, and a sample-ratio check of the assignment counts, flagged
when it fails. A finished stopping run shows the runner's own last look (``looks.jsonl``); any
other run is looked at now, from its logs, with the spec's stopping rule or the default one,
so a fixed-size experiment gets the same verdict read with always-valid intervals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.analysis import humanize as h
from rbmtools.analysis.policy import policy_for
from rbmtools.analysis.sample_ratio import SampleRatioCheck, sample_ratio_check
from rbmtools.analysis.stopping import ArmLook, Decision, Look
from rbmtools.experiment.folder import RunPaths, read_meta, read_outbox
from rbmtools.experiment.looks import (
    LookRecord,
    expected_assignments,
    facts_from_logs,
    read_looks,
    take_look,
)
from rbmtools.experiment.spec import ExperimentSpec, load_spec
from rbmtools.experiment.stopping_spec import StoppingSpec
from rbmtools.wire import format_timestamp

__all__ = ["ExperimentStatus", "cost_detail", "experiment_status", "share_detail"]

_UNPRICED = (
    "{use_case}: no decision: no cost policy prices this use case (give one in the spec's "
    "stopping.cost_policy, or a '*' policy)."
)


@dataclass(frozen=True)
class ExperimentStatus:
    """An experiment's state and decision (see the module doc). ``look`` is None before any
    message was sent; ``recorded`` says it is the runner's own last look rather than one taken
    now from the logs."""

    spec: ExperimentSpec
    run_dir: Path
    state: str
    sent: int
    max_messages: int
    looks: int
    look: LookRecord | None
    recorded: bool
    sample_ratio: SampleRatioCheck

    def decisions(self) -> dict[str, Look]:
        return {} if self.look is None else dict(self.look.use_cases)

    def headline(self, use_case: str) -> str:
        """The decision of one use case in a sentence or two."""
        return _headline(use_case, self.decisions()[use_case], self.max_messages)

    def table(self, use_case: str) -> pd.DataFrame:
        """One row per arm of ``use_case``: status, raw counts, rates and intervals."""
        look = self.decisions()[use_case]
        best = look.best or _leader(look)
        return pd.DataFrame([_arm_row(arm, look, best) for arm in look.arms])

    def headlines(self) -> list[str]:
        """The decision of every use case in one short line (a report's first lines)."""
        lines = [_short(u, look) for u, look in self.decisions().items()]
        return lines + [f"{u}: no decision (no cost policy)" for u in self.unpriced()]

    def alerts(self) -> list[str]:
        """What a reader must not miss: a sample-ratio mismatch, a run not ended."""
        found = [self.sample_ratio.text()] if self.sample_ratio.flagged else []
        if self.state != "finished":
            found.append(
                "The run has not ended: read its decision. Fixed 95 % intervals (Wilson, "
                "Newcombe) hold only at a size fixed in advance, not at any moment."
            )
        return found

    def readable(self, use_case: str) -> pd.DataFrame:
        """``table`` for people: rates as percentages with their raw counts and intervals."""
        return _readable(self.table(use_case))

    def unpriced(self) -> list[str]:
        """Use cases with arms to compare but no cost policy to compare them by."""
        policies = (self.spec.stopping or StoppingSpec()).policies()
        counts: dict[str, int] = {}
        for arm in self.spec.arms:
            use_case = arm.use_case or self.spec.use_case
            counts[use_case] = counts.get(use_case, 0) + 1
        return [u for u, n in counts.items() if n > 1 and policy_for(u, policies)[1] is None]

    def text(self) -> str:
        lines = [self._summary_line(), ""]
        if self.look is None:
            lines.append("No message has been sent yet.")
        for use_case in self.unpriced():
            lines += [_UNPRICED.format(use_case=use_case), ""]
        for use_case in self.decisions():
            lines += [self.headline(use_case), ""]
            table = self.readable(use_case)
            lines += ["  " + line for line in table.to_string(index=False).splitlines()]
            lines.append("")
        lines.append(self.sample_ratio.text())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.spec.name,
            "run_dir": str(self.run_dir),
            "state": self.state,
            "sent": self.sent,
            "max_messages": self.max_messages,
            "looks": self.looks,
            "recorded": self.recorded,
            "look": None if self.look is None else self.look.to_dict(),
            "sample_ratio": self.sample_ratio.to_dict(),
        }

    def _summary_line(self) -> str:
        source = "the runner's last look" if self.recorded else "looked at now, from the logs"
        when = "" if self.look is None else f" at {format_timestamp(self.look.at)}"
        return (
            f"{self.spec.name}: {self.state}; {self.sent:,} of at most {self.max_messages:,} "
            f"messages sent; {self.looks} look(s) recorded; {source}{when}"
        )


def _short(use_case: str, look: Look) -> str:
    """A decision in one line: ``otp: Ready: 'ttl=15s', 0.0294 per message (0.0272 – 0.0330),
    saves 37.27 per 1,000 messages``."""
    if look.decision is Decision.READY:
        best = look.arm(look.best or "")
        text = (
            f"{use_case}: Ready: {best.arm!r}, {h.cost(best.cost)} per message "
            f"({h.cost(best.cost_lo)} – {h.cost(best.cost_hi)})"
        )
        if look.saving_per_1000 is not None:
            text += f", saves {look.saving_per_1000:.2f} per 1,000 messages"
        return text
    if look.decision is Decision.KEEP_RUNNING:
        return f"{use_case}: Keep running: about {h.count(look.messages_left)} more messages"
    if look.decision is Decision.INCONCLUSIVE:
        return f"{use_case}: Inconclusive: no arm is surely the cheapest at the maximum"
    return f"{use_case}: Not enough data: an arm has fewer than {look.min_per_arm} settled messages"


def _leader(look: Look) -> str | None:
    priced = [a for a in look.arms if a.running and a.cost is not None]
    return min(priced, key=lambda a: a.cost).arm if priced else None  # type: ignore[arg-type, return-value]


def _headline(use_case: str, look: Look, max_messages: int) -> str:
    joint = f"always valid, jointly {100 * (1 - look.alpha):g} %"
    if look.decision is Decision.READY:
        best = look.arm(look.best or "")
        text = (
            f"{use_case}: READY. Best arm {best.arm!r}: {h.cost(best.cost)} per message "
            f"({joint}: {h.cost(best.cost_lo)} – {h.cost(best.cost_hi)})"
        )
        if look.saving_per_1000 is not None:
            text += (
                f"; it saves {look.saving_per_1000:.2f} per 1,000 messages against the next "
                f"cheapest arm (at least {look.saving_per_1000_lo:.2f})"
            )
        return text + "."
    leader = _leader(look)
    lead = "" if leader is None else f" Cheapest so far: {leader!r}."
    dropped = ", ".join(f"{a.arm!r} (look {a.eliminated_at})" for a in look.arms if not a.running)
    gone = f" Dropped: {dropped}." if dropped else ""
    if look.decision is Decision.KEEP_RUNNING:
        return (
            f"{use_case}: KEEP RUNNING, about {look.messages_left:,} more messages to a decision."
            f"{lead}{gone}"
        )
    if look.decision is Decision.INCONCLUSIVE:
        return (
            f"{use_case}: INCONCLUSIVE. The maximum ({max_messages:,} messages) was sent and no "
            f"arm is surely the cheapest.{lead}{gone}"
        )
    short = [a for a in look.arms if a.running and a.tally.settled < look.min_per_arm]
    needs = ", ".join(f"{a.arm!r} has {a.tally.settled:,}" for a in short)
    return (
        f"{use_case}: NOT ENOUGH DATA. Settled messages per arm still running: {needs} "
        f"(a decision needs {look.min_per_arm:,}); about {look.messages_left:,} more messages."
        f"{gone}"
    )


def _arm_row(arm: ArmLook, look: Look, best: str | None) -> dict[str, Any]:
    tally = arm.tally
    if not arm.running:
        status = f"dropped at look {arm.eliminated_at}"
    elif look.decision is Decision.READY:
        status = "best"
    elif look.decision is Decision.INCONCLUSIVE:
        status = "not separated"
    else:
        status = "running"
    saving = None
    best_look = next((a for a in look.arms if a.arm == best), None)
    if best_look is not None and arm.cost is not None and best_look.cost is not None:
        saving = 1000.0 * (arm.cost - best_look.cost)
    return {
        "arm": arm.arm,
        "status": status,
        "messages": tally.assigned,
        "settled": tally.settled,
        "delivered": tally.delivered,
        "delivered_share": arm.delivered_share,
        "delivered_lo": arm.delivered_lo,
        "delivered_hi": arm.delivered_hi,
        "sms": tally.fallbacks,
        "cost_messages": tally.cost_count,
        "cost": arm.cost,
        "cost_lo": arm.cost_lo,
        "cost_hi": arm.cost_hi,
        "extra_per_1000": saving,
    }


def share_detail(row: Mapping[str, Any]) -> str:
    """The raw counts and the always-valid interval under a delivered share."""
    counts = f"{h.count(row['delivered'])} of {h.count(row['settled'])}"
    if not h.estimable(row["delivered_share"]):
        return counts
    return f"{counts} · {h.percent_range(row['delivered_lo'], row['delivered_hi'])}"


def cost_detail(row: Mapping[str, Any]) -> str:
    """The always-valid interval and the messages behind a cost per message."""
    messages = f"{h.count(row['cost_messages'])} messages"
    return f"{h.cost(row['cost_lo'])} – {h.cost(row['cost_hi'])} · {messages}"


def _extra(value: Any) -> str:
    return f"{value:+.2f}" if h.estimable(value) else ""


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    """The arm table as text: rates as percentages with their raw counts under them."""

    def share(row: pd.Series) -> str:
        return f"{h.percent(row['delivered_share'])} ({share_detail(row)})"

    def cost(row: pd.Series) -> str:
        return f"{h.cost(row['cost'])} ({cost_detail(row)})"

    return pd.DataFrame(
        {
            "arm": table["arm"],
            "status": table["status"],
            "messages": table["messages"].map(h.count),
            "delivered by its duration": table.apply(share, axis=1),
            "SMS": table["sms"].map(h.count),
            "cost per message": table.apply(cost, axis=1),
            "extra per 1,000": table["extra_per_1000"].map(_extra),
        }
    )


def _events_dir(paths: RunPaths, meta: Mapping[str, Any]) -> Path:
    sessions = meta.get("sessions") or []
    if sessions and sessions[-1].get("events"):
        return Path(sessions[-1]["events"])
    return paths.events


def _state(meta: Mapping[str, Any]) -> str:
    sessions = meta.get("sessions") or []
    if not sessions:
        return "not started"
    status = sessions[-1].get("status", "running")
    return {"complete": "finished", "running": "running (or died)"}.get(status, status)


def _latest(facts: list[Any]) -> datetime | None:
    times = []
    for fact in facts:
        times += [t for t in (fact.send_time, fact.delivered_at, fact.fallback_at) if t]
        times += [answer.at for answer in fact.revokes.values()]
    return max(times, default=None)


def experiment_status(run_dir: str | os.PathLike[str]) -> ExperimentStatus:
    """The status of the run in ``run_dir`` (see the module doc)."""
    from rbmtools.webhook import read_events

    paths = RunPaths(Path(run_dir))
    spec = load_spec(paths.spec)
    meta = read_meta(paths)
    stopping = spec.stopping or StoppingSpec()
    max_messages = stopping.max_messages or int(meta.get("messages") or 0)
    recorded = read_looks(paths.looks)
    events = _events_dir(paths, meta)
    logged = read_events(events) if events.exists() else []
    facts = facts_from_logs(read_outbox(paths.outbox), logged, spec.name)
    state = _state(meta)
    sent = sum(1 for f in facts if f.sent)
    max_messages = max(max_messages, sent, 2)
    finished = state == "finished"
    look, from_runner = None, False
    if recorded and finished and (recorded[-1].final or recorded[-1].decided):
        look, from_runner = recorded[-1], True
    elif facts and (at := _latest(facts)) is not None:
        look = take_look(
            spec, stopping, facts, at, previous=recorded, max_messages=max_messages,
            final=finished,
        )  # fmt: skip
    counts = {arm.name: 0 for arm in spec.arms}
    for fact in facts:
        if fact.sent and fact.planned.arm in counts:
            counts[fact.planned.arm] += 1
    if spec.stopping is not None:
        expected = expected_assignments(spec.arm_names, recorded, sent, stopping.look_every)
    else:
        expected = dict.fromkeys(counts, 1.0)
    return ExperimentStatus(
        spec, paths.run_dir, state, sent, max_messages, len(recorded), look, from_runner,
        sample_ratio_check(counts, expected),
    )  # fmt: skip
