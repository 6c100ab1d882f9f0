"""Analysis at scale (issue 9): 100 million event lines as Parquet on DuckDB, and Spark beside it.

Data (generated once, cached under ``benchmarks/out/``): a seeded synthetic event log and outbox
in the realistic mix of ``rbmtools.testing.synthetic`` (receiver records, Pub/Sub push bodies
and bare events; duplicates, late and out-of-order arrival, replies, garbage lines), about 2
million event lines over 7 days, written as Parquet in the flat layout that ``Dataset.to_parquet``
and ``rbmtools logs compact`` produce. DuckDB then copies it into ``--replicas`` shards (50 by
default: 100 million event lines over 350 days), each shard's message and event ids suffixed and
its times shifted by 7 days per shard, so every message is distinct and the mix is the same.

Runs, each in its own process so that its peak RSS is its own; the job is the whole analysis
(load through the lifecycle rules to the summary, aggregates, statistics grouped by useCase and
arm, 200 bootstrap replicates); ``--lifecycle`` then also times building the per-message
lifecycle table of the 100M-line run (``Dataset.query`` on ``rbm_lifecycle``, counted in the
engine, not collected):

- DuckDB on all shards (the 100M-line target: under 60 s and under 4 GB peak RSS), with the
  DuckDB memory limit ``--memory-limit`` (default 3GB; DuckDB spills beyond it);
- DuckDB on the same 100M lines bucketed by message id (``--buckets``, default 32; the layout
  ``Dataset.to_parquet(..., buckets=K)`` writes, copied once from the shards and cached), which
  a load analyses bucket by bucket, with its outcome counts checked against the shards';
- DuckDB and Spark local mode (``local[2]``) on the first shards holding 10 million lines,
  reported side by side, with their outcome counts cross-checked.

The machine has 2 cores shared with other engineers: figures are noisy and Spark's more so.
``--quick`` runs a small smoke version (2 shards of ~100,000 lines).
"""

# ruff: noqa: S608 (queries built from paths of files this script generates)

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
DATA_VERSION = "v1"
BUCKETED_VERSION = "v2"  # v2: events about no message spread by their own id
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 4096.0
BY = ("useCase", "arm")
SHARD_DAYS = 7


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------ data


