"""Which engine runs the SQL: the interface both engines implement, and ``make_engine``.

An engine exposes the log files as the relations ``rbm_event_rows`` and ``rbm_outbox_rows``,
defines ``rbm_decode_push``, and runs the DuckDB-dialect queries of ``sql.py`` (translating
them if it speaks another dialect). ``Dataset``, the aggregates and every statistic talk to
this interface only, so the document of ``analyze`` is the same whichever engine ran it.
``duckdb`` (the default, embedded) suits one machine; ``spark`` runs the same SQL on a Spark
session, local or on a cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rbmtools.analysis.inputs import LogFiles, resolve_paths
from rbmtools.errors import ValidationError

if TYPE_CHECKING:  # pandas loads on first use (analysis.cli imports it beside the load)
    import pandas as pd

__all__ = [
    "ENGINES",
    "URI",
    "Engine",
    "EngineArg",
    "check_local_paths",
    "make_engine",
    "resolve_logs",
]

#: The engines ``make_engine`` knows by name.
ENGINES: tuple[str, ...] = ("duckdb", "spark")


@runtime_checkable
class Engine(Protocol):
    """What ``Dataset`` needs from an engine (``DuckDBEngine``, ``SparkEngine``)."""

    name: str

    def register_logs(self, events: LogFiles, outbox: LogFiles) -> None: ...

    def execute(self, statement: str) -> None: ...

    def create_table(self, name: str, query: str) -> None: ...

    def create_view(self, name: str, query: str) -> None: ...

    def df(self, query: str) -> pd.DataFrame: ...

    def row(self, query: str) -> dict[str, Any]: ...

    def write_parquet(self, query: str, path: str) -> None: ...

    def bad_rows(self, path: str, kind: str) -> Iterator[tuple[int, str]]: ...

    def close(self) -> None: ...


#: An engine by name, an engine object, or a ``pyspark.sql.SparkSession`` to run on.
EngineArg = Any


def _is_spark_session(value: Any) -> bool:
    cls = type(value)
    return cls.__module__.startswith("pyspark.") and cls.__name__ == "SparkSession"


def make_engine(
    engine: EngineArg = "duckdb",
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    spark_master: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
) -> Engine:
    """An engine for ``load``: ``"duckdb"`` (``threads``, ``memory_limit``), ``"spark"``
    (the active ``SparkSession``, or a new one on ``spark_master`` with ``spark_conf``;
    ``local[*]`` by default), a ``SparkSession``, or an engine object used as it is."""
    spark_options = spark_master is not None or bool(spark_conf)
    duckdb_options = threads is not None or memory_limit is not None
    if _is_spark_session(engine):
        if spark_options:
            raise ValidationError(
                "spark_master", spark_master, "is for engine='spark'; the session is given"
            )
        from rbmtools.analysis.spark_engine import SparkEngine

        return SparkEngine(engine)
    if not isinstance(engine, str):
        if isinstance(engine, Engine):
            return engine
        raise ValidationError("engine", engine, f"must be one of {', '.join(ENGINES)}")
    if engine == "duckdb":
        if spark_options:
            field, value = (
                ("spark_master", spark_master) if spark_master else ("spark_conf", spark_conf)
            )
            raise ValidationError(field, value, "needs engine='spark' (--engine spark)")
        from rbmtools.analysis.duckdb_engine import DuckDBEngine

        return DuckDBEngine(threads=threads, memory_limit=memory_limit)
    if engine == "spark":
        if duckdb_options:
            raise ValidationError(
                "threads" if threads is not None else "memory_limit",
                threads if threads is not None else memory_limit,
                "applies to the DuckDB engine; give Spark settings in spark_conf",
            )
        from rbmtools.analysis.spark_engine import SparkEngine

        return SparkEngine(master=spark_master, conf=spark_conf)
    raise ValidationError("engine", engine, f"must be one of {', '.join(ENGINES)}")


#: A path with a scheme (``hdfs://``, ``s3a://``, ``file:/``): listed by the engine, not here.
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//|/)")


def _is_uri(path: str) -> bool:
    return bool(URI.match(path))


def check_local_paths(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None, field: str
) -> None:
    """Fail now, before an engine starts, on a local path that does not exist or holds no
    logs (URIs are left to the engine that can list them)."""
    if paths is None:
        return
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    local = [os.fspath(p) for p in items if not _is_uri(os.fspath(p))]
    if local:
        resolve_paths(local, field)


def resolve_logs(
    engine: Engine,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None,
    field: str,
) -> LogFiles:
    """The log files named by ``paths``, found the engine's way (Spark also lists ``hdfs://``,
    ``s3a://`` and other Hadoop URIs); local files for an engine without its own way."""
    resolve = getattr(engine, "resolve", None)
    return resolve(paths, field) if resolve is not None else resolve_paths(paths, field)
