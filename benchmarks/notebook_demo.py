"""The demo benchmark: ``make demo`` after installation, and what one notebook report costs.

Each repeat runs the demo exactly as ``make demo`` does once ``.venv`` exists
(``python -m rbmtools.notebook.demo`` in a fresh process, into a temporary folder): a revoke
experiment of 2,000 messages in 8 arms on the embedded emulator at 600x, the webhook log
analysis and the TTL tuning of its logs, each notebook in its own kernel under papermill, with
HTML rendering. Reported: the wall time end to end (median), and per notebook the time
papermill records (kernel start and cells) from the executed notebooks. In the same run, the
cost of a report itself: ``rbmtools report`` of a one-cell notebook (process start, kernel
start, HTML), the floor under every scheduled report.

Targets: ``make demo`` under 3 minutes after installation on 2 cores (issues 8 and 13), and
a one-cell report under 5 s (issue 13), each printed with its verdict. ``--quick``: one
repeat with 60 messages per arm.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

TARGET_SECONDS = 180.0
ONE_CELL_TARGET_SECONDS = 5.0


def run_demo(folder: Path, per_arm: int) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rbmtools.notebook.demo", "--output", str(folder),
         "--per-arm", str(per_arm)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the demo failed:\n{done.stderr[-2000:]}")
    steps = {}
    for executed in sorted(folder.glob("demo-*/*.ipynb")):
        node = nbformat.read(executed, as_version=4)
        steps[executed.name.split("-2")[0]] = float(node.metadata["papermill"]["duration"])
    return seconds, steps


def report_floor(folder: Path) -> float:
    node = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    node.cells = [cell, nbformat.v4.new_code_cell("print(x)")]
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path = folder / "tiny.ipynb"
    nbformat.write(node, path)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rbmtools", "report", str(path), "--html", "-o", str(folder)],
        capture_output=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, 60 messages per arm")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats, per_arm = (1, 60) if args.quick else (args.repeats, 250)
    totals, steps = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(repeats):
            seconds, times = run_demo(Path(scratch) / f"run{number}", per_arm)
            totals.append(seconds)
            for name, value in times.items():
                steps.setdefault(name, []).append(value)
            print(f"repeat {number + 1}: {seconds:.1f} s end to end")
        floors = [report_floor(Path(scratch)) for _ in range(5 if not args.quick else 1)]
    median = statistics.median(totals)
    print(f"\nmake demo (after installation, {per_arm * 8:,} messages): median {median:.1f} s")
    for name, values in steps.items():
        print(f"  {name:22} median {statistics.median(values):5.1f} s (papermill: kernel + cells)")
    verdict = "met" if median < TARGET_SECONDS else "MISSED"
    print(f"target: under {TARGET_SECONDS:.0f} s on 2 cores -> {verdict} "
          f"({median / TARGET_SECONDS:.0%} of the budget)")  # fmt: skip
    floor = statistics.median(floors)
    print(f"one-cell report (process, kernel, HTML): median {floor:.1f} s of {len(floors)}")
    verdict = "met" if floor < ONE_CELL_TARGET_SECONDS else "MISSED"
    print(f"target: under {ONE_CELL_TARGET_SECONDS:.0f} s -> {verdict} "
          f"({floor / ONE_CELL_TARGET_SECONDS:.0%} of the budget)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
