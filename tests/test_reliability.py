"""Hostile-operator cases on real Delta tables: column-mapped inputs, extreme
weights, compaction between nightly runs, too many thresholds, signals."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.errors import ConfigError
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_predictions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.spark
START = dt.date(2026, 5, 4)


def config_for(tmp: Path, **sections) -> object:
    raw = {
        "input": {"path": str(tmp / "predictions"), "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "metrics": {"thresholds": [0.5]},
        "output": {"path": str(tmp / "out")},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw)


def overall(spark, config, metric: str) -> dict:
    """(model, version, day) -> value of an overall-slice daily metric."""
    rows = (
        tables.read_table(spark, tables.output_location(config, "metrics"))
        .where(
            (F.col("metric") == metric)
            & (F.col("slice_key") == "")
            & (F.col("granularity") == "day")
        )
        .collect()
    )
    return {(r.model_name, r.model_version, r.window_start): r.value for r in rows}


def test_column_mapped_input_takes_days_from_the_physical_columns(spark, tmp_path) -> None:
    """On a table with column mapping (physical column names differ from the
    logical ones), event times that stray from their date partition are seen as
    such: a one-day run counts exactly the day's partition rows whose event day
    is that day, not every row of the partition."""
    data = demo_predictions(spark, rows=6_000, days=3, start=START)
    # A tenth of each partition's rows carry the next day's event time.
    shifted = data.withColumn(
        "event_time",
        F.when(F.rand(3) < 0.1, F.col("event_time") + F.expr("INTERVAL 1 DAY")).otherwise(
            F.col("event_time")
        ),
    )
    path = str(tmp_path / "predictions")
    (
        shifted.write.format("delta")
        .option("delta.columnMapping.mode", "name")
        .option("delta.minReaderVersion", "2")
        .option("delta.minWriterVersion", "5")
        .partitionBy("date")
        .save(path)
    )
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert detail["properties"].get("delta.columnMapping.mode") == "name"
    config = config_for(tmp_path, input={"date_partition_column": "date"})
    day = START + dt.timedelta(days=1)
    lines: list[str] = []
    result = run_evaluation(spark, config, day, day, log=lines.append)
    table = spark.read.format("delta").load(path)
    partition = table.where(F.col("date") == F.lit(day))
    on_day = partition.where(F.to_date("event_time") == F.lit(day))
    assert result.rows_read == on_day.count() < partition.count()
    assert any("holds event_time values of other days" in line for line in lines), lines


def test_extreme_weights_are_rejected_and_other_models_are_evaluated(spark, tmp_path) -> None:
    """Weights of 5e-324, 1e-300, 1e300 and 1e307 in one model's rows: those rows
    are counted as weight_out_of_range; the run succeeds; the other model's AUC
    equals scikit-learn's on its rows."""
    data = demo_predictions(spark, rows=4_000, days=1, start=START)
    extreme = F.element_at(
        F.array(*[F.lit(v) for v in (5e-324, 1e-300, 1e300, 1e307)]),
        1 + (F.monotonically_increasing_id() % 4).cast("int"),
    )
    hit = (F.col("model_name") == "churn_model") & (F.rand(1) < 0.3)
    data = data.withColumn("weight", F.when(hit, extreme).otherwise(F.col("weight")))
    tables.write_predictions(data, str(tmp_path / "predictions"))
    config = config_for(
        tmp_path,
        input={"filter": "label IS NOT NULL AND score IS NOT NULL"},
        run={"max_reject_fraction": 1.0},
    )
    result = run_evaluation(spark, config, full=True, log=lambda _: None)
    assert result.status == "succeeded"
    frame = spark.read.format("delta").load(str(tmp_path / "predictions")).toPandas()
    churn = frame[frame.model_name == "churn_model"]
    far = (churn.weight > 1e100) | ((churn.weight > 0) & (churn.weight < 1e-100))
    # Rows with an earlier reason (a NaN score, say) count under that one.
    far &= churn.label.isin([0, 1]) & churn.score.between(0, 1)
    far &= churn.event_time.notna() & churn.model_version.notna()
    assert result.reject_counts["weight_out_of_range"] == int(far.sum()) > 0
    aucs = overall(spark, config, "roc_auc")
    for (model, version, _), value in aucs.items():
        assert value is not None and np.isfinite(value), (model, version)
    fraud = frame[(frame.model_name == "fraud_detector") & frame.label.isin([0, 1])]
    fraud = fraud[fraud.score.between(0, 1) & (fraud.weight >= 0)]
    for version, part in fraud.groupby("model_version"):
        want = skm.roc_auc_score(part.label, part.score, sample_weight=part.weight)
        got = aucs[("fraud_detector", version, START)]
        assert abs(got - want) < 5e-3  # binned AUC; its bound is checked elsewhere


