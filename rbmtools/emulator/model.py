"""The RBM platform as a pure state machine: queues, deliveries, expiry, revokes, events.

A sent message waits in its phone's queue until the phone is online, then is delivered after a
latency; the last ``handoff_window`` seconds before DELIVERED are the hand-off, in which the
platform is already talking to the phone. At ``expireTime`` a queued message is revoked
(TTL_EXPIRATION_REVOKED) unless it is in the hand-off (TTL_EXPIRATION_REVOKE_FAILED, and it may
still be delivered); with a short TTL and the phone online, a DELIVERED may follow even a
TTL_EXPIRATION_REVOKED (the TTL race, ``Profile.ttl_race_chance``). An API revoke answers 200
while the message is queued (inside the hand-off a DELIVERED may still follow: the documented
race) or still undelivered after TTL_EXPIRATION_REVOKE_FAILED, and 404 once it was delivered.
Undelivered messages are held 30 days, then dropped. Ids of messages and agent events share one
namespace per agent, and a reused id changes nothing and answers with the original resource.
Each agent has a use case, which gives messages without a ``messageTrafficType`` theirs; an
unlaunched agent reaches only its testers (404 NOT_FOUND for anyone else).

Pure and deterministic: no I/O and no clock. Callers pass platform time as float seconds since
the model's ``epoch``; every random draw is a hash of the seed and the ids involved, so the
same calls at the same platform times give the same events whatever the order of other calls.
Timed transitions wait in one heap; ``advance(now)`` applies those that are due and returns
the events they produced (the server hands them to the webhook dispatcher).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rbmtools.emulator.devices import Device, DevicePin, stable_uniform
from rbmtools.emulator.profiles import Profile
from rbmtools.errors import ValidationError
from rbmtools.wire import (
    TESTERS_CREATE_REMOVED,
    AgentUseCase,
    EventType,
    applied_traffic_type,
    duration_seconds,
    error_body,
    format_timestamp,
    message_name,
    normalize_phone,
    parse_timestamp,
    validate_agent_id,
    validate_agent_message,
    validate_message_id,
)

__all__ = [
    "BATCH_GET_MAX_USERS",
    "BATCH_GET_PER_MINUTE",
    "HOLD_SECONDS",
    "Answer",
    "MessageState",
    "PlatformEvent",
    "PlatformModel",
]

HOLD_SECONDS = 30 * 86_400.0
BATCH_GET_MAX_USERS = 10_000
BATCH_GET_SAMPLE_MIN = 500
BATCH_GET_PER_MINUTE = 600
TESTER_INVITES_PER_DAY = 20
TESTER_INVITES_TOTAL = 200
NOT_FOUND = "Requested entity was not found."

_DELIVER, _EXPIRE, _READ, _DROP = 0, 1, 2, 3
# The decisions every message may need, drawn together from one hash when first needed.
_DRAW_SLOTS = {"latency": 0, "read": 1, "read-delay": 2, "race": 3, "ttl-failed": 4}


# What a message may use, and the getCapabilities feature a phone needs for it.
_CARD_FEATURES = {"standaloneCard": "RICHCARD_STANDALONE", "carouselCard": "RICHCARD_CAROUSEL"}
_ACTION_FEATURES = {
    "dialAction": "ACTION_DIAL",
    "openUrlAction": "ACTION_OPEN_URL",
    "viewLocationAction": "ACTION_VIEW_LOCATION",
    "createCalendarEventAction": "ACTION_CREATE_CALENDAR_EVENT",
    "shareLocationAction": "ACTION_SHARE_LOCATION",
}


def _features_used(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, feature)`` for every feature a (validated) contentMessage relies on."""
    rich = content.get("richCard") or {}
    suggestions = list(content.get("suggestions") or [])
    for kind, feature in _CARD_FEATURES.items():
        if kind in rich:
            yield f"contentMessage.richCard.{kind}", feature
            card = rich[kind]
            for inner in [card.get("cardContent"), *(card.get("cardContents") or [])]:
                suggestions += list((inner or {}).get("suggestions") or [])
    for suggestion in suggestions:
        action = suggestion.get("action") or {}
        for kind, feature in _ACTION_FEATURES.items():
            if kind in action:
                yield f"suggestions.action.{kind}", feature


def _check_use_case(value: object, field: str = "useCase") -> str:
    try:
        return AgentUseCase(value).value
    except ValueError:
        allowed = ", ".join(u.value for u in AgentUseCase)
        raise ValidationError(field, value, f"must be one of {allowed}") from None


