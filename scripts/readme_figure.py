"""Refresh the README's figures from a real report: run ttl_tuning and webhook_log_analysis on
data/sample/ and save their cost-curve and latency figures as PNG files under docs/, and (with
Chromium installed) the first screen of the TTL-tuning report as a reader sees it at 1280 x 900.

    .venv/bin/python scripts/readme_figure.py
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from rbmtools.notebook import run

ROOT = Path(__file__).resolve().parents[1]

#: (notebook, the call of the cell whose figure is kept, the file it goes to)
FIGURES = [
    ("ttl_tuning", "plots.ttl_cost_curves(analysis)", "ttl-cost-curves.png"),
    ("webhook_log_analysis", "plots.latency_curves(analysis)", "latency-curves.png"),
]
#: The report whose first screen the README shows, and the file it goes to.
FIRST_SCREEN = ("ttl_tuning", "report-first-screen.png")


def figure_of(executed: Path, source: str) -> bytes:
    """The PNG shown by the cell that calls ``source``."""
    node = nbformat.read(executed, as_version=4)
    for cell in node.cells:
        if cell.cell_type == "code" and source in cell.source:
            for out in cell.outputs:
                if "image/png" in out.get("data", {}):
                    return base64.b64decode(out["data"]["image/png"])
    raise SystemExit(f"{executed.name}: no figure from {source!r}")


def first_screen(report: Path, target: Path, profile: str) -> None:
    """What a reader sees first: headless Chromium's screenshot at 1280 x 900."""
    subprocess.run(  # noqa: S603 (our own arguments: the installed browser and our files)
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--window-size=1280,900", f"--screenshot={target}", report.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for notebook, source, name in FIGURES:
            done = run(notebook, {}, scratch, html=notebook == FIRST_SCREEN[0])
            target = ROOT / "docs" / name
            target.write_bytes(figure_of(done.executed, source))
            print(f"{target} ({target.stat().st_size:,} bytes) from {notebook}")
            if done.html is not None and shutil.which("chromium"):
                screen = ROOT / "docs" / FIRST_SCREEN[1]
                first_screen(done.html, screen, str(Path(scratch) / "chromium"))
                print(f"{screen} ({screen.stat().st_size:,} bytes): {done.html.name} in Chromium")
    return 0


if __name__ == "__main__":
    sys.exit(main())
