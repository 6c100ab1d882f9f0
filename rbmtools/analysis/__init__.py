"""Analysis of RBM webhook and outbox logs: lifecycles, revoke success, latency, best TTL.

``load(events=..., outbox=...)`` reads both logs into a ``Dataset`` (DuckDB underneath, pandas
out); ``Dataset.lifecycle()`` is one row per message with its outcome; the metric functions
group by any of useCase, trafficType, experiment, arm, day; ``analyze(...)`` returns the whole
analysis as one stable JSON-ready document. The heavy part is one SQL definition (``sql``) run
by a thin engine layer (``engine``); statistics run in Python on compact aggregates.
"""

from rbmtools.analysis.aggregates import Aggregates, compute_aggregates
from rbmtools.analysis.latency import SurvivalCurve, kaplan_meier
from rbmtools.analysis.load import Dataset, LoadReport, load
from rbmtools.analysis.metrics import (
    compare_arms,
    delivery_latency,
    outcome_counts,
    read_rate,
    revoke_success,
    stale_and_double_deliveries,
    wilson,
)
from rbmtools.analysis.policy import DEFAULT_POLICIES, CostPolicy, load_policies
from rbmtools.analysis.report import Analysis, analyze, build_analysis
from rbmtools.analysis.schema import GROUP_COLUMNS, OUTCOMES, REVOKE_METHODS
from rbmtools.analysis.ttl import TtlChoice, best_ttl, expected_cost

__all__ = [
    "DEFAULT_POLICIES",
    "GROUP_COLUMNS",
    "OUTCOMES",
    "REVOKE_METHODS",
    "Aggregates",
    "Analysis",
    "CostPolicy",
    "Dataset",
    "LoadReport",
    "SurvivalCurve",
    "TtlChoice",
    "analyze",
    "best_ttl",
    "build_analysis",
    "compare_arms",
    "compute_aggregates",
    "delivery_latency",
    "expected_cost",
    "kaplan_meier",
    "load",
    "load_policies",
    "outcome_counts",
    "read_rate",
    "revoke_success",
    "stale_and_double_deliveries",
    "wilson",
]