def _file_names(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, name)`` for every uploaded file a (validated) contentMessage refers to."""

    def uploaded(value: Any, where: str) -> Iterator[tuple[str, str]]:
        for key in ("fileName", "thumbnailName"):
            if isinstance(value, Mapping) and value.get(key):
                yield f"{where}.{key}", value[key]

    yield from uploaded(content.get("uploadedRbmFile"), "contentMessage.uploadedRbmFile")
    rich = content.get("richCard") or {}
    cards = [(rich.get("standaloneCard") or {}).get("cardContent")]
    cards += list((rich.get("carouselCard") or {}).get("cardContents") or [])
    for card in cards:
        media = (card or {}).get("media") or {}
        if media.get("fileName"):
            yield "contentMessage.richCard.media.fileName", media["fileName"]
        yield from uploaded(media.get("uploadedRbmFile"), "contentMessage.richCard.media")


class MessageState(StrEnum):
    """Where a message is. ``queued`` includes the hand-off (see ``Message.in_handoff``)."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    READ = "read"
    REVOKED = "revoked"  # by an API revoke
    EXPIRED = "expired"  # by its expiry: TTL_EXPIRATION_REVOKED
    REVOKE_FAILED = "revoke_failed"  # TTL_EXPIRATION_REVOKE_FAILED, not (yet) delivered
    DROPPED = "dropped"  # held 30 days undelivered


# States from which a planned delivery still happens: queued, revoked in the race, expiry in
# the hand-off, and expired in the TTL race (only raced messages keep a ``deliver_at``).
_DELIVERABLE = (
    MessageState.QUEUED,
    MessageState.REVOKED,
    MessageState.REVOKE_FAILED,
    MessageState.EXPIRED,
)


@dataclass(frozen=True)
class Answer:
    """What the API answers: the HTTP status and the JSON body."""

    status: int
    body: dict[str, Any]


def _error(status: int, message: str) -> Answer:
    return Answer(status, error_body(status, message))


@dataclass(frozen=True, slots=True)
class PlatformEvent:
    """One webhook event the platform produced, at platform second ``at``."""

    agent_id: str
    phone: str
    message_id: str | None
    event_type: str
    at: float


class Message:
    """One accepted agent message and everything that happened to it."""

    __slots__ = (
        "agent_id",
        "answer",
        "attempts",
        "deliver_at",
        "delivered_at",
        "draws",
        "drop_at",
        "events",
        "expire_at",
        "expire_pushed",
        "handoff_at",
        "message_id",
        "phone",
        "read_at",
        "revoke_race",
        "revoked_at",
        "revokes",
        "send_at",
        "state",
        "traffic_type",
        "ttl_race",
    )

    def __init__(
        self, agent_id: str, phone: str, message_id: str, send_at: float, expire_at: float | None
    ) -> None:
        self.agent_id = agent_id
        self.phone = phone
        self.message_id = message_id
        self.send_at = send_at
        self.expire_at = expire_at
        self.drop_at = send_at + HOLD_SECONDS
        self.draws: tuple[float, ...] = ()
        self.expire_pushed = False
        self.deliver_at: float | None = None
        self.handoff_at: float | None = None
        self.delivered_at: float | None = None
        self.read_at: float | None = None
        self.revoked_at: float | None = None
        self.revoke_race = False
        self.ttl_race = False
        self.state = MessageState.QUEUED
        self.attempts = 0
        self.answer: dict[str, Any] = {}
        self.traffic_type: str | None = None
        self.events: list[tuple[str, float]] = []
        self.revokes: list[tuple[float, int]] = []

    def in_handoff(self, at: float) -> bool:
        """True while the platform is handing the message to the phone."""
        return (
            self.deliver_at is not None
            and self.handoff_at is not None
            and self.handoff_at <= at < self.deliver_at
        )


class _AgentEventRecord:
    __slots__ = ("answer", "phone")

    def __init__(self, phone: str, answer: dict[str, Any]) -> None:
        self.phone = phone
        self.answer = answer


