"""A long history kept by ``rbmtools logs compact``, and a new day on top (issue 16).

Data (built once, cached under ``benchmarks/out/``): a history of about 100 million event
lines: a 2-million-line synthetic log (``rbmtools.testing.synthetic``, the realistic mix of
``analysis_pipeline.py``) compacted once, its Parquet parts copied into 50 weekly shards (times
shifted by 7 days a shard, ids suffixed: 54 million distinct messages over 350 days), and the
per-message state built from them (``logs compact --rebuild``). Beside it, a new day of about 3
million event lines as the receiver writes them (JSON Lines segments and an outbox file), which
also brings late READs for messages sent on the history's last days.

Runs (each in its own process, on a hard-linked copy of the history, so every run starts from
the same history):

- rebuild: ``rbmtools logs compact --rebuild``: the whole state computed again from the
  history's 100 million lines of Parquet (target: 120 s);
- new day: ``rbmtools logs compact`` of the new day, then ``rbmtools analyze --history --json``
  (grouped by useCase, 200 bootstrap replicates): the scheduled report (target: 15 s together,
  under 4 GB peak RSS), ``--repeat`` times;
- the check: the new day's history rebuilt from all its parts and analysed again must give the
  same document (``--one-pass`` also runs ``rbmtools analyze`` over all the Parquet parts in one
  pass, which takes several minutes).

``--quick`` runs a small version (a 200,000-line base, 5 shards, a 100,000-line new day).
"""

# ruff: noqa: S608 (queries built from paths of files this script generates)

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _timing import run_timed

OUT = Path(__file__).resolve().parent / "out"
DATA_VERSION = "v1"
SHARD_DAYS = 7
TARGET_DAY_SECONDS = 15.0
TARGET_DAY_RSS_MB = 4096.0
TARGET_REBUILD_SECONDS = 120.0
START = datetime(2026, 1, 5, tzinfo=UTC)
RBMTOOLS = Path(sys.executable).with_name("rbmtools")
MEMORY_LIMIT = "3GB"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _config(lines: int, days: float, start: datetime, seed: int):
    from rbmtools.testing.synthetic import SyntheticConfig

    return SyntheticConfig(
        messages=max(1_000, round(lines / 1.865)),
        days=days,
        start=start,
        seed=seed,
        read_share=0.7,
        other_events_per_message=0.3,
        duplicate_share=0.03,
        rotate_lines=250_000,
        garbage_lines=20,
    )


# ------------------------------------------------------------------------------ the history


def _shift_part(con, source: Path, target: Path, log: str, shard: int) -> None:
    """Copy one Parquet part with its times moved ``shard`` weeks on and its ids suffixed."""
    offset = f"(INTERVAL {SHARD_DAYS * shard} DAY)"
    suffix = _quote(f"-s{shard:03d}")
    if log == "events":
        moved = (
            f'"receivedAt" + {offset} AS "receivedAt", "sendTime" + {offset} AS "sendTime", '
            f'"messageId" || {suffix} AS "messageId", "eventId" || {suffix} AS "eventId"'
        )
    else:
        moved = (
            f'"messageId" || {suffix} AS "messageId", "sendTime" + {offset} AS "sendTime", '
            f'"expireTime" + {offset} AS "expireTime", "requestedAt" + {offset} AS '
            f'"requestedAt", "sentAt" + {offset} AS "sentAt"'
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT * REPLACE ({moved}) FROM read_parquet({_quote(str(source))})) "
        f"TO {_quote(str(target))} (FORMAT parquet, COMPRESSION zstd)"
    )


def _shifted_day(relative: str, shard: int) -> str:
    folder, name = relative.rsplit("/", 1)
    parent, day = folder.rsplit("date=", 1)
    moved = (datetime.fromisoformat(day) + timedelta(days=SHARD_DAYS * shard)).date()
    stem, dot, rest = name.partition(".")
    return f"{parent}date={moved.isoformat()}/{stem}-s{shard:03d}{dot}{rest}"


def build_history(folder: Path, base_lines: int, shards: int) -> None:
    """The shards of the history (see the module docstring), its manifest, then its state."""
    import duckdb
    from tqdm import tqdm

    from rbmtools.analysis.history_files import (
        Manifest,
        SourceEntry,
        read_manifest,
        write_manifest,
    )
    from rbmtools.logs import compact
    from rbmtools.testing.synthetic import generate_logs

    base = generate_logs(
        folder / "base", _config(base_lines, SHARD_DAYS, START, 20261125), progress=True
    )
    template = folder / "template"
    compact(base.events_dir, template, outbox=base.outbox_dir, progress=True)
    made = read_manifest(template)
    history = folder / "history"
    history.mkdir()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    manifest = Manifest(events_dir=str(folder / "nothing"), outbox=[])
    for shard in tqdm(range(shards), desc="shards", unit="shard"):
        for key, entry in made.sources.items():
            parts = []
            for relative in entry.parts:
                moved = _shifted_day(relative, shard)
                _shift_part(con, template / relative, history / moved, entry.log, shard)
                parts.append(moved)
            manifest.sources[f"{key}-s{shard:03d}"] = SourceEntry(
                entry.log, f"{entry.path}-s{shard:03d}", entry.bytes, entry.head, entry.lines,
                entry.malformed, parts,
            )  # fmt: skip
    write_manifest(history, manifest)
    (folder / "nothing").mkdir()
    shutil.rmtree(base.events_dir.parent)
    shutil.rmtree(template)
    # the state of everything, built once (the benchmark times this again as "rebuild")
    compact(folder / "nothing", history, rebuild=True, memory_limit=MEMORY_LIMIT, progress=True)


