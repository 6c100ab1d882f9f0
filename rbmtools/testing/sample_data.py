"""The sample logs in ``data/sample/``: a real emulator experiment, replayed identically.

A run at speed 600 is not reproducible: platform time follows the wall clock, so send times,
``receivedAt`` and revoke times move by however long each thread took, and a decision near a
grace period can go either way. Here the emulator runs in its stepping mode (speed 0) and
time is driven explicitly, as in a discrete-event simulation: the clock stops at every instant
where something happens (the platform's next transition, the runner's next due action), and
moves on only once everything that instant caused has settled (webhook pushes acknowledged,
calls answered, the runner idle). The runner works with one worker and the emulator pushes one
event at a time, so even the order of the log lines repeats. Same spec and seed, same files.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rbmtools.errors import RbmError
from rbmtools.experiment import ExperimentSpec, run_experiment
from rbmtools.wire import parse_timestamp

__all__ = ["SAMPLE_SPEC", "SAMPLE_START", "SampleData", "make_sample_data"]

#: The platform instant the sample run starts at (a Monday morning, UTC).
SAMPLE_START = "2026-11-23T08:00:00Z"

#: The population of the sample: commuters (frequent short signal losses), longer offline
#: spells than the shipped profile, and a marketing list's share of numbers that are gone for
#: good, so that every use case has undelivered messages to learn a TTL from.
SAMPLE_PROFILE: dict[str, Any] = {
    "name": "sample-commuters",
    "extends": "commuters",
    "description": "Commuters on an older contact list: longer offline spells, 5 % stale numbers.",
    "devices": {
        "never_back_share": 0.05,
        "online": {"median": "2h", "sigma": 1.0},
        "offline": {"median": "8m", "sigma": 1.6},
    },
}

#: The experiment behind ``data/sample/``: four use cases, every revoke method, sends spread
#: over three days (one every 160 platform seconds) so that the logs have a daily trend.
SAMPLE_SPEC: dict[str, Any] = {
    "name": "sample-2026-11",
    "description": "The rbmtools sample: four use cases, every revoke method, three days.",
    "use_case": "otp",
    "traffic_type": "AUTHENTICATION",
    "template": "Your code is {code}",
    "sms_template": "Code {code}",
    "audience": {"synthetic": 1620, "profile": SAMPLE_PROFILE},
    "arms": [
        {"name": "otp ttl=1m", "method": "ttl", "duration": "1m"},
        {"name": "otp ttl=5m", "method": "ttl", "duration": "5m"},
        {"name": "otp api=10m", "method": "api_after_unless_delivered", "duration": "10m"},
        {"name": "alert api=2m", "method": "api_after", "duration": "2m", "use_case": "alert"},
        {"name": "alert ttl=15m", "method": "ttl", "duration": "15m", "use_case": "alert"},
        {
            "name": "transaction ttl=30m",
            "method": "expire_time",
            "duration": "30m",
            "use_case": "transaction",
            "traffic_type": "TRANSACTION",
        },
        {
            "name": "transaction api=2h",
            "method": "api_after_unless_delivered",
            "duration": "2h",
            "use_case": "transaction",
            "traffic_type": "TRANSACTION",
        },
        {
            "name": "promo ttl=4h",
            "method": "ttl",
            "duration": "4h",
            "use_case": "promo",
            "traffic_type": "PROMOTION",
        },
        {
            "name": "promo ttl=12h",
            "method": "ttl",
            "duration": "12h",
            "use_case": "promo",
            "traffic_type": "PROMOTION",
        },
    ],
    "seed": 7,
    "send_rate": 1 / 160,
    "fallback": "on_revoked_or_inconclusive",
    "grace": "30s",
    "observe": "30m",
}

#: What ``data/sample/`` holds (everything else in a run folder depends on the wall clock).
SAMPLE_FILES = ("spec.yaml", "outbox.jsonl", "events", "sms.jsonl")

_RUNNER_POLL = 0.002  # real seconds the runner waits between looks while time stands still
# An instant counts as settled after this many real seconds (and runner looks) without change:
# long enough for the runner's event follower (it polls every 10 ms) when events were pushed,
# and for a decided call to reach the platform otherwise.
_SETTLE_AFTER_EVENTS = 0.03
_SETTLE_QUIET = 0.012
_SETTLE_LOOKS = 5
_SILENT_RUNNER = 2.0  # real seconds without a runner look after which it has nothing due
_FINISH_TIMEOUT = 60.0  # real seconds a runner with nothing due may take to finish


class _RunnerClock:
    """The emulator's clock as the experiment runner sees it: held back by the driver.

    The runner's decision thread reads ``released``, an instant the driver moves forward; every
    other thread (the client stamping its calls, the webhook receiver) reads the emulator's own
    clock. Holding the runner back lets the platform's events at an instant reach it before
    its own actions due at that same instant, always in that order. The runner asks
    ``real_delay`` how long to wait for its next due instant whenever it has nothing left to do
    now: the driver learns that instant, and counts the runner's looks.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._released = clock.now()
        self._seen = self._released  # the instant the runner last read
        self.runner_thread: int | None = None
        self.looks = 0
        self.next_due: datetime | None = None
        self.speed = 0.0

    def now(self) -> datetime:
        if threading.get_ident() == self.runner_thread:
            with self._lock:
                self._seen = self._released
                return self._released
        return self._clock.now()

    def release(self, until: datetime) -> None:
        with self._lock:
            self._released = until

    @property
    def released(self) -> datetime:
        with self._lock:
            return self._released

    def real_delay(self, platform_seconds: float) -> float:
        # ``platform_seconds`` counts from the instant the runner read at the top of its loop
        with self._lock:
            self.looks += 1
            self.next_due = self._seen + timedelta(seconds=platform_seconds)
        return _RUNNER_POLL

    def state(self) -> tuple[int, datetime | None]:
        with self._lock:
            return self.looks, self.next_due


