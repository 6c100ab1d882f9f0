"""Running a notebook as a report: papermill executes it, nbconvert renders it to HTML.

papermill injects the parameters after the cell tagged ``parameters`` and runs every cell in a
fresh kernel; the executed notebook is written whatever happens, so a failure can be inspected.
The HTML report hides the code (and stderr: progress bars, warnings) and keeps the text, tables
and figures. Output names carry a UTC timestamp, so a scheduled job never overwrites last
week's report. A failing cell becomes one short ``NotebookError`` naming the cell.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rbmtools.errors import RbmError, ValidationError
from rbmtools.notebook.paths import resolve_notebook

__all__ = [
    "NotebookError",
    "NotebookRun",
    "notebook_parameters",
    "render_html",
    "run",
    "timestamped",
]

_MAX_ERROR_TEXT = 300


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


def _kernel_config() -> Any:
    """Kernels talk to papermill over local sockets instead of TCP ports (POSIX)."""
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
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
    """``directory/<stem>-<UTC timestamp><suffix>``, with ``-2``, ``-3``... if taken."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    candidate = directory / f"{stem}-{stamp}{suffix}"
    number = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{stamp}-{number}{suffix}"
        number += 1
    return candidate


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


def run(
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike[str] = "reports",
    *,
    html: bool = True,
    kernel_name: str | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> NotebookRun:
    """Execute ``notebook`` with ``parameters`` and write ``<name>-<UTC time>.ipynb`` (and, with
    ``html``, the matching ``.html`` report with the code hidden) in ``output_dir``.

    ``notebook`` is a path, or the name of a notebook in the project's ``notebooks/`` folder
    (``"ttl_tuning"``). Every parameter must be declared in the notebook's ``parameters`` cell
    (a typo is an error, not a silently ignored value). ``timeout`` limits each cell (real
    seconds); ``cwd`` is the kernel's working directory (default: this process's). A failing
    cell raises ``NotebookError`` naming the cell; the executed notebook is kept.
    """
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source = resolve_notebook(notebook)
    values = {str(k): _plain(v, str(k)) for k, v in (parameters or {}).items()}
    declared = notebook_parameters(source)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValidationError(
            f"parameters.{unknown[0]}",
            values[unknown[0]],
            f"is not a parameter of {source.name} (it has: {', '.join(declared) or 'none'})",
        )
    if timeout is not None and not timeout > 0:
        raise ValidationError("timeout", timeout, "must be a positive number of seconds")
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    executed = timestamped(directory, source.stem, ".ipynb", now)
    started = time.monotonic()
    default_kernel, language = _missing(source)
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=values,
            kernel_name=kernel_name or default_kernel,
            language=language,
            progress_bar=progress,
            execution_timeout=timeout,
            cwd=None if cwd is None else os.fspath(cwd),
            config=_kernel_config(),
        )
    except PapermillExecutionError as exc:
        raise _failure(source, exc, executed) from None
    except NoSuchKernel:
        executed.unlink(missing_ok=True)  # nothing ran
        raise ValidationError(
            "kernel", kernel_name, "is not an installed Jupyter kernel (jupyter kernelspec list)"
        ) from None
    except CellTimeoutError as exc:
        cell = f'("{_first_line(_preview(str(exc)))}")'
        raise NotebookError(
            source.name, cell, f"timed out after {timeout:g} s (the limit for each cell)", executed
        ) from None
    except DeadKernelError as exc:
        raise NotebookError(
            source.name, "(unknown)", f"the kernel died ({exc}); out of memory?", executed
        ) from None
    report = None
    if html:
        report = executed.with_suffix(".html")
        render_html(executed, report, title=source.stem)
    return NotebookRun(source, executed, report, values, time.monotonic() - started)


def render_html(
    executed: str | os.PathLike[str], target: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Render an executed notebook as a self-contained HTML report: no code, no prompts, no
    stderr; markdown, printed text, tables and figures (inlined PNG) stay."""
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
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    name = title or Path(executed).stem
    body, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": name}})
    path = Path(target)
    path.write_text(body, encoding="utf-8")
    return path
