"""The Spark engine: the analysis SQL of ``sql.py`` run by Spark, locally or on a cluster.

It does for Spark what ``duckdb_engine.DuckDBEngine`` does for DuckDB, and nothing more: it
exposes the log files as the relations ``rbm_event_rows`` and ``rbm_outbox_rows`` with the
contract columns (JSON Lines read as text and parsed with ``from_json``, every field first as
text and then ``TRY_CAST`` to its type, as DuckDB's reader does; Parquet mapped onto the same
columns), it supplies ``rbm_decode_push`` (``try_to_binary(data, 'base64')`` -> ``from_json``,
expanded inline), and it runs the shared DuckDB-dialect queries after
``dialects.transpile(..., "spark")``.

Paths are local files (read through ``file:`` URIs, so they must be visible to every executor)
or anything Hadoop can list (``hdfs://``, ``s3a://``, ``gs://``, ``abfss://``, ...). The engine
works in its own ``newSession()`` of the given ``SparkSession``: its temporary views, its UTC
session time zone and its settings never touch the caller's session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlglot
from sqlglot import exp

from rbmtools.analysis import sql
from rbmtools.analysis.dialects import Macro, statements, struct_fields, type_sql
from rbmtools.analysis.engine_interface import URI as _URI
from rbmtools.analysis.inputs import JSONL_SUFFIXES, PARQUET_SUFFIXES, LogFiles, resolve_paths
from rbmtools.errors import RbmError, ValidationError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["DEFAULT_LOCAL_CONF", "SparkEngine", "spark_available"]

#: Settings for a local session the engine starts itself (no UI, few shuffle partitions).
DEFAULT_LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
}

#: What every engine session needs, whatever the caller's session says.
_SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

_GLOB = re.compile(r"([*?\[\]{}\\])")


def spark_available() -> str | None:
    """None when the Spark engine can run here, else why not (no pyspark, no Java)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'rbmtools[spark]', or 'pyspark>=4,<5')"
    import shutil

    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (
        java_home and os.path.exists(os.path.join(java_home, "bin", "java"))
    ):
        return "Java is not installed (Spark needs Java 17 or later on PATH or in JAVA_HOME)"
    return None


def _q(name: str) -> str:
    return f"`{name.replace('`', '``')}`"


def _typed_names(columns: Mapping[str, str]) -> set[str]:
    return {n for log in sql.TYPED_TIMES.values() for n in log.values()} & set(columns)


def _text_schema(columns: Mapping[str, str]) -> str:
    """The ``from_json`` schema: every leaf as text (cast to its type afterwards); the typed
    time columns are no JSON fields."""
    parts = []
    for name, kind in columns.items():
        if name in _typed_names(columns):
            continue
        fields = struct_fields(kind)
        if fields is None:
            parts.append(f"{_q(name)} STRING")
        else:
            inner = ", ".join(f"{_q(f)}: STRING" for f in fields)
            parts.append(f"{_q(name)} STRUCT<{inner}>")
    return ", ".join(parts)


def _cast(value: str, kind: str) -> str:
    spark_type = type_sql(kind, "spark")
    return value if spark_type == "STRING" else f"TRY_CAST({value} AS {spark_type})"


def _is_timestamp(data_type: Any) -> bool:
    from pyspark.sql.types import TimestampNTZType, TimestampType

    return isinstance(data_type, TimestampType | TimestampNTZType)


