"""The analysis SQL as a script to run elsewhere: BigQuery (or Spark SQL), from the one definition.

``analysis_script("bigquery", by=...)`` writes, in order: the engine function
``rbm_decode_push`` (a BigQuery temporary function; inline in Spark SQL), the two input relations
``rbm_event_rows`` and ``rbm_outbox_rows`` taken from tables you name (with the contract columns,
see ``table_schema``), the load summary ``rbm_summary`` as a temporary table (one pass over both
logs, as ``load`` does), then the queries whose results are the load report and the compact
aggregates (group counts, latency bins, read bins) that ``rbmtools`` turns into statistics, and
on request the per-message lifecycle. Every statement is ``sql.py``'s, transpiled by
``dialects.transpile``.
"""

# Scripts are assembled from sql.py's constants, validated group names and table names that
# _quote_table checks; they are printed for a person to run, never executed here.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rbmtools.analysis import sql
from rbmtools.analysis.dialects import Macro, struct_fields, transpile, type_sql
from rbmtools.analysis.schema import validate_by
from rbmtools.errors import ValidationError

__all__ = ["EXPORT_DIALECTS", "analysis_script", "table_schema"]

#: Dialects ``analysis_script`` writes.
EXPORT_DIALECTS: tuple[str, ...] = ("bigquery", "spark")


def _columns(log: str) -> dict[str, str]:
    """The contract columns of ``log``: its fields, times as text, and the typed time columns
    (``sql.TYPED_TIMES``) for tables that hold the times as TIMESTAMPs (NULL when loading the
    JSON logs)."""
    if log == "events":
        return sql.EVENT_ROW_COLUMNS
    if log == "outbox":
        return sql.OUTBOX_ROW_COLUMNS
    raise ValidationError("log", log, "must be 'events' or 'outbox'")


def _bigquery_field(name: str, kind: str) -> dict[str, Any]:
    fields = struct_fields(kind)
    if fields is None:
        return {"name": name, "type": type_sql(kind, "bigquery"), "mode": "NULLABLE"}
    return {
        "name": name,
        "type": "RECORD",
        "mode": "NULLABLE",
        "fields": [_bigquery_field(f, t) for f, t in fields.items()],
    }


def table_schema(log: str) -> list[dict[str, Any]]:
    """The BigQuery table schema (``bq load --schema``, external table definitions) of the
    event log (``"events"``: all three line shapes) or of the outbox (``"outbox"``)."""
    return [_bigquery_field(name, kind) for name, kind in _columns(log).items()]


def _bigquery_time() -> str:
    """BigQuery's ``rbm_time``: a text read by the timestamp grammar (``sql.TIME_PATTERN``)."""
    return (
        "CREATE TEMP FUNCTION rbm_time(s STRING) AS (\n  " + sql.time_function("bigquery") + "\n)"
    )


def _bigquery_decode_push() -> str:
    """BigQuery's ``rbm_decode_push``: base64 -> JSON -> the event struct, every field as
    text (the time is read by ``rbm_time`` afterwards)."""
    fields = [f"    JSON_VALUE(doc, '$.{name}') AS {name}" for name in sql.EVENT_STRUCT_FIELDS]
    return (
        "CREATE TEMP FUNCTION rbm_decode_push(data STRING) AS ((\n"
        "  SELECT AS STRUCT\n" + ",\n".join(fields) + "\n"
        "  FROM (SELECT SAFE.PARSE_JSON(SAFE_CONVERT_BYTES_TO_STRING(SAFE.FROM_BASE64(data)))"
        " AS doc)\n))"
    )


def _spark_macros() -> dict[str, Macro]:
    from rbmtools.analysis.spark_engine import _decode_push_macro

    return {
        "rbm_decode_push": _decode_push_macro(),
        "rbm_time": Macro(params=("s",), body=sql.time_function("spark")),
    }


def _quote_table(name: str, dialect: str) -> str:
    if not name or any(c in name for c in "`;\n\r"):
        raise ValidationError("table", name, "must be a table name (project.dataset.table)")
    return f"`{name}`"


