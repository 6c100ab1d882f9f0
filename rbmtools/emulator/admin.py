"""The admin surface under ``/emulator/v1``: steer the emulator from tests, notebooks and scripts.

Kept apart from the RBM API (no OAuth, JSON in and out, errors in Google's envelope). It reads
and steps the clock, registers the webhook (running the handshake), loads profiles, pins a
phone's behaviour, adds testers, launches or unlaunches agents, injects API and webhook
faults, trusts extra keys, resets, and reports stats and the list of messages with their
states. ``/sms`` is the SMS sink: POST an SMS (``phone``, ``text``, ``messageId``), GET what
arrived and when. ``rbmtools.emulator.AdminClient`` wraps every route for Python.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rbmtools.emulator.auth import TrustedKey
from rbmtools.emulator.devices import DevicePin
from rbmtools.emulator.dispatch import RegistrationError
from rbmtools.emulator.faults import parse_fault
from rbmtools.emulator.profiles import load_profile, profile_names
from rbmtools.emulator.responses import error_answer, json_answer
from rbmtools.errors import ValidationError
from rbmtools.wire import (
    duration_seconds,
    format_timestamp,
    normalize_phone,
    parse_timestamp,
    phone_from_path,
    validate_agent_id,
)

if TYPE_CHECKING:
    from rbmtools.emulator.server import EmulatorServer

__all__ = ["add_admin_routes", "parse_pin"]

MAX_LISTED = 100_000


def _ok(body: Any, status: int = 200) -> web.Response:
    return json_answer(status, body)


async def _json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ValidationError("body", "", "a JSON object is required")
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        shown = raw[:60].decode("utf-8", "replace")
        raise ValidationError("body", shown, f"is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationError("body", data, "must be a JSON object")
    return data


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(unknown[0], data[unknown[0]], "is not a known field")


def _int_query(request: web.Request, name: str, default: int, maximum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValidationError(name, text, "must be a whole number") from None
    if not 0 <= value <= maximum:
        raise ValidationError(name, value, f"must be from 0 to {maximum}")
    return value


def parse_pin(data: dict[str, Any], clock_seconds: float, to_seconds: Any) -> DevicePin:
    """A ``DevicePin`` from the admin JSON (see ``pin_phone`` in the README)."""
    _only(data, {"rcsCapable", "online", "offlineUntil", "offlineFor", "latency", "readAfter"})
    rcs = data.get("rcsCapable")
    if rcs is not None and not isinstance(rcs, bool):
        raise ValidationError("rcsCapable", rcs, "must be true or false")
    online = data.get("online")
    if online is not None and online not in ("always", "never", "profile"):
        raise ValidationError("online", online, "must be 'always', 'never' or 'profile'")
    offline_until = None
    if data.get("offlineUntil") is not None and data.get("offlineFor") is not None:
        raise ValidationError(
            "offlineUntil/offlineFor", data["offlineFor"], "give at most one of them"
        )
    if data.get("offlineUntil") is not None:
        offline_until = to_seconds(parse_timestamp(data["offlineUntil"], "offlineUntil"))
    elif data.get("offlineFor") is not None:
        offline_until = clock_seconds + duration_seconds(data["offlineFor"], "offlineFor")
    latency = data.get("latency")
    latency_s = None if latency is None else duration_seconds(latency, "latency")
    read_after = data.get("readAfter")
    if read_after is None:
        read_s = None
    elif read_after == "never":
        read_s = math.inf
    else:
        read_s = duration_seconds(read_after, "readAfter")
    return DevicePin(rcs, online, offline_until, latency_s, read_s)


def _pin_dict(pin: DevicePin, server: EmulatorServer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pin.rcs_capable is not None:
        out["rcsCapable"] = pin.rcs_capable
    if pin.online is not None:
        out["online"] = pin.online
    if pin.offline_until is not None:
        out["offlineUntil"] = format_timestamp(server.clock.to_datetime(pin.offline_until))
    if pin.latency is not None:
        out["latency"] = pin.latency
    if pin.read_after is not None:
        out["readAfter"] = "never" if math.isinf(pin.read_after) else pin.read_after
    return out


def add_admin_routes(app: web.Application, server: EmulatorServer) -> None:
    """Register every admin route of ``server`` on ``app``."""
    clock, model, dispatcher = server.clock, server.model, server.dispatcher
    prefix = "/emulator/v1"
    routes = web.RouteTableDef()

    def stamp(seconds: float) -> str:
        return format_timestamp(clock.to_datetime(seconds))

    def clock_body() -> dict[str, Any]:
        now = clock.seconds()
        return {
            "now": stamp(now),
            "speed": clock.speed,
            "start": format_timestamp(clock.start),
            "processedUntil": stamp(model.processed_until(now)),
            "lagSeconds": round(server.lag_seconds(), 6),
        }

    @routes.get(prefix)
    async def index(request: web.Request) -> web.Response:
        paths = sorted(
            {
                f"{route.method} {route.resource.canonical}"
                for route in request.app.router.routes()
                if route.resource is not None
                and route.resource.canonical.startswith(prefix)
                and route.method != "HEAD"
            }
        )
        return _ok({"routes": paths, "profiles": profile_names()})

    @routes.get(f"{prefix}/clock")
    async def get_clock(request: web.Request) -> web.Response:
        return _ok(clock_body())

    @routes.post(f"{prefix}/clock/advance")
    async def advance(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"seconds", "to"})
        if (data.get("seconds") is None) == (data.get("to") is None):
            raise ValidationError("seconds/to", data, "give exactly one of seconds or to")
        if data.get("to") is not None:
            target = clock.to_seconds(parse_timestamp(data["to"], "to"))
            step = target - clock.seconds()
            if step < 0:
                raise ValidationError("to", data["to"], "is in the past of the platform clock")
        else:
            step = duration_seconds(data["seconds"], "seconds")
        clock.advance(step)
        await server.catch_up()
        return _ok(clock_body())

    @routes.post(f"{prefix}/clock/speed")
    async def set_speed(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"speed"})
        clock.set_speed(data.get("speed"))
        server.wake()
        return _ok(clock_body())

    # ------------------------------------------------------------------------------ webhook

    def webhook_body() -> dict[str, Any]:
        return {"registered": dispatcher.url is not None, "url": dispatcher.url}

    @routes.get(f"{prefix}/webhook")
    async def get_webhook(request: web.Request) -> web.Response:
        return _ok(webhook_body())

    @routes.post(f"{prefix}/webhook")
    async def register_webhook(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"url", "clientToken"})
        try:
            await server.register_webhook(data.get("url"), data.get("clientToken"))
        except RegistrationError as exc:
            return error_answer(400, str(exc))
        return _ok(webhook_body())

    @routes.delete(f"{prefix}/webhook")
    async def unregister_webhook(request: web.Request) -> web.Response:
        dispatcher.unregister()
        return _ok(webhook_body())

    @routes.get(f"{prefix}/webhook/idle")
    async def webhook_idle(request: web.Request) -> web.Response:
        text = request.query.get("timeout", "5")
        try:
            timeout = float(text)
        except ValueError:
            raise ValidationError("timeout", text, "must be a number of seconds") from None
        if not 0 <= timeout <= 600:
            raise ValidationError("timeout", timeout, "must be from 0 to 600 seconds")
        await server.catch_up()
        idle = await dispatcher.wait_idle(timeout)
        return _ok({"idle": idle, **dispatcher.stats()})

    @routes.get(f"{prefix}/webhook/faults")
    async def get_webhook_faults(request: web.Request) -> web.Response:
        return _ok({"faults": [f.to_dict() for f in dispatcher.faults]})

    @routes.post(f"{prefix}/webhook/faults")
    async def add_webhook_fault(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"kind", "count", "probability", "seconds"})
        seconds = data.get("seconds", 0.0)
        if isinstance(seconds, str):
            seconds = duration_seconds(seconds, "seconds")
        fault = dispatcher.inject(
            data.get("kind"),
            count=data.get("count"),
            probability=data.get("probability"),
            seconds=seconds,
        )
        return _ok(fault.to_dict())

    @routes.delete(f"{prefix}/webhook/faults")
    async def clear_webhook_faults(request: web.Request) -> web.Response:
        dispatcher.clear_faults()
        return _ok({"faults": []})

    # -------------------------------------------------------------------------- API faults

    @routes.get(f"{prefix}/faults")
    async def get_faults(request: web.Request) -> web.Response:
        return _ok({"faults": [f.to_dict() for f in server.faults.list()]})

    @routes.post(f"{prefix}/faults")
    async def add_fault(request: web.Request) -> web.Response:
        fault = parse_fault(await _json(request))
        server.faults.add(fault)
        return _ok(fault.to_dict())

    @routes.delete(f"{prefix}/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        server.faults.clear()
        return _ok({"faults": []})

    # ---------------------------------------------------------------- profile, phones, agents

    @routes.get(f"{prefix}/profile")
    async def get_profile(request: web.Request) -> web.Response:
        return _ok(model.profile.to_dict())

    @routes.post(f"{prefix}/profile")
    async def set_profile(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"name", "path", "profile"})
        given = [k for k in ("name", "path", "profile") if data.get(k) is not None]
        if len(given) != 1:
            raise ValidationError("name/path/profile", data, "give exactly one of them")
        source = data[given[0]]
        if given[0] == "profile" and not isinstance(source, dict):
            raise ValidationError("profile", source, "must be a JSON object of profile fields")
        await server.catch_up()
        model.load_profile(load_profile(source), clock.seconds())
        server.wake()
        return _ok(model.profile.to_dict())

    def phone_body(phone: str) -> dict[str, Any]:
        device = model.device(phone)
        now = clock.seconds()
        window = device.online_window(now)
        next_online = None
        if window is not None and math.isfinite(window[0]):
            next_online = stamp(window[0])
        return {
            "phone": phone,
            "rcsCapable": device.rcs_capable,
            "neverBack": device.never_back and device.pin.online != "always",
            "onlineNow": window is not None and window[0] <= now,
            "nextOnline": next_online,
            "pin": _pin_dict(device.pin, server),
        }

    @routes.get(prefix + "/phones/{phone}")
    async def get_phone(request: web.Request) -> web.Response:
        return _ok(phone_body(phone_from_path(request.match_info["phone"])))

    @routes.post(prefix + "/phones/{phone}")
    async def pin_phone(request: web.Request) -> web.Response:
        phone = phone_from_path(request.match_info["phone"])
        pin = parse_pin(await _json(request), clock.seconds(), clock.to_seconds)
        await server.catch_up()
        model.pin(phone, pin, clock.seconds())
        server.wake()
        return _ok(phone_body(phone))

    @routes.get(f"{prefix}/testers")
    async def get_testers(request: web.Request) -> web.Response:
        agent = validate_agent_id(request.query.get("agentId"))
        return _ok({"agentId": agent, "testers": model.testers(agent)})

    @routes.post(f"{prefix}/testers")
    async def add_testers(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"agentId", "phones"})
        phones = data.get("phones")
        if not isinstance(phones, list) or not phones:
            raise ValidationError("phones", phones, "must be a non-empty list of E.164 numbers")
        agent = validate_agent_id(data.get("agentId"))
        checked = [normalize_phone(p, f"phones[{i}]") for i, p in enumerate(phones)]
        return _ok({"agentId": agent, "testers": model.add_testers(agent, checked)})

    @routes.get(prefix + "/agents/{agentId}")
    async def get_agent(request: web.Request) -> web.Response:
        agent = validate_agent_id(request.match_info["agentId"])
        return _ok(
            {
                "agentId": agent,
                "launched": model.is_launched(agent),
                "testers": model.testers(agent),
            }
        )

    @routes.post(prefix + "/agents/{agentId}")
    async def set_agent(request: web.Request) -> web.Response:
        agent = validate_agent_id(request.match_info["agentId"])
        data = await _json(request)
        _only(data, {"launched"})
        if not isinstance(data.get("launched"), bool):
            raise ValidationError("launched", data.get("launched"), "must be true or false")
        model.set_launched(agent, data["launched"])
        return _ok({"agentId": agent, "launched": model.is_launched(agent)})

    @routes.get(f"{prefix}/keys")
    async def get_keys(request: web.Request) -> web.Response:
        keys = [
            {"privateKeyId": k.key_id, "clientEmail": k.client_email} for k in server.issuer.trusted
        ]
        return _ok({"keys": keys})

    @routes.post(f"{prefix}/keys")
    async def trust_key(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"privateKeyId", "clientEmail", "publicKeyPem"})
        for field in ("privateKeyId", "clientEmail", "publicKeyPem"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise ValidationError(field, data.get(field), "must be a non-empty string")
        if "PRIVATE KEY" in data["publicKeyPem"]:
            raise ValidationError("publicKeyPem", "<hidden>", "must be a public key, not private")
        if "BEGIN PUBLIC KEY" not in data["publicKeyPem"]:
            raise ValidationError("publicKeyPem", data["publicKeyPem"][:40], "is not a PEM key")
        server.issuer.trust(
            TrustedKey(data["privateKeyId"], data["clientEmail"], data["publicKeyPem"])
        )
        return _ok({"trusted": True, "privateKeyId": data["privateKeyId"]})

    # ----------------------------------------------------------------- reset and read-outs

    @routes.post(f"{prefix}/reset")
    async def reset(request: web.Request) -> web.Response:
        model.reset()
        dispatcher.clear()
        server.faults.clear()
        server.sms.clear()
        return _ok({"reset": True, **clock_body()})

    # ------------------------------------------------------------------ the SMS sink

    @routes.get(f"{prefix}/sms")
    async def list_sms(request: web.Request) -> web.Response:
        phone = request.query.get("phone")
        message_id = request.query.get("messageId")
        found = server.sms.arrivals(None if phone is None else phone.replace(" ", "+"))
        if message_id is not None:
            found = [a for a in found if a.message_id == message_id]
        return _ok({"arrivals": [a.to_dict() for a in found], "duplicates": server.sms.duplicates})

    @routes.post(f"{prefix}/sms")
    async def receive_sms(request: web.Request) -> web.Response:
        data = await _json(request)
        _only(data, {"phone", "text", "messageId"})
        arrival, duplicate = server.sms.receive(
            data.get("phone"), data.get("text"), data.get("messageId")
        )
        return _ok({"arrival": arrival.to_dict(), "duplicate": duplicate})

    @routes.get(f"{prefix}/stats")
    async def stats(request: web.Request) -> web.Response:
        return _ok(server.stats())

    @routes.get(f"{prefix}/messages")
    async def list_messages(request: web.Request) -> web.Response:
        offset = _int_query(request, "offset", 0, 10**9)
        limit = _int_query(request, "limit", 1000, MAX_LISTED)
        agent = request.query.get("agentId")
        phone = request.query.get("phone")
        selected = model.messages(
            agent_id=None if agent is None else validate_agent_id(agent),
            phone=None if phone is None else normalize_phone(phone.replace(" ", "+"), "phone"),
            state=request.query.get("state"),
        )
        page, total = [], 0
        for msg in selected:
            if offset <= total < offset + limit:
                page.append(model.describe(msg))
            total += 1
        next_offset = offset + len(page) if offset + len(page) < total else None
        return _ok({"messages": page, "total": total, "nextOffset": next_offset})

    @routes.get(prefix + "/messages/{messageId}")
    async def get_message(request: web.Request) -> web.Response:
        agent = request.query.get("agentId")
        message_id = request.match_info["messageId"]
        if agent is not None:
            one = model.message(validate_agent_id(agent), message_id)
            found = [one] if one is not None else []
        else:
            found = [m for m in model.messages() if m.message_id == message_id]
        if not found:
            return error_answer(404, f"No message {message_id!r} is known")
        if len(found) > 1:
            return error_answer(400, f"Several agents used {message_id!r}; give agentId")
        return _ok(model.describe(found[0]))

    app.router.add_routes(routes)