def build_new_day(folder: Path, lines: int, shards: int) -> None:
    """A day of receiver segments and outbox after the history, with late READs for messages
    sent on its last days (ids of the last shard)."""
    import duckdb

    from rbmtools import wire
    from rbmtools.testing.synthetic import generate_logs

    end = START + timedelta(days=SHARD_DAYS * shards)
    day = generate_logs(folder / "day", _config(lines, 1.0, end, 20270101), progress=True)
    last = _quote(str(folder / "history" / "_outbox") + "/**/*.parquet")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    late = con.execute(
        f"SELECT messageId, phone FROM read_parquet({last}) "
        f"WHERE kind = 'send' AND status = 200 AND sendTime >= TIMESTAMPTZ "
        f"{_quote((end - timedelta(days=2)).isoformat())} USING SAMPLE 20000 ROWS"
    ).fetchall()
    segment = sorted(day.events_dir.rglob("*.jsonl"))[0]
    with open(segment, "a", encoding="utf-8") as handle:
        for index, (message_id, phone) in enumerate(late):
            stamp = end + timedelta(seconds=index % 3600)
            payload = wire.event_payload(
                agent_id="rbm-agent", phone=phone, event_type="READ",
                event_id=f"late-{index}", send_time=stamp, message_id=message_id,
            )  # fmt: skip
            handle.write(wire.event_record_line(payload, stamp + timedelta(seconds=1), True))


def ensure_data(base_lines: int, shards: int, day_lines: int) -> Path:
    folder = OUT / f"history-{base_lines}x{shards}-{day_lines}-{DATA_VERSION}"
    if (folder / "done.json").exists():
        _current_rules(folder)
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    free = shutil.disk_usage(OUT.parent).free
    need = base_lines * shards * 120
    if free < need:
        raise SystemExit(f"need about {need / 1e9:.0f} GB free under {OUT}, have {free / 1e9:.0f}")
    folder.mkdir(parents=True)
    started = time.perf_counter()
    print(f"building a history of {base_lines * shards:,} event lines under {folder}", flush=True)
    build_history(folder, base_lines, shards)
    build_new_day(folder, day_lines, shards)
    size = sum(f.stat().st_size for f in (folder / "history").rglob("*") if f.is_file())
    lines = sum(f.read_bytes().count(b"\n") for f in (folder / "day" / "events").rglob("*.jsonl"))
    built = {"history_bytes": size, "day_lines": lines, "seconds": time.perf_counter() - started}
    (folder / "done.json").write_text(json.dumps(built))
    return folder


def _current_rules(folder: Path) -> None:
    """A cached history whose state another rbmtools (SQL) or DuckDB version computed gets
    its state rebuilt once, untimed: every run would otherwise start with that rebuild."""
    from rbmtools.analysis.history import rules_digest
    from rbmtools.analysis.history_files import read_manifest
    from rbmtools.logs import compact

    if read_manifest(folder / "history").rules == rules_digest():
        return
    print("the cached history's state is of other rules: rebuilding it once", flush=True)
    history = folder / "history"
    compact(folder / "nothing", history, rebuild=True, memory_limit=MEMORY_LIMIT, progress=True)


# ------------------------------------------------------------------------------ runs


def _copy(folder: Path, name: str) -> Path:
    """A hard-linked copy of the history: its files are never changed in place."""
    target = folder / name
    if target.exists():
        shutil.rmtree(target)
    subprocess.run(["cp", "-al", str(folder / "history"), str(target)], check=True)
    return target