class _SteppedEmulator:
    """A running ``Emulator`` as ``run_experiment(emulator=...)`` uses it, but whose clock the
    runner reads through ``_RunnerClock``."""

    def __init__(self, emulator: Any) -> None:
        self._emulator = emulator
        self.clock = _RunnerClock(emulator.clock)

    def __getattr__(self, name: str) -> Any:  # base_url, key_file, agent_id, admin, sms
        return getattr(self._emulator, name)


async def _advance(server: Any, target: float) -> None:
    clock = server.clock
    while clock.seconds() < target:  # land exactly on (or a hair past) the target
        clock.advance(max(target - clock.seconds(), math.ulp(clock.seconds())))
    await server.catch_up()
    await server.dispatcher.wait_idle(30.0)


async def _platform_state(server: Any) -> tuple[float | None, int, bool, int]:
    """(the next transition, API calls not answered yet, pushes idle, pushes sent so far)."""
    dues = [t for t in (server.model.next_due(), server.dispatcher.next_due()) if t is not None]
    calls = sum(n for method, n in server.calls.items() if method != "token")  # no status kept
    pending = calls - sum(server.statuses.values())
    dispatcher = server.dispatcher
    return (min(dues) if dues else None), pending, dispatcher.idle, dispatcher.sent


_POOL_THREAD = "rbmtools-experiment_"  # the runner's workers (ThreadPoolExecutor names)
_WORK_ITEM = os.path.join("concurrent", "futures", "thread.py")


def _busy_workers() -> int:
    """How many of the runner's worker threads are inside a call (an HTTP request, its retry
    back-off, an SMS): such a call reaches the platform later, so time must not move."""
    frames = sys._current_frames()
    busy = 0
    for thread in threading.enumerate():
        if not thread.name.startswith(_POOL_THREAD) or thread.ident is None:
            continue
        frame = frames.get(thread.ident)
        while frame is not None:
            code = frame.f_code
            if code.co_name == "run" and code.co_filename.endswith(_WORK_ITEM):
                busy += 1
                break
            frame = frame.f_back
    return busy


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


@dataclass(frozen=True)
class SampleData:
    """What ``make_sample_data`` wrote: the folder, each file's SHA-256, and the drive."""

    directory: Path
    files: dict[str, str]
    stops: int
    platform_start: datetime
    platform_end: datetime
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.directory}: {len(self.files)} files, platform "
            f"{self.platform_start:%Y-%m-%d %H:%M} .. {self.platform_end:%Y-%m-%d %H:%M} UTC, "
            f"{self.stops:,} stops in {self.seconds:.0f} s"
        )


