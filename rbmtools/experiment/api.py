"""``run_experiment``: one call that plans, runs (or resumes) an experiment and summarises it.

A run lives in one folder, ``DATA_DIR/<experiment name>/``: ``spec.yaml`` (the spec it runs),
``run.json`` (audience fingerprint and one entry per session), ``outbox.jsonl`` (every send,
revoke and fallback), ``events/`` (the webhook receiver's log) and ``sms.jsonl`` (what the
emulator's SMS sink received), so ``rbmtools analyze --events DIR/events --outbox
DIR/outbox.jsonl`` reads it as it is. The ``emulator`` target starts (or attaches to) an
emulator and starts a receiver in-process on a free port; the ``live`` target talks to Google
with the credentials of the environment and follows the log of a receiver you run, behind
guard rails: a plan printed first, a phone list, a recipient cap, an explicit confirmation.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rbmtools.client import OutboxWriter, RbmClient
from rbmtools.errors import ValidationError
from rbmtools.experiment.assign import plan_messages
from rbmtools.experiment.plan import ExperimentPlan, build_plan
from rbmtools.experiment.runner import ExperimentRunner, RunStats
from rbmtools.experiment.schedule import MirroredClock, PlatformClock, WallClock
from rbmtools.experiment.sms import EmulatorSmsSender, SinkSmsSender, SmsSender
from rbmtools.experiment.spec import ExperimentSpec, load_spec
from rbmtools.wire import (
    FallbackRecord,
    OutboxRecord,
    RevokeRecord,
    SendRecord,
    duration_seconds,
    format_timestamp,
    parse_outbox_record,
    utc_now,
)

if TYPE_CHECKING:
    import pandas as pd

    from rbmtools.analysis import Dataset

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_MAX_RECIPIENTS",
    "TARGETS",
    "ExperimentResult",
    "RunPaths",
    "plan_experiment",
    "read_outbox",
    "run_experiment",
]

log = logging.getLogger("rbmtools.experiment")

TARGETS = ("emulator", "live")
DEFAULT_DATA_DIR = Path("data") / "experiments"
#: A live run to more numbers than this needs ``allow_many=True`` (``--allow-many``).
DEFAULT_MAX_RECIPIENTS = 1000
#: A live run stops if its webhook log says nothing this long after the first accepted send.
DEFAULT_EVENT_TIMEOUT = "10m"


@dataclass(frozen=True)
class RunPaths:
    """Where the files of one run live (see the module doc)."""

    run_dir: Path

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str], experiment: str) -> RunPaths:
        return cls(Path(data_dir) / experiment)

    @property
    def spec(self) -> Path:
        return self.run_dir / "spec.yaml"

    @property
    def meta(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def outbox(self) -> Path:
        return self.run_dir / "outbox.jsonl"

    @property
    def events(self) -> Path:
        return self.run_dir / "events"

    @property
    def sms(self) -> Path:
        return self.run_dir / "sms.jsonl"

    @property
    def stop_file(self) -> Path:
        return self.run_dir / "STOP"

    @property
    def torn(self) -> Path:
        return self.run_dir / "outbox.torn"

    def exists(self) -> bool:
        return self.meta.exists() or self.outbox.exists()


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

    def __repr__(self) -> str:
        calls = ""
        if self.stats is not None:
            calls = f", calls={self.stats.calls}, wall={self.stats.wall_seconds:.1f}s"
        return (
            f"ExperimentResult({self.spec.name!r}, target={self.target!r}, "
            f"status={self.status!r}, messages={self.plan.messages}{calls}, "
            f"run_dir={str(self.run_dir)!r})"
        )


# ------------------------------------------------------------------------------ the outbox


def read_outbox(path: str | os.PathLike[str], *, repair: bool = False) -> list[OutboxRecord]:
    """The records of an outbox log, for resuming.

    A torn last line (a crash mid-write) is skipped; with ``repair=True`` it is cut from the
    file and kept in ``outbox.torn`` next to it, so new records start on a fresh line. Other
    unreadable lines are skipped with a warning (readers are liberal).
    """
    source = Path(path)
    if not source.exists():
        return []
    raw = source.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end != len(raw):
        torn = raw[end:]
        log.warning("%s ends with a torn line (%d bytes); it is ignored", source, len(torn))
        if repair:
            with open(source.with_suffix(".torn"), "ab") as keep:
                keep.write(torn + b"\n")
            with open(source, "r+b") as handle:
                handle.truncate(end)
    records: list[OutboxRecord] = []
    for number, line in enumerate(raw[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(parse_outbox_record(line))
        except ValidationError as exc:
            log.warning("%s line %d is not an outbox record: %s", source, number, exc)
    return records


def _record_time(record: OutboxRecord) -> datetime:
    if isinstance(record, SendRecord):
        return record.send_time
    if isinstance(record, RevokeRecord):
        return record.requested_at
    assert isinstance(record, FallbackRecord)
    return record.sent_at


# ------------------------------------------------------------------------------ run.json


def _read_meta(paths: RunPaths) -> dict[str, Any]:
    if not paths.meta.exists():
        return {}
    try:
        data = json.loads(paths.meta.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValidationError("run.json", str(paths.meta), f"is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _write_meta(paths: RunPaths, meta: Mapping[str, Any]) -> None:
    temporary = paths.meta.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, paths.meta)


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else where or "spec"


# ------------------------------------------------------------------------------ planning


def plan_experiment(
    spec: ExperimentSpec | Mapping[str, Any] | str | os.PathLike[str],
    target: str = "emulator",
) -> ExperimentPlan:
    """The plan of a run (messages, numbers, arms, SMS at most) without sending anything."""
    spec = load_spec(spec)
    _check_target(target)
    messages, _, audience = plan_messages(spec)
    return build_plan(spec, messages, target=target, audience=audience)


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValidationError("target", target, f"must be one of {', '.join(TARGETS)}")


# ------------------------------------------------------------------------------ running


def run_experiment(
    spec: ExperimentSpec | Mapping[str, Any] | str | os.PathLike[str],
    target: str = "emulator",
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    *,
    resume: bool = False,
    dry_run: bool = False,
    emulator: Any = None,
    speed: float = 600.0,
    key_file: str | os.PathLike[str] | None = None,
    agent_id: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    sms: SmsSender | None = None,
    events_dir: str | os.PathLike[str] | None = None,
    confirm: bool | Callable[[ExperimentPlan], bool] = False,
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    allow_many: bool = False,
    concurrency: int = 8,
    progress: bool = True,
    stop_file: str | os.PathLike[str] | None = None,
    event_timeout: object = "default",
    summary: bool = True,
    echo: Callable[[str], None] | None = print,
) -> ExperimentResult:
    """Run (or resume) an experiment and return its logs and the per-arm summary.

    ``spec`` is an ``ExperimentSpec``, its plain mapping or a YAML/JSON path (such as the
    run folder's own ``spec.yaml``). The run folder is
    ``data_dir/<name>``; a folder that already holds a run needs ``resume=True``, which
    continues it without sending anything twice (the spec and audience must not have changed).

    ``target="emulator"``: ``emulator`` is None (start one in-process at ``speed`` with the
    spec's profile and seed), a running ``rbmtools.Emulator``, or the URL of an emulator served
    elsewhere (``rbmtools emulator serve``; give its ``key_file``). A receiver is started
    in-process on a free port and registered with the emulator; fallbacks go to an SMS sink
    that records them in ``sms.jsonl`` (or to ``sms``).

    ``target="live"``: the client comes from ``key_file``/``agent_id``/``region``/``base_url``
    or the ``RBM_*`` environment variables; events are read from ``events_dir`` (default
    ``<run folder>/events``), where your webhook receiver (``rbmtools webhook serve``) logs;
    ``sms`` is your provider (``CallableSmsSender``). The plan is printed first; the audience
    must be a phone list; more than ``max_recipients`` numbers need ``allow_many=True``; and
    nothing is sent without ``confirm=True`` (or a function that is shown the plan and
    returns True, as the CLI's prompt does).

    ``event_timeout`` (a duration; None: off; default 10 minutes live, off on the emulator,
    which is wired here) stops a run whose webhook log stays silent that long after the
    first accepted send, holding every fallback back until then: without events, delivered
    messages would look inconclusive and get the SMS too.

    ``dry_run=True`` prints the plan and returns without sending. A stop file (default
    ``<run folder>/STOP``) or Ctrl-C stops the run after the calls in flight: the result's
    status is ``interrupted`` and ``resume=True`` continues it.
    """
    _check_target(target)
    spec = load_spec(spec)
    paths = RunPaths.of(data_dir, spec.name)
    messages, fingerprint, audience = plan_messages(spec)
    meta = _read_meta(paths)
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
        _check_same_run(paths, spec, fingerprint, meta, target)
        records = read_outbox(paths.outbox, repair=not dry_run)
    already_sent = len(
        {r.message_id for r in records if isinstance(r, SendRecord) and r.status in (200, 404)}
    )
    already_settled = len({r.message_id for r in records if isinstance(r, FallbackRecord)})
    plan = build_plan(
        spec,
        messages,
        target=target,
        audience=audience,
        already_sent=already_sent,
        already_settled=already_settled,
    )
    if target == "live":
        _live_guard(spec, plan, max_recipients, allow_many)
    if echo is not None:
        echo(plan.text())
    if dry_run:
        return ExperimentResult(spec, target, "dry-run", paths, plan, resumed=resume)
    confirmed = confirm(plan) if callable(confirm) else bool(confirm)
    if target == "live" and not confirmed:
        raise ValidationError(
            "confirm",
            False,
            "a live run sends real messages: read the plan above, then pass confirm=True (--yes)",
        )
    if sms is None and target == "live" and spec.fallback.value != "none":
        raise ValidationError(
            "sms",
            None,
            f"the fallback policy {spec.fallback.value!r} needs an SMS sender on a live run "
            "(see CallableSmsSender), or set fallback: none",
        )
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        spec.save(paths.spec)
        meta = {
            "experiment": spec.name,
            "target": target,
            "audienceSha256": fingerprint,
            "messages": len(messages),
            "created": format_timestamp(utc_now()),
            "sessions": [],
        }
        _write_meta(paths, meta)
    stop = Path(stop_file) if stop_file is not None else paths.stop_file
    if stop.exists():
        log.warning("removing the stop file %s left by an earlier session", stop)
        stop.unlink()
    for earlier in meta.setdefault("sessions", []):
        if earlier.get("status") == "running":  # that process died without a word
            earlier["status"] = "died"
    session: dict[str, Any] = {
        "started": format_timestamp(utc_now()),
        "status": "running",
        "events": str(Path(events_dir) if events_dir is not None else paths.events),
    }
    meta["sessions"].append(session)
    _write_meta(paths, meta)
    latest = max((_record_time(r) for r in records), default=None)
    with ExitStack() as stack:
        writer = stack.enter_context(OutboxWriter(paths.outbox))
        if target == "emulator":
            client, clock, sink, finish = _emulator_session(
                stack, spec, paths, writer, emulator, speed, key_file, agent_id, concurrency,
                latest, sms,
            )  # fmt: skip
            events = paths.events
        else:
            client, clock = _live_session(
                stack, writer, key_file, agent_id, region, base_url, concurrency
            )
            sink, finish = sms, None
            events = Path(events_dir) if events_dir is not None else paths.events
            events.mkdir(parents=True, exist_ok=True)
        runner = ExperimentRunner(
            spec,
            messages,
            client=client,
            clock=clock,
            events_dir=events,
            outbox=writer,
            sms=sink,
            concurrency=concurrency,
            stop_file=stop,
            progress=progress,
            event_timeout=_event_timeout(event_timeout, target),
        )
        runner.load_history(records)
        if resume and target == "emulator" and emulator is None:
            _warn_fresh_platform(runner)
        try:
            stats = runner.run()
        finally:
            session["ended"] = format_timestamp(utc_now())
            session["status"] = runner.stats.status
            session["platformEnd"] = (
                None if runner.stats.platform_end is None else
                format_timestamp(runner.stats.platform_end)
            )  # fmt: skip
            session["stats"] = runner.stats.to_dict()
            _write_meta(paths, meta)
            if finish is not None:
                finish()
    result = ExperimentResult(
        spec, target, stats.status, paths, plan, stats, resumed=resume, events_dir=events
    )
    if summary:
        try:
            result.summary = _summary(result)
        except Exception as exc:  # the run and its logs stand; only the summary is missing
            log.warning("the analysis could not summarise %s: %s", paths.run_dir, exc)
            result.summary_error = f"{type(exc).__name__}: {exc}"
    if echo is not None:
        echo(_closing_line(result))
    return result


def _event_timeout(value: object, target: str) -> float | None:
    if value == "default":
        value = DEFAULT_EVENT_TIMEOUT if target == "live" else None
    return None if value is None else duration_seconds(value, "event_timeout")


def _check_same_run(
    paths: RunPaths, spec: ExperimentSpec, fingerprint: str, meta: Mapping[str, Any], target: str
) -> None:
    if paths.spec.exists():
        saved = load_spec(paths.spec)
        where = _first_difference(saved.to_dict(), spec.to_dict())
        if where is not None:
            raise ValidationError(
                "spec",
                where,
                f"differs from the spec the run started with ({paths.spec}); a resume must run "
                "the same spec",
            )
    if meta.get("audienceSha256") not in (None, fingerprint):
        raise ValidationError(
            "audience", spec.audience.phones_file, "changed since the run started; a resume "
            "must message the same audience",
        )  # fmt: skip
    if meta.get("target") not in (None, target):
        raise ValidationError(
            "target", target, f"the run started on the {meta.get('target')} target"
        )


def _live_guard(
    spec: ExperimentSpec, plan: ExperimentPlan, max_recipients: int, allow_many: bool
) -> None:
    if spec.audience.phones_file is None:
        raise ValidationError(
            "audience",
            spec.audience.to_dict(),
            "a live run needs a phone list (audience.phones_file); synthetic phones exist only "
            "on the emulator",
        )
    if plan.recipients > max_recipients and not allow_many:
        raise ValidationError(
            "recipients",
            plan.recipients,
            f"is more than {max_recipients:,}; pass allow_many=True (--allow-many) to message "
            "that many numbers",
        )


def _emulator_session(
    stack: ExitStack,
    spec: ExperimentSpec,
    paths: RunPaths,
    writer: OutboxWriter,
    emulator: Any,
    speed: float,
    key_file: str | os.PathLike[str] | None,
    agent_id: str | None,
    concurrency: int,
    latest: datetime | None,
    sms: SmsSender | None,
) -> tuple[RbmClient, PlatformClock, SmsSender | None, Callable[[], None]]:
    """Start or attach to an emulator, start a receiver, wire them; returns the client, the
    clock, the SMS sender and what to call once the runner is done."""
    from rbmtools.emulator import AdminClient, Emulator
    from rbmtools.emulator.handle import DEFAULT_AGENT_ID
    from rbmtools.emulator.sms import SmsSink
    from rbmtools.webhook import Receiver

    pool = max(16, concurrency)
    admin: Any
    if emulator is None:
        start = None if latest is None else latest + timedelta(seconds=1)
        emu = Emulator(
            profile=spec.audience.profile or "default", speed=speed, seed=spec.seed, start=start
        )
        stack.enter_context(emu)
        admin, clock, running = emu.admin, emu.clock, emu
        client = RbmClient.from_emulator(emu, outbox=writer, pool_size=pool)
        owned = True
    elif isinstance(emulator, str):
        if key_file is None:
            raise ValidationError(
                "key_file", None, "attaching to an emulator by URL needs its service-account key"
            )
        admin, running = AdminClient(emulator), None
        stack.callback(admin.close)
        clock = MirroredClock(admin)
        client = RbmClient.from_service_account_file(
            key_file,
            agent_id or DEFAULT_AGENT_ID,
            base_url=emulator,
            outbox=writer,
            clock=clock.now,
            pool_size=pool,
        )
        owned = False
    else:
        admin, clock, running = emulator.admin, emulator.clock, emulator
        client = RbmClient.from_emulator(emulator, outbox=writer, pool_size=pool)
        owned = False
    stack.callback(client.close)
    if spec.audience.profile is not None and not owned:
        _use_profile(admin, spec.audience.profile)
    if sms is None:
        if running is None:  # the served emulator's sink, mirrored in the run folder
            mirror = SmsSink(clock.now, paths.sms)
            stack.callback(mirror.close)
            sms = EmulatorSmsSender(admin, mirror)
        else:  # the in-process emulator's own sink (emu.sms), logging to the run folder
            sink = running.sms
            sink.open_log(paths.sms)
            stack.callback(sink.close)
            sms = SinkSmsSender(sink)
    token = secrets.token_urlsafe(24)
    receiver = Receiver(paths.events, client_token=token, clock=clock.now)
    stack.enter_context(receiver)
    admin.register_webhook(receiver.url, token)

    def finish() -> None:
        """Let the emulator push what is due, then detach it from our receiver."""
        try:
            admin.wait_idle(timeout=10.0)
        finally:
            if not owned:
                admin.unregister_webhook()

    return client, clock, sms, finish


def _use_profile(admin: Any, profile: Any) -> None:
    """Load the spec's profile into an attached emulator unless it already runs it."""
    from rbmtools.emulator import load_profile

    wanted = load_profile(profile).to_dict()
    if admin.profile() != wanted:
        admin.load_profile(profile)


def _live_session(
    stack: ExitStack,
    writer: OutboxWriter,
    key_file: str | os.PathLike[str] | None,
    agent_id: str | None,
    region: str | None,
    base_url: str | None,
    concurrency: int,
) -> tuple[RbmClient, PlatformClock]:
    env = dict(os.environ)
    for value, name in (
        (key_file, "RBM_SERVICE_ACCOUNT"),
        (agent_id, "RBM_AGENT_ID"),
        (region, "RBM_REGION"),
        (base_url, "RBM_BASE_URL"),
    ):
        if value:
            env[name] = str(value)
    client = RbmClient.from_env(env, outbox=writer, pool_size=max(16, concurrency))
    stack.callback(client.close)
    return client, WallClock()


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
    return (
        f"{result.spec.name}: {verb} in {stats.wall_seconds:.1f} s "
        f"({stats.calls:,} API calls, {stats.calls_per_second:.0f}/s); {parts}\n"
        f"logs: {result.run_dir}"
    )
