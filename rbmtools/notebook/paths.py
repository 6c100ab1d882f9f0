"""Where the project's notebooks and sample data are, and how a notebook's paths resolve.

A notebook may run with any working directory: from the project root (``rbmtools report``,
``make demo``), from ``notebooks/`` (JupyterLab), or from a cron job's home. A relative path
parameter such as ``data/sample/events`` is therefore looked up in the working directory first
and then in the project root (the folder that holds ``notebooks/`` next to the package).
"""

from __future__ import annotations

import os
from pathlib import Path

from rbmtools.errors import ValidationError

__all__ = ["NOTEBOOKS", "find_path", "project_root", "resolve_notebook", "sample_dir"]

#: The notebooks shipped in ``notebooks/``, in the order the README presents them.
NOTEBOOKS = (
    "adhoc_revoke",
    "revoke_experiment",
    "webhook_log_analysis",
    "ttl_tuning",
    "scheduled_report",
)


def project_root() -> Path | None:
    """The source checkout this package runs from (it holds ``notebooks/``), if any."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "notebooks").is_dir() else None


def sample_dir() -> Path:
    """``data/sample/``: the sample logs (see ``rbmtools.testing.sample_data``)."""
    return find_path("data/sample")


def find_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as given if it exists (absolute, or relative to the working directory), else
    relative to the project root if it exists there, else as given (readers then say that it
    does not exist). Glob patterns are returned unchanged."""
    given = Path(os.path.expanduser(os.fspath(path)))
    if given.is_absolute() or given.exists() or any(ch in str(given) for ch in "*?["):
        return given
    root = project_root()
    if root is not None and (root / given).exists():
        return root / given
    return given


def resolve_notebook(notebook: str | os.PathLike[str]) -> Path:
    """A notebook path, or the name of one in the project's ``notebooks/`` (with or without
    ``.ipynb``)."""
    path = find_path(notebook)
    if path.is_file():
        return path
    name = Path(os.fspath(notebook)).name
    if not name.endswith(".ipynb"):
        name += ".ipynb"
    root = project_root()
    if root is not None and (root / "notebooks" / name).is_file():
        return root / "notebooks" / name
    known = ", ".join(NOTEBOOKS)
    raise ValidationError(
        "notebook", os.fspath(notebook), f"is not a notebook file nor one of: {known}"
    )