class _Driver:
    """Moves the stepped emulator's clock from one instant where something happens to the
    next, each time once everything the previous instant caused has settled."""

    def __init__(self, emulator: Any, runner_clock: _RunnerClock, run_dir: Path) -> None:
        self.emulator = emulator
        self.server = emulator.server
        self.runner_clock = runner_clock
        self.watched = [run_dir / "outbox.jsonl", run_dir / "sms.jsonl", run_dir / "events"]
        self.stops = 0
        self.pushes = 0  # webhook pushes the runner has had time to see

    def settle(self, runner: threading.Thread) -> tuple[float | None, datetime | None]:
        """Wait until nothing changes any more at this instant; returns (the platform's next
        transition, the runner's next due instant)."""
        looks_at_start, _ = self.runner_clock.state()
        last: tuple[Any, ...] | None = None
        since, looks_since = 0.0, 0
        while runner.is_alive():
            looks, runner_due = self.runner_clock.state()
            platform_due, pending, idle, sent = self.emulator.call(_platform_state(self.server))
            pending += _busy_workers()
            sizes = tuple(_tree_size(path) for path in self.watched)
            current = (sizes, pending, idle, sent, platform_due, runner_due)
            quiet = _SETTLE_QUIET if sent == self.pushes else _SETTLE_AFTER_EVENTS
            if current != last:
                last, since, looks_since = current, time.monotonic(), looks
            elif pending == 0 and idle and time.monotonic() - since >= quiet:
                looked = looks - looks_since >= _SETTLE_LOOKS
                if looked and looks - looks_at_start >= _SETTLE_LOOKS:
                    self.pushes = sent
                    return platform_due, runner_due
                silent = looks > 0 and looks == looks_since
                if silent and time.monotonic() - since >= _SILENT_RUNNER:
                    # with nothing in flight, the runner has a due instant (and asks the clock
                    # about it) until every message is settled: silent, it is finishing
                    self.pushes = sent
                    return platform_due, None
            time.sleep(_RUNNER_POLL)
        return None, None

    def run(self, runner: threading.Thread, on_stop: Callable[[datetime], None]) -> None:
        clock, held = self.emulator.clock, self.runner_clock
        stuck = 0
        while runner.is_alive():
            platform_due, runner_due = self.settle(runner)
            if not runner.is_alive():
                break
            if runner_due is None:  # finishing: time must not move any more
                runner.join(_FINISH_TIMEOUT)
                if runner.is_alive():
                    raise RbmError(
                        "the sample run neither finished nor had anything due at platform "
                        f"time {clock.now().isoformat()}"
                    )
                break
            now = clock.seconds()
            due = clock.to_seconds(runner_due)
            if due <= now:
                if held.released < clock.now():  # the platform went first; now the runner
                    held.release(clock.now())
                    continue
                stuck += 1  # due now, yet idle: look again
                if stuck > 100:
                    raise RbmError(
                        "the sample run stopped making progress at platform time "
                        f"{clock.now().isoformat()}"
                    )
                continue
            stuck = 0
            held.release(clock.now())
            target = due if platform_due is None else min(platform_due, due)
            self.emulator.call(_advance(self.server, target))
            if platform_due is None or platform_due > target:  # only the runner acts now
                held.release(clock.now())
            self.stops += 1
            on_stop(clock.now())


def make_sample_data(
    out_dir: str | Path,
    spec: Mapping[str, Any] | ExperimentSpec = SAMPLE_SPEC,
    *,
    start: str | datetime = SAMPLE_START,
    progress: bool = True,
) -> SampleData:
    """Run ``spec`` on a stepped emulator starting at ``start`` and write its spec, outbox,
    event log and SMS log to ``out_dir`` (replacing what was there). Deterministic: the same
    spec, seed and start give byte-identical files."""
    from rbmtools.emulator import Emulator

    spec = spec if isinstance(spec, ExperimentSpec) else ExperimentSpec.from_dict(spec)
    began = time.monotonic()
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="rbmtools-sample-") as work:
        run_dir = Path(work) / spec.name
        outcome: dict[str, Any] = {}
        with Emulator(
            profile=spec.audience.profile or "default",
            speed=0.0,
            seed=spec.seed,
            start=parse_timestamp(start, "start"),
            max_in_flight=1,
        ) as emulator:
            stepped = _SteppedEmulator(emulator)
            first = emulator.clock.now()

            def run() -> None:
                stepped.clock.runner_thread = threading.get_ident()
                try:
                    outcome["result"] = run_experiment(
                        spec, "emulator", work, emulator=stepped, concurrency=1,
                        progress=False, summary=False, echo=None,
                    )  # fmt: skip
                except BaseException as exc:
                    outcome["error"] = exc

            runner = threading.Thread(target=run, name="rbmtools-sample-run", daemon=True)
            driver = _Driver(emulator, stepped.clock, run_dir)
            bar = tqdm(desc="sample run", unit="stop", disable=not progress)

            def on_stop(now: datetime) -> None:
                bar.update(1)
                bar.set_postfix_str(f"{now:%Y-%m-%d %H:%M}", refresh=False)

            runner.start()
            try:
                driver.run(runner, on_stop)
            finally:
                runner.join(60)
                bar.close()
            last = emulator.clock.now()
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        if result.status != "complete":
            raise RbmError(f"the sample run ended {result.status}: {result.stats}")
        if out.exists():
            for name in SAMPLE_FILES:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        out.mkdir(parents=True, exist_ok=True)
        for name in SAMPLE_FILES:
            source = run_dir / name
            if source.is_dir():  # the receiver's lock file is no data
                shutil.copytree(source, out / name, ignore=shutil.ignore_patterns(".*"))
            elif source.exists():
                shutil.copy2(source, out / name)
    return SampleData(out, checksums(out), driver.stops, first, last, time.monotonic() - began)


def checksums(directory: str | Path) -> dict[str, str]:
    """SHA-256 of every sample file under ``directory``, by relative path (sorted)."""
    root = Path(directory)
    found = {}
    for name in SAMPLE_FILES:
        path = root / name
        files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                found[file.relative_to(root).as_posix()] = hashlib.sha256(
                    file.read_bytes()
                ).hexdigest()
    return found
