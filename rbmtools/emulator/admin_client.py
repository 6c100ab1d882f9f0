"""``AdminClient``: the emulator's admin surface (``/emulator/v1``) as Python methods.

It talks HTTP (requests), so it steers an in-process ``Emulator`` and one started with
``rbmtools emulator serve`` alike. Errors from the emulator raise ``ApiError`` with Google's
status name and the emulator's message (which names the bad field).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from rbmtools.emulator.auth import read_trusted_key
from rbmtools.errors import ApiError
from rbmtools.wire import api_error, format_timestamp, normalize_phone, parse_timestamp

__all__ = ["AdminClient"]


def _duration(value: object) -> object:
    """Durations travel as numbers of seconds or strings ('10m'); timedeltas become seconds."""
    total = getattr(value, "total_seconds", None)
    return total() if callable(total) else value


class AdminClient:
    """Steer an emulator at ``base_url`` (e.g. ``emu.admin`` or ``AdminClient(url)``)."""

    def __init__(
        self, base_url: str, *, agent_id: str | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_id = agent_id
        self.timeout = timeout
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"AdminClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = f"{self.base_url}/emulator/v1{path}"
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=headers,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as exc:
            raise ApiError(
                0, "UNAVAILABLE", f"the emulator is not reachable ({exc})", method=method, url=url
            ) from None
        if response.status_code != 200:
            raise api_error(response.status_code, response.content, method=method, url=url)
        return response.json()

    def _agent(self, agent_id: str | None) -> str:
        agent = agent_id or self.agent_id
        if not agent:
            raise ApiError(400, "INVALID_ARGUMENT", "agentId: give an agent id")
        return agent

    # ------------------------------------------------------------------------------- clock

    def clock(self) -> dict[str, Any]:
        """``{"now", "speed", "start", "processedUntil", "lagSeconds"}``."""
        return self._call("GET", "/clock")

    def now(self) -> datetime:
        """The platform's current time."""
        return parse_timestamp(self.clock()["now"], "now")

    def advance(self, seconds: object = None, *, to: datetime | str | None = None) -> datetime:
        """Move platform time forward (seconds, '10m', a timedelta, or ``to`` an instant);
        every transition that became due is applied before this returns."""
        body: dict[str, Any] = {}
        if to is not None:
            body["to"] = format_timestamp(to) if isinstance(to, datetime) else to
        else:
            body["seconds"] = _duration(seconds)
        return parse_timestamp(self._call("POST", "/clock/advance", body)["now"], "now")

    def set_speed(self, speed: float) -> dict[str, Any]:
        """Change the clock speed (0 pauses it: the stepping mode)."""
        return self._call("POST", "/clock/speed", {"speed": speed})

    # ------------------------------------------------------------------------------ webhook

    def register_webhook(self, url: str, client_token: str) -> dict[str, Any]:
        """Register a webhook; the emulator runs the handshake (ApiError 400 if it fails)."""
        return self._call("POST", "/webhook", {"url": url, "clientToken": client_token})

    def unregister_webhook(self) -> dict[str, Any]:
        return self._call("DELETE", "/webhook")

    def webhook(self) -> dict[str, Any]:
        return self._call("GET", "/webhook")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Apply due transitions, then wait until no push is ready or in flight."""
        body = self._call("GET", "/webhook/idle", params={"timeout": timeout}, timeout=timeout + 30)
        return bool(body["idle"])

    def inject_webhook_fault(
        self,
        kind: str,
        *,
        count: int | None = None,
        probability: float | None = None,
        seconds: object = 0.0,
    ) -> dict[str, Any]:
        """``duplicate``, ``delay`` (``seconds`` more platform seconds) or ``outage``."""
        body: dict[str, Any] = {"kind": kind, "seconds": _duration(seconds)}
        if count is not None:
            body["count"] = count
        if probability is not None:
            body["probability"] = probability
        return self._call("POST", "/webhook/faults", body)

    def clear_webhook_faults(self) -> None:
        self._call("DELETE", "/webhook/faults")

    # ---------------------------------------------------------------------------- API faults

    def inject_fault(
        self,
        method: str = "any",
        status: int | None = 503,
        *,
        count: int | None = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        when: str = "before",
    ) -> dict[str, Any]:
        """Make the next ``count`` calls of ``method`` answer ``status`` (see faults.py)."""
        return self._call(
            "POST",
            "/faults",
            {
                "method": method,
                "status": status,
                "count": count,
                "retryAfter": retry_after,
                "delay": delay,
                "when": when,
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")["faults"]

    # ------------------------------------------------------------- profile, phones, agents

    def profile(self) -> dict[str, Any]:
        return self._call("GET", "/profile")

    def load_profile(self, profile: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """A shipped name, a path (read by the emulator) or a mapping of profile fields."""
        if isinstance(profile, Mapping):
            body: dict[str, Any] = {"profile": dict(profile)}
        elif isinstance(profile, Path) or "/" in str(profile) or "." in str(profile):
            body = {"path": str(Path(profile).resolve())}
        else:
            body = {"name": str(profile)}
        return self._call("POST", "/profile", body)

    def pin_phone(
        self,
        phone: str,
        *,
        rcs_capable: bool | None = None,
        online: str | None = None,
        offline_until: datetime | str | None = None,
        offline_for: object = None,
        latency: object = None,
        read_after: object = None,
    ) -> dict[str, Any]:
        """Pin a phone: not RCS-capable, ``online="always"|"never"|"profile"``, offline until
        an instant or for a duration (then always online), a fixed latency, a fixed read
        delay (``"never"``: never reads)."""
        body: dict[str, Any] = {}
        if rcs_capable is not None:
            body["rcsCapable"] = rcs_capable
        if online is not None:
            body["online"] = online
        if offline_until is not None:
            until = offline_until
            body["offlineUntil"] = format_timestamp(until) if isinstance(until, datetime) else until
        if offline_for is not None:
            body["offlineFor"] = _duration(offline_for)
        if latency is not None:
            body["latency"] = _duration(latency)
        if read_after is not None:
            body["readAfter"] = _duration(read_after)
        return self._call("POST", f"/phones/{quote(normalize_phone(phone), safe='+')}", body)

    def phone(self, phone: str) -> dict[str, Any]:
        return self._call("GET", f"/phones/{quote(normalize_phone(phone), safe='+')}")

    def add_testers(self, phones: Iterable[str], agent_id: str | None = None) -> list[str]:
        body = {"agentId": self._agent(agent_id), "phones": list(phones)}
        return self._call("POST", "/testers", body)["testers"]

    def set_launched(self, launched: bool, agent_id: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/agents/{self._agent(agent_id)}", {"launched": launched})

    def trust_key(self, key_file: str | Path) -> dict[str, Any]:
        """Make the emulator accept tokens signed with this service-account key."""
        key = read_trusted_key(key_file)
        return self._call(
            "POST",
            "/keys",
            {
                "privateKeyId": key.key_id,
                "clientEmail": key.client_email,
                "publicKeyPem": key.public_pem,
            },
        )

    # ------------------------------------------------------------------------ read-outs

    def reset(self) -> dict[str, Any]:
        """Forget messages, devices, pins, testers, queued pushes and faults."""
        return self._call("POST", "/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def messages(
        self,
        *,
        agent_id: str | None = None,
        phone: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every message matching the filters (all pages), as the admin surface lists them."""
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page_size = 10_000 if limit is None else min(10_000, limit - len(found))
            page = self._call(
                "GET",
                "/messages",
                params={
                    "agentId": agent_id,
                    "phone": phone,
                    "state": state,
                    "offset": offset,
                    "limit": page_size,
                },
            )
            found.extend(page["messages"])
            offset = page["nextOffset"]
            if limit is not None and len(found) >= limit:
                break
        return found

    def sms(self, phone: str | None = None, message_id: str | None = None) -> list[dict[str, Any]]:
        """The SMS that reached the sink (``phone``, ``messageId``, ``text``, ``arrivedAt``)."""
        params = {"phone": None if phone is None else normalize_phone(phone)}
        params["messageId"] = message_id
        return self._call("GET", "/sms", params=params)["arrivals"]

    def send_sms(self, phone: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Hand an SMS to the sink: ``{"arrival": {...}, "duplicate": bool}`` (a repeated
        ``message_id`` is not delivered again)."""
        body: dict[str, Any] = {"phone": phone, "text": text}
        if message_id is not None:
            body["messageId"] = message_id
        return self._call("POST", "/sms", body)

    def message(self, message_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
        """One message (None if the emulator does not know it)."""
        try:
            return self._call(
                "GET",
                f"/messages/{quote(message_id, safe='')}",
                params={"agentId": agent_id},
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