def _typed_columns(
    row: str, columns: Mapping[str, str], present: Mapping[str, Any] | None
) -> list[str]:
    """Select expressions giving the contract columns from the struct/row ``row``.

    ``present`` maps the names the source has to their Spark types (None: every name may be
    there, as in parsed JSON, all text); absent columns are typed NULLs. A time the source
    holds as a timestamp goes to its typed column (``sql.TYPED_TIMES``), its text stays NULL.
    """
    from pyspark.sql.types import StructType

    log = "events" if "event" in columns else "outbox"
    typed: dict[str, list[str]] = {}
    out = []
    for name, kind in columns.items():
        if name in _typed_names(columns):
            continue
        fields = struct_fields(kind)
        ref = f"{row}.{_q(name)}" if row else _q(name)
        if present is not None and name not in present:
            out.append(f"CAST(NULL AS {type_sql(kind, 'spark')}) AS {_q(name)}")
            continue
        if fields is None:
            if (
                present is not None
                and name in sql.TYPED_TIMES[log]
                and _is_timestamp(present[name])
            ):
                typed.setdefault(sql.TYPED_TIMES[log][name], []).append(ref)
                out.append(f"CAST(NULL AS STRING) AS {_q(name)}")
            else:
                out.append(f"{_cast(ref, kind)} AS {_q(name)}")
            continue
        children = None
        if present is not None:
            source_type = present[name]
            children = (
                {f.name: f.dataType for f in source_type.fields}
                if isinstance(source_type, StructType)
                else {}
            )
        packed = []
        for field, ftype in fields.items():
            if children is not None and field not in children:
                value = f"CAST(NULL AS {type_sql(ftype, 'spark')})"
            elif children is not None and _is_timestamp(children[field]):
                typed.setdefault(sql.TYPED_TIMES[log][field], []).append(f"{ref}.{_q(field)}")
                value = "CAST(NULL AS STRING)"
            else:
                value = _cast(f"{ref}.{_q(field)}", ftype)
            packed.append(f"'{field}', {value}")
        if children == {}:
            out.append(f"CAST(NULL AS {type_sql(kind, 'spark')}) AS {_q(name)}")
        else:
            out.append(
                f"CASE WHEN {ref} IS NOT NULL THEN named_struct({', '.join(packed)}) END"
                f" AS {_q(name)}"
            )
    for name in sorted(_typed_names(columns)):
        values = [f"CAST({v} AS TIMESTAMP)" for v in typed.get(name, [])]
        value = f"COALESCE({', '.join(values)})" if len(values) > 1 else (values or [None])[0]
        out.append(f"{value or 'CAST(NULL AS TIMESTAMP)'} AS {_q(name)}")
    return out


#: The file a row came from, as the path the user gave (Spark reports URL-encoded URIs).
_SOURCE_FILE = (
    "regexp_replace(url_decode(replace(_metadata.file_path, '+', '%2B')), '^file:/+', '/')"
)


def _decode_push_macro() -> Macro:
    """``rbm_decode_push(data)``: base64 -> JSON -> the event struct (every field as text)."""
    schema = ", ".join(f"{_q(name)} STRING" for name in sql.EVENT_STRUCT_FIELDS)
    return Macro(
        params=("data",),
        body=f"from_json(CAST(try_to_binary(data, 'base64') AS STRING), '{schema}')",
    )


