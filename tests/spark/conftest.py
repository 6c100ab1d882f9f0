"""One local Spark session for the Spark tests (skipped, with the reason, where Java is missing).

Spark takes about ten seconds to start here, so the session is shared by every test in this
folder; it runs ``local[2]`` with the UI off, few shuffle partitions and quiet logging.
"""

from __future__ import annotations

import pytest

from rbmtools.analysis.spark_engine import spark_available

_PROBLEM = spark_available()


@pytest.fixture(scope="session")
def spark():
    if _PROBLEM is not None:
        pytest.skip(f"Spark engine tests need Java: {_PROBLEM}")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("rbmtools-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_engine(spark):
    """One engine for the tests that only read (each test registers its own logs)."""
    from rbmtools.analysis.spark_engine import SparkEngine

    engine = SparkEngine(spark)
    yield engine
    engine.close()