class PlatformModel:
    """The platform's state for every agent, phone and message (see the module doc)."""

    def __init__(
        self,
        profile: Profile,
        *,
        seed: int | str = 0,
        epoch: datetime,
        only_agent: str | None = None,
        legacy_revoke: bool = False,
        use_case: str | None = None,
    ) -> None:
        self.profile = profile
        #: The use case of every agent not given its own (None: the profile's).
        self.default_use_case = None if use_case is None else _check_use_case(use_case)
        self.seed = seed
        self.epoch = parse_timestamp(epoch, "epoch")
        self.only_agent = None if only_agent is None else validate_agent_id(only_agent)
        self.legacy_revoke = legacy_revoke
        self._clear()

    def _clear(self) -> None:
        self._ids: dict[tuple[str, str], Message | _AgentEventRecord] = {}
        self._by_phone: dict[str, list[Message]] = {}
        self._devices: dict[str, Device] = {}
        self._pins: dict[str, DevicePin] = {}
        self._testers: dict[str, set[str]] = {}
        self._tester_invites: dict[str, list[float]] = {}
        self._launched: dict[str, bool] = {}
        self._use_cases: dict[str, str] = {}
        self._files: dict[str, dict[str, dict[str, Any]]] = {}
        self._batch_calls: dict[str, deque[float]] = {}
        self._heap: list[tuple[float, int, int, Message]] = []
        self._seq = 0
        self._outbox: list[PlatformEvent] = []
        self._states: dict[MessageState, int] = dict.fromkeys(MessageState, 0)
        self._events_emitted: dict[str, int] = dict.fromkeys(EventType, 0)
        self._ignored_ids = 0
        self.now = 0.0  # the latest platform second the model was told about

    # ------------------------------------------------------------------------- time helpers

    def to_datetime(self, seconds: float) -> datetime:
        return self.epoch + timedelta(seconds=seconds)

    def to_seconds(self, when: datetime | str) -> float:
        return (parse_timestamp(when, "time") - self.epoch).total_seconds()

    def _stamp(self, seconds: float) -> str:
        return format_timestamp(self.to_datetime(seconds))

    def _tick(self, now: float) -> None:
        if now > self.now:
            self.now = now

    # --------------------------------------------------------------------- access and devices

    def _check_agent(self, agent_id: str | None) -> tuple[str | None, Answer | None]:
        """The agent id, or the 403 the platform gives for a missing or unknown agent."""
        if not agent_id:
            return None, _error(
                403,
                "The caller does not have permission: error looking up the RBM agent; "
                "the agentId query parameter is required",
            )
        try:
            agent = validate_agent_id(agent_id)
        except ValidationError:
            return None, _error(403, f"error looking up the RBM agent {agent_id[:80]!r}")
        if self.only_agent is not None and agent != self.only_agent:
            return None, _error(
                403, f"The caller does not have permission: error looking up the RBM agent {agent}"
            )
        return agent, None

    def is_launched(self, agent_id: str) -> bool:
        return self._launched.get(agent_id, self.profile.agent_launched)

    def use_case(self, agent_id: str) -> str:
        """The agent's use case (``OTP``, ``TRANSACTIONAL``, ``PROMOTIONAL``, ``MULTI_USE``)."""
        own = self._use_cases.get(agent_id)
        return own or self.default_use_case or self.profile.agent_use_case

    def _tester_gate(self, agent_id: str, phone: str) -> Answer | None:
        """404 NOT_FOUND, as Google answers, for a non-tester of an unlaunched agent."""
        if self.is_launched(agent_id) or phone in self._testers.get(agent_id, ()):
            return None
        return _error(
            404,
            f"{NOT_FOUND} The agent {agent_id} is not launched and {phone} is not one of its "
            "testers",
        )

    def device(self, phone: str) -> Device:
        """The device behind a number (drawn from the profile on first use)."""
        device = self._devices.get(phone)
        if device is None:
            device = Device(phone, self.profile, self.seed, self._pins.get(phone))
            self._devices[phone] = device
        return device

    def _not_rcs(self, phone: str) -> Answer:
        return _error(404, f"{NOT_FOUND} {phone} is not reachable over RCS")

    # ------------------------------------------------------------------------------ planning

    def _uniform(self, msg: Message, purpose: str, index: int = 0) -> float:
        """A uniform draw for one decision about ``msg``: a hash of the seed and the ids."""
        slot = _DRAW_SLOTS.get(purpose) if index == 0 else None
        if slot is not None:
            if not msg.draws:
                digest = hashlib.blake2b(
                    f"{self.seed}\x1f{msg.agent_id}\x1f{msg.message_id}".encode(),
                    digest_size=8 * len(_DRAW_SLOTS),
                ).digest()
                msg.draws = tuple(
                    (int.from_bytes(digest[i : i + 8], "big") + 0.5) / 2.0**64
                    for i in range(0, len(digest), 8)
                )
            return msg.draws[slot]
        return stable_uniform(self.seed, msg.agent_id, msg.message_id, purpose, index)

    def _push(self, at: float, kind: int, msg: Message) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, kind, self._seq, msg))

    def _plan(self, msg: Message, now: float) -> None:
        """Decide when ``msg`` will be delivered if nothing stops it, and schedule that."""
        device = self.device(msg.phone)
        device.forget_before(self.now)
        pin, profile = device.pin, self.profile
        deliver_at: float | None = None
        at = now
        for _ in range(256):
            window = device.online_window(at)
            if window is None or window[0] >= msg.drop_at:
                break
            start, end = window
            if pin.latency is not None:
                latency = pin.latency
            else:
                latency = profile.latency.draw(self._uniform(msg, "latency", msg.attempts))
            msg.attempts += 1
            if start + latency <= end:
                deliver_at = start + latency
                break
            at = end  # the phone went offline before the delivery went through
        if deliver_at is not None and deliver_at >= msg.drop_at:
            deliver_at = None
        msg.deliver_at = deliver_at
        expiry = msg.expire_at
        # An expiry after the planned delivery cannot matter unless a re-plan moves the
        # delivery, and a re-plan comes back here: push it only when it may apply.
        expiry_first = expiry is not None and (deliver_at is None or expiry < deliver_at)
        if expiry_first and not msg.expire_pushed:
            msg.expire_pushed = True
            self._push(expiry, _EXPIRE, msg)
        if deliver_at is None:
            msg.handoff_at = None
            if expiry is None:
                self._push(msg.drop_at, _DROP, msg)
            return
        msg.handoff_at = max(now, deliver_at - profile.handoff_window)
        self._push(deliver_at, _DELIVER, msg)

    def _set_state(self, msg: Message, state: MessageState) -> None:
        self._states[msg.state] -= 1
        self._states[state] += 1
        msg.state = state

    def _emit(self, msg: Message, event_type: EventType, at: float) -> None:
        kind = event_type.value
        msg.events.append((kind, at))
        self._events_emitted[event_type] += 1
        self._outbox.append(PlatformEvent(msg.agent_id, msg.phone, msg.message_id, kind, at))

    def event_id(self, event: PlatformEvent) -> str:
        """The event's ``eventId``: stable for the seed, agent, message and event type, so a
        redelivered event carries the same id."""
        digest = hashlib.blake2b(
            f"{self.seed}\x1f{event.agent_id}\x1f{event.message_id}\x1f{event.event_type}".encode(),
            digest_size=12,
        ).hexdigest()
        return f"evt-{digest}"

    # --------------------------------------------------------------------------- transitions

    def _due(self, msg: Message, until: float) -> tuple[float, int] | None:
        """The earliest transition of ``msg`` that is due by ``until``, if any."""
        best: tuple[float, int] | None = None
        state = msg.state
        candidates: list[tuple[float, int]] = []
        if msg.deliver_at is not None and msg.delivered_at is None and state in _DELIVERABLE:
            candidates.append((msg.deliver_at, _DELIVER))
        if state is MessageState.QUEUED:
            if msg.expire_at is not None:
                candidates.append((msg.expire_at, _EXPIRE))
            elif msg.deliver_at is None:
                candidates.append((msg.drop_at, _DROP))
        if state is MessageState.DELIVERED and msg.read_at is not None:
            candidates.append((msg.read_at, _READ))
        for candidate in candidates:
            if candidate[0] <= until and (best is None or candidate < best):
                best = candidate
        return best

    def _settle(self, msg: Message, until: float) -> None:
        """Apply every transition of ``msg`` that is due by ``until``, in time order."""
        while (due := self._due(msg, until)) is not None:
            at, kind = due
            if kind == _DELIVER:
                self._deliver(msg, at)
            elif kind == _EXPIRE:
                self._expire(msg, at)
            elif kind == _READ:
                self._set_state(msg, MessageState.READ)
                self._emit(msg, EventType.READ, at)
            else:
                self._set_state(msg, MessageState.DROPPED)
                msg.deliver_at = None

    def _deliver(self, msg: Message, at: float) -> None:
        msg.delivered_at = at
        self._set_state(msg, MessageState.DELIVERED)
        self._emit(msg, EventType.DELIVERED, at)
        read_after = self.device(msg.phone).pin.read_after
        if read_after is None:
            if self._uniform(msg, "read") < self.profile.read_probability:
                read_after = self.profile.read_delay.draw(self._uniform(msg, "read-delay"))
            else:
                read_after = math.inf
        if math.isfinite(read_after):
            msg.read_at = at + read_after
            self._push(msg.read_at, _READ, msg)

    def _expire(self, msg: Message, at: float) -> None:
        if msg.in_handoff(at):
            self._set_state(msg, MessageState.REVOKE_FAILED)
            self._emit(msg, EventType.TTL_EXPIRATION_REVOKE_FAILED, at)
            chance = self.profile.ttl_failed_delivered_probability
            if self._uniform(msg, "ttl-failed") >= chance:
                msg.deliver_at = None  # neither delivered nor revoked: Google's rare "neither"
            return
        self._set_state(msg, MessageState.EXPIRED)
        self._emit(msg, EventType.TTL_EXPIRATION_REVOKED, at)
        if msg.deliver_at is not None and self._ttl_races(msg, at):
            msg.ttl_race = True  # it was already on its way: DELIVERED follows as planned
        else:
            msg.deliver_at = None

    def _ttl_races(self, msg: Message, at: float) -> bool:
        """Whether an expiry that revoked ``msg`` loses the race with its delivery: only
        while the phone is online, with ``Profile.ttl_race_chance`` of its TTL."""
        window = self.device(msg.phone).online_window(at)
        if window is None or window[0] > at:
            return False
        chance = self.profile.ttl_race_chance(msg.expire_at - msg.send_at)  # type: ignore[operator]
        return chance > 0.0 and self._uniform(msg, "ttl-race") < chance

    def advance(self, now: float, limit: int | None = None) -> list[PlatformEvent]:
        """Apply the transitions due by ``now`` (at most ``limit`` heap entries this call).

        Returns the events produced since the last call, including those that API calls
        produced while settling a message.
        """
        self._tick(now)
        heap = self._heap
        budget = math.inf if limit is None else limit
        queued = MessageState.QUEUED
        deliverable = _DELIVERABLE
        while heap and heap[0][0] <= now and budget > 0:
            at, kind, _seq, msg = heapq.heappop(heap)
            budget -= 1
            # The heap is in time order, so only this entry can be due for ``msg`` now; an
            # entry made stale by a revoke, an earlier settle or a re-plan does nothing.
            state = msg.state
            if kind == _DELIVER:
                if msg.deliver_at == at and msg.delivered_at is None and state in deliverable:
                    self._deliver(msg, at)
            elif kind == _EXPIRE:
                if state is queued and msg.expire_at == at:
                    self._expire(msg, at)
            elif kind == _READ:
                if state is MessageState.DELIVERED and msg.read_at == at:
                    self._set_state(msg, MessageState.READ)
                    self._emit(msg, EventType.READ, at)
            elif state is queued and msg.deliver_at is None and msg.expire_at is None:
                self._set_state(msg, MessageState.DROPPED)
        events, self._outbox = self._outbox, []
        return events

    def next_due(self) -> float | None:
        """Platform second of the next timed transition (None when nothing is scheduled)."""
        return self._heap[0][0] if self._heap else None

    def processed_until(self, now: float) -> float:
        """Up to which platform second every due transition has been applied."""
        if self._heap and self._heap[0][0] <= now:
            return self._heap[0][0]
        return now

    @property
    def size(self) -> int:
        """Messages and agent events the model holds."""
        return len(self._ids)

    @property
    def scheduled(self) -> int:
        """Heap entries waiting (some may be stale and will do nothing)."""
        return len(self._heap)

    # ------------------------------------------------------------------------------ the API

    def send(
        self,
        agent_id: str | None,
        phone: str,
        message_id: object,
        body: object,
        now: float,
    ) -> Answer:
        """``agentMessages.create``: validate, de-duplicate by id, check reachability, queue."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        phone = normalize_phone(phone, "phone")
        message_id = validate_message_id(message_id)
        checked = validate_agent_message(body, now=self.to_datetime(now), warn=False)
        previous = self._ids.get((agent, message_id))
        if previous is not None:
            self._ignored_ids += 1
            return Answer(200, previous.answer)
        traffic = applied_traffic_type(checked.get("messageTrafficType"), self.use_case(agent))
        for where, name in _file_names(checked["contentMessage"]):
            if name not in self._files.get(agent, {}):
                raise ValidationError(
                    where, name, "names no file this agent created (files.create)"
                )
        gate = self._tester_gate(agent, phone)
        if gate:
            return gate
        if not self.device(phone).rcs_capable:
            return self._not_rcs(phone)
        features = set(self.profile.features)
        for where, feature in _features_used(checked["contentMessage"]):
            if feature not in features:
                return _error(400, f"{where}: the user's device does not support {feature}")
        expire_at = None
        if checked.get("ttl") is not None:
            expire_at = now + duration_seconds(checked["ttl"], "ttl")
        elif checked.get("expireTime") is not None:
            expire_at = self.to_seconds(checked["expireTime"])
        msg = Message(agent, phone, message_id, now, expire_at)
        msg.traffic_type = traffic
        answer = {"name": message_name(phone, message_id)}
        answer.update({k: v for k, v in checked.items() if k not in ("ttl", "expireTime")})
        answer["messageTrafficType"] = traffic
        answer["sendTime"] = self._stamp(now)
        if expire_at is not None:
            answer["expireTime"] = self._stamp(expire_at)
        msg.answer = answer
        self._ids[agent, message_id] = msg
        self._by_phone.setdefault(phone, []).append(msg)
        self._states[MessageState.QUEUED] += 1
        self._plan(msg, now)
        return Answer(200, answer)

    def revoke(self, agent_id: str | None, phone: str, message_id: object, now: float) -> Answer:
        """``agentMessages.delete``: 200 while queued (or in the hand-off), 404 once delivered."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        phone = normalize_phone(phone, "phone")
        message_id = validate_message_id(message_id)
        msg = self._ids.get((agent, message_id))
        if not isinstance(msg, Message) or msg.phone != phone:
            return Answer(200, {}) if self.legacy_revoke else _error(404, NOT_FOUND)
        self._settle(msg, now)
        status = self._revoke_status(msg, now)
        msg.revokes.append((now, status))
        if self.legacy_revoke:
            return Answer(200, {})
        return Answer(200, {}) if status == 200 else _error(404, NOT_FOUND)

    def _revoke_status(self, msg: Message, now: float) -> int:
        state = msg.state
        if state in (MessageState.QUEUED, MessageState.REVOKE_FAILED):
            # Taken back: queued, or still undelivered after TTL_EXPIRATION_REVOKE_FAILED
            # (Google: revoke it by API if it was not delivered). Inside the hand-off a
            # DELIVERED may still follow: the race.
            race = msg.in_handoff(now) and (
                self._uniform(msg, "race") < self.profile.race_probability
            )
            self._set_state(msg, MessageState.REVOKED)
            msg.revoked_at = now
            msg.revoke_race = race
            if not race:
                msg.deliver_at = None
            return 200
        if state in (MessageState.REVOKED, MessageState.EXPIRED):
            return 200  # already out of the queue: repeating a revoke is safe
        return 404  # delivered, read, or dropped

    def capabilities(self, agent_id: str | None, phone: str, now: float) -> Answer:
        """``getCapabilities``: the features, or 404 when the phone is not RCS-reachable."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        phone = normalize_phone(phone, "phone")
        gate = self._tester_gate(agent, phone)
        if gate:
            return gate
        if not self.device(phone).rcs_capable:
            return self._not_rcs(phone)
        return Answer(200, {"features": list(self.profile.features)})

    def batch_get(self, agent_id: str | None, users: object, now: float) -> Answer:
        """``users.batchGet``: the reachable numbers and a ~75 % random-sample estimate."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        if not isinstance(users, list) or not users:
            raise ValidationError("users", users, "must be a non-empty list of E.164 numbers")
        if len(users) > BATCH_GET_MAX_USERS:
            raise ValidationError(
                "users", f"{len(users)} numbers", f"must hold at most {BATCH_GET_MAX_USERS}"
            )
        phones = [normalize_phone(p, f"users[{i}]") for i, p in enumerate(users)]
        calls = self._batch_calls.setdefault(agent, deque())
        while calls and calls[0] <= now - 60.0:
            calls.popleft()
        if len(calls) >= BATCH_GET_PER_MINUTE:
            return _error(429, "Quota exceeded: users.batchGet allows 600 queries per minute")
        calls.append(now)
        launched = self.is_launched(agent)
        testers = self._testers.get(agent, set())
        reachable = [p for p in phones if self.device(p).rcs_capable]
        visible = reachable if launched else [p for p in reachable if p in testers]
        sample_total = sample_reachable = 0
        if len(phones) >= BATCH_GET_SAMPLE_MIN:
            for p in phones:
                if stable_uniform(self.seed, "sample", now, p) < 0.75:
                    sample_total += 1
                    sample_reachable += self.device(p).rcs_capable
        return Answer(
            200,
            {
                "reachableUsers": visible,
                "totalRandomSampleUserCount": sample_total,
                "reachableRandomSampleUserCount": sample_reachable,
            },
        )

    def agent_event(
        self,
        agent_id: str | None,
        phone: str,
        event_id: object,
        body: object,
        now: float,
    ) -> Answer:
        """``agentEvents.create``: READ receipts and IS_TYPING sent by the agent to the user."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        phone = normalize_phone(phone, "phone")
        event_id = validate_message_id(event_id, "eventId")
        if not isinstance(body, Mapping):
            raise ValidationError("agentEvent", body, "must be a JSON object")
        unknown = sorted(set(body) - {"eventType", "messageId", "name"})
        if unknown:
            raise ValidationError(unknown[0], body[unknown[0]], "is not a known field")
        event_type = body.get("eventType")
        if event_type not in ("READ", "IS_TYPING"):
            raise ValidationError("eventType", event_type, "must be one of READ, IS_TYPING")
        answer: dict[str, Any] = {
            "name": f"phones/{phone}/agentEvents/{event_id}",
            "eventType": event_type,
        }
        if event_type == "READ":
            answer["messageId"] = validate_message_id(body.get("messageId"), "messageId")
        elif body.get("messageId") is not None:
            raise ValidationError("messageId", body["messageId"], "is not allowed with IS_TYPING")
        previous = self._ids.get((agent, event_id))
        if previous is not None:
            self._ignored_ids += 1
            return Answer(200, previous.answer)
        gate = self._tester_gate(agent, phone)
        if gate:
            return gate
        if not self.device(phone).rcs_capable:
            return self._not_rcs(phone)
        if event_type == "READ":  # READ is queued like a message; IS_TYPING is not kept
            self._ids[agent, event_id] = _AgentEventRecord(phone, answer)
        return Answer(200, answer)

    def invite_tester(self, agent_id: str | None, phone: str, now: float) -> Answer:
        """``testers.create``: the simulated user accepts at once (the answer says PENDING).

        Google removed this method on 2026-01-31 (testers are managed with the Business
        Communications API since): from that platform time on it answers 404 NOT_FOUND, as
        the live API does; an emulator started earlier (``start=``) still serves it.
        """
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        if self.to_datetime(now) >= TESTERS_CREATE_REMOVED:
            return _error(
                404,
                f"{NOT_FOUND} testers.create was removed on 2026-01-31; testers are managed "
                "with the Business Communications API (on the emulator: POST "
                "/emulator/v1/testers)",
            )
        phone = normalize_phone(phone, "phone")
        if not self.device(phone).rcs_capable:
            return self._not_rcs(phone)
        invites = self._tester_invites.setdefault(agent, [])
        today = [t for t in invites if t > now - 86_400.0]
        if len(invites) >= TESTER_INVITES_TOTAL or len(today) >= TESTER_INVITES_PER_DAY:
            return _error(
                429, "Quota exceeded: an agent may send 20 tester invites a day, 200 in total"
            )
        invites.append(now)
        self._testers.setdefault(agent, set()).add(phone)
        return Answer(200, {"name": f"phones/{phone}/testers", "inviteStatus": "PENDING"})

    # ------------------------------------------------------------------------ admin actions

    def add_testers(self, agent_id: str, phones: Iterable[str]) -> list[str]:
        """Make numbers testers of an agent directly (no invite, no quota)."""
        agent = validate_agent_id(agent_id)
        added = [normalize_phone(p, "phones") for p in phones]
        self._testers.setdefault(agent, set()).update(added)
        return sorted(self._testers[agent])

    def set_launched(self, agent_id: str, launched: bool) -> None:
        self._launched[validate_agent_id(agent_id)] = bool(launched)

    def set_use_case(self, agent_id: str, use_case: object) -> None:
        """Give an agent another use case (``OTP``, ``TRANSACTIONAL``, ``PROMOTIONAL``,
        ``MULTI_USE``); it decides the traffic type of messages that name none."""
        self._use_cases[validate_agent_id(agent_id)] = _check_use_case(use_case)

    # ------------------------------------------------------------------------------- files

    def create_file(
        self, agent_id: str | None, body: object, now: float, *, upload: int | None = None
    ) -> Answer:
        """``files.create``: keep a file (by URL, or ``upload`` bytes sent to the upload form)
        and answer ``{"name": "files/..."}``, the name messages use as ``fileName``."""
        self._tick(now)
        agent, denied = self._check_agent(agent_id)
        if denied:
            return denied
        assert agent is not None
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ValidationError("body", type(body).__name__, "must be a JSON object")
        unknown = sorted(set(body) - {"fileUrl", "thumbnailUrl", "contentDescription", "agentId"})
        if unknown:
            raise ValidationError(unknown[0], body[unknown[0]], "is not a known field")
        for field in ("fileUrl", "thumbnailUrl", "contentDescription"):
            value = body.get(field)
            if value is not None and (not isinstance(value, str) or len(value) > 2048):
                raise ValidationError(field, value, "must be a string of at most 2048 characters")
        if upload is None and not body.get("fileUrl"):
            raise ValidationError(
                "fileUrl", body.get("fileUrl"), "is required (or upload the file)"
            )
        files = self._files.setdefault(agent, {})
        digest = hashlib.blake2b(
            f"{self.seed}\x1f{agent}\x1f{len(files)}\x1f{now}".encode(), digest_size=12
        ).hexdigest()
        name = f"files/{digest}"
        files[name] = {"fileUrl": body.get("fileUrl"), "bytes": upload, "created": now}
        return Answer(200, {"name": name})

    def testers(self, agent_id: str) -> list[str]:
        return sorted(self._testers.get(validate_agent_id(agent_id), ()))

    def pin(self, phone: str, pin: DevicePin, now: float) -> DevicePin:
        """Pin a number's behaviour; its queued messages are re-planned from ``now``."""
        self._tick(now)
        phone = normalize_phone(phone, "phone")
        merged = self._pins.get(phone, DevicePin()).merged(pin)
        self._pins[phone] = merged
        self.device(phone).pin = merged
        self._replan(self._by_phone.get(phone, ()), now)
        return merged

    def load_profile(self, profile: Profile, now: float) -> None:
        """Use another population profile: devices are drawn again (pins stay) and queued
        messages that are not in the hand-off are re-planned from ``now``."""
        self._tick(now)
        self.profile = profile
        self._devices.clear()
        queued = (m for m in self._ids.values() if isinstance(m, Message))
        self._replan(queued, now)

    def _replan(self, messages: Iterable[Message], now: float) -> None:
        for msg in list(messages):
            self._settle(msg, now)
            if msg.state is MessageState.QUEUED and not msg.in_handoff(now):
                self._plan(msg, now)

    def reset(self) -> None:
        """Forget every message, device, pin, tester and launch setting."""
        self._clear()

    # ---------------------------------------------------------------------------- read-outs

    def counts(self) -> dict[str, int]:
        """Messages by state (every state listed, zeros included)."""
        return {state.value: self._states[state] for state in MessageState}

    def stats(self) -> dict[str, Any]:
        return {
            "messages": self.counts(),
            "messagesTotal": sum(self._states.values()),
            "eventsEmitted": {str(k): v for k, v in self._events_emitted.items() if v},
            "ignoredReusedIds": self._ignored_ids,
            "devices": len(self._devices),
            "pinnedPhones": len(self._pins),
            "scheduled": len(self._heap),
        }

    def message(self, agent_id: str, message_id: str) -> Message | None:
        found = self._ids.get((agent_id, message_id))
        return found if isinstance(found, Message) else None

    def messages(
        self,
        *,
        agent_id: str | None = None,
        phone: str | None = None,
        state: str | None = None,
    ) -> Iterator[Message]:
        """Accepted messages in the order they were sent, filtered."""
        if state is not None and state not in MessageState.__members__.values():
            allowed = ", ".join(s.value for s in MessageState)
            raise ValidationError("state", state, f"must be one of {allowed}")
        source: Iterable[Any]
        if phone is not None:
            source = self._by_phone.get(normalize_phone(phone, "phone"), ())
        else:
            source = self._ids.values()
        for msg in source:
            if not isinstance(msg, Message):
                continue
            if agent_id is not None and msg.agent_id != agent_id:
                continue
            if state is not None and msg.state != state:
                continue
            yield msg

    def describe(self, msg: Message) -> dict[str, Any]:
        """A message as the admin surface lists it (platform times, RFC 3339)."""

        def stamp(value: float | None) -> str | None:
            return None if value is None else self._stamp(value)

        return {
            "agentId": msg.agent_id,
            "phone": msg.phone,
            "messageId": msg.message_id,
            "state": msg.state.value,
            "inHandoff": msg.in_handoff(self.now) and msg.state is MessageState.QUEUED,
            "trafficType": msg.traffic_type,
            "sendTime": stamp(msg.send_at),
            "expireTime": stamp(msg.expire_at),
            "handoffTime": stamp(msg.handoff_at if msg.deliver_at is not None else None),
            "plannedDeliveryTime": stamp(msg.deliver_at if msg.delivered_at is None else None),
            "deliveredTime": stamp(msg.delivered_at),
            "readTime": stamp(msg.read_at if msg.state is MessageState.READ else None),
            "revokedTime": stamp(msg.revoked_at),
            "deliveredAfterRevoke": msg.revoke_race and msg.delivered_at is not None,
            "deliveredAfterExpiry": msg.ttl_race and msg.delivered_at is not None,
            "dropTime": stamp(msg.drop_at),
            "revokes": [{"time": self._stamp(t), "status": s} for t, s in msg.revokes],
            "events": [{"eventType": kind, "time": self._stamp(t)} for kind, t in msg.events],
        }
