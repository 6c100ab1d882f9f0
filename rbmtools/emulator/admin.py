"""The admin surface under ``/emulator/v1``: steer the emulator from tests, notebooks and scripts.

Kept apart from the RBM API (no OAuth, strict JSON in and out, errors in Google's envelope). It
reads and steps the clock, registers the webhook (running the handshake), loads profiles, pins a
phone's behaviour, adds testers, launches or unlaunches agents and sets their use case, injects
API and webhook faults, trusts extra keys, resets, and reports stats and the list of messages
with their states. ``/sms`` is the SMS sink: POST an SMS (``phone``, ``text``, ``messageId``),
GET what arrived and when. ``rbmtools.emulator.AdminClient`` wraps every route for Python.

Every handler is a module-level function that finds the running ``EmulatorServer`` in
``request.app``; the routes are grouped below one section per resource.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rbmtools.emulator.auth import TrustedKey
from rbmtools.emulator.clock import MAX_DURATION
from rbmtools.emulator.devices import DevicePin
from rbmtools.emulator.dispatch import RegistrationError
from rbmtools.emulator.faults import parse_fault
from rbmtools.emulator.profiles import load_profile, load_profile_file, profile_names
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

__all__ = ["ADMIN_PREFIX", "SERVER_KEY", "add_admin_routes", "parse_pin"]

ADMIN_PREFIX = "/emulator/v1"
MAX_LISTED = 100_000
SERVER_KEY: web.AppKey[EmulatorServer] = web.AppKey("rbmtools.emulator.server")

routes = web.RouteTableDef()


def add_admin_routes(app: web.Application, server: EmulatorServer) -> None:
    """Register every admin route on ``app``, serving ``server``."""
    app[SERVER_KEY] = server
    app.router.add_routes(routes)


# ------------------------------------------------------------------------------- plumbing


def _server(request: web.Request) -> EmulatorServer:
    return request.app[SERVER_KEY]


def _ok(body: Any) -> web.Response:
    return json_answer(200, body)


async def _json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, strictly parsed (the admin surface is not Google's API)."""
    raw = await request.read()
    if not raw.strip():
        raise ValidationError("body", "", "a JSON object is required")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValidationError("body", f"{len(raw)} bytes", "is not a JSON object") from None
    if not isinstance(data, dict):
        raise ValidationError("body", type(data).__name__, "must be a JSON object")
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


def _bounded(value: object, field: str) -> float:
    """A duration for a pin or a fault: at most ``MAX_DURATION`` (no platform-time overflow)."""
    seconds = duration_seconds(value, field)
    if seconds > MAX_DURATION:
        raise ValidationError(field, value, f"must be at most {MAX_DURATION / 86_400:g} days")
    return seconds


def _stamp(server: EmulatorServer, seconds: float) -> str:
    return format_timestamp(server.clock.to_datetime(seconds))


# ---------------------------------------------------------------------------------- index


@routes.get(ADMIN_PREFIX)
async def index(request: web.Request) -> web.Response:
    paths = sorted(
        {
            f"{route.method} {route.resource.canonical}"
            for route in request.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith(ADMIN_PREFIX)
            and route.method != "HEAD"
        }
    )
    return _ok({"routes": paths, "profiles": profile_names()})


# ---------------------------------------------------------------------------------- clock


def _clock_body(server: EmulatorServer) -> dict[str, Any]:
    clock = server.clock
    now = clock.seconds()
    return {
        "now": _stamp(server, now),
        "speed": clock.speed,
        "start": format_timestamp(clock.start),
        "processedUntil": _stamp(server, server.model.processed_until(now)),
        "lagSeconds": round(server.lag_seconds(), 6),
    }


@routes.get(f"{ADMIN_PREFIX}/clock")
async def get_clock(request: web.Request) -> web.Response:
    return _ok(_clock_body(_server(request)))


