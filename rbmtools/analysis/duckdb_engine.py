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
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from rbmtools.analysis import sql
from rbmtools.analysis.dialects import struct_fields
from rbmtools.analysis.inputs import LogFiles
from rbmtools.errors import ValidationError

if TYPE_CHECKING:  # pandas loads on first use (analysis.cli imports it beside the load)
    import pandas as pd

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
    """The json_transform structure for the event fields (all text, as the reader's)."""
    return json.dumps(dict(fields))


def _typed_columns(columns: dict[str, str]) -> set[str]:
    """The contract's typed time columns (a JSON line never fills them)."""
    return {name for log in sql.TYPED_TIMES.values() for name in log.values()} & set(columns)


def _empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
    return f"SELECT CAST(NULL AS VARCHAR) AS source_file, {cols} WHERE FALSE"


def _is_timestamp(kind: Any) -> bool:
    return str(kind).upper().startswith("TIMESTAMP")


def _parquet_column(
    name: str, kind: str, present: dict[str, Any], log: str, typed: dict[str, list[str]]
) -> str:
    """A contract column from a Parquet file's columns: absent ones are NULL, text is cast
    to the contract's type, and a time stored as a timestamp goes to its typed column
    (``sql.TYPED_TIMES``, collected in ``typed``) while its text column stays NULL."""
    if name not in present:
        return f"CAST(NULL AS {kind})"
    if kind.startswith("STRUCT("):
        children = dict(getattr(present[name], "children", []) or [])
        wanted = sql.EVENT_STRUCT_FIELDS if name == "event" else struct_fields(kind) or {}
        fields = []
        for field, ftype in wanted.items():
            if field in children and _is_timestamp(children[field]):
                typed.setdefault(sql.TYPED_TIMES[log][field], []).append(
                    f"TRY_CAST({name}.{field} AS TIMESTAMPTZ)"
                )
                fields.append(f"{field} := CAST(NULL AS {ftype})")
            elif field in children:
                fields.append(f"{field} := TRY_CAST({name}.{field} AS {ftype})")
            else:
                fields.append(f"{field} := CAST(NULL AS {ftype})")
        return f"CASE WHEN {name} IS NOT NULL THEN struct_pack({', '.join(fields)}) END"
    if name in sql.TYPED_TIMES[log] and _is_timestamp(present[name]):
        typed.setdefault(sql.TYPED_TIMES[log][name], []).append(f"TRY_CAST({name} AS TIMESTAMPTZ)")
        return f"CAST(NULL AS {kind})"
    return f"TRY_CAST({name} AS {kind})"


_MEMORY_LIMIT = re.compile(r"\s*\d+(\.\d+)?\s*(B|[KMGT]i?B)?\s*", re.IGNORECASE)


