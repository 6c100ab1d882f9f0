"""Refresh the README's figures from a real report: run ttl_tuning and webhook_log_analysis on
data/sample/ and save their cost-curve and latency figures as PNG files under docs/.

    .venv/bin/python scripts/readme_figure.py
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

import nbformat

from rbmtools.notebook import run

ROOT = Path(__file__).resolve().parents[1]

#: (notebook, the source line of the cell whose figure is kept, the file it goes to)
FIGURES = [
    ("ttl_tuning", "plots.ttl_cost_curves(analysis)", "ttl-cost-curves.png"),
    ("webhook_log_analysis", "plots.latency_curves(analysis)", "latency-curves.png"),
]


def figure_of(executed: Path, source: str) -> bytes:
    """The PNG shown by the cell whose source is ``source``."""
    node = nbformat.read(executed, as_version=4)
    for cell in node.cells:
        if cell.cell_type == "code" and cell.source.strip() == source:
            for out in cell.outputs:
                if "image/png" in out.get("data", {}):
                    return base64.b64decode(out["data"]["image/png"])
    raise SystemExit(f"{executed.name}: no figure from {source!r}")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for notebook, source, name in FIGURES:
            done = run(notebook, {}, scratch, html=False)
            target = ROOT / "docs" / name
            target.write_bytes(figure_of(done.executed, source))
            print(f"{target} ({target.stat().st_size:,} bytes) from {notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
