"""Running a notebook as a report: papermill executes it, nbconvert renders it to HTML.

papermill injects the parameters after the cell tagged ``parameters`` and runs every cell in a
fresh kernel; the executed notebook is written whatever happens, so a failure can be inspected
(its progress bars kept as one line each). The HTML report hides the code (and stderr: progress
bars, warnings) and keeps the text, tables and figures, in the design of every rbmtools report.
Output names carry a UTC timestamp and are claimed when the run starts, so neither a scheduled
job nor a run started at the same second from the same folder overwrites another's report;
each kernel gets its own folder for its sockets. A failing cell becomes one short
``NotebookError`` naming the cell; a kernel that does not start, a ``KernelStartError``; a
notebook with nothing to report (an empty window), ``NothingToReport``.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rbmtools.errors import NothingToReport, RbmError, ValidationError
from rbmtools.notebook.paths import resolve_notebook
from rbmtools.outputs import claim_timestamped, refuse_existing

__all__ = [
    "KernelStartError",
    "NotebookError",
    "NotebookRun",
    "notebook_parameters",
    "render_html",
    "run",
    "timestamped",
]

_MAX_ERROR_TEXT = 300
#: The nbconvert template of the HTML reports (``rbmtools_report``: the design of every report).
TEMPLATES = Path(__file__).with_name("templates")


class NotebookError(RbmError):
    """A cell of a notebook failed. ``cell`` names it (``In [5]``, its first line), ``error``
    is the exception's type and message, ``executed`` the notebook kept for inspection."""

    def __init__(self, notebook: str, cell: str, error: str, executed: Path) -> None:
        self.notebook = notebook
        self.cell = cell
        self.error = error
        self.executed = executed
        super().__init__(
            f"{notebook}: cell {cell} failed: {error}\nthe executed notebook is kept at {executed}"
        )


class KernelStartError(RbmError):
    """The notebook's kernel did not start, or did not answer within the start timeout:
    nothing ran, and nothing is kept."""

    def __init__(self, notebook: str, reason: str) -> None:
        self.notebook = notebook
        self.reason = reason
        super().__init__(f"{notebook}: the kernel did not start: {reason}")


@dataclass(frozen=True)
class NotebookRun:
    """A notebook run: the source, the executed notebook, the HTML report (if rendered), the
    parameters it was given and how long it took (real seconds)."""

    notebook: Path
    executed: Path
    html: Path | None
    parameters: dict[str, Any] = field(repr=False)
    seconds: float

    def __str__(self) -> str:
        shown = self.html if self.html is not None else self.executed
        return f"{self.notebook.name} -> {shown} ({self.seconds:.1f} s)"


def _kernel_config(sockets: str) -> Any:
    """Kernels talk to papermill over local sockets instead of TCP ports (POSIX), named in
    ``sockets``, a folder of this run's own: jupyter_client would otherwise name them
    ``kernel-ipc-N`` in the working directory, where two runs take the same ones."""
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = os.path.join(sockets, "kernel")
    return config


def _missing(path: Path) -> tuple[str | None, str | None]:
    """(kernel, language) to give papermill for a notebook that names none (it refuses such
    a notebook): python3 and Python, as every rbmtools notebook; None where it names one."""
    import nbformat

    metadata = nbformat.read(os.fspath(path), as_version=4).metadata
    spec = metadata.get("kernelspec", {})
    language = spec.get("language") or metadata.get("language_info", {}).get("name")
    return (None if spec.get("name") else "python3"), (None if language else "python")


def notebook_parameters(notebook: str | os.PathLike[str]) -> dict[str, str]:
    """The parameters a notebook declares (name -> default, as written in its cell tagged
    ``parameters``)."""
    import nbformat
    import papermill

    path = resolve_notebook(notebook)
    if _missing(path) == (None, None):
        found = papermill.inspect_notebook(str(path))
    else:  # papermill needs the kernel and language named: inspect a copy that names them
        node = nbformat.read(os.fspath(path), as_version=4)
        spec = node.metadata.setdefault("kernelspec", {})
        spec.setdefault("name", "python3")
        spec.setdefault("display_name", "Python 3")
        spec.setdefault("language", "python")
        with tempfile.TemporaryDirectory(prefix="rbmtools-inspect-") as scratch:
            copy = Path(scratch) / path.name
            nbformat.write(node, copy)
            found = papermill.inspect_notebook(str(copy))
    return {name: info["default"] for name, info in found.items()}


