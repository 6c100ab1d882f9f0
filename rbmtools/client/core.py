"""``RbmClient``: send, revoke, capability and agent-event calls against the RBM API.

Each call validates its input before any I/O (``rbmtools.wire``), sends it through google-auth's
``AuthorizedSession`` with explicit timeouts, retries what may succeed when repeated (see
``retry``), turns expected outcomes (404 unreachable, 404 already delivered) into result values,
raises ``ApiError`` for the rest, and appends every send and revoke to the outbox log if one is
configured (every send the platform accepted, even when its answer is odd). Nothing it raises,
logs or prints carries the key or the bearer token: error bodies are redacted of anything
token-shaped and of the client's own current token before they become an ``ApiError``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import google.auth.exceptions
import requests

from rbmtools.client.outbox import OutboxWriter
from rbmtools.client.ratelimit import RateLimiter
from rbmtools.client.results import AgentEventResult, RevokeResult, SendResult
from rbmtools.client.retry import RetryPolicy, retry_after_seconds
from rbmtools.client.session import ClientConfig, authorized_session, load_credentials
from rbmtools.client.sms import SmsSender
from rbmtools.client.use_case import SendPlan, plan_send, send_fallback_sms
from rbmtools.errors import ApiError, AuthError, ValidationError
from rbmtools.wire.api import (
    PLATFORM_TIME_HEADER,
    agent_events_path,
    batch_get_path,
    capabilities_path,
    messages_path,
    revoke_path,
    validate_agent_id,
    validate_message_id,
)
from rbmtools.wire.expiry import expiry_fields
from rbmtools.wire.message import agent_message, normalize_traffic_type, validate_agent_message
from rbmtools.wire.phone import normalize_phone
from rbmtools.wire.records import RevokeRecord, SendRecord
from rbmtools.wire.redact import redact_text
from rbmtools.wire.status import api_error
from rbmtools.wire.times import parse_timestamp, utc_now
from rbmtools.wire.ttl_policy import TtlPolicy, load_ttl_policy

__all__ = ["DEFAULT_TIMEOUT", "RbmClient"]

log = logging.getLogger("rbmtools.client")

#: (connect, read) seconds for each HTTP attempt.
DEFAULT_TIMEOUT = (5.0, 30.0)
#: users.batchGet accepts at most this many numbers per call ...
BATCH_GET_MAX_USERS = 10_000
#: ... and at most 600 calls a minute.
BATCH_GET_CALLS_PER_SECOND = 10.0


class RbmClient:
    """A client for one RBM agent.

    Build it with ``from_service_account_file``, ``from_env`` or ``from_emulator``. ``clock``
    returns "now" on the platform's clock (the wall clock for Google; the virtual clock for the
    emulator) and stamps outbox records. An emulator reached by URL also says its platform time
    in every answer (``wire.PLATFORM_TIME_HEADER``): records then carry that time, and the
    client's clock is corrected by the offset it last saw, so everything the outbox holds is on
    the platform's one clock. Thread-safe: the bulk helpers share one client across worker
    threads. ``policy`` (a TTL policy file or ``TtlPolicy``) gives sends with a ``use_case``
    their expiry, traffic type and no-RCS fallback (see ``use_case.py``); ``sms`` is the SMS
    sender that fallback goes through.
    """

    def __init__(
        self,
        session: requests.Session,
        agent_id: str,
        *,
        base_url: str,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        outbox: str | os.PathLike[str] | OutboxWriter | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        policy: TtlPolicy | str | os.PathLike[str] | None = None,
        sms: SmsSender | None = None,
    ) -> None:
        self.agent_id = validate_agent_id(agent_id)
        self.policy = None if policy is None else load_ttl_policy(policy)
        self.sms = sms
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self._session = session
        self._sleep = sleep
        self._owns_outbox = outbox is not None and not isinstance(outbox, OutboxWriter)
        self.outbox = OutboxWriter(outbox) if self._owns_outbox else outbox  # type: ignore[arg-type]
        self._batch_limiter = RateLimiter(BATCH_GET_CALLS_PER_SECOND)
        self._offset = 0.0  # platform time minus our clock, as the platform last said it

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_service_account_file(
        cls,
        path: str | os.PathLike[str],
        agent_id: str,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        *,
        pool_size: int = 16,
        **kwargs: Any,
    ) -> RbmClient:
        """A client authenticated with a service-account key file (pass its *path*).

        ``region`` is ``us``, ``europe`` or ``asia`` (None: the global endpoint); ``base_url``
        overrides it (the emulator, a proxy). ``pool_size`` should be at least the bulk
        ``concurrency`` you intend to use. Other keyword arguments go to the constructor
        (``retry``, ``outbox``, ``clock``).
        """
        config = ClientConfig.from_values(path, agent_id, region=region, base_url=base_url)
        return cls.from_config(config, timeout=timeout, pool_size=pool_size, **kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> RbmClient:
        """A client configured by ``RBM_SERVICE_ACCOUNT`` (key path), ``RBM_AGENT_ID``,
        ``RBM_REGION`` and ``RBM_BASE_URL``; a missing variable is named in the error."""
        return cls.from_config(ClientConfig.from_env(environ), **kwargs)

    @classmethod
    def from_emulator(cls, emulator: Any, agent_id: str | None = None, **kwargs: Any) -> RbmClient:
        """A client for a running ``rbmtools.emulator.Emulator``: its URL, key and clock."""
        config = ClientConfig.from_values(
            emulator.key_file, agent_id or emulator.agent_id, base_url=emulator.base_url
        )
        kwargs.setdefault("clock", emulator.clock.now)
        return cls.from_config(config, **kwargs)

    @classmethod
    def from_config(
        cls,
        config: ClientConfig,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        pool_size: int = 16,
        **kwargs: Any,
    ) -> RbmClient:
        """A client for a ``ClientConfig`` (``ClientConfig.resolve`` merges explicit values
        over the ``RBM_*`` environment); keyword arguments as for ``from_service_account_file``."""
        session = authorized_session(load_credentials(config.key_path), pool_size=pool_size)
        return cls(session, config.agent_id, base_url=config.base_url, timeout=timeout, **kwargs)

    def close(self) -> None:
        """Close the HTTP session and the outbox file (if the client opened it)."""
        self._session.close()
        if self._owns_outbox and self.outbox is not None:
            self.outbox.close()

    def __enter__(self) -> RbmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        policy = "" if self.policy is None else f", policy={self.policy.version!r}"
        return f"RbmClient(agent_id={self.agent_id!r}, base_url={self.base_url!r}{policy})"

    # ------------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Any = None,
    ) -> tuple[requests.Response, int]:
        """One logical call with retries; returns the final response and the attempt count.

        Retryable statuses are returned once attempts or time run out (the caller turns them
        into ``ApiError``); transport failures that outlast the budget raise ``ApiError`` with
        status 0. Credential failures raise ``AuthError``.
        """
        url = self.base_url + path
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._session.request(
                    method, url, params=params, json=body, timeout=self.timeout
                )
            except google.auth.exceptions.RefreshError as exc:
                raise AuthError(
                    f"the token endpoint refused the service-account credentials: {_first_arg(exc)}"
                ) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                google.auth.exceptions.TransportError,
            ) as exc:
                delay = self.retry.next_delay(attempt, started)
                log.debug("%s %s attempt %d failed: %s", method, path, attempt, type(exc).__name__)
                if delay is None:
                    raise ApiError(
                        0,
                        "UNAVAILABLE",
                        f"no answer after {attempt} attempt(s): {type(exc).__name__}",
                        method=method,
                        url=url,
                        retryable=True,
                    ) from None
                self._sleep(delay)
                continue
            log.debug("%s %s attempt %d -> %d", method, path, attempt, response.status_code)
            if response.status_code in self.retry.statuses:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                delay = self.retry.next_delay(attempt, started, wait)
                if delay is not None:
                    self._sleep(delay)
                    continue
            return response, attempt

    def _now(self) -> datetime:
        """Our best reading of the platform's clock (see the class doc)."""
        return self.clock() + timedelta(seconds=self._offset)

    def _platform_time(self, response: requests.Response, default: datetime) -> datetime:
        """When the platform handled ``response``'s call, if it says so; else ``default``."""
        said = response.headers.get(PLATFORM_TIME_HEADER)
        if not said:
            return default
        try:
            at = parse_timestamp(said, PLATFORM_TIME_HEADER)
        except ValidationError:
            return default
        self._offset = (at - self.clock()).total_seconds()
        return at

    def _record(self, record: SendRecord | RevokeRecord) -> None:
        if self.outbox is not None:
            self.outbox.write(record)

    def _error(self, response: requests.Response, method: str) -> ApiError:
        """The ``ApiError`` of an error answer, with the current bearer token redacted too."""
        credentials = getattr(self._session, "credentials", None)
        token = getattr(credentials, "token", None)
        secrets = (token,) if isinstance(token, str) else ()
        return api_error(
            response.status_code, response.content, method=method, url=response.url, secrets=secrets
        )

    # ------------------------------------------------------------------ messages

    def send(
        self,
        phone: str,
        text: str | None = None,
        message: Mapping[str, Any] | None = None,
        *,
        message_id: str | None = None,
        ttl: object = None,
        expire_time: str | datetime | None = None,
        traffic_type: str | None = None,
        use_case: str | None = None,
        suggestions: Iterable[Mapping[str, Any]] = (),
        experiment: str | None = None,
        arm: str | None = None,
        sms_text: str | None = None,
        check_capabilities: bool = False,
    ) -> SendResult:
        """Send one message; returns ``SendResult`` (``reachable=False`` on 404).

        Give ``text`` (with optional ``suggestions``) or a ready ``message`` body (see
        ``rbmtools.wire.agent_message``). ``message_id`` defaults to a new UUID4; pass your own
        to make a re-run safe: the platform ignores an id it has already seen. ``ttl`` takes
        seconds, a ``timedelta`` or "10m"; ``expire_time`` an aware datetime or RFC 3339 text.
        ``use_case``, ``experiment`` and ``arm`` are labels for the outbox log.

        With a TTL policy on the client, ``use_case`` picks its rule: the rule's expiry and
        traffic type apply unless given here, and the outbox records the policy's version.
        When the rule falls back for phones without RCS, a 404 is followed at once by the SMS
        (``sms_text``, default the message text) through the client's SMS sender.
        ``check_capabilities=True`` asks the platform first and, for a phone without RCS, skips
        the RBM send (it is recorded as answered 404).
        """
        phone = normalize_phone(phone)
        plan = plan_send(
            self.policy, use_case, text=text, message=message, ttl=ttl,
            expire_time=expire_time, traffic_type=traffic_type, sms_text=sms_text,
            sms=self.sms, now=self._now,
        )  # fmt: skip
        body = _message_body(
            text, message, plan.ttl, plan.expire_time, plan.traffic_type, suggestions
        )
        message_id = validate_message_id(message_id) if message_id else str(uuid.uuid4())
        params = {"messageId": message_id, "agentId": self.agent_id}
        asked_at = self._now()
        labels = {"use_case": use_case, "experiment": experiment, "arm": arm}
        record = {
            "message_id": message_id,
            "phone": phone,
            "agent_id": self.agent_id,
            "traffic_type": body.get("messageTrafficType"),
            "ttl": body.get("ttl"),
            "policy_version": plan.policy_version,
            **labels,
        }
        SendRecord(send_time=asked_at, status=0, **record)  # its outbox line can be written
        if check_capabilities and self.capabilities(phone) is None:
            result = SendResult(message_id, phone, 404, False, asked_at, None, 0)
            self._record(SendRecord(send_time=asked_at, status=404, **record))
            return self._after_send(result, plan, labels)
        try:
            response, attempts = self._request("POST", messages_path(phone), params, body)
        except ApiError as exc:
            self._record(
                SendRecord(send_time=asked_at, status=exc.status, error=str(exc), **record)
            )
            raise
        asked_at = self._platform_time(response, asked_at)
        odd = None
        if response.status_code == 200:
            answer = _json_object(response)
            applied = (answer or {}).get("messageTrafficType")
            if isinstance(applied, str) and applied.isascii():  # an odd answer: keep ours
                record["traffic_type"] = applied
            sent, expires, odd = _accepted_times(answer, body, asked_at)
            if odd:
                log.warning("send %s: %s", message_id, odd)
            result = SendResult(message_id, phone, 200, True, sent, expires, attempts)
        elif response.status_code == 404:
            result = SendResult(message_id, phone, 404, False, asked_at, None, attempts)
        else:
            error = self._error(response, "POST")
            self._record(
                SendRecord(send_time=asked_at, status=error.status, error=str(error), **record)
            )
            raise error
        self._record(
            SendRecord(
                send_time=result.send_time,
                status=result.status,
                expire_time=result.expire_time,
                error=odd,
                **record,
            )
        )
        return self._after_send(result, plan, labels)

    def _after_send(
        self, result: SendResult, plan: SendPlan, labels: Mapping[str, str | None]
    ) -> SendResult:
        """What the TTL policy's rule adds once the platform answered: the revoke time of an
        API-revoke rule, and the SMS for a phone without RCS (with its outbox record)."""
        if plan.rule is None:
            return result
        if result.reachable:
            return replace(result, revoke_at=plan.rule.revoke_at(result.send_time))
        if not plan.falls_back_for_no_rcs:
            return result
        assert self.sms is not None and plan.sms_text is not None  # checked by plan_send
        receipt = send_fallback_sms(
            self.sms, self.outbox, phone=result.phone, text=plan.sms_text,
            message_id=result.message_id, reason="not_rcs", agent_id=self.agent_id,
            clock=self._now, experiment=labels.get("experiment"), arm=labels.get("arm"),
        )  # fmt: skip
        return replace(result, fallback_sms=receipt)

    def revoke(
        self,
        phone: str,
        message_id: str,
        *,
        attempt: int = 1,
        experiment: str | None = None,
        arm: str | None = None,
    ) -> RevokeResult:
        """Revoke a message that was sent but not yet delivered; returns ``RevokeResult``.

        200 means revoked: the platform removed it from the user's queue. 404 means it was
        already delivered (or the id is unknown): ``revoked=False``, not an exception.

        The race: a revoke that arrives while the platform is handing the message to the
        device can be answered 200 and still be followed by a DELIVERED event. Google's
        documented recovery: after a 200, watch the webhook for DELIVERED for a short grace
        period; if none comes, revoke once more (``attempt=2`` labels it in the outbox), and
        only then fall back (e.g. SMS). The experiment runner does exactly this.
        """
        phone = normalize_phone(phone)
        path = revoke_path(phone, message_id)
        at = self._now()
        record: dict[str, Any] = {
            "message_id": message_id,
            "phone": phone,
            "agent_id": self.agent_id,
            "requested_at": at,
            "attempt": attempt,
            "experiment": experiment,
            "arm": arm,
        }
        RevokeRecord(status=0, **record)  # its outbox line can be written
        try:
            response, attempts = self._request("DELETE", path, {"agentId": self.agent_id})
        except ApiError as exc:
            self._record(RevokeRecord(status=exc.status, error=str(exc), **record))
            raise
        at = record["requested_at"] = self._platform_time(response, at)
        if response.status_code not in (200, 404):
            error = self._error(response, "DELETE")
            self._record(RevokeRecord(status=error.status, error=str(error), **record))
            raise error
        self._record(RevokeRecord(status=response.status_code, **record))
        return RevokeResult(
            message_id, phone, response.status_code == 200, response.status_code, at, attempts
        )

    # ------------------------------------------------------------------ capabilities and events

    def capabilities(self, phone: str) -> list[str] | None:
        """The RCS features of ``phone`` (e.g. ``RICHCARD_STANDALONE``), or None if unreachable."""
        phone = normalize_phone(phone)
        params = {"requestId": str(uuid.uuid4()), "agentId": self.agent_id}
        response, _ = self._request("GET", capabilities_path(phone), params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, "GET")
        features = _json(response).get("features", [])
        return [str(f) for f in features]

    def batch_capabilities(self, phones: Iterable[str]) -> dict[str, bool]:
        """Which of ``phones`` are reachable over RCS, via users.batchGet.

        Numbers are normalised, de-duplicated and sent in chunks of at most 10,000, with the
        calls spaced to stay under 600 a minute. Returns ``{phone: reachable}`` for every
        distinct number given.
        """
        distinct = list(dict.fromkeys(normalize_phone(p) for p in phones))
        reachable: set[str] = set()
        for start in range(0, len(distinct), BATCH_GET_MAX_USERS):
            chunk = distinct[start : start + BATCH_GET_MAX_USERS]
            self._batch_limiter.acquire()
            body = {"users": chunk, "agentId": self.agent_id}
            response, _ = self._request("POST", batch_get_path(), {"agentId": self.agent_id}, body)
            if response.status_code != 200:
                raise self._error(response, "POST")
            for phone in _json(response).get("reachableUsers", []):
                reachable.add(normalize_phone(phone, "reachableUsers"))
        return {phone: phone in reachable for phone in distinct}

    def send_read(self, phone: str, message_id: str) -> AgentEventResult:
        """Tell the user their message ``message_id`` was read (a READ receipt)."""
        body = {"eventType": "READ", "messageId": validate_message_id(message_id)}
        return self._agent_event(phone, body)

    def send_typing(self, phone: str) -> AgentEventResult:
        """Show the typing indicator to the user (not queued if they are offline)."""
        return self._agent_event(phone, {"eventType": "IS_TYPING"})

    def _agent_event(self, phone: str, body: Mapping[str, str]) -> AgentEventResult:
        phone = normalize_phone(phone)
        event_id = str(uuid.uuid4())
        params = {"eventId": event_id, "agentId": self.agent_id}
        response, attempts = self._request("POST", agent_events_path(phone), params, dict(body))
        if response.status_code not in (200, 404):
            raise self._error(response, "POST")
        status = response.status_code
        return AgentEventResult(event_id, phone, body["eventType"], status, status == 200, attempts)

    # ------------------------------------------------------------------ bulk

    def send_many(self, rows: Any, **options: Any) -> Any:
        """Send one message per row of a DataFrame or iterable of dicts; see ``bulk.send_many``."""
        from rbmtools.client.bulk import send_many

        return send_many(self, rows, **options)

    def revoke_many(self, rows: Any, **options: Any) -> Any:
        """Revoke one message per row (``phone``, ``message_id``); see ``bulk.revoke_many``."""
        from rbmtools.client.bulk import revoke_many

        return revoke_many(self, rows, **options)


