"""The engine layer: everything DuckDB-specific, kept thin so another engine can replace it.

An engine does three things for the shared SQL of ``sql.py``: it exposes the log files as the
relations ``rbm_event_rows`` and ``rbm_outbox_rows`` (JSON Lines through DuckDB's JSON reader,
gzip or not; Parquet through its Parquet reader, mapped onto the same columns), it defines the
function ``rbm_decode_push(data)`` (base64 -> JSON -> event struct), and it runs queries,
handing results back as pandas DataFrames. Nothing here knows the lifecycle rules.
"""

# Queries are assembled from constants, validated names and quoted file paths (_quote).
# ruff: noqa: S608

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pandas as pd

from rbmtools.analysis import sql
from rbmtools.analysis.inputs import LogFiles

__all__ = ["DuckDBEngine"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(files: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(f) for f in files) + "]"


def _columns_literal(columns: dict[str, str]) -> str:
    return (
        "{" + ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns.items()) + "}"
    )


def _json_schema(fields: dict[str, str]) -> str:
    """The json_transform structure for the event fields (sendTime kept as text)."""
    return json.dumps(
        {name: ("VARCHAR" if name == "sendTime" else kind) for name, kind in fields.items()}
    )


def _empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
    return f"SELECT CAST(NULL AS VARCHAR) AS source_file, {cols} WHERE FALSE"