def test_thresholds_have_an_upper_bound() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.thresholds"):
        parse_config(
            {
                "input": {"path": "p"},
                "metrics": {"thresholds": [round(0.001 * (k + 1), 6) for k in range(999)]},
            }
        )


def test_optimize_between_runs_recomputes_no_day(spark, tmp_path) -> None:
    """Compaction (OPTIMIZE: dataChange = false) changes no row: the next
    incremental run finds no changed day; a real append after it is found."""
    data = demo_predictions(spark, rows=6_000, days=3, start=START)
    path = str(tmp_path / "predictions")
    for day in range(3):  # several files per partition, so there is something to compact
        part = data.where(F.col("date") == F.lit(START + dt.timedelta(days=day)))
        for k in range(2):
            part.where(F.col("id") % 2 == k).write.format("delta").mode("append").partitionBy(
                "date"
            ).save(path)
    config = config_for(tmp_path, input={"date_partition_column": "date"})
    assert run_evaluation(spark, config, log=lambda _: None).mode == "initial"
    DeltaTable.forPath(spark, path).optimize().executeCompaction()
    after = run_evaluation(spark, config, log=lambda _: None)
    assert after.mode == "incremental" and after.windows == []
    late = START + dt.timedelta(days=1)
    data.where(F.col("date") == F.lit(late)).limit(50).write.format("delta").mode(
        "append"
    ).partitionBy("date").save(path)
    DeltaTable.forPath(spark, path).optimize().executeCompaction()
    found = run_evaluation(spark, config, log=lambda _: None)
    assert [w.first for w in found.windows if w.granularity == "day"] == [late]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_run_records_failed_with_the_signal(spark, tmp_path, sig) -> None:
    """SIGTERM (what schedulers send on timeout) and SIGINT during the run: the
    job exits, and its runs row says failed and names the signal."""
    tables.write_predictions(
        demo_predictions(spark, rows=200_000, days=4, start=START), str(tmp_path / "predictions")
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(ROOT / "jobs" / "evaluate.py"),
        "--config",
        str(ROOT / "conf" / "demo.toml"),
        "--set",
        f"input.path={tmp_path / 'predictions'}",
        "--set",
        f"output.path={out}",
        "--full",
    ]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    seen = ""
    assert job.stdout is not None
    while time.monotonic() < deadline:
        line = job.stdout.readline()
        seen += line
        if "scanning input" in line or not line:
            break
    time.sleep(1.0)
    job.send_signal(sig)
    _, err = job.communicate(timeout=300)
    assert job.returncode != 0, seen
    runs = tables.read_table(spark, tables.TableLocation("runs", path=str(out / "runs")))
    rows = tables.current_runs(runs).collect()
    assert [r.status for r in rows] == ["failed"], (rows, err[-2000:])
    assert signal.Signals(sig).name in rows[0].message, rows[0].message
    assert os.path.exists(out / "runs")


def test_running_rows_of_dead_or_old_drivers_are_marked_abandoned(spark, tmp_path) -> None:
    """A 'running' row left by a killed driver on this host, and one older than
    run.stale_after_hours, are set to 'abandoned' by the next run; a live
    process's row is left alone."""
    import socket

    tables.write_predictions(
        demo_predictions(spark, rows=2_000, days=1, start=START), str(tmp_path / "predictions")
    )
    config = config_for(tmp_path)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(gone.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        here = socket.gethostname()
        rows = {
            "d" * 32: (now, here, dead_pid),
            "e" * 32: (now - dt.timedelta(hours=30), "elsewhere", 1),
            "a" * 32: (now, here, live.pid),
        }
        for run_id, (started, host, pid) in rows.items():
            record = {
                "run_id": run_id,
                "started_at": started,
                "status": "running",
                "host": host,
                "pid": pid,
            }
            tables.start_run(spark, config, record)
        run_evaluation(spark, config, full=True, log=lambda _: None)
    finally:
        live.kill()
    statuses = {r.run_id: r.status for r in tables.read_runs(spark, config).collect()}
    assert statuses["d" * 32] == "abandoned" and statuses["e" * 32] == "abandoned"
    assert statuses["a" * 32] == "running"