def check_memory_limit(value: str) -> str:
    """``value`` if DuckDB takes it as a memory limit (``2GB``, ``512MiB``, ``1.5GB``), else a
    ``ValidationError`` that says so (DuckDB's own error would be a traceback)."""
    if not isinstance(value, str) or not _MEMORY_LIMIT.fullmatch(value):
        raise ValidationError("memory_limit", value, "must be a size such as 2GB or 512MB")
    return value


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
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValidationError("threads", threads, "must be a whole number of threads >= 1")
            self.con.execute(f"SET threads = {threads}")
        if memory_limit:
            check_memory_limit(memory_limit)
            self.con.execute(f"SET memory_limit = {_quote(memory_limit)}")
        schema = _quote(_json_schema(sql.EVENT_STRUCT_FIELDS))
        # (TRY rather than a json_valid check first: the document is parsed once, not twice)
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO rbm_json_event(doc) AS "
            f"TRY(json_transform(doc, {schema}))"
        )
        self.con.execute(
            f"CREATE OR REPLACE TEMP MACRO rbm_time(s) AS {sql.time_function('duckdb')}"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP MACRO rbm_decode_push(data) AS "
            "rbm_json_event(TRY(DECODE(FROM_BASE64(data))))"
        )

    # ------------------------------------------------------------------ sources

    def _jsonl_select(self, files: Sequence[str], columns: dict[str, str]) -> str:
        typed = _typed_columns(columns)
        read = {name: kind for name, kind in columns.items() if name not in typed}
        nulls = "".join(f", CAST(NULL AS TIMESTAMPTZ) AS {name}" for name in sorted(typed))
        return (
            f"SELECT filename AS source_file, * EXCLUDE (filename){nulls} FROM read_json("
            f"{_file_list(files)}, format = 'newline_delimited', records = true, "
            "ignore_errors = true, filename = true, compression = 'auto', "
            "maximum_object_size = 16777216, "
            f"columns = {_columns_literal(read)})"
        )

    def _parquet_select(self, files: Sequence[str], columns: dict[str, str]) -> str:
        source = f"read_parquet({_file_list(files)}, union_by_name = true, filename = true)"
        described = self.con.sql(f"SELECT * FROM {source} LIMIT 0")
        present = dict(zip(described.columns, described.types, strict=True))
        log = "events" if "event" in columns else "outbox"
        parts = ["filename AS source_file"]
        typed: dict[str, list[str]] = {}
        for name, kind in columns.items():
            if name in _typed_columns(columns):
                continue
            parts.append(f"{_parquet_column(name, kind, present, log, typed)} AS {name}")
        for name in sorted(_typed_columns(columns)):
            values = typed.get(name, [])
            value = f"COALESCE({', '.join(values)})" if values else "CAST(NULL AS TIMESTAMPTZ)"
            parts.append(f"{value} AS {name}")
        return f"SELECT {', '.join(parts)} FROM {source}"

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

    def write_parquet(
        self, query: str, path: str, partition_by: str | None = None, level: int | None = None
    ) -> None:
        """``query`` as Parquet at ``path``; with ``partition_by`` (a column of the query) as
        the directory ``path`` with a ``column=value`` folder per value (what was there is
        replaced), the column itself left out of the files. ``level``: zstd's (1 writes fast,
        the default 3 smaller files)."""
        options = "FORMAT parquet, COMPRESSION zstd"
        if level is not None:
            options += f", COMPRESSION_LEVEL {int(level)}"
        if partition_by is not None:
            options += f', PARTITION_BY ("{partition_by}"), OVERWRITE'
        self.con.execute(f"COPY ({query}) TO {_quote(path)} ({options})")

    def unreadable_file(self, exc: BaseException, files: Sequence[str]) -> str | None:
        """The file of ``files`` that DuckDB could not read when it raised ``exc`` (an I/O or
        input error naming it: a truncated or false gzip stream, a damaged Parquet file)."""
        if not isinstance(exc, duckdb.Error):
            return None
        text = str(exc)
        named = [f for f in files if f in text]
        return max(named, key=len) if named else None

    def close(self) -> None:
        self.con.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ quarantine (slow path)

    def bad_rows(self, path: str, kind: str) -> Iterator[tuple[int, str, str]]:
        """The malformed rows of one file as ``(line number, text, problem)``.

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
        problems = flags["problem"]
        if files.parquet:
            rows = self.con.sql(f"SELECT CAST(to_json(r) AS VARCHAR) FROM {view} AS r").fetchall()
            for index in bad.nonzero()[0]:
                yield int(index) + 1, rows[index][0], str(problems[index])
            return
        lines = list(_nonblank_lines(path))
        if len(lines) != len(bad):  # the reader split lines differently: keep every line
            for number, text in lines:
                yield number, text, "unclassified"
            return
        for (number, text), is_bad, problem in zip(lines, bad, problems, strict=True):
            if is_bad:
                yield number, text, str(problem)


def _nonblank_lines(path: str) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.strip():
                yield number, text