@routes.post(f"{ADMIN_PREFIX}/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    server = _server(request)
    data = await _json(request)
    _only(data, {"seconds", "to"})
    if (data.get("seconds") is None) == (data.get("to") is None):
        raise ValidationError("seconds/to", data, "give exactly one of seconds or to")
    if data.get("to") is not None:
        step = server.clock.to_seconds(parse_timestamp(data["to"], "to")) - server.clock.seconds()
        if step < 0:
            raise ValidationError("to", data["to"], "is in the past of the platform clock")
    else:
        step = duration_seconds(data["seconds"], "seconds")
    server.clock.advance(step)  # refuses a step past the clock's horizon
    await server.catch_up()
    return _ok(_clock_body(server))


@routes.post(f"{ADMIN_PREFIX}/clock/speed")
async def set_speed(request: web.Request) -> web.Response:
    server = _server(request)
    data = await _json(request)
    _only(data, {"speed"})
    server.clock.set_speed(data.get("speed"))
    server.wake()
    return _ok(_clock_body(server))


# -------------------------------------------------------------------------------- webhook


def _webhook_body(server: EmulatorServer) -> dict[str, Any]:
    url = server.dispatcher.url
    return {"registered": url is not None, "url": url}


@routes.get(f"{ADMIN_PREFIX}/webhook")
async def get_webhook(request: web.Request) -> web.Response:
    return _ok(_webhook_body(_server(request)))


@routes.post(f"{ADMIN_PREFIX}/webhook")
async def register_webhook(request: web.Request) -> web.Response:
    server = _server(request)
    data = await _json(request)
    _only(data, {"url", "clientToken"})
    try:
        await server.register_webhook(data.get("url"), data.get("clientToken"))
    except RegistrationError as exc:
        return error_answer(400, str(exc))
    return _ok(_webhook_body(server))


@routes.delete(f"{ADMIN_PREFIX}/webhook")
async def unregister_webhook(request: web.Request) -> web.Response:
    server = _server(request)
    server.dispatcher.unregister()
    return _ok(_webhook_body(server))


@routes.get(f"{ADMIN_PREFIX}/webhook/idle")
async def webhook_idle(request: web.Request) -> web.Response:
    server = _server(request)
    text = request.query.get("timeout", "5")
    try:
        timeout = float(text)
    except ValueError:
        raise ValidationError("timeout", text, "must be a number of seconds") from None
    if not 0 <= timeout <= 600:
        raise ValidationError("timeout", timeout, "must be from 0 to 600 seconds")
    await server.catch_up()
    idle = await server.dispatcher.wait_idle(timeout)
    return _ok({"idle": idle, **server.dispatcher.stats()})


@routes.get(f"{ADMIN_PREFIX}/webhook/faults")
async def get_webhook_faults(request: web.Request) -> web.Response:
    return _ok({"faults": [f.to_dict() for f in _server(request).dispatcher.faults]})


@routes.post(f"{ADMIN_PREFIX}/webhook/faults")
async def add_webhook_fault(request: web.Request) -> web.Response:
    data = await _json(request)
    _only(data, {"kind", "count", "probability", "seconds"})
    seconds = data.get("seconds", 0.0)
    if isinstance(seconds, str):
        seconds = _bounded(seconds, "seconds")
    fault = _server(request).dispatcher.inject(
        data.get("kind"),
        count=data.get("count"),
        probability=data.get("probability"),
        seconds=seconds,
    )
    return _ok(fault.to_dict())


@routes.delete(f"{ADMIN_PREFIX}/webhook/faults")
async def clear_webhook_faults(request: web.Request) -> web.Response:
    _server(request).dispatcher.clear_faults()
    return _ok({"faults": []})


# ----------------------------------------------------------------------------- API faults


@routes.get(f"{ADMIN_PREFIX}/faults")
async def get_faults(request: web.Request) -> web.Response:
    return _ok({"faults": [f.to_dict() for f in _server(request).faults.list()]})


@routes.post(f"{ADMIN_PREFIX}/faults")
async def add_fault(request: web.Request) -> web.Response:
    fault = parse_fault(await _json(request))
    _server(request).faults.add(fault)
    return _ok(fault.to_dict())


@routes.delete(f"{ADMIN_PREFIX}/faults")
async def clear_faults(request: web.Request) -> web.Response:
    _server(request).faults.clear()
    return _ok({"faults": []})


# -------------------------------------------------------------------------------- profile


@routes.get(f"{ADMIN_PREFIX}/profile")
async def get_profile(request: web.Request) -> web.Response:
    return _ok(_server(request).model.profile.to_dict())


@routes.post(f"{ADMIN_PREFIX}/profile")
async def set_profile(request: web.Request) -> web.Response:
    """``{"name"}`` (a shipped profile), ``{"path"}`` (a .yaml/.yml/.json profile file; a
    file that is no profile is refused without repeating what it holds) or ``{"profile"}``."""
    server = _server(request)
    data = await _json(request)
    _only(data, {"name", "path", "profile"})
    given = [k for k in ("name", "path", "profile") if data.get(k) is not None]
    if len(given) != 1:
        raise ValidationError("name/path/profile", sorted(data), "give exactly one of them")
    kind, source = given[0], data[given[0]]
    if kind == "name":
        if source not in profile_names():
            raise ValidationError("name", source, f"must be one of {', '.join(profile_names())}")
        profile = load_profile(source)
    elif kind == "path":
        if not isinstance(source, str):
            raise ValidationError("path", type(source).__name__, "must be a file path")
        profile = load_profile_file(Path(source))
    else:
        if not isinstance(source, dict):
            raise ValidationError("profile", source, "must be a JSON object of profile fields")
        profile = load_profile(source)
    await server.catch_up()
    server.model.load_profile(profile, server.clock.seconds())
    server.wake()
    return _ok(server.model.profile.to_dict())


# --------------------------------------------------------------------------------- phones


def parse_pin(
    data: dict[str, Any], clock_seconds: float, to_seconds: Callable[[Any], float]
) -> DevicePin:
    """A ``DevicePin`` from the admin JSON (see ``pin_phone`` in the README)."""
    _only(data, {"rcsCapable", "online", "offlineUntil", "offlineFor", "latency", "readAfter"})
    rcs = data.get("rcsCapable")
    if rcs is not None and not isinstance(rcs, bool):
        raise ValidationError("rcsCapable", rcs, "must be true or false")
    online = data.get("online")
    if online is not None and online not in ("always", "never", "profile"):
        raise ValidationError("online", online, "must be 'always', 'never' or 'profile'")
    if data.get("offlineUntil") is not None and data.get("offlineFor") is not None:
        raise ValidationError(
            "offlineUntil/offlineFor", data["offlineFor"], "give at most one of them"
        )
    offline_until = None
    if data.get("offlineUntil") is not None:
        offline_until = to_seconds(parse_timestamp(data["offlineUntil"], "offlineUntil"))
        if offline_until - clock_seconds > MAX_DURATION:
            raise ValidationError(
                "offlineUntil", data["offlineUntil"], "must be at most 10 years ahead"
            )
    elif data.get("offlineFor") is not None:
        offline_until = clock_seconds + _bounded(data["offlineFor"], "offlineFor")
    latency = data.get("latency")
    latency_s = None if latency is None else _bounded(latency, "latency")
    read_after = data.get("readAfter")
    if read_after is None:
        read_s = None
    elif read_after == "never":
        read_s = math.inf
    else:
        read_s = _bounded(read_after, "readAfter")
    return DevicePin(rcs, online, offline_until, latency_s, read_s)


def _pin_dict(server: EmulatorServer, pin: DevicePin) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pin.rcs_capable is not None:
        out["rcsCapable"] = pin.rcs_capable
    if pin.online is not None:
        out["online"] = pin.online
    if pin.offline_until is not None:
        out["offlineUntil"] = _stamp(server, pin.offline_until)
    if pin.latency is not None:
        out["latency"] = pin.latency
    if pin.read_after is not None:
        out["readAfter"] = "never" if math.isinf(pin.read_after) else pin.read_after
    return out


def _phone_body(server: EmulatorServer, phone: str) -> dict[str, Any]:
    device = server.model.device(phone)
    now = server.clock.seconds()
    window = device.online_window(now)
    next_online = None
    if window is not None and math.isfinite(window[0]):
        next_online = _stamp(server, window[0])
    return {
        "phone": phone,
        "rcsCapable": device.rcs_capable,
        "neverBack": device.never_back and device.pin.online != "always",
        "onlineNow": window is not None and window[0] <= now,
        "nextOnline": next_online,
        "pin": _pin_dict(server, device.pin),
    }


@routes.get(ADMIN_PREFIX + "/phones/{phone}")
async def get_phone(request: web.Request) -> web.Response:
    phone = phone_from_path(request.match_info["phone"])
    return _ok(_phone_body(_server(request), phone))


@routes.post(ADMIN_PREFIX + "/phones/{phone}")
async def pin_phone(request: web.Request) -> web.Response:
    server = _server(request)
    phone = phone_from_path(request.match_info["phone"])
    pin = parse_pin(await _json(request), server.clock.seconds(), server.clock.to_seconds)
    await server.catch_up()
    server.model.pin(phone, pin, server.clock.seconds())
    server.wake()
    return _ok(_phone_body(server, phone))


# ------------------------------------------------------------------------ testers, agents


@routes.get(f"{ADMIN_PREFIX}/testers")
async def get_testers(request: web.Request) -> web.Response:
    agent = validate_agent_id(request.query.get("agentId"))
    return _ok({"agentId": agent, "testers": _server(request).model.testers(agent)})


@routes.post(f"{ADMIN_PREFIX}/testers")
async def add_testers(request: web.Request) -> web.Response:
    data = await _json(request)
    _only(data, {"agentId", "phones"})
    phones = data.get("phones")
    if not isinstance(phones, list) or not phones:
        raise ValidationError("phones", phones, "must be a non-empty list of E.164 numbers")
    agent = validate_agent_id(data.get("agentId"))
    checked = [normalize_phone(p, f"phones[{i}]") for i, p in enumerate(phones)]
    return _ok({"agentId": agent, "testers": _server(request).model.add_testers(agent, checked)})


def _agent_body(server: EmulatorServer, agent: str) -> dict[str, Any]:
    model = server.model
    return {
        "agentId": agent,
        "launched": model.is_launched(agent),
        "useCase": model.use_case(agent),
        "testers": model.testers(agent),
    }


@routes.get(ADMIN_PREFIX + "/agents/{agentId}")
async def get_agent(request: web.Request) -> web.Response:
    agent = validate_agent_id(request.match_info["agentId"])
    return _ok(_agent_body(_server(request), agent))


@routes.post(ADMIN_PREFIX + "/agents/{agentId}")
async def set_agent(request: web.Request) -> web.Response:
    """``{"launched": bool}`` and/or ``{"useCase": "OTP"|"TRANSACTIONAL"|...}``."""
    server = _server(request)
    agent = validate_agent_id(request.match_info["agentId"])
    data = await _json(request)
    _only(data, {"launched", "useCase"})
    if not data:
        raise ValidationError("launched/useCase", data, "give at least one of them")
    if "launched" in data:
        if not isinstance(data["launched"], bool):
            raise ValidationError("launched", data["launched"], "must be true or false")
        server.model.set_launched(agent, data["launched"])
    if "useCase" in data:
        server.model.set_use_case(agent, data["useCase"])
    return _ok(_agent_body(server, agent))


# ----------------------------------------------------------------------------------- keys


@routes.get(f"{ADMIN_PREFIX}/keys")
async def get_keys(request: web.Request) -> web.Response:
    trusted = _server(request).issuer.trusted
    keys = [{"privateKeyId": k.key_id, "clientEmail": k.client_email} for k in trusted]
    return _ok({"keys": keys})


@routes.post(f"{ADMIN_PREFIX}/keys")
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
    _server(request).issuer.trust(
        TrustedKey(data["privateKeyId"], data["clientEmail"], data["publicKeyPem"])
    )
    return _ok({"trusted": True, "privateKeyId": data["privateKeyId"]})


# ---------------------------------------------------------------------------------- reset


@routes.post(f"{ADMIN_PREFIX}/reset")
async def reset(request: web.Request) -> web.Response:
    server = _server(request)
    server.model.reset()
    server.dispatcher.clear()
    server.faults.clear()
    server.sms.clear()
    return _ok({"reset": True, **_clock_body(server)})


# ------------------------------------------------------------------------------- SMS sink


@routes.get(f"{ADMIN_PREFIX}/sms")
async def list_sms(request: web.Request) -> web.Response:
    sink = _server(request).sms
    phone = request.query.get("phone")
    message_id = request.query.get("messageId")
    found = sink.arrivals(None if phone is None else phone.replace(" ", "+"))
    if message_id is not None:
        found = [a for a in found if a.message_id == message_id]
    return _ok({"arrivals": [a.to_dict() for a in found], "duplicates": sink.duplicates})


@routes.post(f"{ADMIN_PREFIX}/sms")
async def receive_sms(request: web.Request) -> web.Response:
    data = await _json(request)
    _only(data, {"phone", "text", "messageId"})
    arrival, duplicate = _server(request).sms.receive(
        data.get("phone"), data.get("text"), data.get("messageId")
    )
    return _ok({"arrival": arrival.to_dict(), "duplicate": duplicate})


# ----------------------------------------------------------------------- stats, messages


@routes.get(f"{ADMIN_PREFIX}/stats")
async def stats(request: web.Request) -> web.Response:
    return _ok(_server(request).stats())


@routes.get(f"{ADMIN_PREFIX}/messages")
async def list_messages(request: web.Request) -> web.Response:
    model = _server(request).model
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


@routes.get(ADMIN_PREFIX + "/messages/{messageId}")
async def get_message(request: web.Request) -> web.Response:
    model = _server(request).model
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
