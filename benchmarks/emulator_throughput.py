"""Emulator throughput: API calls/s, signed webhooks pushed/s, and clock lag under load.

How it measures (three processes, so no part eats another's CPU more than it must):
- the emulator runs as ``rbmtools emulator serve`` in its own process;
- a webhook sink (aiohttp, verifying every X-Goog-Signature) runs in a second process;
- this process is the load generator: aiohttp clients with a google-auth bearer token.

Phases:
1. API: ``--concurrency`` clients send messages (10-minute TTL) and revoke every other one
   for ``--duration`` seconds at speed 600; the rate of each whole second is recorded and the
   median reported, with latency percentiles. Then the same again while the registered
   webhook hangs on every push (a slow webhook must not slow the API): the ratio is reported.
2. Webhooks: with the clock paused, N messages are sent, then the clock is advanced so that N
   DELIVERED events fall due at once; the time until the sink verified all N is measured.
3. Clock lag: with the clock paused, ``--messages`` messages with a 10-minute TTL are loaded
   (phones offline ~97 % of the time, so they wait, expire or are delivered late), spread over five
   platform minutes; then the clock runs at speed 600 with the webhook registered, and the
   emulator's lag (how far the applied transitions trail the clock, in real seconds) is
   sampled every 20 ms from the admin clock, next to the server's own maximum.

Targets on a 2-core machine (issue 3): >= 2,000 API calls/s, >= 2,000 webhooks/s, lag < 1 s.
Figures are noisy on a shared machine. ``--quick`` runs a short smoke version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from tqdm import tqdm

from rbmtools import wire

SINK_TOKEN = "benchmark-client-token"  # noqa: S105 (a test value)
AGENT = "bench-agent"
TEXT = {"contentMessage": {"text": "Your code is 123456"}, "ttl": "600s"}
# Phones that are offline about 97 % of the time (online spells of ~2 minutes between
# offline spells of ~1 hour): nearly every loaded message waits, and is then delivered when
# its phone comes back, or revoked by its expiry.
MOSTLY_OFFLINE = {
    "extends": "flaky-network",
    "devices": {
        "rcs_capable_share": 1.0,
        "never_back_share": 0.0,
        "online": {"median": "2m", "sigma": 0.5},
        "offline": {"median": "1h", "sigma": 1.0},
    },
}
TARGETS = {"api_calls_per_s": 2000.0, "webhooks_per_s": 2000.0, "lag_s": 1.0}


# ------------------------------------------------------------------------------ the sink


def _sink_main(port_out: Any, ready: Any) -> None:
    """A webhook that verifies every signature; GET /count?prefix=, POST /mode (ok|hang)."""
    state: dict[str, Any] = {"count": 0, "rejected": 0, "mode": "ok"}
    by_prefix: dict[str, int] = {}

    async def push(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        handshake = wire.parse_handshake(body)
        if handshake is not None:
            return web.Response(text=handshake[1])
        if state["mode"] == "hang":
            await asyncio.sleep(30)
            return web.Response(status=503)
        message = wire.parse_push(body)
        try:
            wire.verify_signature(
                message.data, request.headers.get(wire.SIGNATURE_HEADER), SINK_TOKEN
            )
        except Exception:
            state["rejected"] += 1
            return web.Response(status=401)
        state["count"] += 1
        prefix = str(message.event().get("messageId", "")).split("-", 1)[0]
        by_prefix[prefix] = by_prefix.get(prefix, 0) + 1
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.StreamResponse:
        prefix = request.query.get("prefix")
        total = state["count"] if prefix is None else by_prefix.get(prefix, 0)
        return web.json_response({"count": total, "rejected": state["rejected"]})

    async def mode(request: web.Request) -> web.StreamResponse:
        state["mode"] = request.query["mode"]
        return web.json_response(state)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/rbm", push)
        app.router.add_get("/count", count)
        app.router.add_post("/mode", mode)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_out.value = runner.addresses[0][1]
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


# ---------------------------------------------------------------------------- the server


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(key: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rbmtools",
            "emulator",
            "serve",
            "--port",
            "0",
            "--speed",
            "0",
            "--profile",
            "always-online",
            "--seed",
            "7",
            "--key-file",
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                raise SystemExit(f"the emulator did not start: {process.stderr.read()}") from None
            continue
        if "listening on" in line:
            return process, line.split("listening on", 1)[1].strip()
    raise SystemExit("the emulator did not start within 60 s")


# ------------------------------------------------------------------------------- helpers


class Load:
    def __init__(self, base: str, token: str, concurrency: int) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency + 8),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, f"{self.base}/emulator/v1{path}", json=body
        ) as response:
            data = await response.json()
            if response.status != 200:
                raise SystemExit(f"admin {path} failed: {data}")
            return data

    async def send(self, phone: str, message_id: str) -> int:
        async with self.session.post(
            self.base + wire.messages_path(phone),
            params={"messageId": message_id, "agentId": AGENT},
            json=TEXT,
            headers=self.headers,
        ) as response:
            await response.read()
            return response.status

    async def revoke(self, phone: str, message_id: str) -> int:
        async with self.session.delete(
            self.base + wire.revoke_path(phone, message_id),
            params={"agentId": AGENT},
            headers=self.headers,
        ) as response:
            await response.read()
            return response.status


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _api_phase(load: Load, duration: float, concurrency: int, tag: str) -> dict[str, Any]:
    """Send + revoke mix from ``concurrency`` clients; per-second rates and latencies."""
    started = time.monotonic()
    stop_at = started + duration
    seconds: dict[int, int] = {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client(index: int) -> None:
        n = 0
        previous: tuple[str, str] | None = None
        while time.monotonic() < stop_at:
            n += 1
            phone = f"+1{5550000000 + (index * 100_003 + n) % 10_000_000:010d}"
            message_id = f"{tag}-{index}-{n}"
            t0 = time.monotonic()
            status = await load.send(phone, message_id)
            t1 = time.monotonic()
            latencies.append(t1 - t0)
            statuses[status] = statuses.get(status, 0) + 1
            seconds[int(t1 - started)] = seconds.get(int(t1 - started), 0) + 1
            if previous is not None and n % 2 == 0:
                status = await load.revoke(*previous)
                t2 = time.monotonic()
                latencies.append(t2 - t1)
                statuses[status] = statuses.get(status, 0) + 1
                seconds[int(t2 - started)] = seconds.get(int(t2 - started), 0) + 1
            previous = (phone, message_id)

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    full = [count for second, count in seconds.items() if second < int(duration)]
    return {
        "calls": sum(seconds.values()),
        "elapsed_s": round(elapsed, 2),
        "calls_per_s_median": statistics.median(full) if full else 0.0,
        "calls_per_s_overall": round(sum(seconds.values()) / elapsed, 1),
        "latency_ms_p50": round(_pct(latencies, 0.5) * 1000, 2),
        "latency_ms_p99": round(_pct(latencies, 0.99) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def _send_many(load: Load, count: int, tag: str, concurrency: int, bar: str) -> float:
    """Send ``count`` messages with ``concurrency`` clients; returns calls/s."""
    counter = iter(range(count))
    progress = tqdm(total=count, desc=bar, unit="msg", leave=False, mininterval=0.5)

    async def client() -> None:
        for i in counter:
            phone = f"+1{4440000000 + i:010d}"
            status = await load.send(phone, f"{tag}-{i}")
            if status != 200:
                raise SystemExit(f"send answered {status}")
            progress.update(1)

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    progress.close()
    return count / (time.monotonic() - started)


async def _sink_count(
    session: aiohttp.ClientSession, sink: str, prefix: str | None = None
) -> dict[str, int]:
    params = {} if prefix is None else {"prefix": prefix}
    async with session.get(f"{sink}/count", params=params) as response:
        return await response.json()


# --------------------------------------------------------------------------------- phases


async def run(args: argparse.Namespace, base: str, token: str, sink: str, pid: int) -> dict:
    load = Load(base, token, args.concurrency)
    results: dict[str, Any] = {}
    try:
        if "api" in args.phases:
            results.update(await _phase_api(args, load, sink, pid))
        if "webhooks" in args.phases:
            results.update(await _phase_webhooks(args, load, sink, pid))
        if "lag" in args.phases:
            results.update(await _phase_lag(args, load, sink, pid))
    finally:
        await load.session.close()
    return results


async def _phase_api(args: argparse.Namespace, load: Load, sink: str, pid: int) -> dict:
    """1. API throughput, then the same with a hanging webhook."""
    results: dict[str, Any] = {}
    await load.admin("POST", "/clock/speed", {"speed": 600})
    await _api_phase(load, 1.0, args.concurrency, "warm")
    cpu0 = _cpu_seconds(pid)
    api = await _api_phase(load, args.duration, args.concurrency, "api")
    api["server_cpu_s"] = round(_cpu_seconds(pid) - cpu0, 2)
    api["calls_per_server_cpu_s"] = round(api["calls"] / max(api["server_cpu_s"], 1e-9), 1)
    results["api"] = api

    async with load.session.post(f"{sink}/mode", params={"mode": "hang"}):
        pass
    await load.admin("POST", "/webhook", {"url": f"{sink}/rbm", "clientToken": SINK_TOKEN})
    hung = await _api_phase(load, args.duration, args.concurrency, "hung")
    stats = await load.admin("GET", "/stats")
    hung["webhook_backlog_at_end"] = stats["webhook"]["backlog"]
    results["api_with_hanging_webhook"] = hung
    async with load.session.post(f"{sink}/mode", params={"mode": "ok"}):
        pass
    await load.admin("DELETE", "/webhook")
    return results


async def _phase_webhooks(args: argparse.Namespace, load: Load, sink: str, pid: int) -> dict:
    """2. Signed webhooks pushed/s from a burst of due events."""
    results: dict[str, Any] = {}
    await load.admin("POST", "/clock/speed", {"speed": 0})
    await load.admin("POST", "/reset")
    await load.admin(
        "POST",
        "/profile",
        {"profile": {"extends": "always-online", "read": {"probability": 0.0}}},
    )
    n = args.webhooks
    await _send_many(load, n, "wh", args.concurrency, "loading webhook events")
    await load.admin("POST", "/webhook", {"url": f"{sink}/rbm", "clientToken": SINK_TOKEN})
    before = (await _sink_count(load.session, sink, "wh"))["count"]
    cpu0 = _cpu_seconds(pid)
    started = time.monotonic()
    await load.admin("POST", "/clock/advance", {"seconds": 60})
    progress = tqdm(total=n, desc="webhooks", unit="push", leave=False, mininterval=0.5)
    done = 0
    while done < n and time.monotonic() - started < 300:
        await asyncio.sleep(0.05)
        done = (await _sink_count(load.session, sink, "wh"))["count"] - before
        progress.n = done
        progress.refresh()
    progress.close()
    elapsed = time.monotonic() - started
    results["webhooks"] = {
        "events": n,
        "verified_at_sink": done,
        "elapsed_s": round(elapsed, 2),
        "pushes_per_s": round(done / elapsed, 1),
        "server_cpu_s": round(_cpu_seconds(pid) - cpu0, 2),
        "rejected_at_sink": (await _sink_count(load.session, sink))["rejected"],
    }
    return results


async def _phase_lag(args: argparse.Namespace, load: Load, sink: str, pid: int) -> dict:
    """3. Clock lag with --messages in flight at speed 600."""
    results: dict[str, Any] = {}
    await load.admin("POST", "/clock/speed", {"speed": 0})
    await load.admin("DELETE", "/webhook")
    await load.admin("POST", "/reset")
    await load.admin(
        "POST",
        "/profile",
        {"profile": MOSTLY_OFFLINE},
    )
    total, batch = args.messages, 1000
    steps = max(1, total // batch)
    step_seconds = 300.0 / steps
    progress = tqdm(total=total, desc="loading in-flight messages", unit="msg", leave=False)
    sent = 0
    load_started = time.monotonic()
    while sent < total:
        size = min(batch, total - sent)
        counter = iter(range(sent, sent + size))

        async def client(counter=counter) -> None:
            for i in counter:
                status = await load.send(f"+1{3330000000 + i:010d}", f"lag-{i}")
                if status != 200:
                    raise SystemExit(f"send answered {status}")

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        sent += size
        progress.update(size)
        await load.admin("POST", "/clock/advance", {"seconds": step_seconds})
    progress.close()
    load_rate = total / (time.monotonic() - load_started)
    stats = await load.admin("GET", "/stats")
    in_flight = stats["messages"]["queued"]
    await load.admin("POST", "/webhook", {"url": f"{sink}/rbm", "clientToken": SINK_TOKEN})
    await load.admin("GET", "/stats")  # resets the server's max-lag window
    cpu0 = _cpu_seconds(pid)
    await load.admin("POST", "/clock/speed", {"speed": 600})
    lags, round_trips = [], []
    started = time.monotonic()
    while time.monotonic() - started < args.lag_window:
        t0 = time.monotonic()
        clock = await load.admin("GET", "/clock")
        round_trips.append(time.monotonic() - t0)
        lags.append(clock["lagSeconds"])
        await asyncio.sleep(0.02)
    stats = await load.admin("GET", "/stats")
    results["clock_lag"] = {
        "messages_loaded": total,
        "in_flight_at_start": in_flight,
        "load_sends_per_s": round(load_rate, 1),
        "window_s": args.lag_window,
        "platform_minutes_run": round(args.lag_window * 10, 1),
        "lag_s_p50": round(_pct(lags, 0.5), 4),
        "lag_s_p99": round(_pct(lags, 0.99), 4),
        "lag_s_max_sampled": round(max(lags), 4),
        "lag_s_max_server": stats["maxLagSeconds"],
        "clock_round_trip_ms_p50": round(_pct(round_trips, 0.5) * 1000, 2),
        "clock_round_trip_ms_p99": round(_pct(round_trips, 0.99) * 1000, 2),
        "messages_by_state_after": stats["messages"],
        "webhook_backlog_after": stats["webhook"]["backlog"],
        "webhook_sent_during_window": stats["webhook"]["sent"],
        "server_cpu_s": round(_cpu_seconds(pid) - cpu0, 2),
        "gc_freezes": stats["gcFreezes"],
    }
    return results


def _report(results: dict[str, Any], quick: bool) -> None:
    rows = []
    api, hung = results.get("api"), results.get("api_with_hanging_webhook")
    hooks, lag = results.get("webhooks"), results.get("clock_lag")
    if api:
        value = api["calls_per_s_median"]
        target = TARGETS["api_calls_per_s"]
        rows.append(
            ("API calls/s (median of 1-s windows)", value, f">= {target:.0f}", value >= target)
        )
    if hooks:
        value, target = hooks["pushes_per_s"], TARGETS["webhooks_per_s"]
        rows.append(("signed webhooks pushed/s", value, f">= {target:.0f}", value >= target))
    if lag:
        value = max(lag["lag_s_max_sampled"], lag["lag_s_max_server"])
        name = f"clock lag, worst (s), {lag['in_flight_at_start']} in flight"
        rows.append((name, value, f"< {TARGETS['lag_s']:.0f}", value < TARGETS["lag_s"]))
    print(
        "\nrbmtools emulator benchmark"
        + (" (--quick: smoke run, not the targets)" if quick else "")
    )
    print(json.dumps(results, indent=2))
    print(f"\n{'measure':52} {'value':>10}  {'target':>8}  verdict")
    for name, value, target, ok in rows:
        print(f"{name:52} {value:>10}  {target:>8}  {'met' if ok else 'MISSED'}")
    if api:
        per_cpu = api["calls_per_server_cpu_s"]
        print(f"{'API calls per emulator CPU-second (less noise-prone)':52} {per_cpu:>10}")
    if hooks:
        per_cpu = round(hooks["verified_at_sink"] / max(hooks["server_cpu_s"], 1e-9), 1)
        print(f"{'webhooks per emulator CPU-second':52} {per_cpu:>10}")
    if api and hung:
        ratio = hung["calls_per_s_median"] / max(api["calls_per_s_median"], 1e-9)
        print(f"{'API rate with a hanging webhook / without (ratio)':52} {ratio:>10.2f}  {'~1':>8}")
        print(
            f"{'API p99 latency (ms): plain / hanging webhook':52} "
            f"{api['latency_ms_p99']:>5} / {hung['latency_ms_p99']}"
        )
    print(
        "\nThree processes (emulator, sink, load generator) on this machine; "
        f"{os.cpu_count()} CPUs, shared with other work: figures are noisy."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--duration", type=float, default=None, help="API phase seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent API clients")
    parser.add_argument("--webhooks", type=int, default=None, help="events for the push phase")
    parser.add_argument("--messages", type=int, default=None, help="in-flight messages")
    parser.add_argument("--lag-window", type=float, default=None, help="seconds sampled")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--phases", default="api,webhooks,lag", help="comma-separated subset of api,webhooks,lag"
    )
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.webhooks = args.webhooks or (2000 if args.quick else 20_000)
    args.messages = args.messages or (5000 if args.quick else 100_000)
    args.lag_window = args.lag_window or (1.5 if args.quick else 3.0)
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = args.phases - {"api", "webhooks", "lag"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    context = multiprocessing.get_context("spawn")
    port, ready = context.Value("i", 0), context.Event()
    sink_process = context.Process(target=_sink_main, args=(port, ready), daemon=True)
    sink_process.start()
    if not ready.wait(30):
        raise SystemExit("the webhook sink did not start")
    sink = f"http://127.0.0.1:{port.value}"
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "key.json"
        server, base = _start_server(key)
        try:
            credentials = service_account.Credentials.from_service_account_file(
                str(key), scopes=[wire.SCOPE]
            )
            credentials.refresh(Request())
            results = asyncio.run(run(args, base, credentials.token, sink, server.pid))
        finally:
            server.terminate()
            server.wait(30)
            sink_process.terminate()
    _report(results, args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
