"""The experiment runner: sends, revokes on the platform's clock, follows events, falls back.

One thread owns all decisions. It holds each message's facts (``state.MessageFacts``) and a
heap of platform instants at which a message must be looked at again; worker threads make the
HTTP calls and the SMS, and a follower thread tails the webhook event log; both report back
through one inbox, which the decision thread waits on for at most the real time until the next
due instant. Due revokes and fallbacks go before new sends, so a busy send phase never delays a
revoke. Every action lands in the outbox (the client writes sends and revokes, the runner its
fallbacks), which is the checkpoint: a stop file, Ctrl-C or a crash leaves a state that
``resume`` continues without sending anything twice.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rbmtools.client import OutboxWriter, RbmClient, RevokeResult, SendResult
from rbmtools.client.use_case import send_fallback_sms
from rbmtools.errors import ApiError, AuthError, RbmError, ValidationError
from rbmtools.experiment.assign import PlannedMessage
from rbmtools.experiment.looks import RunLooks
from rbmtools.experiment.schedule import DueHeap, PlatformClock, SendSpacing, real_wait
from rbmtools.experiment.sms import SmsReceipt, SmsSender
from rbmtools.experiment.spec import ExperimentSpec
from rbmtools.experiment.state import (
    Done,
    Fallback,
    MessageFacts,
    Outcome,
    Revoke,
    RevokeAnswer,
    Wait,
    next_step,
)
from rbmtools.webhook import follow, read_events
from rbmtools.wire import OutboxRecord, UserEvent, parse_duration

__all__ = ["ExperimentRunner", "RunStats"]

log = logging.getLogger("rbmtools.experiment")

#: Statuses after which sending more is pointless: the credentials or the agent are wrong.
_FATAL_STATUSES = frozenset({401, 403})
#: Recent event lags (platform seconds) the grace period is stretched by.
_LAG_WINDOW = 256
_MAX_WAIT = 0.25  # the longest the decision thread sleeps (real seconds)
_STOP_FILE_CHECK = 0.1  # real seconds between looks at the stop file


@dataclass
class RunStats:
    """What one runner session did, and how each message stands at its end.

    ``outcomes`` counts every planned message by its settled outcome (``pending``: not settled
    when the session ended, ``unsent``: not sent yet). ``late_deliveries`` counts DELIVERED
    events that arrived after the message's SMS was sent (double deliveries seen live).
    ``event_lag_p50``/``_max`` are the platform seconds between an event and the runner seeing
    it; the grace period is stretched by the recent maximum.
    """

    status: str = "running"
    stop_reason: str | None = None
    messages: int = 0
    sends: int = 0
    send_calls: int = 0
    revokes: int = 0
    revoke_calls: int = 0
    fallbacks: int = 0
    fallback_failures: int = 0
    events: int = 0
    late_deliveries: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    event_lag_p50: float | None = None
    event_lag_max: float | None = None
    wall_seconds: float = 0.0
    platform_start: datetime | None = None
    platform_end: datetime | None = None

    @property
    def calls(self) -> int:
        """HTTP calls made to the RBM API (retries included)."""
        return self.send_calls + self.revoke_calls

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        for key in ("platform_start", "platform_end"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        out["calls"] = self.calls
        out["calls_per_second"] = round(self.calls_per_second, 1)
        return out


class _Stop(Exception):
    """Raised inside the loop to end the session at once (a fatal platform answer)."""


class ExperimentRunner:
    """Runs (or resumes) the planned messages of ``spec`` against one platform.

    ``client`` must write to ``outbox`` (the same ``OutboxWriter``); ``clock`` is the
    platform's clock; ``events_dir`` the webhook receiver's log directory; ``sms`` the
    fallback channel (required unless the policy is ``none``). ``stop_file``: when it exists
    the runner stops gracefully. Call ``load_history`` before ``run`` to resume.

    ``event_timeout`` (platform seconds) guards against a webhook that logs nowhere the runner
    looks: until the first event about this run arrives, fallbacks are held back, and if none
    arrives that long after the first accepted send, the run stops with an error (a resume
    continues once the receiver is fixed). Without the guard, every "unless delivered" revoke
    of a delivered message would look inconclusive and its recipient would get the SMS too.

    ``looks`` (a spec with a stopping rule): before the first send of each batch, once the
    calls of the batch before it are answered, the runner looks (``looks.RunLooks``) and sends
    the rest as the look re-planned it; once everything sent has settled, a final look.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        messages: Iterable[PlannedMessage],
        *,
        client: RbmClient,
        clock: PlatformClock,
        events_dir: str | os.PathLike[str],
        outbox: OutboxWriter,
        sms: SmsSender | None = None,
        concurrency: int = 8,
        stop_file: str | os.PathLike[str] | None = None,
        progress: bool = True,
        poll: float = 0.01,
        event_timeout: float | None = None,
        looks: RunLooks | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValidationError("concurrency", concurrency, "must be at least 1")
        if sms is None and spec.fallback_rule.sends_sms:
            raise ValidationError(
                "sms", None, f"the fallback rule {str(spec.fallback_rule)!r} needs an SMS sender"
            )
        self.spec = spec
        self.client = client
        self.clock = clock
        self.events_dir = Path(events_dir)
        self.outbox = outbox
        self.sms = sms
        self.concurrency = concurrency
        self.stop_file = None if stop_file is None else Path(stop_file)
        self.progress = progress
        self.poll = poll
        self.event_timeout = None if event_timeout is None else timedelta(seconds=event_timeout)
        self.facts = [MessageFacts(m) for m in messages]
        for position, facts in enumerate(self.facts):
            if facts.planned.index != position:
                raise ValidationError("messages", facts.planned.index, "must be in plan order")
        self._by_id = {f.planned.message_id: i for i, f in enumerate(self.facts)}
        self._arms = {arm.name: arm for arm in spec.arms}
        self._grace = parse_duration(spec.grace)
        self._observe = parse_duration(spec.observe)
        self.stats = RunStats(messages=len(self.facts))
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._heap = DueHeap()
        self._ready: deque[tuple[str, int, Any]] = deque()
        self._unsent: deque[int] = deque()
        self._in_flight = 0
        self._settled = 0
        self._window_end: datetime | None = None
        self._lags: deque[float] = deque(maxlen=_LAG_WINDOW)
        self._all_lags: list[float] = []
        self._stopping: str | None = None
        self._fatal: BaseException | None = None
        self._events_seen = False
        self._held: list[int] = []
        self._first_accepted: datetime | None = None
        self._fallback_gate: datetime | None = None
        self._resumed = False
        self._interrupted = False
        self._follower_stop = threading.Event()
        self._started_at: datetime | None = None
        self._bars: tuple[Any, Any] | None = None
        self.looks = looks

    # ------------------------------------------------------------------ history (resume)

    def load_history(
        self, records: Iterable[OutboxRecord], events_dir: str | os.PathLike[str] | None = None
    ) -> int:
        """Take in what earlier sessions did (outbox records of this experiment) and what the
        platform said (the event log so far); returns how many records were about our ids."""
        used = 0
        for record in records:
            if record.experiment not in (None, self.spec.name):
                continue
            index = self._by_id.get(record.message_id)
            if index is not None:
                self.facts[index].apply_record(record)
                used += 1
        self._resumed = self._resumed or used > 0
        source = Path(events_dir) if events_dir is not None else self.events_dir
        if source.exists():
            for logged in read_events(source):
                if self._take_event(logged.event, logged.received_at) is not None:
                    self._events_seen = True
        return used

    def _take_event(self, event: Any, received_at: datetime | None) -> int | None:
        if not isinstance(event, UserEvent) or event.message_id is None:
            return None
        index = self._by_id.get(event.message_id)
        if index is None:
            return None
        at = event.send_time or received_at or self.clock.now()
        self.facts[index].apply_event(event, at)
        return index

    # ------------------------------------------------------------------ the session

    def run(self) -> RunStats:
        """Run until every message is settled and the observation window has passed, or
        until stopped (stop file, Ctrl-C, a fatal answer); returns the session's stats."""
        started = time.monotonic()
        self._started_at = self.clock.now()
        self.stats.platform_start = self._started_at
        follower = threading.Thread(target=self._follow, name="rbmtools-experiment-events")
        follower.daemon = True
        follower.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="rbmtools-experiment")
        sent_bar = tqdm(
            total=len(self.facts), desc="send", unit="msg", disable=not self.progress, position=0
        )
        settled_bar = tqdm(
            total=len(self.facts),
            desc="settled",
            unit="msg",
            disable=not self.progress,
            position=1,
        )
        self._bars = (sent_bar, settled_bar)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self._begin()
            self._loop(pool)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._follower_stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            follower.join(timeout=10)
            sent_bar.close()
            settled_bar.close()
            self.stats.wall_seconds = time.monotonic() - started
            self.stats.platform_end = self.clock.now()
            self._final_counts()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C: the first asks for a graceful stop (through the inbox, so no state is torn
        by an exception landing mid-update); the second stops at once."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        self._inbox.put(("interrupt",))

    def _begin(self) -> None:
        now = self.clock.now()
        if self._resumed:  # events may still be on their way from the gap: no SMS before them
            self._fallback_gate = now + self._grace
        sent_bar, _ = self._bars or (None, None)
        for index, facts in enumerate(self.facts):
            if not facts.sent:
                self._unsent.append(index)
                continue
            if sent_bar is not None:
                sent_bar.update(1)
            self._note_accepted(facts)
            self._note_window(facts)
            self._evaluate(index, now)

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        spacing = SendSpacing(self.spec.send_rate)
        capacity = self.concurrency * 2
        next_stop_check = 0.0
        while True:
            now = self.clock.now()
            if time.monotonic() >= next_stop_check:
                next_stop_check = time.monotonic() + _STOP_FILE_CHECK
                if self.stop_file is not None and self.stop_file.exists():
                    self._stop(f"stop file {self.stop_file} found")
            if self._stopping is None:
                self._check_silence(now)
            if self._stopping is None:
                for index in self._heap.pop_due(now):
                    self._evaluate(index, now)
                while self._ready and self._in_flight < capacity:
                    self._submit(pool, *self._ready.popleft())
                while (
                    self._unsent
                    and self._in_flight < capacity
                    and not self._ready
                    and spacing.ready(now)
                    and self._look_if_due(now)
                ):
                    spacing.take(now)
                    self._submit(pool, "send", self._unsent.popleft(), None)
            if self._in_flight == 0:
                if self._stopping is not None:
                    break
                if self._finished(now):
                    if self.looks is not None and not self.looks.finished:
                        settle = self._settle_after()
                        self.looks.take(self.facts, now, final=True, settle_after=settle)
                    break
            self._wait(now, spacing)
        self.stats.status = "interrupted" if self._stopping is not None else "complete"

    def _finished(self, now: datetime) -> bool:
        if self._unsent or self._ready or self._settled < len(self.facts):
            return False
        return self._window_end is None or now >= self._window_end + self._observe

    def _look_if_due(self, now: datetime) -> bool:
        """With a stopping rule: before the first send of a batch, once every call of the
        batch before it is answered, look, and re-plan what is still unsent (eliminated arms
        get no more recipients; a decision ends sending). True when the send may go."""
        if self.looks is None or not self.looks.due(self._unsent[0]):
            return True
        if self._in_flight:
            return False
        record = self.looks.take(self.facts, now, settle_after=self._settle_after())
        decisions = {name: look.decision.value for name, look in record.use_cases.items()}
        log.info("look %d: %s", record.index, decisions)
        self._replan(self._unsent[0])
        return bool(self._unsent)

    def _settle_after(self) -> float:
        """When a look counts a message as settled: the grace period after its duration,
        stretched by the webhook's recent lag (its events must have reached the runner)."""
        return self._grace_now().total_seconds()

    def _look_waits(self) -> bool:
        """A look is due and waits for the calls in flight (their answers wake the loop)."""
        return (
            self.looks is not None
            and bool(self._unsent)
            and self.looks.due(self._unsent[0])
            and self._in_flight > 0
        )

    def _replan(self, start: int) -> None:
        """Give the unsent messages from ``start`` on their arms as the looks now plan them."""
        assert self.looks is not None
        plan = self.looks.plan()
        if any(fact.sent or fact.busy for fact in self.facts[min(start, len(plan)) :]):
            raise RbmError(
                f"the looks re-plan messages from #{start} on, but some of them were already "
                f"sent: {self.looks.path} does not match the outbox"
            )
        for index in range(start, len(self.facts)):
            del self._by_id[self.facts[index].planned.message_id]
        for message in plan[start:]:
            self.facts[message.index].planned = message
            self._by_id[message.message_id] = message.index
        del self.facts[len(plan) :]
        self._unsent = deque(i for i in self._unsent if i < len(plan))
        self.stats.messages = len(self.facts)
        for bar in self._bars or ():
            bar.total = len(self.facts)
            bar.refresh()

    def _wait(self, now: datetime, spacing: SendSpacing) -> None:
        """Block on the inbox until the next due instant (real time), then drain it."""
        room = self._in_flight < self.concurrency * 2 and self._stopping is None
        if self._ready and room:
            timeout = 0.0
        else:
            candidates = [self._heap.next_due()]
            if self._unsent and not self._ready and room and not self._look_waits():
                candidates.append(spacing.next_slot() or now)
            if self._settled == len(self.facts) and self._window_end is not None:
                candidates.append(self._window_end + self._observe)
            due = min((c for c in candidates if c is not None), default=None)
            timeout = real_wait(self.clock, now, due, _MAX_WAIT)
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return
        self._handle(item)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(item)

    def _stop(self, reason: str) -> None:
        if self._stopping is None:
            self._stopping = reason
            self.stats.stop_reason = reason
            log.warning("stopping: %s; finishing %d call(s) in flight", reason, self._in_flight)

    # ------------------------------------------------------------------ decisions

    def _grace_now(self) -> timedelta:
        """The grace period, stretched by how late events recently reached the runner."""
        lag = max(self._lags, default=0.0)
        return self._grace + timedelta(seconds=lag)

    def _evaluate(self, index: int, now: datetime) -> None:
        facts = self.facts[index]
        if facts.settled is not None or facts.busy or not facts.sent:
            return
        arm = self._arms[facts.planned.arm]
        step = next_step(facts, arm, self.spec.fallback_rule, self._grace_now(), now)
        if isinstance(step, Wait):
            self._heap.push(step.until, index)
        elif isinstance(step, Revoke):
            facts.busy = True
            self._ready.append(("revoke", index, step.attempt))
        elif isinstance(step, Fallback):
            certain = step.reason == "not_rcs"  # the send's own answer: no event can change it
            if not certain and self.event_timeout is not None and not self._events_seen:
                self._held.append(index)  # no proof yet that the webhook log is wired
                return
            if not certain and self._fallback_gate is not None and now < self._fallback_gate:
                self._heap.push(self._fallback_gate, index)
                return
            facts.busy = True
            self._ready.append(("sms", index, step.reason))
        elif isinstance(step, Done):
            self._settle(facts, step.outcome)

    def _settle(self, facts: MessageFacts, outcome: Outcome) -> None:
        if facts.settled is None:
            facts.settled = outcome
            self._settled += 1
            if self._bars is not None:
                self._bars[1].update(1)

    def _note_window(self, facts: MessageFacts) -> None:
        end = facts.window_end(self._arms[facts.planned.arm])
        if end is not None and (self._window_end is None or end > self._window_end):
            self._window_end = end

    def _note_accepted(self, facts: MessageFacts) -> None:
        first = self._first_accepted
        if facts.send_status == 200 and facts.send_time is not None:
            self._first_accepted = facts.send_time if first is None else min(first, facts.send_time)

    def _check_silence(self, now: datetime) -> None:
        """Stop when the webhook log has said nothing about this run for too long."""
        if self.event_timeout is None or self._events_seen or self._first_accepted is None:
            return
        if now - self._first_accepted < self.event_timeout:
            return
        waited = self.event_timeout.total_seconds()
        self._fatal = RbmError(
            f"no webhook event about this run reached {self.events_dir} within {waited:g} s "
            "of the first accepted send: is the webhook receiver logging there? No fallback "
            f"was sent ({len(self._held)} held back); fix the receiver and resume the run"
        )
        self._stop("no webhook events")

    # ------------------------------------------------------------------ calls

    def _submit(self, pool: ThreadPoolExecutor, kind: str, index: int, arg: Any) -> None:
        facts = self.facts[index]
        if kind == "send":
            work: Callable[[], Any] = lambda: self._call_send(facts.planned)  # noqa: E731
        elif kind == "revoke":
            work = lambda: self._call_revoke(facts.planned, arg)  # noqa: E731
        else:
            work = lambda: self._call_sms(facts.planned, arg)  # noqa: E731
        self._in_flight += 1
        future = pool.submit(work)
        future.add_done_callback(lambda f: self._inbox.put(("done", kind, index, arg, f)))

    def _call_send(self, planned: PlannedMessage) -> SendResult:
        spec, arm = self.spec, self._arms[planned.arm]
        kwargs: dict[str, Any] = {
            "message_id": planned.message_id,
            "traffic_type": arm.traffic_type or spec.traffic_type,
            "use_case": arm.use_case or spec.use_case,
            "experiment": spec.name,
            "arm": arm.name,
        }
        if arm.method.value == "ttl":
            kwargs["ttl"] = arm.duration
        elif arm.method.value == "expire_time":
            kwargs["expire_time"] = self.clock.now() + parse_duration(arm.duration)
        if isinstance(spec.template, str):
            text = spec.render(
                spec.template, planned.phone, planned.message_id, arm.name, planned.index
            )
            return self.client.send(planned.phone, text, **kwargs)
        return self.client.send(planned.phone, message=spec.template, **kwargs)

    def _call_revoke(self, planned: PlannedMessage, attempt: int) -> RevokeResult:
        return self.client.revoke(
            planned.phone,
            planned.message_id,
            attempt=attempt,
            experiment=self.spec.name,
            arm=planned.arm,
        )

    def _call_sms(self, planned: PlannedMessage, reason: str) -> SmsReceipt:
        assert self.sms is not None
        spec = self.spec
        text = spec.render(
            spec.sms_text_template, planned.phone, planned.message_id, planned.arm, planned.index
        )
        return send_fallback_sms(
            self.sms, self.outbox, phone=planned.phone, text=text,
            message_id=planned.message_id, reason=reason, agent_id=self.client.agent_id,
            clock=self.clock.now, experiment=spec.name, arm=planned.arm,
        )  # fmt: skip

    # ------------------------------------------------------------------ the inbox

    def _handle(self, item: tuple[Any, ...]) -> None:
        if item[0] == "event":
            _, event, received_at = item
            self._on_event(event, received_at)
        elif item[0] == "done":
            _, kind, index, arg, future = item
            self._in_flight -= 1
            self._on_done(kind, index, arg, future)
        elif item[0] == "interrupt":
            self._stop("interrupted (Ctrl-C)")
        elif item[0] == "error":
            self._fatal = item[1]
            self._stop(f"the event follower failed: {item[1]}")

    def _on_event(self, event: UserEvent, received_at: datetime | None) -> None:
        index = self._by_id.get(event.message_id or "")
        if index is None:
            return
        facts = self.facts[index]
        now = self.clock.now()
        at = event.send_time or received_at or now
        if received_at is None or self._started_at is None or received_at >= self._started_at:
            lag = max(0.0, (now - at).total_seconds())
            self._lags.append(lag)
            self._all_lags.append(lag)
        self.stats.events += 1
        if not self._events_seen:
            # The log is wired. Held fallbacks wait one (lag-stretched) grace period more, so
            # that the events queued behind this one arrive before any SMS is decided.
            self._events_seen = True
            self._fallback_gate = now + self._grace_now()
            for waiting in self._held:
                self._heap.push(self._fallback_gate, waiting)
            self._held = []
        was_delivered = facts.delivered_at is not None
        if not facts.apply_event(event, at):
            return
        if not was_delivered and facts.delivered_at is not None and facts.fallback_at is not None:
            self.stats.late_deliveries += 1
        self._evaluate(index, now)

    def _on_done(self, kind: str, index: int, arg: Any, future: Future[Any]) -> None:
        facts = self.facts[index]
        facts.busy = False
        now = self.clock.now()
        error = future.exception()
        if kind == "send":
            self._on_sent(facts, future.result() if error is None else None, error)
        elif kind == "revoke":
            self.stats.revokes += 1
            if error is None:
                result: RevokeResult = future.result()
                self.stats.revoke_calls += result.attempts
                facts.revokes[arg] = RevokeAnswer(result.status, result.at)
            elif isinstance(error, ApiError):
                self.stats.revoke_calls += 1
                facts.revokes[arg] = RevokeAnswer(error.status, now)
                log.warning("revoke %s failed: %s", facts.planned.message_id, error)
                self._maybe_fatal(error)
            else:
                self._fail(error)
                return
        else:
            if error is None:
                receipt: SmsReceipt = future.result()
                if receipt.accepted:
                    facts.fallback_reason = arg
                    facts.fallback_at = receipt.at
                    self.stats.fallbacks += 1
                else:
                    facts.fallback_error = receipt.error or "refused"
            elif isinstance(error, Exception):  # the provider's failure is this SMS's outcome
                facts.fallback_error = f"{type(error).__name__}: {error}"[:300]
            else:
                self._fail(error)
                return
            if facts.fallback_error is not None and facts.fallback_reason is None:
                self.stats.fallback_failures += 1
                log.warning("SMS for %s failed: %s", facts.planned.message_id, facts.fallback_error)
                self._settle(facts, Outcome.FALLBACK_FAILED)
                return
        self._evaluate(index, now)

    def _on_sent(
        self, facts: MessageFacts, result: SendResult | None, error: BaseException | None
    ) -> None:
        if self._bars is not None:
            self._bars[0].update(1)
        if result is not None:
            self.stats.sends += 1
            self.stats.send_calls += result.attempts
            facts.send_status = result.status
            facts.send_time = result.send_time
            facts.expire_time = result.expire_time
            self._note_accepted(facts)
            self._note_window(facts)
            return
        self.stats.send_calls += 1
        if isinstance(error, ApiError | AuthError):
            facts.send_errors += 1
            facts.send_error = str(error)
            facts.send_status = getattr(error, "status", 0) or 0
            log.warning("send %s failed: %s", facts.planned.message_id, error)
            self._settle(facts, Outcome.SEND_FAILED)
            self._maybe_fatal(error)
        else:
            assert error is not None
            self._fail(error)

    def _maybe_fatal(self, error: BaseException) -> None:
        """Credentials or agent refused: stop (in-flight calls finish; resume after fixing)."""
        status = getattr(error, "status", None)
        if isinstance(error, AuthError) or status in _FATAL_STATUSES:
            if self._fatal is None:
                self._fatal = error
            self._stop(f"the platform refused the agent: {error}")

    def _fail(self, error: BaseException) -> None:
        if self._fatal is None:
            self._fatal = error
        self._stop(f"unexpected error: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ events

    def _follow(self) -> None:
        """The follower thread: tail the event log, pass events about our messages on."""
        try:
            for logged in follow(self.events_dir, stop=self._follower_stop, poll=self.poll):
                event = logged.event
                if isinstance(event, UserEvent) and event.message_id in self._by_id:
                    self._inbox.put(("event", event, logged.received_at))
        except Exception as exc:  # surfaced by the decision thread, which stops the session
            self._inbox.put(("error", exc))

    # ------------------------------------------------------------------ the end

    def _final_counts(self) -> None:
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for facts in self.facts:
            if facts.settled is not None:
                outcomes[facts.settled.value] += 1
            elif not facts.sent:
                outcomes["unsent"] += 1
            else:
                outcomes["pending"] += 1
            if facts.fallback_reason is not None:
                reasons[facts.fallback_reason] += 1
        self.stats.outcomes = dict(sorted(outcomes.items()))
        self.stats.fallback_reasons = dict(sorted(reasons.items()))
        if self._all_lags:
            ordered = sorted(self._all_lags)
            self.stats.event_lag_p50 = round(ordered[len(ordered) // 2], 3)
            self.stats.event_lag_max = round(ordered[-1], 3)

    def outcome_counts(self) -> Mapping[str, int]:
        """Messages by settled outcome so far (for progress displays and tests)."""
        return Counter(f.settled.value for f in self.facts if f.settled is not None)
