"""Analysis of RBM webhook and outbox logs: lifecycles, revoke success, latency, best TTL.

``load(events=..., outbox=...)`` reads both logs into a ``Dataset`` (DuckDB underneath, pandas
out); ``Dataset.lifecycle()`` is one row per message with its outcome; the metric functions
group by any of useCase, trafficType, experiment, arm, policyVersion, day; ``analyze(...)``
returns the whole analysis as one stable JSON-ready document. The heavy part is one SQL
definition (``sql``) run by a thin engine layer (``duckdb_engine``; ``load(...,
engine="spark")`` runs the same SQL on Spark, see ``engine_interface``); statistics run in
Python on compact aggregates.

Names are imported on first use, so ``import rbmtools`` and the CLI stay quick (DuckDB,
lifelines and statsmodels load only when an analysis runs).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Aggregates": "aggregates",
    "compute_aggregates": "aggregates",
    "always_valid_mean": "confseq",
    "always_valid_mean_difference": "confseq",
    "always_valid_rate": "confseq",
    "always_valid_rate_difference": "confseq",
    "SurvivalCurve": "latency",
    "kaplan_meier": "latency",
    "Dataset": "dataset",
    "LoadReport": "dataset",
    "load": "dataset",
    "compare_arms": "metrics",
    "delivery_latency": "metrics",
    "outcome_counts": "metrics",
    "read_rate": "metrics",
    "revoke_success": "metrics",
    "stale_and_double_deliveries": "metrics",
    "wilson": "metrics",
    "DEFAULT_POLICIES": "policy",
    "CostPolicy": "policy",
    "load_policies": "policy",
    "Analysis": "report",
    "analyze": "report",
    "build_analysis": "report",
    "GROUP_COLUMNS": "schema",
    "OUTCOMES": "schema",
    "REVOKE_METHODS": "schema",
    "SparkEngine": "spark_engine",
    "ArmTally": "stopping",
    "Decision": "stopping",
    "Look": "stopping",
    "StoppingRule": "stopping",
    "decide": "stopping",
    "tally_arms": "stopping",
    "make_engine": "engine_interface",
    "analysis_script": "export",
    "TtlChoice": "ttl",
    "best_ttl": "ttl",
    "expected_cost": "ttl",
    "Window": "window",
    "parse_instant": "window",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rbmtools.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rbmtools.analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
