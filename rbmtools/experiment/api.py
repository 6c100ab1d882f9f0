"""Deprecated: ``rbmtools.experiment.api`` was split up; import from ``rbmtools.experiment``.

``run_experiment``, ``plan_experiment`` and ``ExperimentResult`` are in ``experiment.run``;
``RunPaths`` and ``read_outbox`` in ``experiment.folder`` (the run folder); ``TARGETS`` and the
target settings in ``experiment.targets`` (``EmulatorTarget``, ``LiveTarget``). Every name is
re-exported by ``rbmtools.experiment``. This module keeps old imports working, with a warning.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = {
    "DEFAULT_DATA_DIR": "run",
    "ExperimentResult": "run",
    "plan_experiment": "run",
    "run_experiment": "run",
    "RunPaths": "folder",
    "read_outbox": "folder",
    "DEFAULT_EVENT_TIMEOUT": "targets",
    "DEFAULT_MAX_RECIPIENTS": "targets",
    "TARGETS": "targets",
}

__all__ = sorted(_MOVED)


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'rbmtools.experiment.api' has no attribute {name!r}")
    warnings.warn(
        f"rbmtools.experiment.api is deprecated; import {name} from rbmtools.experiment",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"rbmtools.experiment.{module}"), name)