def _input(name: str, table: str, log: str, dialect: str, external: bool) -> str:
    columns = ", ".join(_columns(log))
    typed = "".join(
        f", CAST(NULL AS TIMESTAMP) AS {column}"
        for column in dict.fromkeys(sql.TYPED_TIMES[log].values())
    )
    source = "_FILE_NAME" if external and dialect == "bigquery" else "CAST(NULL AS STRING)"
    select = f"SELECT {source} AS source_file, {columns}{typed} FROM {_quote_table(table, dialect)}"
    return _materialise(name, select, dialect, transpiled=True)


def _materialise(name: str, select: str, dialect: str, *, transpiled: bool = False) -> str:
    body = select if transpiled else _transpile(select, dialect)
    if dialect == "bigquery":
        return f"CREATE TEMP TABLE {name} AS\n{body}"
    return f"CACHE TABLE {name} AS\n{body}"


def _transpile(query: str, dialect: str) -> str:
    macros = _spark_macros() if dialect == "spark" else None
    return transpile(query, dialect, macros=macros)


def analysis_script(
    dialect: str = "bigquery",
    by: str | Iterable[str] | None = ("useCase",),
    *,
    events_table: str | None = None,
    outbox_table: str | None = None,
    external: bool = False,
    lifecycle: bool = False,
) -> str:
    """The whole analysis as a SQL script in ``dialect`` (``bigquery`` or ``spark``).

    With ``events_table``/``outbox_table`` the script first copies them into the input
    relations (``external=True``: BigQuery external tables over the log files, whose
    ``_FILE_NAME`` then names each line's file); without, it expects relations named
    ``rbm_event_rows`` and ``rbm_outbox_rows`` with the columns of ``table_schema``.
    ``lifecycle=True`` adds the facts and the per-message lifecycle as the last result.
    """
    if dialect not in EXPORT_DIALECTS:
        raise ValidationError("dialect", dialect, f"must be one of {', '.join(EXPORT_DIALECTS)}")
    if (events_table is None) != (outbox_table is None):
        raise ValidationError(
            "outbox_table" if outbox_table is None else "events_table",
            None,
            "give both tables or neither",
        )
    columns = validate_by(by)
    grouping = ", ".join(columns) or "nothing (all messages)"
    header = [
        f"-- rbmtools analysis SQL ({dialect}), grouped by {grouping}.",
        "-- Generated from rbmtools.analysis.sql (DuckDB dialect) by sqlglot; do not edit.",
        "-- Results, in order: the load report, the group counts, the latency bins (deliveries",
        "-- and censorings per log-spaced bin) and the read bins"
        + (", then one lifecycle row per message" if lifecycle else "")
        + "; rbmtools computes",
        "-- the statistics (Wilson intervals, Kaplan-Meier, best TTL) from the counts and bins.",
    ]
    parts: list[str] = []
    if dialect == "bigquery":
        parts.append(_bigquery_time())
        parts.append(_bigquery_decode_push())
    if events_table is not None and outbox_table is not None:
        parts.append(_input("rbm_event_rows", events_table, "events", dialect, external))
        parts.append(_input("rbm_outbox_rows", outbox_table, "outbox", dialect, external))
    else:
        header.append(
            "-- Inputs: relations rbm_event_rows and rbm_outbox_rows with the contract columns "
            "(rbmtools logs sql --schema events|outbox)."
        )
    parts.append(_materialise("rbm_summary", sql.SUMMARY, dialect))
    parts.append(_transpile(sql.LOAD_REPORT, dialect))
    parts.append(_transpile(sql.summary_counts_sql(columns), dialect))
    parts.append(_transpile(sql.summary_latency_bins_sql(columns), dialect))
    parts.append(_transpile(sql.summary_read_bins_sql(columns), dialect))
    if lifecycle:
        parts.append(_materialise("rbm_facts", sql.FACTS, dialect))
        parts.append(_transpile(sql.LIFECYCLE, dialect))
    return "\n".join(header) + "\n\n" + ";\n\n".join(parts) + ";\n"


def schema_json(log: str) -> str:
    """``table_schema(log)`` as the JSON text ``bq`` reads."""
    return json.dumps(table_schema(log), indent=2) + "\n"