class SparkEngine:
    """The analysis engine on Spark: ``SparkEngine(spark)`` for a session you have, or
    ``SparkEngine(master="spark://host:7077")`` (default ``local[*]``) to start one, which
    ``close()`` then stops. ``conf`` adds Spark settings for a session the engine starts.
    """

    name = "spark"

    def __init__(
        self,
        spark: SparkSession | None = None,
        *,
        master: str | None = None,
        conf: Mapping[str, str] | None = None,
        app_name: str = "rbmtools",
    ) -> None:
        problem = spark_available()
        if problem is not None:
            raise RbmError(f"the Spark engine cannot run: {problem}")
        from pyspark.sql import SparkSession

        self._owned = False
        extra: dict[str, str] = {}
        if spark is None:
            active = SparkSession.getActiveSession()
            if active is None and _context_running():  # started in another thread
                active = SparkSession.builder.getOrCreate()
            if active is not None:
                # One SparkContext per process: use it, and apply ``conf`` to our session.
                running = active.sparkContext.master
                if master is not None and master != running:
                    raise ValidationError(
                        "spark_master",
                        master,
                        f"a Spark session on {running} already runs in this process",
                    )
                spark, extra = active, dict(conf or {})
            else:
                spark = self._start(master, conf, app_name)
                self._owned = True
        if type(spark).__module__.startswith("pyspark.sql.connect"):
            raise RbmError(
                "the Spark engine needs a classic SparkSession (it lists files through Hadoop "
                "and numbers malformed lines with RDDs); Spark Connect sessions are not supported"
            )
        self.base = spark
        self.spark = spark.newSession()
        for key, value in {**extra, **_SESSION_CONF}.items():
            try:
                self.spark.conf.set(key, value)
            except Exception as exc:  # a static setting cannot change in a running session
                raise ValidationError("spark_conf", key, _first_line(exc)) from None
        self._macros = {
            "rbm_decode_push": _decode_push_macro(),
            "rbm_time": Macro(params=("s",), body=sql.time_function("spark")),
        }
        self._frames: dict[str, DataFrame] = {}
        self._views: set[str] = set()

    @staticmethod
    def _start(master: str | None, conf: Mapping[str, str] | None, app_name: str) -> SparkSession:
        from pyspark.sql import SparkSession

        master = master or "local[*]"
        settings = dict(DEFAULT_LOCAL_CONF) if master.startswith("local") else {}
        settings.update(conf or {})
        builder = SparkSession.builder.appName(app_name).master(master)
        for key, value in settings.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        return spark

    def __repr__(self) -> str:
        master = self.base.sparkContext.master if not self._closed else "closed"
        return f"SparkEngine(master={master!r}, owned={self._owned})"

    @property
    def _closed(self) -> bool:
        return self.spark is None

    # ------------------------------------------------------------------ paths

    def resolve(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None, field: str
    ) -> LogFiles:
        """The log files named by ``paths``: local paths as ``inputs.resolve_paths`` finds them,
        URIs (``hdfs://``, ``s3a://``, ``file:/``...) listed through Hadoop's file systems."""
        if paths is None:
            return LogFiles()
        items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        local = [os.fspath(p) for p in items if not _URI.match(os.fspath(p))]
        remote = [os.fspath(p) for p in items if _URI.match(os.fspath(p))]
        found = resolve_paths(local, field) if local else LogFiles()
        jsonl, parquet = list(found.jsonl), list(found.parquet)
        for uri in remote:
            for path in self._hadoop_files(uri, field):
                lower = path.lower()
                if lower.endswith(PARQUET_SUFFIXES):
                    parquet.append(path)
                else:
                    jsonl.append(path)
        return LogFiles(jsonl=tuple(sorted(set(jsonl))), parquet=tuple(sorted(set(parquet))))

    def _hadoop_files(self, uri: str, field: str) -> list[str]:
        context = self.spark.sparkContext
        jvm = context._jvm
        hadoop_conf = context._jsc.hadoopConfiguration()
        path = jvm.org.apache.hadoop.fs.Path(uri)
        try:
            fs = path.getFileSystem(hadoop_conf)
            statuses = fs.globStatus(path)
        except Exception as exc:  # py4j wraps Hadoop's IOException
            raise ValidationError(field, uri, f"cannot be listed ({_first_line(exc)})") from None
        if not statuses:
            raise ValidationError(field, uri, "matches no file")
        files: list[str] = []
        for status in statuses:
            if not status.isDirectory():
                files.append(status.getPath().toString())
                continue
            root = status.getPath().toString().rstrip("/")
            listing = fs.listFiles(status.getPath(), True)
            while listing.hasNext():
                found = listing.next().getPath().toString()
                relative = found[len(root) :].lstrip("/").split("/")
                if any(part.startswith((".", "_")) for part in relative):
                    continue
                if found.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
                    files.append(found)
            if not files:
                raise ValidationError(
                    field, uri, "is a directory with no .jsonl, .jsonl.gz or .parquet files"
                )
        return files

    @staticmethod
    def _reader_path(path: str) -> str:
        """A path as Spark's readers take it: local files as ``file:`` URIs, glob characters
        escaped (the readers expand globs; resolved paths are literal)."""
        if not _URI.match(path):
            path = "file://" + os.path.abspath(path)
        scheme, _, rest = path.partition(":")
        return scheme + ":" + _GLOB.sub(r"\\\1", rest)

    # ------------------------------------------------------------------ sources

    def _jsonl_frame(self, files: Sequence[str], columns: Mapping[str, str]) -> DataFrame:
        from pyspark.sql import functions as F

        text = self.spark.read.text([self._reader_path(f) for f in files])
        lines = text.select(F.expr(_SOURCE_FILE).alias("source_file"), "value")
        return self._parse_lines(lines.where("trim(value) <> ''"), columns, ["source_file"])

    def _parse_lines(
        self, lines: DataFrame, columns: Mapping[str, str], keep: list[str]
    ) -> DataFrame:
        from pyspark.sql import functions as F

        parsed = lines.select(*keep, F.from_json("value", _text_schema(columns)).alias("rbm_j"))
        return parsed.selectExpr(*keep, *_typed_columns("rbm_j", columns, None))

    def _parquet_frame(
        self, files: Sequence[str], columns: Mapping[str, str], keep: Sequence[str] = ()
    ) -> DataFrame:
        frame = self.spark.read.option("mergeSchema", "true").parquet(
            *[self._reader_path(f) for f in files]
        )
        present = {f.name: f.dataType for f in frame.schema.fields}
        source = [f"{_SOURCE_FILE} AS source_file"] if not keep else list(keep)
        return frame.selectExpr(*source, *_typed_columns("", columns, present))

    def _empty_frame(self, columns: Mapping[str, str]) -> DataFrame:
        schema = ", ".join(
            ["source_file STRING", *(f"{_q(n)} {type_sql(k, 'spark')}" for n, k in columns.items())]
        )
        return self.spark.createDataFrame([], schema)

    def _rows(self, files: LogFiles, columns: Mapping[str, str]) -> DataFrame:
        parts = []
        if files.jsonl:
            parts.append(self._jsonl_frame(files.jsonl, columns))
        if files.parquet:
            parts.append(self._parquet_frame(files.parquet, columns))
        if not parts:
            return self._empty_frame(columns)
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.unionByName(part)
        return frame

    def register_logs(self, events: LogFiles, outbox: LogFiles) -> None:
        """Expose the two logs as ``rbm_event_rows`` and ``rbm_outbox_rows``."""
        self._register("rbm_event_rows", self._rows(events, sql.EVENT_ROW_COLUMNS))
        self._register("rbm_outbox_rows", self._rows(outbox, sql.OUTBOX_ROW_COLUMNS))

    def _register(self, name: str, frame: DataFrame) -> None:
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    # ------------------------------------------------------------------ queries

    def transpile(self, query: str) -> str:
        """``query`` (DuckDB's dialect) as the Spark SQL this engine runs."""
        trees = statements(query, "spark", self._macros)
        return ";\n".join(tree.sql(dialect="spark") for tree in trees)

    def _frame(self, query: str) -> DataFrame:
        trees = statements(query, "spark", self._macros)
        if len(trees) != 1:
            raise ValidationError("query", query[:200], "must be exactly one statement")
        tree = trees[0]
        dropped = _pop_star_except(tree)
        frame = self.spark.sql(tree.sql(dialect="spark"))
        return frame.drop(*dropped) if dropped else frame

    def sql_frame(self, query: str) -> DataFrame:
        """A Spark DataFrame for ``query`` (DuckDB's dialect), for work that stays in Spark."""
        return self._frame(query)

    def table(self, name: str) -> DataFrame:
        """A relation the engine holds (``rbm_lifecycle``, ...) as a Spark DataFrame."""
        return self.spark.table(name)

    def execute(self, statement: str) -> None:
        for tree in statements(statement, "spark", self._macros):
            if isinstance(tree, exp.Drop) and tree.args.get("kind") in ("TABLE", "VIEW"):
                for table in tree.args.get("tables") or [tree.this]:
                    self._drop(table.name)
            elif isinstance(tree, exp.Set):
                continue  # DuckDB settings (progress bar, threads) mean nothing to Spark
            else:
                self.spark.sql(tree.sql(dialect="spark"))

    def _drop(self, name: str) -> None:
        frame = self._frames.pop(name, None)
        if frame is not None:
            frame.unpersist()
        self.spark.catalog.dropTempView(name)
        self._views.discard(name)

    def create_table(self, name: str, query: str) -> None:
        """Materialise ``query`` as ``name`` (a local checkpoint: later queries and dropping
        the relations it was computed from do not recompute it)."""
        frame = self._frame(query).localCheckpoint(eager=True)
        self._frames[name] = frame
        self._register(name, frame)

    def create_view(self, name: str, query: str) -> None:
        self._register(name, self._frame(query))

    def df(self, query: str) -> pd.DataFrame:
        return _to_pandas(self._frame(query))

    def row(self, query: str) -> dict[str, Any]:
        frame = self.df(query)
        if frame.empty:
            return dict.fromkeys(frame.columns)
        return {name: _scalar(value) for name, value in frame.iloc[0].items()}

    def write_parquet(self, query: str, path: str) -> None:
        """Write ``query``'s rows as Parquet under ``path`` (Spark writes a directory of part
        files there, which ``load`` and both engines read back)."""
        self._frame(query).write.mode("overwrite").option("compression", "zstd").parquet(
            self._reader_path(path) if not _URI.match(path) else path
        )

    def unreadable_file(self, exc: BaseException, files: Sequence[str]) -> str | None:
        """The file of ``files`` Spark could not read when it raised ``exc`` (named in its
        message, as a path or a ``file:`` URI), or None."""
        text = str(exc)
        named = [f for f in files if f in text or self._reader_path(f) in text]
        return max(named, key=len) if named else None

    def close(self) -> None:
        if self._closed:
            return
        for name in list(self._views):
            self._drop(name)
        if self._owned:
            self.base.stop()
        self.spark = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ quarantine (slow path)

    def bad_rows(self, path: str, kind: str) -> Iterator[tuple[int, str, str]]:
        """The malformed rows of one file as ``(line number, text, problem)``, in file order.

        JSON Lines: every physical line is numbered (blank lines too, and skipped as the reader
        skips them), classified by the shared SQL, and the bad ones returned as they are.
        Parquet: rows are numbered in file order and the bad ones returned as JSON text.
        """
        from pyspark.sql import functions as F

        columns = sql.EVENT_ROW_COLUMNS if kind == "events" else sql.OUTBOX_ROW_COLUMNS
        reader_path = self._reader_path(path)
        if path.lower().endswith(PARQUET_SUFFIXES):
            raw = self.spark.read.parquet(reader_path)
            numbered = _numbered(raw, "rbm_line")
            rows = self._parquet_frame_from(numbered, columns)
            shown = [F.lit(path).alias("source_file"), *(F.col(_q(c)) for c in columns)]
            rows = rows.withColumn("rbm_text", F.to_json(F.struct(*shown)))
        else:
            numbered = _numbered(self.spark.read.text(reader_path), "rbm_line")
            lines = numbered.where("trim(value) <> ''").selectExpr(
                "CAST(rbm_line AS STRING) AS source_file", "value AS rbm_text", "rbm_line"
            )
            parsed = lines.select(
                "source_file",
                "rbm_text",
                F.from_json("rbm_text", _text_schema(columns)).alias("rbm_j"),
            )
            rows = parsed.selectExpr(
                "source_file", "rbm_text", *_typed_columns("rbm_j", columns, None)
            )
        view = "rbm_quarantine_rows"
        self._register(view, rows)
        try:
            classify = (
                sql.event_line_classes_sql(view)
                if kind == "events"
                else sql.outbox_line_ok_sql(view)
            )
            tree = sqlglot.parse_one(classify, read="duckdb")
            assert isinstance(tree, exp.Select)
            tree = tree.select("source_file", copy=False)
            flags = self._frame(tree.sql(dialect="duckdb"))
            bad = flags.where("cls = 'malformed'") if kind == "events" else flags.where("NOT ok")
            lines_by_number = rows.select("source_file", "rbm_text")
            result = (
                bad.select("source_file", "problem")
                .join(lines_by_number, "source_file")
                .selectExpr("CAST(source_file AS BIGINT) AS line", "rbm_text", "problem")
                .orderBy("line")
                .collect()
            )
        finally:
            self._drop(view)
        for record in result:
            yield int(record["line"]), record["rbm_text"], str(record["problem"])

    def _parquet_frame_from(self, frame: DataFrame, columns: Mapping[str, str]) -> DataFrame:
        present = {f.name: f.dataType for f in frame.schema.fields}
        return frame.selectExpr(
            "CAST(rbm_line AS STRING) AS source_file", *_typed_columns("", columns, present)
        )