def _plain(value: Any, name: str) -> Any:
    """A value papermill can write as Python source: paths and dates become strings."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v, name) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, name) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValidationError(
        f"parameters.{name}", value, "must be a string, number, boolean, None, list or mapping"
    )


def timestamped(directory: Path, stem: str, suffix: str, when: datetime | None = None) -> Path:
    """``directory/<stem>-<UTC timestamp><suffix>``, with ``-2``, ``-3``... if taken, created
    empty (a folder for ``""``) so that no other run takes it."""
    base = claim_timestamped(directory, stem, [suffix], when)
    return base.with_name(base.name + suffix)


def _outputs(output: str | os.PathLike[str], stem: str, html: bool, force: bool) -> list[Path]:
    """The executed notebook's path and the report's (if ``html``): in the folder ``output``
    under a timestamped name claimed now, or the file ``output`` names (``.html`` or
    ``.ipynb``; the other next to it), refused if it exists unless ``force``."""
    suffixes = [".ipynb", ".html"] if html else [".ipynb"]
    given = Path(output)
    if given.suffix.lower() in (".html", ".ipynb"):
        paths = [given.with_suffix(suffix) for suffix in suffixes]
        for path in paths:
            refuse_existing(path, force, "output")
        given.parent.mkdir(parents=True, exist_ok=True)
        return paths
    if given.exists() and not given.is_dir():
        raise ValidationError(
            "output", os.fspath(output), "is a file, not a folder (name a folder, or a .html file)"
        )
    base = claim_timestamped(given, stem, suffixes, datetime.now(UTC))
    return [base.with_name(base.name + suffix) for suffix in suffixes]


_CARRIAGE_RETURN = re.compile(r"[^\n]*\r(?=[^\n])")


def tidy_streams(executed: str | os.PathLike[str]) -> None:
    """Keep one line per progress bar in a saved notebook: each cell's stderr gathered into
    one output (where the first was) and every line overwritten by a carriage return reduced
    to what a terminal would show last."""
    import nbformat

    node = nbformat.read(os.fspath(executed), as_version=4)
    for cell in node.cells:
        if cell.cell_type != "code":
            continue
        kept, stderr = [], None
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                if stderr is None:
                    stderr = out
                    kept.append(out)
                else:
                    stderr["text"] += out["text"]
                continue
            kept.append(out)
        for out in kept:
            if out.get("output_type") == "stream" and "\r" in out["text"]:
                text = _CARRIAGE_RETURN.sub("", out["text"].replace("\r\n", "\n"))
                out["text"] = text.replace("\r", "")
        cell.outputs = kept
    nbformat.write(node, os.fspath(executed))


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= 60 else text[:57] + "..."
    return "(empty cell)"


def _preview(message: str) -> str:
    """The cell source nbclient quotes in a timeout message (between dashed lines)."""
    parts = message.split("-------------------")
    return parts[1] if len(parts) >= 3 else ""


def _failure(notebook: Path, error: Any, executed: Path) -> NotebookError:
    count = getattr(error, "exec_count", None)
    label = f"In [{count}]" if count is not None else f"#{getattr(error, 'cell_index', '?')}"
    cell = f'{label} ("{_first_line(getattr(error, "source", "") or "")}")'
    text = str(getattr(error, "evalue", "") or "").strip().splitlines()
    message = text[0] if text else ""
    if len(message) > _MAX_ERROR_TEXT:
        message = message[: _MAX_ERROR_TEXT - 3] + "..."
    name = getattr(error, "ename", type(error).__name__)
    return NotebookError(notebook.name, cell, f"{name}: {message}" if message else name, executed)


def _check_parameters(source: Path, values: Mapping[str, Any]) -> None:
    declared = notebook_parameters(source)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValidationError(
            f"parameters.{unknown[0]}",
            values[unknown[0]],
            f"is not a parameter of {source.name} (it has: {', '.join(declared) or 'none'})",
        )


def _translate(error: BaseException, source: Path, executed: Path, limits: dict) -> RbmError:
    """What went wrong in a run, as the one error rbmtools reports for it."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        if error.ename == NothingToReport.__name__:
            return NothingToReport(f"{source.name}: {error.evalue}")
        return _failure(source, error, executed)
    if isinstance(error, NoSuchKernel):
        return ValidationError(
            "kernel",
            limits["kernel"],
            "is not an installed Jupyter kernel (jupyter kernelspec list)",
        )
    if isinstance(error, CellTimeoutError):
        cell = f'("{_first_line(_preview(str(error)))}")'
        limit = f"timed out after {limits['timeout']:g} s (the limit for each cell)"
        return NotebookError(source.name, cell, limit, executed)
    if isinstance(error, DeadKernelError):
        return NotebookError(
            source.name, "(unknown)", f"the kernel died ({error}); out of memory?", executed
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "didn't respond" in reason:
        reason = f"no answer within {limits['start_timeout']:g} s (--start-timeout)"
    return KernelStartError(source.name, reason)


def run(
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike[str] = "reports",
    *,
    html: bool = True,
    kernel_name: str | None = None,
    timeout: float | None = None,
    start_timeout: float = 60.0,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = False,
    force: bool = False,
) -> NotebookRun:
    """Execute ``notebook`` with ``parameters`` and write ``<name>-<UTC time>.ipynb`` (and, with
    ``html``, the matching ``.html`` report with the code hidden) in ``output_dir``; or, when
    ``output_dir`` names a ``.html`` (or ``.ipynb``) file, write there (refused if it exists,
    unless ``force``).

    ``notebook`` is a path, or the name of a notebook in the project's ``notebooks/`` folder
    (``"ttl_tuning"``). Every parameter must be declared in the notebook's ``parameters`` cell
    (a typo is an error, not a silently ignored value). ``timeout`` limits each cell and
    ``start_timeout`` the kernel's start (real seconds); ``cwd`` is the kernel's working
    directory (default: this process's). A failing cell raises ``NotebookError`` naming the
    cell, and the executed notebook is kept; ``KernelStartError`` and ``NothingToReport``
    (the notebook found nothing to report) leave no files behind.
    """
    import papermill

    source = resolve_notebook(notebook)
    values = {str(k): _plain(v, str(k)) for k, v in (parameters or {}).items()}
    _check_parameters(source, values)
    for name, limit in (("timeout", timeout), ("start_timeout", start_timeout)):
        if limit is not None and not limit > 0:
            raise ValidationError(name, limit, "must be a positive number of seconds")
    paths = _outputs(output_dir, source.stem, html, force)
    executed, report = paths[0], (paths[1] if html else None)
    started = time.monotonic()
    default_kernel, language = _missing(source)
    limits = {"kernel": kernel_name, "timeout": timeout, "start_timeout": start_timeout}
    try:
        with tempfile.TemporaryDirectory(prefix="rbmtools-kernel-") as sockets:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters=values,
                kernel_name=kernel_name or default_kernel,
                language=language,
                progress_bar=progress,
                execution_timeout=timeout,
                start_timeout=start_timeout,
                cwd=None if cwd is None else os.fspath(cwd),
                config=_kernel_config(sockets),
            )
        tidy_streams(executed)
        if report is not None:
            render_html(executed, report, title=source.stem)
    except (RbmError, KeyboardInterrupt):
        _remove(paths)
        raise
    except Exception as exc:  # papermill, nbclient, jupyter_client: one error of ours
        error = _translate(exc, source, executed, limits)
        if isinstance(error, NotebookError) and executed.stat().st_size:
            tidy_streams(executed)  # kept for inspection
            _remove(paths[1:])
        else:
            _remove(paths)
        raise error from None
    return NotebookRun(source, executed, report, values, time.monotonic() - started)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def render_html(
    executed: str | os.PathLike[str], target: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Render an executed notebook as a self-contained HTML report in the design of every
    rbmtools report: no code, no prompts, no stderr, nothing loaded from the network;
    markdown, printed text, tables and figures (inlined PNG) stay."""
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.read(os.fspath(executed), as_version=4)
    for cell in node.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                out
                for out in cell.get("outputs", [])
                if not (out.get("output_type") == "stream" and out.get("name") == "stderr")
            ]
    from rbmtools.analysis.style import css

    exporter = HTMLExporter(
        template_name="rbmtools_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    name = title or Path(executed).stem
    resources = {"metadata": {"name": name}, "rbmtools_css": css()}
    body, _ = exporter.from_notebook_node(node, resources=resources)
    path = Path(target)
    path.write_text(body, encoding="utf-8")
    return path
