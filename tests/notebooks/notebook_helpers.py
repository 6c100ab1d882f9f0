"""Helpers for the notebook tests: notebook runs in parallel subprocesses, executed outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SAMPLE = ROOT / "data" / "sample"
RUN_TIMEOUT = 240  # real seconds for one notebook run (the demo runs three)


@dataclass
class Execution:
    """One finished command (``rbmtools report`` or the demo) and what it wrote."""

    key: str
    args: list[str]
    cwd: Path
    output_dir: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    paths: list[Path] = field(default_factory=list)

    def check(self) -> Execution:
        assert self.returncode == 0, f"{self.key} failed:\n{self.stderr[-3000:]}"
        return self

    @property
    def executed(self) -> Path:
        return next(p for p in self.paths if p.suffix == ".ipynb")

    @property
    def html(self) -> Path:
        return next(p for p in self.paths if p.suffix == ".html")

    def notebook(self) -> Any:
        return nbformat.read(self.executed, as_version=4)


def outputs(node: Any, mime: str | None = None) -> list[Any]:
    """Every output of every code cell (only those carrying ``mime`` if given)."""
    found = []
    for cell in node.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if mime is None or mime in out.get("data", {}):
                found.append(out)
    return found


def texts(node: Any, mime: str) -> list[str]:
    """The ``mime`` payloads (text/html, text/markdown, text/plain...) of all outputs."""
    return ["".join(out["data"][mime]) for out in outputs(node, mime)]


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[bool, list[str]]] = []  # (in thead, cells)
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._head = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "thead":
            self._head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._head = False
        elif tag in ("th", "td") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append((self._head, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _value(text: str) -> Any:
    """A cell as a number when it is one (``1,620`` too), else its text."""
    for kind in (int, float):
        try:
            return kind(text.replace(",", "") if text[:1].isdigit() else text)
        except ValueError:
            pass
    return text


def html_table(text: str) -> pd.DataFrame:
    """The first table of a report table's HTML (no index column: reports show none)."""
    parser = _TableParser()
    parser.feed(text)
    head = [cells for in_head, cells in parser.rows if in_head]
    body = [cells for in_head, cells in parser.rows if not in_head]
    rows = [[_value(c) for c in cells] for cells in body]
    return pd.DataFrame(rows, columns=head[0])


def report_tables(node: Any) -> list[pd.DataFrame]:
    """Every report table a notebook showed (``rbm-table``), in order."""
    return [html_table(t) for t in texts(node, "text/html") if 'class="rbm-table"' in t]


def headline_text(node: Any) -> str:
    """The HTML of the notebook's headline block ('' if none)."""
    return next((t for t in texts(node, "text/html") if "rbm-headline" in t), "")


def streams(node: Any, name: str = "stdout") -> str:
    return "".join(
        "".join(out.get("text", ""))
        for out in outputs(node)
        if out.get("output_type") == "stream" and out.get("name") == name
    )


def errors(node: Any) -> list[Any]:
    return [out for out in outputs(node) if out.get("output_type") == "error"]


def injected(node: Any) -> str:
    """The source of papermill's injected-parameters cell ('' if none)."""
    for cell in node.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return ""


class Runs:
    """Commands run in parallel (each a fresh process, as a cron job would run them)."""

    def __init__(self, base: Path, workers: int = 3) -> None:
        self.base = base
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="notebook-test")
        self._futures: dict[str, Future[Execution]] = {}

    def report(
        self,
        key: str,
        notebook: str,
        parameters: dict[str, Any] | None = None,
        *,
        output_dir: Path | None = None,
        cwd: Path | None = None,
        parameters_file: Path | None = None,
        after: tuple[str, ...] = (),
    ) -> None:
        """``rbmtools report NOTEBOOK -p ... --html`` (JSON values) in its own folder."""
        args = [sys.executable, "-m", "rbmtools", "report", notebook, "--html"]
        for name, value in (parameters or {}).items():
            args += ["-p", name, value if isinstance(value, str) else json.dumps(value)]
        if parameters_file is not None:
            args += ["-f", str(parameters_file)]
        out = output_dir or self.base / key / "reports"
        args += ["-o", str(out)]
        self.command(key, args, out, cwd=cwd, after=after)

    def command(
        self,
        key: str,
        args: list[str],
        output_dir: Path,
        *,
        cwd: Path | None = None,
        after: tuple[str, ...] = (),
    ) -> None:
        workdir = cwd or self.base / key / "cwd"
        workdir.mkdir(parents=True, exist_ok=True)
        waits = [self._futures[k] for k in after]

        def go() -> Execution:
            for wait in waits:
                wait.result()
            started = time.monotonic()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            done = subprocess.run(
                args,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                env=env,
                check=False,
            )
            paths = [
                Path(line)
                for line in done.stdout.splitlines()
                if line.endswith((".ipynb", ".html"))
            ]
            return Execution(
                key, args, workdir, output_dir, done.returncode, done.stdout, done.stderr,
                time.monotonic() - started, [p if p.is_absolute() else workdir / p for p in paths],
            )  # fmt: skip

        self._futures[key] = self._pool.submit(go)

    def __getitem__(self, key: str) -> Execution:
        return self._futures[key].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
