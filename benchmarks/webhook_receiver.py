"""Benchmark: verified, durably acknowledged webhook events per second, and ack latency.

The receiver runs as ``rbmtools webhook serve`` in its own process; this script is the load
generator: 64 concurrent senders POST pre-signed Pub/Sub pushes over loopback and time each
200 (which the receiver only sends after the event's line is fsynced). Reported: events/s
(median of the runs), p50/p99 ack latency, the fsync batch sizes the receiver observed, its CPU
per event, and two comparisons measured in the same run: a bare aiohttp server that answers
200 without doing anything (the HTTP ceiling on this machine) and the receiver with one fsync
per event (what group commit buys). Target: >= 3,000 events/s on 2 cores.

    .venv/bin/python benchmarks/webhook_receiver.py [--quick] [--events N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rbmtools.webhook.loadgen import SignedLoad, sample_events

TARGET_EVENTS_PER_SECOND = 3_000
CONCURRENCY = 64
TOKEN = "benchmark-client-token"  # noqa: S105 (a throwaway token for local load)
OUT = Path(__file__).resolve().parent / "out" / "webhook_receiver.json"
TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def start_receiver(log_dir: str, port: int) -> subprocess.Popen:
    """The real command line, exactly as a user runs it."""
    command = [sys.executable, "-m", "rbmtools", "webhook", "serve"]
    command += ["--port", str(port), "--log-dir", log_dir]
    env = dict(os.environ, RBM_CLIENT_TOKEN=TOKEN)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def start_child(mode: str, log_dir: str, port: int) -> subprocess.Popen:
    """A comparison server in its own process (this script, re-invoked in child mode)."""
    command = [sys.executable, __file__, "--child", mode, "--port", str(port), "--log-dir", log_dir]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def run_child(mode: str, port: int, log_dir: str) -> None:
    import asyncio

    from aiohttp import web

    from rbmtools.webhook import ReceiverServer

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if mode == "bare":

            async def ok(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(status=200)

            async def health(request: web.Request) -> web.Response:
                return web.json_response({"status": "ok"})

            app = web.Application()
            app.router.add_post("/", ok)
            app.router.add_get("/healthz", health)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
            await stop.wait()
            await runner.cleanup()
        else:  # "fsync-per-event"
            server = ReceiverServer(log_dir, client_token=TOKEN, port=port, max_batch=1)
            await server.start()
            await stop.wait()
            await server.stop()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def stats_of(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/stats", timeout=5) as answer:  # noqa: S310
        return json.load(answer)


# ------------------------------------------------------------------------------ one run


def measure(kind: str, events: int, seed: int) -> dict:
    """Start one server, warm it up, push ``events`` signed events, collect the figures."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="rbm-bench-") as log_dir:
        if kind == "receiver":
            process = start_receiver(log_dir, port)
        else:
            process = start_child(kind, log_dir, port)
        try:
            wait_healthy(base_url, process)
            SignedLoad(base_url + "/", TOKEN, sample_events(500, seed=seed + 1000)).run()
            before = stats_of(base_url) if kind != "bare" else None
            load = SignedLoad(
                base_url + "/",
                TOKEN,
                sample_events(events, seed=seed),
                concurrency=CONCURRENCY,
                retry=False,
            )
            cpu_start = cpu_seconds(process.pid)
            load.run()
            cpu = cpu_seconds(process.pid) - cpu_start
            after = stats_of(base_url) if kind != "bare" else None
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    latencies = sorted(load.latencies)
    figures = {
        "kind": kind,
        "events": events,
        "acked": len(load.acked),
        "failed": sum(load.failures.values()),
        "seconds": load.elapsed,
        "events_per_second": len(load.acked) / load.elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "server_cpu_ms_per_event": 1000 * cpu / max(1, len(load.acked)),
        "server_cpu_share": cpu / load.elapsed,
    }
    if before is not None and after is not None:
        batches = after["fsync_batches"] - before["fsync_batches"]
        figures["fsync_batches"] = batches
        figures["events_per_fsync_mean"] = (after["accepted"] - before["accepted"]) / max(
            1, batches
        )
        figures["events_per_fsync_max"] = after["events_per_batch_max"]
        figures["batch_histogram"] = {
            bucket: after["events_per_batch_histogram"][bucket]
            - before["events_per_batch_histogram"][bucket]
            for bucket in after["events_per_batch_histogram"]
        }
    return figures


def show(figures: dict) -> str:
    text = (
        f"{figures['kind']:>16}: {figures['events_per_second']:7.0f} events/s   "
        f"p50 {figures['p50_ms']:6.1f} ms   p99 {figures['p99_ms']:6.1f} ms   "
        f"server CPU {figures['server_cpu_ms_per_event']:.3f} ms/event "
        f"({100 * figures['server_cpu_share']:.0f}% of a core)"
    )
    if "events_per_fsync_mean" in figures:
        text += f"   {figures['events_per_fsync_mean']:.1f} events/fsync"
    if figures["failed"]:
        text += f"   FAILED {figures['failed']}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--events", type=int, help="events per run (default 20,000)")
    parser.add_argument("--runs", type=int, help="runs of the receiver (default 3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.port, args.log_dir)
        return 0
    events = args.events or (3_000 if args.quick else 20_000)
    runs = args.runs or (1 if args.quick else 3)
    print(
        f"webhook receiver: {events} verified events x {runs} runs, {CONCURRENCY} concurrent "
        f"senders, receiver in its own process ({os.cpu_count()} CPUs, shared: figures are noisy)"
    )
    results = []
    for run in range(runs):
        figures = measure("receiver", events, seed=run)
        results.append(figures)
        print(show(figures), flush=True)
    bare = measure("bare", events, seed=99)
    print(show(bare), flush=True)
    per_event = measure("fsync-per-event", events, seed=98)
    print(show(per_event), flush=True)

    median_rate = statistics.median(r["events_per_second"] for r in results)
    median_p50 = statistics.median(r["p50_ms"] for r in results)
    median_p99 = statistics.median(r["p99_ms"] for r in results)
    histogram: dict[str, int] = {}
    for result in results:
        for bucket, count in result["batch_histogram"].items():
            histogram[bucket] = histogram.get(bucket, 0) + count
    print()
    print(f"median events/s (verified, fsynced, acknowledged): {median_rate:.0f}")
    print(f"median ack latency: p50 {median_p50:.1f} ms, p99 {median_p99:.1f} ms")
    print(
        "fsync batch sizes (events per fsync, all runs): "
        + ", ".join(f"{bucket}: {count}" for bucket, count in histogram.items() if count)
    )
    cpu_per_event = statistics.median(r["server_cpu_ms_per_event"] for r in results)
    print(
        f"receiver CPU per event: {cpu_per_event:.3f} ms, i.e. about "
        f"{1000 / cpu_per_event:.0f} events/s per core it has to itself (less noisy than events/s)"
    )
    print(
        f"ratios in this run: receiver / bare aiohttp 200 = "
        f"{median_rate / bare['events_per_second']:.2f}; group commit / fsync per event = "
        f"{median_rate / per_event['events_per_second']:.2f}"
    )
    verdict = "MEETS" if median_rate >= TARGET_EVENTS_PER_SECOND else "BELOW"
    print(
        f"target >= {TARGET_EVENTS_PER_SECOND} events/s on 2 cores: {verdict} ({median_rate:.0f})"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"runs": results, "bare": bare, "fsync_per_event": per_event}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