class DuckDBEngine:
    """An embedded DuckDB connection set up for the analysis (UTC session time zone).

    ``threads`` and ``memory_limit`` (e.g. ``"1GB"``) bound what DuckDB uses; when the limit
    is reached it spills to ``temp_directory`` (a private temporary directory by default).
    """

    name = "duckdb"

    def __init__(
        self,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> None:
        self.con = duckdb.connect(":memory:")
        self._tmp = None
        if temp_directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rbmtools-duckdb-")
            temp_directory = self._tmp.name
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET temp_directory = {_quote(temp_directory)}")
        # Inside Jupyter, DuckDB starts with the bar off and refuses any change of the setting
        # without ipywidgets: set it only when it is on.
        if self.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]:
            self.con.execute("SET enable_progress_bar = false")
        # Results are ordered explicitly where order matters; not preserving the order of
        # large intermediate results saves memory and time.
        self.con.execute("SET preserve_insertion_order = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = {_quote(memory_limit)}")
        schema = _quote(_json_schema(sql.EVENT_STRUCT_FIELDS))
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO rbm_json_event(doc) AS "
            f"CASE WHEN json_valid(doc) THEN json_transform(doc, {schema}) END"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO rbm_decode_push(data) AS "
            "rbm_json_event(TRY(DECODE(FROM_BASE64(data))))"
        )

    # ------------------------------------------------------------------ sources

    def _jsonl_select(self, files: Sequence[str], columns: dict[str, str]) -> str:
        return (
            "SELECT filename AS source_file, * EXCLUDE (filename) FROM read_json("
            f"{_file_list(files)}, format = 'newline_delimited', records = true, "
            "ignore_errors = true, filename = true, compression = 'auto', "
            "maximum_object_size = 16777216, "
            f"columns = {_columns_literal(columns)})"
        )

    def _parquet_select(self, files: Sequence[str], columns: dict[str, str]) -> str:
        source = f"read_parquet({_file_list(files)}, union_by_name = true, filename = true)"
        described = self.con.sql(f"SELECT * FROM {source} LIMIT 0")
        present = dict(zip(described.columns, described.types, strict=True))
        parts = ["filename AS source_file"]
        for name, kind in columns.items():
            parts.append(f"{self._parquet_column(name, kind, present)} AS {name}")
        return f"SELECT {', '.join(parts)} FROM {source}"

    @staticmethod
    def _parquet_column(name: str, kind: str, present: dict[str, Any]) -> str:
        if name not in present:
            return f"CAST(NULL AS {kind})"
        if kind.startswith("STRUCT("):
            children = dict(getattr(present[name], "children", []) or [])
            wanted = (
                sql.EVENT_STRUCT_FIELDS
                if name == "event"
                else {
                    "data": "VARCHAR",
                    "publishTime": "TIMESTAMPTZ",
                }
            )
            fields = [
                f"{field} := "
                + (
                    f"TRY_CAST({name}.{field} AS {ftype})"
                    if field in children
                    else f"CAST(NULL AS {ftype})"
                )
                for field, ftype in wanted.items()
            ]
            return f"CASE WHEN {name} IS NOT NULL THEN struct_pack({', '.join(fields)}) END"
        if kind == "JSON":
            return f"to_json({name})"
        return f"TRY_CAST({name} AS {kind})"

    def _source_select(self, files: LogFiles, columns: dict[str, str]) -> str:
        parts = []
        if files.jsonl:
            parts.append(self._jsonl_select(files.jsonl, columns))
        if files.parquet:
            parts.append(self._parquet_select(files.parquet, columns))
        return " UNION ALL ".join(parts) if parts else _empty_select(columns)

    def register_logs(self, events: LogFiles, outbox: LogFiles) -> None:
        """Expose the two logs as ``rbm_event_rows`` and ``rbm_outbox_rows``."""
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW rbm_event_rows AS "
            + self._source_select(events, sql.EVENT_ROW_COLUMNS)
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW rbm_outbox_rows AS "
            + self._source_select(outbox, sql.OUTBOX_ROW_COLUMNS)
        )

    # ------------------------------------------------------------------ queries

    def execute(self, statement: str) -> None:
        self.con.execute(statement)

    def create_table(self, name: str, query: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")

    def create_view(self, name: str, query: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {query}")

    def df(self, query: str) -> pd.DataFrame:
        return self.con.sql(query).df()

    def row(self, query: str) -> dict[str, Any]:
        cursor = self.con.execute(query)
        rows = cursor.fetchall()
        values = rows[0] if rows else ()
        names = [column[0] for column in cursor.description]
        return dict(zip(names, values or (), strict=False))

    def write_parquet(self, query: str, path: str, partition_by: str | None = None) -> None:
        """``query`` as Parquet at ``path``; with ``partition_by`` (a column of the query) as
        the directory ``path`` with a ``column=value`` folder per value (what was there is
        replaced), the column itself left out of the files."""
        options = "FORMAT parquet, COMPRESSION zstd"
        if partition_by is not None:
            options += f', PARTITION_BY ("{partition_by}"), OVERWRITE'
        self.con.execute(f"COPY ({query}) TO {_quote(path)} ({options})")

    def close(self) -> None:
        self.con.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ quarantine (slow path)

    def bad_rows(self, path: str, kind: str) -> Iterator[tuple[int, str]]:
        """The malformed rows of one file as ``(line number, text)``.

        JSON Lines: DuckDB classifies the file's rows in file order (blank lines skipped) and
        Python reads the raw text beside them. Parquet: the offending rows as JSON text.
        """
        columns = sql.EVENT_ROW_COLUMNS if kind == "events" else sql.OUTBOX_ROW_COLUMNS
        files = (
            LogFiles(parquet=(path,))
            if path.lower().endswith((".parquet", ".pq"))
            else LogFiles(jsonl=(path,))
        )
        view = "rbm_quarantine_rows"
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS " + self._source_select(files, columns)
        )
        classify = (
            sql.event_line_classes_sql(view) if kind == "events" else sql.outbox_line_ok_sql(view)
        )
        self.con.execute("SET preserve_insertion_order = true")  # rows must stay in file order
        try:
            flags = self.con.sql(classify).fetchnumpy()
        finally:
            self.con.execute("SET preserve_insertion_order = false")
        bad = (flags["cls"] == "malformed") if kind == "events" else ~flags["ok"].astype(bool)
        if files.parquet:
            rows = self.con.sql(f"SELECT CAST(to_json(r) AS VARCHAR) FROM {view} AS r").fetchall()
            for index in bad.nonzero()[0]:
                yield int(index) + 1, rows[index][0]
            return
        lines = list(_nonblank_lines(path))
        if len(lines) != len(bad):  # the reader split lines differently: keep every line
            yield from lines
            return
        for (number, text), is_bad in zip(lines, bad, strict=True):
            if is_bad:
                yield number, text


def _nonblank_lines(path: str) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.strip():
                yield number, text