def _config(lines: int):
    from rbmtools.testing.synthetic import SyntheticConfig

    # the realistic mix of benchmarks/analysis_pipeline.py (about 1.9 event lines a message)
    return SyntheticConfig(
        messages=max(1_000, round(lines / 1.865)),
        days=float(SHARD_DAYS),
        seed=20261209,
        read_share=0.7,
        other_events_per_message=0.3,
        duplicate_share=0.03,
        rotate_lines=250_000,
        garbage_lines=20,
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cached(folder: Path) -> bool:
    """Whether ``folder`` holds finished data (its ``done.json``); if not, it is cleared."""
    if (folder / "done.json").exists():
        return True
    if folder.exists():
        shutil.rmtree(folder)
    return False


def ensure_data(base_lines: int, replicas: int) -> Path:
    """The shards under ``OUT/spark-<lines>x<replicas>/`` (generated unless cached)."""
    folder = OUT / f"spark-{base_lines}x{replicas}-{DATA_VERSION}"
    marker = folder / "done.json"
    if _cached(folder):
        return folder
    free = shutil.disk_usage(OUT.parent if not OUT.exists() else OUT).free
    need = base_lines * replicas * 110  # bytes, generous: ~60 per event row + the outbox
    if free < need:
        raise SystemExit(f"need about {need / 1e9:.0f} GB free under {OUT}, have {free / 1e9:.0f}")
    import duckdb

    from rbmtools.analysis import load
    from rbmtools.testing.synthetic import generate_logs

    started = time.perf_counter()
    print(f"generating a {base_lines:,}-line base log (cached under {folder})", flush=True)
    base = generate_logs(folder / "base", _config(base_lines), progress=True)
    with load(base.events_dir, base.outbox_dir) as data:
        events_file, outbox_file = data.to_parquet(folder / "base-parquet")
    shutil.rmtree(folder / "base")
    (folder / "events").mkdir()
    (folder / "outbox").mkdir()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    shift = f"INTERVAL {SHARD_DAYS} DAY"
    event_rows = 0
    from tqdm import tqdm

    for shard in tqdm(range(replicas), desc="shards", unit="shard"):
        suffix = f"'-{shard:03d}'"
        offset = f"({shard} * {shift})"
        events = (
            f"SELECT * REPLACE ("
            f'"receivedAt" + {offset} AS "receivedAt", "sendTime" + {offset} AS "sendTime", '
            f'"messageId" || {suffix} AS "messageId", "eventId" || {suffix} AS "eventId") '
            f"FROM read_parquet({_quote(str(events_file))})"
        )
        outbox = (
            f"SELECT * REPLACE ("
            f'"messageId" || {suffix} AS "messageId", "sendTime" + {offset} AS "sendTime", '
            f'"expireTime" + {offset} AS "expireTime", "requestedAt" + {offset} AS '
            f'"requestedAt", "sentAt" + {offset} AS "sentAt") '
            f"FROM read_parquet({_quote(str(outbox_file))})"
        )
        for query, kind in ((events, "events"), (outbox, "outbox")):
            target = folder / kind / f"part-{shard:03d}.parquet"
            con.execute(
                f"COPY ({query}) TO {_quote(str(target))} (FORMAT parquet, COMPRESSION zstd)"
            )
        written = _quote(str(folder / "events" / f"part-{shard:03d}.parquet"))
        event_rows += con.execute(f"SELECT COUNT(*) FROM read_parquet({written})").fetchone()[0]
    shutil.rmtree(folder / "base-parquet")
    size = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    marker.write_text(
        json.dumps(
            {
                "event_rows_per_shard": event_rows // replicas,
                "event_rows": event_rows,
                "bytes": size,
                "generated_seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    print(f"generated {event_rows:,} event rows ({size / 1e9:.1f} GB) in {folder}", flush=True)
    return folder


# ------------------------------------------------------------------------------ workers


def _label(key: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in key.items())


def run(
    engine: str,
    events: list[str],
    outbox: list[str],
    memory_limit: str | None,
    lifecycle: bool = False,
) -> dict:
    from rbmtools.analysis import build_analysis, load

    options: dict = {"engine": engine}
    started = time.perf_counter()
    cpu = time.process_time()
    startup = 0.0
    if engine == "duckdb":
        options["memory_limit"] = memory_limit
    else:  # the session starts apart, so its start-up (~10 s here) is reported on its own
        from rbmtools.analysis import SparkEngine

        conf = {"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "16"}
        options["engine"] = SparkEngine(master="local[2]", conf=conf)
        startup = time.perf_counter() - started
    with load(events, outbox, **options) as data:
        loaded = time.perf_counter()
        doc = build_analysis(data, BY, bootstrap=200).to_dict()
        finished = time.perf_counter()
        job_rss, job_cpu = _peak_rss_mb(), time.process_time() - cpu
        lifecycle_rows = lifecycle_seconds = None
        if lifecycle:  # the per-message table, built in the engine (not collected)
            counted = data.query("SELECT COUNT(*) AS n FROM rbm_lifecycle")
            lifecycle_rows = int(counted["n"].iloc[0])
            lifecycle_seconds = time.perf_counter() - finished
    jvm_mb = _jvm_peak_rss_mb() if engine == "spark" else None
    totals: dict[str, int] = {}
    for group in doc["groups"]:
        for outcome, n in group["outcomes"].items():
            totals[outcome] = totals.get(outcome, 0) + n
    return {
        "seconds": finished - started,
        "startup_seconds": startup,
        "load_seconds": loaded - started,
        "cpu_seconds": job_cpu,
        "lifecycle_seconds": lifecycle_seconds,
        "lifecycle_rows": lifecycle_rows,
        "peak_rss_mb": job_rss,
        "lifecycle_peak_rss_mb": _peak_rss_mb() if lifecycle else None,
        "jvm_peak_rss_mb": jvm_mb,
        "lines": doc["read"]["lines"],
        "messages": doc["read"]["messages"],
        "outcomes": totals,
        "revoke_rates": {_label(g["key"]): g["revoke_success"]["rate"] for g in doc["groups"]},
        "p90": {_label(g["key"]): g["latency_seconds"]["p90"] for g in doc["groups"]},
        "best_ttl": {_label(g["key"]): g["best_ttl"]["seconds"] for g in doc["groups"]},
    }


def _jvm_peak_rss_mb() -> float | None:
    """The peak RSS (VmHWM) of Spark's JVM, which runs beside the Python driver."""
    from pyspark import SparkContext

    gateway = getattr(SparkContext, "_gateway", None)
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return None
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def worker(args: argparse.Namespace) -> None:
    files = json.loads(args.files)
    result = run(args.worker, files["events"], files["outbox"], args.memory_limit, args.lifecycle)
    print("RESULT " + json.dumps(result), flush=True)


def _shard_files(folder: Path, shards: int) -> dict[str, list[str]]:
    return {
        kind: [str(folder / kind / f"part-{s:03d}.parquet") for s in range(shards)]
        for kind in ("events", "outbox")
    }


def ensure_bucketed(folder: Path, buckets: int) -> Path:
    """All shards rewritten in the layout ``Dataset.to_parquet(..., buckets=K)`` writes:
    ``events/bucket=N/`` and ``outbox/bucket=N/`` by message id (cached beside the shards)."""
    target = folder / f"bucketed-{buckets}-{BUCKETED_VERSION}"
    if _cached(target):
        return target
    from rbmtools.analysis.buckets import write_bucketed
    from rbmtools.analysis.duckdb_engine import DuckDBEngine

    print(f"writing the shards bucketed by message id into {buckets} buckets", flush=True)
    started = time.perf_counter()
    engine = DuckDBEngine(memory_limit="3GB", temp_directory=str(folder / "tmp"))
    for kind in ("events", "outbox"):
        source = _quote(str(folder / kind / "part-*.parquet"))
        write_bucketed(
            engine, f"SELECT * FROM read_parquet({source})", str(target / kind), kind, buckets
        )
    engine.close()
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    seconds = round(time.perf_counter() - started, 1)
    (target / "done.json").write_text(json.dumps({"buckets": buckets, "written_seconds": seconds}))
    print(f"bucketed copy written in {seconds} s", flush=True)
    return target


def _spawn(
    engine: str, files: dict[str, list[str]], args: argparse.Namespace, lifecycle: bool = False
) -> dict:
    command = [sys.executable, __file__, "--worker", engine, "--files", json.dumps(files)]
    if args.memory_limit:
        command += ["--memory-limit", args.memory_limit]
    if lifecycle:
        command.append("--lifecycle")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            # the child's children (Spark's JVM) count too
            result["process_seconds"] = time.perf_counter() - started
            return result
    sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
    raise SystemExit(f"the {engine} run failed (exit {done.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 shards of ~100,000 lines")
    parser.add_argument("--base-lines", type=int, default=2_006_000)
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="DuckDB runs per size (median)")
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory limit (spills)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip the 100M-line run")
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="after the 100M-line job, build its per-message lifecycle table and count it",
    )
    parser.add_argument(
        "--buckets",
        type=int,
        default=32,
        help="also run the 100M lines bucketed by message id into this many buckets (0: no)",
    )
    parser.add_argument("--data-only", action="store_true", help="generate the data and stop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.base_lines, args.replicas = 100_000, 2
    folder = ensure_data(args.base_lines, args.replicas)
    meta = json.loads((folder / "done.json").read_text())
    if args.data_only:
        print(json.dumps(meta))
        return
    per_shard = meta["event_rows_per_shard"]
    small_shards = max(1, min(args.replicas, round(args.replicas / 10)))
    print(
        f"data: {meta['event_rows']:,} event rows in {args.replicas} shards "
        f"({meta['bytes'] / 1e9:.2f} GB of Parquet, events and outbox); "
        f"the small run reads {small_shards} shards (~{small_shards * per_shard:,} rows)",
        flush=True,
    )
    report: dict[str, dict] = {}
    full, small = _shard_files(folder, args.replicas), _shard_files(folder, small_shards)
    if not args.skip_full:
        runs = [_spawn("duckdb", full, args, args.lifecycle) for _ in range(args.repeat)]
        report["duckdb_full"] = _summary(runs)
    if args.buckets:
        bucketed = ensure_bucketed(folder, args.buckets)
        files = {kind: [str(bucketed / kind)] for kind in ("events", "outbox")}
        runs = [_spawn("duckdb", files, args) for _ in range(args.repeat)]
        report["duckdb_bucketed"] = _summary(runs)
    report["duckdb_small"] = _summary([_spawn("duckdb", small, args) for _ in range(args.repeat)])
    if not args.skip_spark:
        report["spark_small"] = _summary([_spawn("spark", small, args)])
    _print(report, meta)


def _summary(runs: list[dict]) -> dict:
    out = dict(runs[0])
    keys = ("seconds", "load_seconds", "startup_seconds", "cpu_seconds", "peak_rss_mb")
    for key in (*keys, "process_seconds"):
        out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


def _close(a: float | None, b: float | None, tolerance: float = 0.01) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-9)


def _print(report: dict, meta: dict) -> None:
    print()
    for name, r in report.items():
        print(
            f"{name:15s} {r['lines']:>12,} lines  {r['seconds']:7.1f} s  "
            f"(load {r['load_seconds']:.1f} s"
            + (f" incl. session start {r['startup_seconds']:.1f} s" if r["startup_seconds"] else "")
            + f", Python CPU {r['cpu_seconds']:.1f} s)  "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB"
            + (f" + JVM {r['jvm_peak_rss_mb']:,.0f} MB" if r.get("jvm_peak_rss_mb") else "")
            + f"  [{r['runs']} run(s), median]"
        )
        if r.get("lifecycle_rows") is not None:
            print(
                f"{'':15s} then the lifecycle table: {r['lifecycle_rows']:,} rows "
                f"in {r['lifecycle_seconds']:.1f} s (its messages: {r['messages']:,}), "
                f"peak RSS then {r['lifecycle_peak_rss_mb']:,.0f} MB"
            )
    print()
    for name, layout in (("duckdb_full", "shards"), ("duckdb_bucketed", "bucketed")):
        full = report.get(name)
        if not full:
            continue
        ok_time = full["seconds"] < TARGET_SECONDS
        ok_rss = full["peak_rss_mb"] < TARGET_RSS_MB
        print(
            f"target, DuckDB on {full['lines']:,} Parquet lines ({layout}): "
            f"< {TARGET_SECONDS:.0f} s -> {full['seconds']:.1f} s "
            f"{'MET' if ok_time else 'MISSED'}; < {TARGET_RSS_MB / 1024:.0f} GB -> "
            f"{full['peak_rss_mb'] / 1024:.2f} GB {'MET' if ok_rss else 'MISSED'}"
        )
    if report.get("duckdb_full") and report.get("duckdb_bucketed"):
        same = report["duckdb_full"]["outcomes"] == report["duckdb_bucketed"]["outcomes"]
        print(f"bucketed vs shards: outcome counts {'identical' if same else 'DIFFER'}")
    duck, spark = report.get("duckdb_small"), report.get("spark_small")
    if duck and spark:
        same = duck["outcomes"] == spark["outcomes"]
        close = all(
            _close(duck[k][g], spark[k].get(g)) for k in ("revoke_rates", "p90") for g in duck[k]
        ) and all(_close(duck["best_ttl"][g], spark["best_ttl"].get(g)) for g in duck["best_ttl"])
        print(
            f"Spark local[2] vs DuckDB on the same {duck['lines']:,} lines: "
            f"{spark['seconds']:.1f} s vs {duck['seconds']:.1f} s "
            f"({spark['seconds'] / duck['seconds']:.1f}x); outcome counts "
            f"{'identical' if same else 'DIFFER'}; revoke rates, p90 latency and best TTL "
            f"{'within 1%' if close else 'NOT within 1%'}"
        )
    print("(2 shared cores: figures are noisy; the lead reruns them on a quiet machine)")
    print("RESULTS " + json.dumps({"meta": meta, **report}))


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
