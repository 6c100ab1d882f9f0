"""SQL twins of the load summary's aggregates, counted per message instead (tests only).

The load keeps no per-message rows: every aggregate is summed up from the small summary table
(``sql.summary_counts_sql`` and its siblings). These count the same aggregates from the
per-message lifecycle view (``rbm_lifecycle``, built by ``Dataset.lifecycle``), the plain way,
so that tests can hold the two equal on any history. Nothing in the package runs them.
"""

# SQL assembled from constants and validated column names only (validate_by).
# ruff: noqa: S608

from __future__ import annotations

from rbmtools.analysis.schema import validate_by
from rbmtools.analysis.sql import bin_expression, counts_columns, group_clauses

__all__ = ["group_counts_sql", "latency_bins_sql", "read_bins_sql"]


def group_counts_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group: messages, outcome counts, revoke attempts and successes by method, and the
    counts behind read rate, stale and double deliveries and the revoke race, counted from
    the lifecycle (``source``, one row per message)."""
    by = validate_by(by)
    select, group, order = group_clauses(by)

    def count(condition: str | None) -> str:
        return f"COUNT(*) FILTER (WHERE {condition})" if condition else "COUNT(*)"

    columns = counts_columns(count, 'CAST(COALESCE(SUM("duplicateEvents"), 0) AS BIGINT)')
    return f"""
SELECT {select}
    {columns}
FROM {source}
{group}
{order}
"""


def latency_bins_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group and latency bin: deliveries and censorings (messages that entered RCS)."""
    by = validate_by(by)
    select, group, _ = group_clauses(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    return f"""
SELECT {select}
    {bin_expression('"observedSeconds"')} AS bin,
    COUNT(*) FILTER (WHERE delivered) AS delivered,
    COUNT(*) FILTER (WHERE NOT delivered) AS censored
FROM {source}
WHERE "observedSeconds" IS NOT NULL
{group}
"""


def read_bins_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group and bin of the time from delivery to READ: how many messages were read."""
    by = validate_by(by)
    select, group, _ = group_clauses(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    return f"""
SELECT {select}
    {bin_expression('"readSeconds"')} AS bin,
    COUNT(*) AS read
FROM {source}
WHERE "readSeconds" IS NOT NULL
{group}
"""