def _document(stdout: str) -> dict:
    doc = json.loads(stdout)
    for key in ("seconds", "files", "outbox_files"):
        doc["read"].pop(key, None)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-lines", type=int, default=2_000_000)
    parser.add_argument("--shards", type=int, default=50)
    parser.add_argument("--day-lines", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the new day")
    parser.add_argument("--one-pass", action="store_true", help="also one pass over it all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-rebuild", action="store_true", help="skip the timed rebuild")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.base_lines, args.shards, args.day_lines, args.repeat = 200_000, 5, 100_000, 1
    if args.worker == "data":
        return print(ensure_data(args.base_lines, args.shards, args.day_lines))
    made = subprocess.run(
        [sys.executable, __file__, "--worker", "data", "--base-lines", str(args.base_lines),
         "--shards", str(args.shards), "--day-lines", str(args.day_lines)],
        stdout=subprocess.PIPE, check=True,
    )  # fmt: skip
    folder = Path(made.stdout.decode().strip().splitlines()[-1])
    info = json.loads((folder / "done.json").read_text())
    day_events, day_outbox = folder / "day" / "events", folder / "day" / "outbox"
    print(
        f"history: {args.base_lines * args.shards:,} event lines in {args.shards} weekly shards "
        f"({info['history_bytes'] / 1e9:.1f} GB of Parquet and state); new day: "
        f"{info['day_lines']:,} event lines; DuckDB memory limit {MEMORY_LIMIT}",
        flush=True,
    )
    limit = ["--memory-limit", MEMORY_LIMIT]
    rebuild = None
    if not args.no_rebuild:
        copy = _copy(folder, "run-rebuild")
        rebuild = run_timed([str(RBMTOOLS), "logs", "compact", str(folder / "nothing"), "--to",
                        str(copy), "--rebuild", "--json", *limit])  # fmt: skip
        print(f"  rebuild: {rebuild['seconds']:.1f} s, peak RSS {rebuild['peak_rss_mb']:.0f} MB",
              flush=True)  # fmt: skip
    days = []
    for run in range(args.repeat):
        copy = _copy(folder, "run-day")
        compacted = run_timed([str(RBMTOOLS), "logs", "compact", str(day_events), "--to", str(copy),
                          "--outbox", str(day_outbox), "--json", *limit])  # fmt: skip
        analysed = run_timed([str(RBMTOOLS), "analyze", "--history", str(copy), "--json", *limit])
        total = compacted["seconds"] + analysed["seconds"]
        rss = max(compacted["peak_rss_mb"], analysed["peak_rss_mb"])
        days.append({"seconds": total, "compact": compacted["seconds"],
                     "analyze": analysed["seconds"], "rss": rss,
                     "doc": analysed["stdout"],
                     "state_days": json.loads(compacted["stdout"])["state_days"]})  # fmt: skip
        print(f"  new day {run + 1}: compact {compacted['seconds']:.1f} s + analyze "
              f"{analysed['seconds']:.1f} s = {total:.1f} s, peak RSS {rss:.0f} MB "
              f"({days[-1]['state_days']} state days rewritten)", flush=True)  # fmt: skip
    # the check: the same history, its state computed again from every part
    run_timed([str(RBMTOOLS), "logs", "compact", str(day_events), "--to", str(copy), "--rebuild",
          *limit])  # fmt: skip
    full = run_timed([str(RBMTOOLS), "analyze", "--history", str(copy), "--json", *limit])
    same = _document(full["stdout"]) == _document(days[-1]["doc"])
    print(f"  incremental document equals the rebuilt one: {same}", flush=True)
    if args.one_pass:
        one = run_timed([str(RBMTOOLS), "analyze", "--events", str(copy), "--outbox",
                    str(copy / "_outbox"), "--json", *limit])  # fmt: skip
        print(
            f"  one pass over all the Parquet: {one['seconds']:.1f} s, peak RSS "
            f"{one['peak_rss_mb']:.0f} MB; same outcome counts: "
            f"{_document(one['stdout'])['groups'] == _document(full['stdout'])['groups']}"
        )
    day = statistics.median(d["seconds"] for d in days)
    rss = max(d["rss"] for d in days)
    rows = [
        ("new day: compact + analyze (median)", f"{day:.1f} s", f"<= {TARGET_DAY_SECONDS:.0f} s",
         day <= TARGET_DAY_SECONDS),
        ("new day: peak RSS", f"{rss:.0f} MB", f"< {TARGET_DAY_RSS_MB:.0f} MB",
         rss < TARGET_DAY_RSS_MB),
        ("results identical to a full recomputation", str(same), "True", same),
    ]  # fmt: skip
    if rebuild is not None:
        rows.insert(2, ("full rebuild of the state", f"{rebuild['seconds']:.1f} s",
                        f"<= {TARGET_REBUILD_SECONDS:.0f} s",
                        rebuild["seconds"] <= TARGET_REBUILD_SECONDS))  # fmt: skip
    print(f"\n{'figure':42} {'measured':>10} {'target':>10}  met")
    for name, value, target, met in rows:
        print(f"{name:42} {value:>10} {target:>10}  {'yes' if met else 'NO'}")
    shutil.rmtree(folder / "run-day", ignore_errors=True)
    shutil.rmtree(folder / "run-rebuild", ignore_errors=True)


if __name__ == "__main__":
    main()
