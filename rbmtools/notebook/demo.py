"""``make demo``: the whole flow on the embedded emulator, as HTML reports under ``reports/``.

Runs three notebooks through ``rbmtools.notebook.run``: the revoke experiment (four use cases,
every revoke method, on an emulator at 600 times real time), then the webhook log analysis and
the TTL tuning of that experiment's logs; prints where the reports are and the headline table,
the best TTL per use case. No Google account, no network beyond loopback.

    .venv/bin/python -m rbmtools.notebook.demo [--output reports] [--per-arm 250]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rbmtools.notebook.sample_data import SAMPLE_PROFILE

__all__ = ["DEMO_SPEC", "DemoResult", "demo_spec", "main", "run_demo"]

#: The experiment of the demo: the sample's population and use cases, windows short enough
#: for the emulator to run them in seconds (two platform hours are 12 real seconds).
DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "description": "make demo: four use cases, every revoke method, on the emulator.",
    "use_case": "otp",
    "traffic_type": "AUTHENTICATION",
    "template": "Your code is {code}",
    "sms_template": "Code {code}",
    "audience": {"synthetic": 2000, "profile": SAMPLE_PROFILE},
    "arms": [
        {"name": "otp ttl=1m", "method": "ttl", "duration": "1m"},
        {"name": "otp api=5m", "method": "api_after_unless_delivered", "duration": "5m"},
        {"name": "alert api=2m", "method": "api_after", "duration": "2m", "use_case": "alert"},
        {"name": "alert ttl=15m", "method": "ttl", "duration": "15m", "use_case": "alert"},
        {
            "name": "transaction ttl=30m",
            "method": "expire_time",
            "duration": "30m",
            "use_case": "transaction",
            "traffic_type": "TRANSACTION",
        },
        {
            "name": "transaction api=1h",
            "method": "api_after_unless_delivered",
            "duration": "1h",
            "use_case": "transaction",
            "traffic_type": "TRANSACTION",
        },
        {
            "name": "promo ttl=1h",
            "method": "ttl",
            "duration": "1h",
            "use_case": "promo",
            "traffic_type": "PROMOTION",
        },
        {
            "name": "promo ttl=2h",
            "method": "ttl",
            "duration": "2h",
            "use_case": "promo",
            "traffic_type": "PROMOTION",
        },
    ],
    "per_arm": 250,
    "seed": 11,
    "fallback": "on_revoked_or_inconclusive",
    "grace": "30s",
    "observe": "20m",
}

_HEADLINE = [
    "use case",
    "best TTL",
    "95 % interval",
    "within 0.5 % of the best cost",
    "expected cost / message",
    "data supports up to",
]


def _aligned(table: Any, columns: list[str]) -> list[str]:
    """``columns`` of ``table`` as left-aligned text, then each row's note on a line of its
    own (they are sentences)."""
    rows = [[str(v) for v in row] for row in table[columns].fillna("").itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    if "note" in table.columns:
        notes = [(r[0], n) for r, n in zip(rows, table["note"].fillna(""), strict=True) if n]
        lines += [f"  {name}: {note}" for name, note in notes]
    return [line.rstrip() for line in lines]


def demo_spec(per_arm: int = 250) -> dict[str, Any]:
    """The demo's spec with ``per_arm`` messages in each of its eight arms."""
    spec = dict(DEMO_SPEC)
    spec["per_arm"] = per_arm
    spec["audience"] = {**DEMO_SPEC["audience"], "synthetic": per_arm * len(DEMO_SPEC["arms"])}
    return spec


class DemoResult:
    """The reports of one demo run and its best-TTL table."""

    def __init__(self, folder: Path, runs: list[Any], table: Any, seconds: float) -> None:
        self.folder = folder
        self.runs = runs
        self.table = table
        self.seconds = seconds

    def text(self) -> str:
        lines = [f"rbmtools demo: reports in {self.folder} ({self.seconds:.0f} s)"]
        for run in self.runs:
            lines.append(f"  {run.notebook.stem:22} {run.html}")
        lines += ["", "Best TTL per use case (expected cost per message, bootstrap 95 % interval):"]
        lines += _aligned(self.table, [c for c in _HEADLINE if c in self.table.columns])
        return "\n".join(lines)


def run_demo(
    output: str | Path = "reports",
    *,
    per_arm: int = 250,
    bootstrap: int = 200,
    progress: bool = True,
    echo: Any = print,
) -> DemoResult:
    """Run the demo's three notebooks into ``output/demo-<UTC time>/``."""
    import pandas as pd

    from rbmtools.notebook.execute import run, timestamped

    began = time.monotonic()
    folder = timestamped(Path(output), "demo", "", datetime.now(UTC))  # created, ours alone
    data_dir = (folder / "experiments").resolve()
    run_dir = data_dir / DEMO_SPEC["name"]
    logs = {"events": str(run_dir / "events"), "outbox": str(run_dir / "outbox.jsonl")}
    table_path = (folder / "best_ttl.csv").resolve()
    steps: list[tuple[str, dict[str, Any], str]] = [
        (
            "revoke_experiment",
            {"spec": demo_spec(per_arm), "name": DEMO_SPEC["name"], "data_dir": str(data_dir),
             "by": ["useCase", "arm"], "bootstrap": bootstrap},
            "running the revoke experiment on the emulator",
        ),
        (
            "webhook_log_analysis",
            {**logs, "by": ["useCase"]},
            "analysing its webhook and outbox logs",
        ),
        (
            "ttl_tuning",
            {**logs, "bootstrap": bootstrap, "recommendations_csv": str(table_path)},
            "finding the best TTL per use case",
        ),
    ]  # fmt: skip
    runs = []
    for number, (notebook, parameters, what) in enumerate(steps, 1):
        if echo is not None:
            echo(f"[{number}/{len(steps)}] {notebook}: {what}")
        runs.append(run(notebook, parameters, folder, progress=progress))
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    return DemoResult(folder, runs, table, time.monotonic() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rbmtools.notebook.demo",
        description="Run the rbmtools demo on the embedded emulator: an experiment, its "
        "analysis and the best TTL per use case, as HTML reports.",
    )
    parser.add_argument("--output", default="reports", help="parent folder of the reports")
    parser.add_argument("--per-arm", type=int, default=250, help="messages per arm (8 arms)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates")
    args = parser.parse_args(argv)
    from rbmtools.errors import RbmError

    try:
        result = run_demo(
            args.output,
            per_arm=args.per_arm,
            bootstrap=args.bootstrap,
            progress=sys.stderr.isatty(),
        )
    except RbmError as exc:
        print(f"rbmtools demo: {exc}", file=sys.stderr)
        return 3
    print(result.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