def _context_running() -> bool:
    from pyspark import SparkContext

    return getattr(SparkContext, "_active_spark_context", None) is not None


def _numbered(frame: DataFrame, column: str) -> DataFrame:
    """``frame`` with a 1-based row number in file order (``zipWithIndex`` keeps it)."""
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([*frame.schema.fields, StructField(column, LongType(), False)])
    indexed = frame.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1] + 1))
    return frame.sparkSession.createDataFrame(indexed, schema)


def _pop_star_except(tree: exp.Expression) -> list[str]:
    """Remove ``* EXCEPT (...)`` (DuckDB's ``* EXCLUDE``) from the outermost projection, which
    Spark SQL lacks; the caller drops those columns from the result instead."""
    if not isinstance(tree, exp.Select):
        return []
    dropped: list[str] = []
    for projection in tree.expressions:
        if isinstance(projection, exp.Star) and projection.args.get("except"):
            dropped.extend(column.name for column in projection.args["except"])
            projection.set("except", None)
    for node in tree.find_all(exp.Star):
        if node.args.get("except"):
            raise ValidationError(
                "query", tree.sql()[:200], "* EXCLUDE is supported only in the outer SELECT"
            )
    return dropped


def _to_pandas(frame: DataFrame) -> pd.DataFrame:
    """``toPandas`` with DuckDB's conventions: timestamps UTC-aware and dates as datetime64
    (microseconds), decimals as floats."""
    from pyspark.sql.types import DateType, DecimalType, TimestampType

    out = frame.toPandas()
    for field in frame.schema.fields:
        column = out[field.name]
        if isinstance(field.dataType, TimestampType):
            column = pd.to_datetime(column)
            column = column.dt.tz_localize("UTC") if column.dt.tz is None else column
            out[field.name] = column.astype("datetime64[us, UTC]")
        elif isinstance(field.dataType, DateType):
            out[field.name] = pd.to_datetime(column).astype("datetime64[us]")
        elif isinstance(field.dataType, DecimalType):
            out[field.name] = column.astype(float)
    return out


def _scalar(value: Any) -> Any:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        return value.item()
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
