"""One session-scoped SparkSession (local[2], Delta) for the whole suite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from clfeval.io.session import build_session

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark():
    session = build_session(
        "clfeval-tests",
        master="local[2]",
        # No local_small_conf here: build_session applies it to local masters, so
        # the suite's JVM gets what a local run gets (test_run_mechanics.py reads
        # its options back from the JVM).
        extra_conf={
            "spark.ui.showConsoleProgress": "false",
            # The suite creates hundreds of Delta tables in one session; Delta keeps
            # each table's log and snapshot (plans, encoders) in its cache, and with
            # Spark's default 1 GiB heap a run of the suite stalled in back-to-back
            # full collections (a jmap histogram: Catalyst trees and encoders).
            "spark.driver.memory": "2g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def jvm_scan_or_skip(spark, layout):
    """clfeval's JVM scan for ``layout``. Skips where the jar was built for another
    Spark line (the compatibility matrix runs the wheel built for the default
    line: the scan then runs in Spark SQL, by design); fails where it is missing."""
    from clfeval import jvm
    from clfeval.spark import aggregate

    scan, why_not = aggregate.jvm_scan(spark, layout)
    built_for = jvm.jar_spark_line()
    if scan is None and built_for is not None and built_for != jvm.spark_line(spark.version):
        pytest.skip(why_not)
    assert scan is not None, f"clfeval's JVM scan is not usable: {why_not} (run `make jar`)"
    return scan


@pytest.fixture(scope="session")
def demo_output(spark, tmp_path_factory) -> Path:
    """A small `make demo`: binary and multiclass predictions evaluated with the two
    demo configs into one output folder (the README queries and the notebook use it)."""
    from clfeval.config import load_config
    from clfeval.io import tables
    from clfeval.pipeline import run_evaluation
    from clfeval.spark.demo_data import demo_multiclass_predictions, demo_predictions

    start = dt.date(2026, 11, 1)
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    binary = demo_predictions(spark, rows=16_000, days=5, start=start, positive_rate=0.1)
    tables.write_predictions(binary, str(out / "predictions"))
    multi = demo_multiclass_predictions(spark, rows=4_000, days=5, start=start)
    tables.write_predictions(multi, str(out / "predictions_multiclass"))
    for name, data in (
        ("demo.toml", "predictions"),
        ("demo_multiclass.toml", "predictions_multiclass"),
    ):
        config = load_config(
            ROOT / "conf" / name, [f"input.path={out / data}", f"output.path={out / 'metrics'}"]
        )
        run_evaluation(spark, config, log=lambda _: None)
    return out
