"""``run_experiment``: plan an experiment, run (or resume) it on a target, and summarise it.

A run lives in one folder, ``DATA_DIR/<experiment name>/`` (see ``folder``), which
``rbmtools analyze --events DIR/events --outbox DIR/outbox.jsonl`` reads as it is. The target
(``targets``: ``EmulatorTarget`` for a rehearsal, ``LiveTarget`` for Google, each with its own
settings) checks the plan and opens the platform; ``runner.ExperimentRunner`` takes every
decision; this module ties them together: the plan is printed first, a session entry in
``run.json`` records what each session did, and the analysis summarises the arms at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rbmtools.client import OutboxWriter
from rbmtools.client.sms import SmsSender
from rbmtools.errors import ValidationError
from rbmtools.experiment.assign import PlannedMessage, plan_messages, recipients
from rbmtools.experiment.folder import (
    RunPaths,
    check_same_run,
    latest_record_time,
    read_meta,
    read_outbox,
    write_meta,
)
from rbmtools.experiment.looks import RunLooks, read_looks
from rbmtools.experiment.plan import ExperimentPlan, build_plan
from rbmtools.experiment.runner import ExperimentRunner, RunStats
from rbmtools.experiment.spec import ExperimentSpec, load_spec
from rbmtools.experiment.targets import Target, make_target
from rbmtools.wire import FallbackRecord, OutboxRecord, SendRecord, format_timestamp, utc_now

if TYPE_CHECKING:
    import pandas as pd

    from rbmtools.analysis import Dataset
    from rbmtools.experiment.status import ExperimentStatus

__all__ = ["DEFAULT_DATA_DIR", "ExperimentResult", "plan_experiment", "run_experiment"]

log = logging.getLogger("rbmtools.experiment")

DEFAULT_DATA_DIR = Path("data") / "experiments"
SpecSource = ExperimentSpec | Mapping[str, Any] | str | os.PathLike[str]


@dataclass
class ExperimentResult:
    """What ``run_experiment`` returns: the run's paths, its stats and the per-arm summary.

    ``status`` is ``complete``, ``interrupted`` (stopped; ``resume=True`` continues it) or
    ``dry-run``. ``summary`` is the analysis's lifecycle summary per arm (one row per arm:
    messages, outcomes, revoke tries and successes, fallbacks, stale and double deliveries);
    ``summary_error`` says why it is missing if the analysis failed (the logs are complete).
    """

    spec: ExperimentSpec
    target: str
    status: str
    paths: RunPaths
    plan: ExperimentPlan
    stats: RunStats | None = None
    summary: pd.DataFrame | None = None
    resumed: bool = False
    summary_error: str | None = None
    events_dir: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.paths.run_dir

    @property
    def outbox(self) -> Path:
        return self.paths.outbox

    @property
    def events(self) -> Path:
        """The event log the run followed (``<run folder>/events`` unless given)."""
        return self.events_dir or self.paths.events

    @property
    def sms(self) -> Path:
        return self.paths.sms

    def dataset(self) -> Dataset:
        """Both logs loaded by the analysis (``rbmtools.analysis.load``); close it after use."""
        from rbmtools.analysis import load

        events = self.events if self.events.exists() else None
        return load(events=events, outbox=self.outbox)

    def lifecycle(self) -> pd.DataFrame:
        """One row per message with its outcome (the analysis's lifecycle)."""
        with self.dataset() as data:
            return data.lifecycle()

    def status_report(self) -> ExperimentStatus:
        """Where the run stands, decision first (``rbmtools experiment status``)."""
        from rbmtools.experiment.status import experiment_status

        return experiment_status(self.run_dir)

    def __repr__(self) -> str:
        calls = ""
        if self.stats is not None:
            calls = f", calls={self.stats.calls}, wall={self.stats.wall_seconds:.1f}s"
        return (
            f"ExperimentResult({self.spec.name!r}, target={self.target!r}, "
            f"status={self.status!r}, messages={self.plan.messages}{calls}, "
            f"run_dir={str(self.run_dir)!r})"
        )


# ------------------------------------------------------------------------------ planning


def plan_experiment(spec: SpecSource, target: str | Target = "emulator") -> ExperimentPlan:
    """The plan of a run (messages, numbers, arms, SMS at most) without sending anything."""
    spec = load_spec(spec)
    chosen = make_target(target)
    messages, _, audience = plan_messages(spec)
    return build_plan(spec, messages, target=chosen.name, audience=audience)


@dataclass
class _Prepared:
    """A run checked and planned, before anything is sent."""

    spec: ExperimentSpec
    target: Target
    paths: RunPaths
    messages: list[PlannedMessage]
    fingerprint: str
    meta: dict[str, Any]
    records: list[OutboxRecord]
    plan: ExperimentPlan
    resume: bool
    looks: RunLooks | None = None


def _prepare(
    spec: SpecSource, target: Target, data_dir: Any, resume: bool, dry_run: bool
) -> _Prepared:
    spec = load_spec(spec)
    paths = RunPaths.of(data_dir, spec.name)
    messages, fingerprint, audience = plan_messages(spec)
    looks = None
    if spec.stopping is not None:  # batches split among the arms the recorded looks kept
        recorded = read_looks(paths.looks, repair=not dry_run) if resume else []
        looks = RunLooks(
            spec, paths.looks, recipients(spec), max_messages=len(messages), records=recorded
        )
        messages = looks.plan()
    meta = read_meta(paths)
    if paths.exists() and not resume and not dry_run:
        raise ValidationError(
            "data_dir",
            str(paths.run_dir),
            f"already holds a run of {spec.name!r}; pass resume=True (--resume) to continue it, "
            "or give the experiment another name",
        )
    if resume and not paths.exists():
        raise ValidationError("resume", str(paths.run_dir), "holds no run to resume")
    records: list[OutboxRecord] = []
    if resume:
        check_same_run(paths, spec, fingerprint, meta, target.name)
        records = read_outbox(paths.outbox, repair=not dry_run)
    answered = {
        r.message_id for r in records if isinstance(r, SendRecord) and r.status in (200, 404)
    }
    if looks is not None:
        _check_looks(looks, messages, answered)
    settled = {r.message_id for r in records if isinstance(r, FallbackRecord)}
    plan = build_plan(
        spec,
        messages,
        target=target.name,
        audience=audience,
        already_sent=len(answered),
        already_settled=len(settled),
    )
    return _Prepared(spec, target, paths, messages, fingerprint, meta, records, plan, resume, looks)


def _check_looks(looks: RunLooks, messages: list[PlannedMessage], answered: set[str]) -> None:
    """A resume's looks must be those the run took: every message already sent is in the plan
    they make, and no batch was sent without the look before it."""
    planned = {m.message_id: m.index for m in messages}
    unknown = answered - set(planned)
    batches = [planned[i] // looks.spec.stopping.look_every for i in answered if i in planned]
    if unknown or max(batches, default=0) > len(looks.records):
        raise ValidationError(
            "resume", str(looks.path), "does not account for the messages already sent (edited "
            "or cut?); the looks must be those the run took",
        )  # fmt: skip


# ------------------------------------------------------------------------------ running


def run_experiment(
    spec: SpecSource,
    target: str | Target = "emulator",
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    *,
    resume: bool = False,
    dry_run: bool = False,
    sms: SmsSender | None = None,
    concurrency: int = 8,
    progress: bool = True,
    stop_file: str | os.PathLike[str] | None = None,
    summary: bool = True,
    echo: Callable[[str], None] | None = print,
    **target_settings: Any,
) -> ExperimentResult:
    """Run (or resume) an experiment and return its logs and the per-arm summary.

    ``spec`` is an ``ExperimentSpec``, its plain mapping or a YAML/JSON path (such as the run
    folder's own ``spec.yaml``). ``target`` is an ``EmulatorTarget`` or a ``LiveTarget`` (each
    with its own settings: the emulator to use, the credentials, the guard rails), or its name,
    ``"emulator"`` or ``"live"``, with those settings as keyword arguments
    (``run_experiment(spec, "live", key_file=..., confirm=True)``). The run folder is
    ``data_dir/<name>``; a folder that already holds a run needs ``resume=True``, which
    continues it without sending anything twice (the spec and audience must not have changed).

    ``sms`` sends the fallback SMS (``CallableSmsSender`` wraps your provider); on the emulator
    it defaults to the emulator's SMS sink, logged to ``sms.jsonl``. ``dry_run=True`` prints
    the plan and returns without sending. A stop file (default ``<run folder>/STOP``) or Ctrl-C
    stops the run after the calls in flight: the result's status is ``interrupted`` and
    ``resume=True`` continues it.
    """
    chosen = make_target(target, target_settings)
    prepared = _prepare(spec, chosen, data_dir, resume, dry_run)
    spec, paths, plan = prepared.spec, prepared.paths, prepared.plan
    chosen.check(spec, plan)
    if echo is not None:
        echo(plan.text())
    if dry_run:
        return ExperimentResult(spec, chosen.name, "dry-run", paths, plan, resumed=resume)
    if not chosen.confirmed(plan):
        raise ValidationError(
            "confirm",
            False,
            "a live run sends real messages: read the plan above, then pass confirm=True (--yes)",
        )
    chosen.check_sms(spec, sms)
    stop = Path(stop_file) if stop_file is not None else paths.stop_file
    meta, session = _open_session(prepared, stop)
    with ExitStack() as stack:
        writer = stack.enter_context(OutboxWriter(paths.outbox))
        latest = latest_record_time(prepared.records)
        connection = chosen.open(
            stack, spec, paths, writer, concurrency=concurrency, latest=latest, sms=sms
        )
        runner = ExperimentRunner(
            spec,
            prepared.messages,
            client=connection.client,
            clock=connection.clock,
            events_dir=connection.events_dir,
            outbox=writer,
            sms=connection.sms,
            concurrency=concurrency,
            stop_file=stop,
            progress=progress,
            event_timeout=chosen.event_timeout_seconds,
            looks=prepared.looks,
        )
        runner.load_history(prepared.records)
        if resume and chosen.fresh_platform:
            _warn_fresh_platform(runner)
        try:
            stats = runner.run()
        finally:
            _close_session(paths, meta, session, runner.stats)
    result = ExperimentResult(
        spec, chosen.name, stats.status, paths, plan, stats, resumed=resume,
        events_dir=connection.events_dir,
    )  # fmt: skip
    if summary:
        try:
            result.summary = _summary(result)
        except Exception as exc:  # the run and its logs stand; only the summary is missing
            log.warning("the analysis could not summarise %s: %s", paths.run_dir, exc)
            result.summary_error = f"{type(exc).__name__}: {exc}"
    if echo is not None:
        echo(_closing_line(result))
    return result


def _open_session(prepared: _Prepared, stop: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create the run folder (a fresh run: its spec and ``run.json``), clear an old stop
    file, and add this session to ``run.json``; returns the meta and the session entry."""
    paths, spec, meta = prepared.paths, prepared.spec, prepared.meta
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    if not prepared.resume:
        spec.save(paths.spec)
        meta = {
            "experiment": spec.name,
            "target": prepared.target.name,
            "audienceSha256": prepared.fingerprint,
            "messages": len(prepared.messages),
            "created": format_timestamp(utc_now()),
            "sessions": [],
        }
        write_meta(paths, meta)
    if stop.exists():
        log.warning("removing the stop file %s left by an earlier session", stop)
        stop.unlink()
    for earlier in meta.setdefault("sessions", []):
        if earlier.get("status") == "running":  # that process died without a word
            earlier["status"] = "died"
    session: dict[str, Any] = {
        "started": format_timestamp(utc_now()),
        "status": "running",
        "events": str(prepared.target.events_for(paths)),
    }
    meta["sessions"].append(session)
    write_meta(paths, meta)
    return meta, session


def _close_session(
    paths: RunPaths, meta: dict[str, Any], session: dict[str, Any], stats: RunStats
) -> None:
    session["ended"] = format_timestamp(utc_now())
    session["status"] = stats.status
    end = stats.platform_end
    session["platformEnd"] = None if end is None else format_timestamp(end)
    session["stats"] = stats.to_dict()
    write_meta(paths, meta)


def _warn_fresh_platform(runner: ExperimentRunner) -> None:
    in_flight = sum(1 for f in runner.facts if f.send_status == 200 and f.fallback_reason is None)
    if in_flight:
        log.warning(
            "resuming on a new in-process emulator: %d message(s) sent to the previous one are "
            "unknown to it (their revokes answer 404 and count as inconclusive); attach to the "
            "same emulator (emulator=..., --emulator-url) to resume faithfully",
            in_flight,
        )


def _summary(result: ExperimentResult) -> pd.DataFrame | None:
    """The analysis's lifecycle summary per arm of this experiment."""
    if not result.outbox.exists():
        return None
    with result.dataset() as data:
        frame = data.summary(by=("experiment", "arm"))
    frame = frame[frame["experiment"] == result.spec.name].reset_index(drop=True)
    order = {name: i for i, name in enumerate(result.spec.arm_names)}
    frame = frame.sort_values("arm", key=lambda s: s.map(order)).reset_index(drop=True)
    return frame


def _closing_line(result: ExperimentResult) -> str:
    stats = result.stats
    assert stats is not None
    parts = ", ".join(f"{k} {v:,}" for k, v in stats.outcomes.items())
    verb = "finished" if result.status == "complete" else "stopped (resume with --resume)"
    looks = read_looks(result.paths.looks)
    if looks:
        decisions = ", ".join(
            f"{name} {look.decision.value.replace('_', ' ')}"
            + (f" ({look.best})" if look.best else "")
            for name, look in looks[-1].use_cases.items()
        )
        most = int(read_meta(result.paths).get("messages") or result.plan.messages)
        verb += f" after {looks[-1].sent:,} of at most {most:,} messages: {decisions}"
    return (
        f"{result.spec.name}: {verb} in {stats.wall_seconds:.1f} s "
        f"({stats.calls:,} API calls, {stats.calls_per_second:.0f}/s); {parts}\n"
        f"logs: {result.run_dir}"
    )
