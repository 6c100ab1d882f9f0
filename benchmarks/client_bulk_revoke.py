"""Bulk revoke throughput of RbmClient against the emulator, at several concurrencies.

For each concurrency (1, 4, 16, 64) the script sends N messages to phones the emulator keeps
offline (so every revoke finds its message queued and answers 200), then revokes all N with
``revoke_many``-style bulk machinery and reports calls/s and per-call p50/p99 latency.

Two set-ups are measured in one run: the emulator in-process (a background thread of the same
Python process, as notebooks use it: client and emulator share one interpreter lock) and the
emulator as a separate ``rbmtools emulator serve`` process (as against a real platform).
Target: >= 800 calls/s on 2 cores. ``--quick`` runs a short smoke version.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from rbmtools.client import RbmClient, RetryPolicy
from rbmtools.client.bulk import run_rows
from rbmtools.emulator import Emulator
from rbmtools.emulator.admin_client import AdminClient
from rbmtools.experiment.schedule import MirroredClock

TARGET = 800.0
PHONES = [f"+1555000{i:04d}" for i in range(200)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def in_process():
    with Emulator(profile="always-online", speed=1.0, seed=1) as emu:
        yield emu


@contextmanager
def separate_process():
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.json"
        cmd = [sys.executable, "-m", "rbmtools", "emulator", "serve", "--port", str(port),
               "--key-file", str(key), "--profile", "always-online", "--speed", "1"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            admin = AdminClient(base)
            deadline = time.monotonic() + 60
            while True:
                try:
                    admin.clock()
                    break
                except Exception:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        message = proc.stderr.read().decode() if proc.stderr else ""
                        raise RuntimeError(message) from None
                    time.sleep(0.2)
            # the platform clock mirrored locally (one clock read every few seconds, not per call)
            yield SimpleNamespace(base_url=base, key_file=key, agent_id="bench-agent",
                                  admin=admin, clock=MirroredClock(admin))  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def measure(emu, count: int, concurrency: int) -> dict[str, float]:
    for phone in PHONES:
        emu.admin.pin_phone(phone, online="never")
    retry = RetryPolicy(max_attempts=3)
    with RbmClient.from_emulator(emu, retry=retry, pool_size=max(16, concurrency)) as client:
        rows = [{"phone": PHONES[i % len(PHONES)], "message_id": f"c{concurrency}-{i}",
                 "text": "benchmark"} for i in range(count)]  # fmt: skip
        client.send_many(rows, concurrency=16, progress=False)
        latencies: list[float] = []

        def revoke(row):
            started = time.perf_counter()
            result = client.revoke(row["phone"], row["message_id"])
            latencies.append(time.perf_counter() - started)
            return result.to_dict()

        started = time.perf_counter()
        frame = run_rows(revoke, rows, ["revoked", "error"], concurrency=concurrency,
                         progress=False)  # fmt: skip
        elapsed = time.perf_counter() - started
    assert frame["revoked"].all(), frame["error"].dropna().head()
    latencies.sort()
    return {
        "calls_per_s": count / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 revokes per level")
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    count = 2_000 if args.quick else args.count
    print(
        f"bulk revoke, {count} messages per level, {os.cpu_count()} CPUs; target >= {TARGET:.0f}/s"
    )
    for label, setup in (
        ("in-process emulator", in_process),
        ("emulator process", separate_process),
    ):
        with setup() as emu:
            best = 0.0
            for concurrency in (1, 4, 16, 64):
                emu.admin.reset()
                figures = measure(emu, count, concurrency)
                best = max(best, figures["calls_per_s"])
                print(f"  {label:20s} concurrency {concurrency:3d}: "
                      f"{figures['calls_per_s']:7.0f} calls/s  p50 {figures['p50_ms']:6.2f} ms  "
                      f"p99 {figures['p99_ms']:6.2f} ms")  # fmt: skip
            verdict = "meets" if best >= TARGET else "MISSES"
            print(f"  {label}: best {best:.0f} calls/s {verdict} the {TARGET:.0f}/s target")


if __name__ == "__main__":
    main()