def _message_body(
    text: str | None,
    message: Mapping[str, Any] | None,
    ttl: object,
    expire_time: object,
    traffic_type: str | None,
    suggestions: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The validated AgentMessage body for ``send``'s arguments."""
    if (text is None) == (message is None):
        raise ValidationError(
            "text/message", {"text": text, "message": message}, "give exactly one"
        )
    if text is not None:
        return agent_message(
            text,
            suggestions=list(suggestions),  # type: ignore[arg-type]
            traffic_type=traffic_type,
            ttl=ttl,
            expire_time=expire_time,  # type: ignore[arg-type]
        )
    if not isinstance(message, Mapping):
        raise ValidationError("message", message, "must be an AgentMessage body (a dict)")
    body = dict(message) if "contentMessage" in message else {"contentMessage": dict(message)}
    if (ttl is not None or expire_time is not None) and ("ttl" in body or "expireTime" in body):
        raise ValidationError("ttl", ttl or expire_time, "the message already carries an expiry")
    if ttl is not None:
        body["ttl"] = ttl
    if body.get("ttl") is not None:  # the wire takes a Duration string: 600, "10m" -> "600s"
        body["ttl"] = expiry_fields(body["ttl"])["ttl"]
    if expire_time is not None:
        body["expireTime"] = expire_time
    if traffic_type is not None:
        body["messageTrafficType"] = normalize_traffic_type(traffic_type)
    return validate_agent_message(body)


def _json(response: requests.Response) -> dict[str, Any]:
    return _json_object(response) or {}


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is no JSON object."""
    try:
        value = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested past any sense
        return None
    return value if isinstance(value, dict) else None


def _accepted_times(
    answer: Mapping[str, Any] | None, body: Mapping[str, Any], asked_at: datetime
) -> tuple[datetime, datetime | None, str | None]:
    """``sendTime`` and ``expireTime`` of an accepted send, and what was odd about the answer.

    The platform accepted the message, so an unreadable time in its answer must not lose the
    send: the client's clock stands in for ``sendTime``, the request's ``expireTime`` (if any)
    for ``expireTime``, and the oddity is said (it goes to the outbox record's ``error``).
    """
    problems = []
    sent: datetime = asked_at
    expires: datetime | None = None
    if answer is None:
        problems.append("it is no JSON object; the client's clock is recorded")
        answer = {}
    try:
        if answer.get("sendTime") is not None:
            sent = parse_timestamp(answer["sendTime"], "sendTime")
    except ValidationError as exc:
        problems.append(f"{exc}; the client's clock is recorded")
    try:
        if answer.get("expireTime") is not None:
            expires = parse_timestamp(answer["expireTime"], "expireTime")
    except ValidationError as exc:
        problems.append(str(exc))
    if expires is None and body.get("expireTime"):
        expires = parse_timestamp(body["expireTime"], "expireTime")
    if not problems:
        return sent, expires, None
    return sent, expires, "accepted (200), but the answer is odd: " + "; ".join(problems)


def _first_arg(exc: BaseException) -> str:
    """A short description of a google-auth error without the token endpoint's full answer."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return redact_text(text)[:200]
