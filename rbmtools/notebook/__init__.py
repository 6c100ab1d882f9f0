"""Notebooks as reports, and the helpers the notebooks in ``notebooks/`` call.

``run(notebook, parameters, output_dir)`` executes a notebook with papermill (the values go
after its cell tagged ``parameters``) and writes the executed ``.ipynb`` and an HTML report
with the code hidden, under UTC-timestamped names; a failing cell raises ``NotebookError``
naming the cell, and the executed notebook is kept. ``rbmtools report`` is its command line.
The notebooks hold no logic: sessions, windows, tables and texts live here (the report tables
and the headline come from ``rbmtools.analysis``), tested.

Names are imported on first use, so ``rbmtools --help`` does not load papermill or pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "as_table": "display",
    "figure_or_sentence": "display",
    "headline": "display",
    "human_seconds": "display",
    "markdown": "display",
    "setup": "display",
    "table": "display",
    "KernelStartError": "execute",
    "NotebookError": "execute",
    "NotebookRun": "execute",
    "notebook_parameters": "execute",
    "render_html": "execute",
    "run": "execute",
    "experiment_analysis": "experiments",
    "experiment_decision": "experiments",
    "experiment_spec": "experiments",
    "run_table": "experiments",
    "sms_sender": "experiments",
    "NOTEBOOKS": "paths",
    "find_path": "paths",
    "project_root": "paths",
    "resolve_notebook": "paths",
    "sample_dir": "paths",
    "Session": "session",
    "open_session": "session",
    "revoke_summary": "session",
    "changes": "tables",
    "comparisons_table": "tables",
    "compare_windows": "tables",
    "cost_policies": "tables",
    "daily_table": "tables",
    "deliveries_table": "tables",
    "detail_links": "tables",
    "latency_table": "tables",
    "load_table": "tables",
    "outcomes_table": "tables",
    "policy_table": "tables",
    "read_table": "tables",
    "require_messages": "tables",
    "revoke_table": "tables",
    "save_table": "tables",
    "support_caveats": "tables",
    "ttl_recommendations": "tables",
    "ttl_table": "tables",
    "Window": "windows",
    "load_window": "windows",
    "parse_instant": "windows",
    "outbox_span": "windows",
    "scheduled_windows": "windows",
    "check_policy": "ttl_policies",
    "drift_markdown": "ttl_policies",
    "drift_table": "ttl_policies",
    "write_ttl_policy": "ttl_policies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rbmtools.notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rbmtools.notebook.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
