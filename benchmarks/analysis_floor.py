"""The whole ``rbmtools analyze`` against its floor and against plain Python (issue 16).

Data (generated once, cached under ``benchmarks/out/``): a log in the shapes users really have,
from ``rbmtools.testing.synthetic``: 800,000 messages, about 1.17 million event lines (40 %
receiver records, 30 % raw Pub/Sub push bodies with base64 data, 30 % bare decoded events;
times in mixed precisions and offsets: micro, milli, nano and whole seconds, ``+05:30`` and
``-08:00``, lower-case ``t``/``z``; 1 % duplicate deliveries; 2,000 garbage lines) and about
0.9 million outbox records.

Each run is its own process, timed from the outside (wall time, CPU time and peak RSS of that
process alone):

- the floor: one DuckDB query that reads both logs, decodes the push bodies, parses the times
  and groups by message id (the first DELIVERED per message; sends and revokes per message);
- the job: ``rbmtools analyze --events ... --outbox ... --json`` (grouped by useCase, 200
  bootstrap replicates for the best-TTL interval): the whole command, start to exit;
- plain Python: the same job written the straightforward way in one thread (``json.loads``
  per line, ``base64``, ``rbmtools.wire.parse_timestamp``, dictionaries per message, the same
  statistics functions on the bins it counts), whose outcome counts must equal the job's;
- ``rbmtools --version``, the start of the command.

The floor and the job alternate (``--repeat`` times each) so that other processes load both
alike; the figures are medians, the ratios taken within this run. Targets: the job at most 2x
its floor, at least 6x faster than plain Python; ``rbmtools --version`` at most 0.3 s.
``--quick`` runs a 60,000-message smoke version.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _timing import run_timed

OUT = Path(__file__).resolve().parent / "out"
DATA_VERSION = "v1"
TARGET_FLOOR_RATIO = 2.0
TARGET_PYTHON_RATIO = 6.0
TARGET_START_SECONDS = 0.3
RBMTOOLS = Path(sys.executable).with_name("rbmtools")


# ------------------------------------------------------------------------------ data


def mixed_config(messages: int):
    """The synthetic settings of the mixed-shape log (see the module docstring)."""
    from rbmtools.testing.synthetic import SyntheticConfig

    return SyntheticConfig(
        messages=messages,
        days=7.0,
        seed=16,
        read_share=0.47,
        other_events_per_message=0.13,
        duplicate_share=0.01,
        send_retry_share=0.05,
        shapes={"receiver": 0.4, "push": 0.3, "decoded": 0.3},
        time_styles={
            "micros": 0.35,
            "millis": 0.25,
            "nanos": 0.1,
            "seconds": 0.05,
            "offset": 0.1,
            "offset-millis": 0.1,
            "lower": 0.05,
        },
        garbage_lines=max(5, messages // 400),
        rotate_lines=250_000,
    )


def ensure_data(messages: int) -> Path:
    folder = OUT / f"analysis-mixed-{DATA_VERSION}-{messages}"
    marker = folder / "done.json"
    if marker.exists():
        return folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    from rbmtools.testing.synthetic import generate_logs

    print(f"generating the mixed-shape log of {messages:,} messages under {folder}", flush=True)
    logs = generate_logs(folder, mixed_config(messages), progress=True)
    size = sum(f.stat().st_size for f in logs.events_dir.rglob("*.jsonl"))
    outbox = sum(f.stat().st_size for f in logs.outbox_dir.rglob("*.jsonl"))
    marker.write_text(json.dumps({**logs.counts, "event_bytes": size, "outbox_bytes": outbox}))
    return folder


# ------------------------------------------------------------------------------ the floor

FLOOR_SQL = """
WITH raw AS (
    SELECT event, messageId, eventType, sendTime, message FROM read_json(
        '{events}/**/*.jsonl', format = 'newline_delimited', ignore_errors = true,
        columns = {{event: 'STRUCT(messageId VARCHAR, eventType VARCHAR, sendTime VARCHAR)',
                   messageId: 'VARCHAR', eventType: 'VARCHAR', sendTime: 'VARCHAR',
                   message: 'STRUCT(data VARCHAR)'}})
), decoded AS (
    SELECT event, messageId, eventType, sendTime,
        CASE WHEN message.data IS NOT NULL THEN json_transform(
            TRY(decode(from_base64(message.data))),
            '{{"messageId": "VARCHAR", "eventType": "VARCHAR", "sendTime": "VARCHAR"}}')
        END AS push
    FROM raw
), events AS (
    SELECT COALESCE(event.messageId, messageId, push.messageId) AS mid,
        COALESCE(event.eventType, eventType, push.eventType) AS kind,
        TRY_CAST(COALESCE(event.sendTime, sendTime, push.sendTime) AS TIMESTAMPTZ) AS t,
        0 AS log
    FROM decoded
), outbox AS (
    SELECT messageId AS mid, kind, TRY_CAST(COALESCE(sendTime, requestedAt) AS TIMESTAMPTZ) AS t,
        1 AS log
    FROM read_json('{outbox}/**/*.jsonl', format = 'newline_delimited', ignore_errors = true,
        columns = {{kind: 'VARCHAR', messageId: 'VARCHAR', sendTime: 'VARCHAR',
                   requestedAt: 'VARCHAR'}})
), per_message AS (
    SELECT mid,
        MIN(t) FILTER (WHERE log = 0 AND kind = 'DELIVERED') AS first_delivered,
        COUNT(*) FILTER (WHERE log = 1 AND kind = 'send') AS sends,
        MIN(t) FILTER (WHERE log = 1 AND kind = 'send') AS sent_at,
        COUNT(*) FILTER (WHERE log = 1 AND kind = 'revoke') AS revokes
    FROM (SELECT * FROM events UNION ALL SELECT * FROM outbox)
    GROUP BY mid
)
SELECT COUNT(*) AS messages, COUNT(first_delivered) AS delivered, SUM(sends) AS sends,
    SUM(revokes) AS revokes
