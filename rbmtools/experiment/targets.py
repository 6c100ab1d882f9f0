"""Where an experiment runs: the emulator (a rehearsal) or the live RBM platform, each with
its own settings.

``EmulatorTarget`` starts an emulator in-process (or uses a running one, or attaches to one
served elsewhere) and a webhook receiver wired to it (``rehearsal.Rehearsal``); fallbacks go to
the emulator's SMS sink. ``LiveTarget`` talks to Google with credentials that come from its
settings or, for any left out, the ``RBM_*`` environment (``ClientConfig.resolve``), follows
the log of a receiver you run, and keeps the guard rails: a phone list, a recipient cap, an
explicit confirmation, an SMS provider when anything may fall back, and a silent-webhook stop.

A target checks a plan before anything is sent (``check``, ``confirmed``) and then ``open``s a
``Connection`` for the runner: the client (writing to the run's outbox), the platform's clock,
the event log to follow and the SMS sender.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from rbmtools.client import ClientConfig, OutboxWriter, RbmClient
from rbmtools.client.sms import SmsSender
from rbmtools.errors import ValidationError
from rbmtools.experiment.folder import RunPaths
from rbmtools.experiment.plan import ExperimentPlan
from rbmtools.experiment.rehearsal import Rehearsal
from rbmtools.experiment.schedule import PlatformClock, WallClock
from rbmtools.experiment.spec import ExperimentSpec
from rbmtools.wire import duration_seconds

__all__ = [
    "DEFAULT_EVENT_TIMEOUT",
    "DEFAULT_MAX_RECIPIENTS",
    "TARGETS",
    "Connection",
    "EmulatorTarget",
    "LiveTarget",
    "Target",
    "make_target",
]

log = logging.getLogger("rbmtools.experiment")

TARGETS = ("emulator", "live")
#: A live run to more numbers than this needs ``allow_many=True`` (``--allow-many``).
DEFAULT_MAX_RECIPIENTS = 1000
#: A live run stops if its webhook log says nothing this long after the first accepted send.
DEFAULT_EVENT_TIMEOUT = "10m"


@dataclass(frozen=True)
class Connection:
    """What the runner gets from an opened target."""

    client: RbmClient
    clock: PlatformClock
    events_dir: Path
    sms: SmsSender | None


def _timeout_seconds(value: object) -> float | None:
    return None if value is None else duration_seconds(value, "event_timeout")


@dataclass(frozen=True)
class EmulatorTarget:
    """Run on the emulator: a rehearsal, no Google account needed.

    ``emulator``: None (start one in-process at ``speed`` platform seconds per real second,
    with the spec's profile and seed), a running ``rbmtools.Emulator``, or the URL of an
    emulator served elsewhere (``rbmtools emulator serve``; give its ``key_file``, and
    ``agent_id`` if it serves another than its default). ``event_timeout`` (a duration, None:
    off) stops a run whose webhook log stays silent; it is off here, where the receiver is
    wired by the target itself.
    """

    emulator: Any = None
    speed: float = 600.0
    key_file: str | os.PathLike[str] | None = None
    agent_id: str | None = None
    event_timeout: object = None

    name: ClassVar[str] = "emulator"

    def __post_init__(self) -> None:
        _timeout_seconds(self.event_timeout)

    @property
    def event_timeout_seconds(self) -> float | None:
        return _timeout_seconds(self.event_timeout)

    @property
    def fresh_platform(self) -> bool:
        """True when each run starts its own emulator (a resume then meets a new platform)."""
        return self.emulator is None

    def check(self, spec: ExperimentSpec, plan: ExperimentPlan) -> None:
        """Nothing to guard: the messages go to simulated phones."""

    def confirmed(self, plan: ExperimentPlan) -> bool:
        return True

    def check_sms(self, spec: ExperimentSpec, sms: SmsSender | None) -> None:
        """Nothing to check: without a sender, fallbacks go to the emulator's SMS sink."""

    def events_for(self, paths: RunPaths) -> Path:
        """The event log the run follows: the rehearsal's receiver logs in the run folder."""
        return paths.events

    def open(
        self,
        stack: ExitStack,
        spec: ExperimentSpec,
        paths: RunPaths,
        writer: OutboxWriter,
        *,
        concurrency: int,
        latest: datetime | None,
        sms: SmsSender | None,
    ) -> Connection:
        """A rehearsal logging to the run folder; a fresh emulator starts just after the last
        thing the outbox records, so a resumed run's times keep moving forward."""
        start = None
        if self.emulator is None and latest is not None:
            start = latest + timedelta(seconds=1)
        rehearsal = Rehearsal.open(
            paths.events,
            emulator=self.emulator,
            profile=spec.audience.profile,
            speed=self.speed,
            seed=spec.seed,
            start=start,
            key_file=self.key_file,
            agent_id=self.agent_id,
            outbox=writer,
            pool_size=max(16, concurrency),
        )
        stack.callback(rehearsal.close)
        if sms is None:
            sms = rehearsal.sms_sender(paths.sms)
        return Connection(rehearsal.client, rehearsal.clock, rehearsal.events_dir, sms)


@dataclass(frozen=True)
class LiveTarget:
    """Run on Google's RBM platform, behind guard rails.

    ``key_file`` (a *path*), ``agent_id``, ``region`` and ``base_url`` each fall back to their
    ``RBM_*`` environment variable. ``events_dir`` is where your webhook receiver (``rbmtools
    webhook serve``) logs (default ``<run folder>/events``). The audience must be a phone list;
    more than ``max_recipients`` numbers need ``allow_many=True``; nothing is sent without
    ``confirm=True`` or a function that is shown the plan and returns True (as the CLI's
    prompt does). ``event_timeout`` (default 10 minutes; None: off) stops a run whose webhook
    log stays silent that long after the first accepted send, holding every revoke fallback
    back until then: without events, delivered messages would look inconclusive and get the
    SMS too.
    """

    key_file: str | os.PathLike[str] | None = None
    agent_id: str | None = None
    region: str | None = None
    base_url: str | None = None
    events_dir: str | os.PathLike[str] | None = None
    confirm: bool | Callable[[ExperimentPlan], bool] = False
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    allow_many: bool = False
    event_timeout: object = DEFAULT_EVENT_TIMEOUT

    name: ClassVar[str] = "live"

    def __post_init__(self) -> None:
        _timeout_seconds(self.event_timeout)

    def __repr__(self) -> str:  # the key is a path, but say no more than needed
        return (
            f"LiveTarget(agent_id={self.agent_id!r}, region={self.region!r}, "
            f"events_dir={None if self.events_dir is None else os.fspath(self.events_dir)!r})"
        )

    @property
    def event_timeout_seconds(self) -> float | None:
        return _timeout_seconds(self.event_timeout)

    @property
    def fresh_platform(self) -> bool:
        return False

    def check(self, spec: ExperimentSpec, plan: ExperimentPlan) -> None:
        """The guard rails that need no answer from a person: a phone list, the cap."""
        if spec.audience.phones_file is None:
            raise ValidationError(
                "audience",
                spec.audience.to_dict(),
                "a live run needs a phone list (audience.phones_file); synthetic phones exist "
                "only on the emulator",
            )
        if plan.recipients > self.max_recipients and not self.allow_many:
            raise ValidationError(
                "recipients",
                plan.recipients,
                f"is more than {self.max_recipients:,}; pass allow_many=True (--allow-many) to "
                "message that many numbers",
            )

    def confirmed(self, plan: ExperimentPlan) -> bool:
        """The person's go-ahead, once the plan is shown; a run without it sends nothing."""
        return self.confirm(plan) if callable(self.confirm) else bool(self.confirm)

    def check_sms(self, spec: ExperimentSpec, sms: SmsSender | None) -> None:
        """A live run that may fall back needs your SMS provider."""
        if sms is None and spec.fallback_rule.sends_sms:
            raise ValidationError(
                "sms",
                None,
                f"the fallback rule {str(spec.fallback_rule)!r} needs an SMS sender on a live "
                "run (see CallableSmsSender), or set fallback: none",
            )

    def events_for(self, paths: RunPaths) -> Path:
        """The event log the run follows: your receiver's (default ``<run folder>/events``)."""
        return Path(self.events_dir) if self.events_dir is not None else paths.events

    def open(
        self,
        stack: ExitStack,
        spec: ExperimentSpec,
        paths: RunPaths,
        writer: OutboxWriter,
        *,
        concurrency: int,
        latest: datetime | None,
        sms: SmsSender | None,
    ) -> Connection:
        config = ClientConfig.resolve(self.key_file, self.agent_id, self.region, self.base_url)
        client = RbmClient.from_config(config, outbox=writer, pool_size=max(16, concurrency))
        stack.callback(client.close)
        events = self.events_for(paths)
        events.mkdir(parents=True, exist_ok=True)
        return Connection(client, WallClock(), events, sms)


Target = EmulatorTarget | LiveTarget
_TARGET_TYPES: dict[str, type[EmulatorTarget] | type[LiveTarget]] = {
    "emulator": EmulatorTarget,
    "live": LiveTarget,
}


def make_target(target: str | Target, settings: Mapping[str, Any] | None = None) -> Target:
    """A target object from a name and its settings (or a target object as it is).

    A setting of the *other* target is ignored when it holds that target's default (so a
    notebook may pass every parameter it has) and refused otherwise: ``speed=1200`` with the
    live target is a mistake worth saying.
    """
    settings = dict(settings or {})
    if isinstance(target, EmulatorTarget | LiveTarget):
        if settings:
            name = sorted(settings)[0]
            raise ValidationError(
                name, settings[name], f"give it to the {target.name} target object instead"
            )
        return target
    if target not in _TARGET_TYPES:
        raise ValidationError("target", target, f"must be one of {', '.join(TARGETS)}")
    if settings.get("event_timeout") == "default":  # the earlier spelling of "the default"
        del settings["event_timeout"]
    chosen = _TARGET_TYPES[target]
    own = {f.name for f in fields(chosen)}
    for other_name, other in _TARGET_TYPES.items():
        if other is chosen:
            continue
        defaults = {f.name: f.default for f in fields(other)}
        for name in [k for k in settings if k not in own]:
            if name not in defaults:
                continue
            if settings[name] is None or settings[name] == defaults[name]:
                del settings[name]
            else:
                raise ValidationError(
                    name, settings[name], f"is a setting of the {other_name} target, not {target}"
                )
    unknown = sorted(set(settings) - own)
    if unknown:
        raise ValidationError(unknown[0], settings[unknown[0]], "is not a setting of any target")
    return chosen(**settings)