FROM per_message
"""


def run_floor(folder: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    query = FLOOR_SQL.format(events=folder / "events", outbox=folder / "outbox")
    print("FLOOR", json.dumps(con.execute(query).fetchall()[0], default=str))


# ------------------------------------------------------------------------------ plain Python


def run_python(folder: Path) -> None:
    """The whole job, the straightforward way: one thread, a dict per message."""
    import base64

    from rbmtools.analysis.latency import kaplan_meier
    from rbmtools.analysis.policy import DEFAULT_POLICIES
    from rbmtools.analysis.schema import bin_index
    from rbmtools.analysis.ttl import best_ttl
    from rbmtools.wire import parse_timestamp

    def when(text: object) -> float | None:
        try:
            return parse_timestamp(text).timestamp() if isinstance(text, str) else None
        except ValueError:
            return None

    seen: set[tuple] = set()
    first: dict[str, dict[str, float]] = {}
    last_time = 0.0
    for path in sorted((folder / "events").rglob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                received = when(record.get("receivedAt") or (record.get("message") or {}).get(
                    "publishTime"))  # fmt: skip
                event = record.get("event")
                if event is None and isinstance(record.get("message"), dict):
                    try:
                        event = json.loads(base64.b64decode(record["message"]["data"]))
                    except (ValueError, KeyError, TypeError):
                        continue
                event = event if isinstance(event, dict) else record
                mid, kind = event.get("messageId"), event.get("eventType")
                phone = event.get("senderPhoneNumber") or event.get("phoneNumber")
                stamp = when(event.get("sendTime"))
                if not (mid and kind and phone) or stamp is None:
                    continue
                key = (mid, event.get("eventId") or (kind, stamp))
                last_time = max(last_time, stamp, received or 0.0)
                if key in seen:
                    continue
                seen.add(key)
                times = first.setdefault(mid, {})
                if stamp < times.get(kind, float("inf")):
                    times[kind] = stamp
    messages: dict[str, dict] = {}
    for path in sorted((folder / "outbox").rglob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                mid, kind = record.get("messageId"), record.get("kind")
                message = messages.setdefault(mid, {"revokes": []})
                if kind == "send":
                    rank = {200: 0, 404: 1}.get(record.get("status"), 2)
                    stamp = when(record.get("sendTime"))
                    if stamp is None:
                        continue
                    last_time = max(last_time, stamp)
                    if (rank, stamp) < message.get("rank", (9, 0.0)):
                        message.update(rank=(rank, stamp), send=record, sent=stamp,
                                       expires=when(record.get("expireTime")))  # fmt: skip
                elif kind == "revoke":
                    stamp = when(record.get("requestedAt"))
                    if stamp is not None:
                        last_time = max(last_time, stamp)
                        message["revokes"].append((stamp, record.get("status")))
                elif kind == "fallback":
                    stamp = when(record.get("sentAt"))
                    last_time = max(last_time, stamp or 0.0)
    outcomes: dict[str, dict[str, int]] = {}
    bins: dict[str, dict[tuple[int, bool], int]] = {}
    for mid, message in messages.items():
        send = message.get("send")
        if send is None or send.get("status") not in (200, 404):
            continue
        use_case, sent = send.get("useCase"), message["sent"]
        times = first.get(mid, {})
        delivered = times.get("DELIVERED")
        ok = [t for t, status in message["revokes"] if status == 200]
        ok += [t for t in (times.get("TTL_EXPIRATION_REVOKED"),) if t is not None]
        revoked = min(ok) if ok else None
        refused = [t for t, status in message["revokes"] if status == 404]
        failed = times.get("TTL_EXPIRATION_REVOKE_FAILED")
        if send["status"] == 404:
            outcome = "not_rcs"
        elif delivered is not None and revoked is not None and revoked <= delivered:
            outcome = "delivered_after_revoke"
        elif delivered is not None:
            outcome = "delivered"
        elif revoked is not None:
            outcome = "revoked"
        elif refused or failed is not None:
            outcome = "revoke_failed_undelivered"
        else:
            outcome = "pending"
        counts = outcomes.setdefault(use_case, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == "not_rcs":
            continue
        if delivered is not None:
            seconds, hit = max(delivered - sent, 0.0), True
        else:
            ends = [t for t in (revoked, min(refused) if refused else None, failed) if t]
            ends.append(message["expires"] or last_time)
            seconds, hit = max(min(ends) - sent, 0.0), False
        key = (int(bin_index(seconds)), hit)
        group = bins.setdefault(use_case, {})
        group[key] = group.get(key, 0) + 1
    import pandas as pd

    ttls = {}
    for use_case, counted in bins.items():
        table = (
            pd.DataFrame(
                [
                    {"bin": b, "delivered": n if hit else 0, "censored": 0 if hit else n}
                    for (b, hit), n in counted.items()
                ]
            )
            .groupby("bin", as_index=False)
            .sum()
        )
        curve = kaplan_meier(table)
        counts = outcomes[use_case]
        choice = best_ttl(
            curve, table, DEFAULT_POLICIES.get(use_case),
            race_delivered=counts.get("delivered_after_revoke", 0),
            race_revokes=counts.get("revoked", 0) + counts.get("delivered_after_revoke", 0),
            bootstrap=200,
        )  # fmt: skip
        ttls[use_case] = choice.seconds
    print("PYTHON", json.dumps({"outcomes": outcomes, "best_ttl": ttls}))


# ------------------------------------------------------------------------------ running


def _worker(kind: str, data: object) -> list[str]:
    return [sys.executable, __file__, "--worker", kind, "--data", str(data)]


def _job(folder: Path) -> list[str]:
    return [str(RBMTOOLS), "analyze", "--events", str(folder / "events"), "--outbox",
            str(folder / "outbox"), "--json"]  # fmt: skip


def _job_outcomes(stdout: str) -> dict:
    doc = json.loads(stdout)
    return {g["key"]["useCase"]: {k: v for k, v in g["outcomes"].items() if v}
            for g in doc["groups"]}  # fmt: skip


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=800_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and the job")
    parser.add_argument("--python-repeat", type=int, default=1, help="runs of plain Python")
    parser.add_argument("--quick", action="store_true", help="60,000 messages, one repeat")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "floor":
        return run_floor(Path(args.data))
    if args.worker == "python":
        return run_python(Path(args.data))
    if args.worker == "data":
        return print(ensure_data(int(args.data)))
    if args.quick:
        args.messages, args.repeat = 60_000, 1
    # (the data are made in a process of their own: this one stays small, so the peak RSS
    # each child inherits from it at fork is small too)
    made = subprocess.run(_worker("data", args.messages), stdout=subprocess.PIPE, check=True)
    folder = Path(made.stdout.decode().strip().splitlines()[-1])
    info = json.loads((folder / "done.json").read_text())
    print(
        f"data: {info['lines']:,} event lines ({info['event_bytes'] / 1e6:.0f} MB), "
        f"{info['outbox_records']:,} outbox records ({info['outbox_bytes'] / 1e6:.0f} MB), "
        f"{args.messages:,} messages; {os.cpu_count()} CPUs",
        flush=True,
    )
    runs: dict[str, list[dict]] = {"floor": [], "job": [], "python": [], "version": []}
    for _ in range(args.repeat):
        for kind, command in (("floor", _worker("floor", folder)), ("job", _job(folder))):
            result = run_timed(command)
            runs[kind].append(result)
            print(f"  {kind}: {result['seconds']:.2f} s, {result['cpu_seconds']:.1f} CPU s, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    for _ in range(args.python_repeat):
        result = run_timed(_worker("python", folder))
        runs["python"].append(result)
        print(f"  plain Python: {result['seconds']:.2f} s", flush=True)
    for _ in range(5):
        runs["version"].append(run_timed([str(RBMTOOLS), "--version"]))
    floor, job = _median(runs["floor"], "seconds"), _median(runs["job"], "seconds")
    python = _median(runs["python"], "seconds")
    start = _median(runs["version"], "seconds")
    python_doc = json.loads(runs["python"][0]["stdout"].split("PYTHON ", 1)[1])
    same = python_doc["outcomes"] == _job_outcomes(runs["job"][0]["stdout"])
    print(f"\n{'run':16} {'runs':>4} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    for kind, label in (("floor", "floor query"), ("job", "rbmtools analyze"),
                        ("python", "plain Python"), ("version", "rbmtools --version")):  # fmt: skip
        print(f"{label:16} {len(runs[kind]):>4} {_median(runs[kind], 'seconds'):>8.2f} "
              f"{_median(runs[kind], 'cpu_seconds'):>8.2f} "
              f"{max(r['peak_rss_mb'] for r in runs[kind]):>12.0f}")  # fmt: skip
    print(f"outcome counts of plain Python equal the job's: {same}")
    rows = [
        ("analyze / floor (wall)", f"{job / floor:.2f}x", f"<= {TARGET_FLOOR_RATIO}x",
         job / floor <= TARGET_FLOOR_RATIO),
        ("plain Python / analyze (wall)", f"{python / job:.2f}x", f">= {TARGET_PYTHON_RATIO}x",
         python / job >= TARGET_PYTHON_RATIO),
        ("rbmtools --version", f"{start:.3f} s", f"<= {TARGET_START_SECONDS} s",
         start <= TARGET_START_SECONDS),
    ]  # fmt: skip
    print(f"\n{'figure':32} {'measured':>10} {'target':>10}  met")
    for name, value, target, met in rows:
        print(f"{name:32} {value:>10} {target:>10}  {'yes' if met else 'NO'}")
    print("(each ratio from this run; other processes on the machine load both sides alike)")


if __name__ == "__main__":
    main()
