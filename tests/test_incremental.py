"""Incremental runs and late labels.

Predictions over six days (Friday 2026-03-27 .. Wednesday 2026-04-01: a week
and a month boundary) are evaluated once; then one day is appended and another
re-labelled. The next run without dates must evaluate exactly those two days
and the week / month / rolling windows holding them: the Delta log of every
output table shows no file of another window removed, and every table equals a
full recompute into a fresh folder. Late labels: predictions without labels
plus a labels table joined by id; label coverage per window equals the share
counted from the raw rows; labels arriving later make the next run recompute
exactly the days of their predictions, with the same tables as a full run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from compare import COMPARED, assert_same_tables, log_actions, output_frame
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.core.windows import affected
from clfeval.io import tables
from clfeval.io.session import run_settings
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 3, 27)
DAYS = 6
GRANULARITIES = ["day", "week", "month", "rolling_3"]


def config_for(tmp: Path, output: str, **sections) -> object:
    raw = {
        "input": {
            "path": str(tmp / "predictions"),
            "weight_column": "weight",
            "date_partition_column": "date",  # also prunes the change detection
        },
        "task": {"positive_label": 1, "negative_labels": [0]},
        "metrics": {"thresholds": [0.1]},
        "slices": {"segment_columns": ["device"]},
        "output": {"path": str(tmp / output), "granularities": GRANULARITIES},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw)


def removed_partitions(path: str, after_version: int) -> set[tuple[str, str]]:
    """(granularity, window_start) of every file that commits after ``after_version``
    removed from a Delta table (read from its _delta_log JSON)."""
    return {
        (values["granularity"], values["window_start"])
        for values in (a["partitionValues"] for a in log_actions(path, "remove", after_version))
    }


def windows_of(days: list[dt.date], latest: dt.date) -> set[tuple[str, str]]:
    """Every (granularity, window_start) holding one of ``days``."""
    out = {("day", d.isoformat()) for d in days}
    for g in GRANULARITIES[1:]:
        for d in days:
            w = affected(g, d, d, latest).windows
            start = w.first
            while start <= w.last:
                out.add((g, start.isoformat()))
                start += dt.timedelta(days=7 if g == "week" else 1)
                if g == "month":
                    break
    return out


def test_incremental_rewrites_only_changed_days(spark, tmp_path) -> None:
    rows = demo_predictions(spark, rows=9_000, days=DAYS, start=START, positive_rate=0.15, seed=3)
    tables.write_predictions(rows, str(tmp_path / "predictions"))
    config = config_for(tmp_path, "metrics")
    first = run_evaluation(spark, config, log=lambda _: None)
    assert first.mode == "initial" and first.status == "succeeded"
    assert first.input_versions == {"predictions": 0}

    unchanged = run_evaluation(spark, config, log=lambda _: None)
    assert unchanged.mode == "incremental" and unchanged.windows == []
    assert unchanged.output_versions == {}

    new_day = START + dt.timedelta(days=DAYS)  # Thursday 2026-04-02
    relabelled = START + dt.timedelta(days=1)  # Saturday 2026-03-28
    extra = demo_predictions(spark, rows=1_500, days=1, start=new_day, positive_rate=0.15, seed=9)
    extra = extra.withColumn("id", F.col("id") + F.lit(1_000_000))
    extra.write.format("delta").mode("append").save(str(tmp_path / "predictions"))
    DeltaTable.forPath(spark, str(tmp_path / "predictions")).update(
        condition=(F.col("date") == F.lit(relabelled)) & (F.col("id") % 3 == 0),
        set={"label": F.lit(1) - F.col("label")},
    )

    outputs = {name: str(tmp_path / "metrics" / name) for name in COMPARED}
    before = {
        name: tables.table_version(spark, tables.output_location(config, name)) for name in COMPARED
    }
    lines: list[str] = []
    second = run_evaluation(spark, config, log=lines.append)
    assert second.mode == "incremental"
    assert any("transaction log" in line for line in lines), lines
    assert [(w.first, w.last) for w in second.windows if w.granularity == "day"] == [
        (relabelled, relabelled),
        (new_day, new_day),
    ]
    allowed = windows_of([relabelled, new_day], new_day)
    for name, path in outputs.items():
        touched = removed_partitions(path, before[name])
        assert touched, name
        assert touched <= allowed, (name, sorted(touched - allowed))

    runs = output_frame(spark, config, "runs").sort_values("started_at")
    last = runs.iloc[-1]
    assert last["mode"] == "incremental" and last["status"] == "succeeded"
    assert dict(last["input_versions"]) == {"predictions": 2}
    assert {(w["granularity"], w["first_start"]) for w in last["windows"]} >= {
        ("day", relabelled),
        ("day", new_day),
    }

    full = config_for(tmp_path, "full_recompute")
    run_evaluation(spark, full, full=True, log=lambda _: None)
    assert_same_tables(spark, config, full)


def test_late_labels_and_coverage(spark, tmp_path) -> None:
    demo = demo_predictions(spark, rows=8_000, days=DAYS, start=START, positive_rate=0.2, seed=4)
    valid = F.col("label").isNotNull() & F.col("score").between(0, 1) & (F.col("weight") >= 0)
    tables.write_predictions(demo.where(valid), str(tmp_path / "truth"))
    rows = spark.read.format("delta").load(str(tmp_path / "truth"))
    rows.drop("label").write.format("delta").partitionBy("date").save(str(tmp_path / "predictions"))
    labels = rows.select("id", F.col("label").alias("outcome"), "date")
    # Labels arrive late: the last two days have none yet, the others 80% of them.
    late_day = START + dt.timedelta(days=DAYS - 2)
    early = labels.where((F.col("date") < F.lit(late_day)) & (F.col("id") % 5 != 0))
    spark.sql(
        f"CREATE TABLE delta.`{tmp_path / 'labels'}` (id BIGINT, outcome INT, date DATE) "
        "USING delta TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    early.write.format("delta").mode("append").save(str(tmp_path / "labels"))
    settings = {
        "input": {"id_column": "id"},
        "labels": {"path": str(tmp_path / "labels"), "label_column": "outcome"},
    }
    config = config_for(tmp_path, "metrics", **settings)
    first = run_evaluation(spark, config, log=lambda _: None)
    assert first.reject_counts.get("unlabeled", 0) > 0

    raw = rows.toPandas()
    raw["day"] = raw.event_time.dt.date
    labelled_ids = set(early.select("id").toPandas().id)
    raw["has_label"] = raw.id.isin(labelled_ids)
    coverage = output_frame(spark, config, "metrics")
    coverage = coverage[coverage.metric == "label_coverage"]
    assert set(coverage.granularity) == set(GRANULARITIES)
    for _, row in coverage.iterrows():
        inside = raw[
            (raw.model_name == row.model_name)
            & (raw.model_version == row.model_version)
            & (raw.day >= row.window_start)
            & (raw.day < row.window_end)
        ]
        assert row.n_rows == len(inside)
        assert row.value == pytest.approx(inside.has_label.mean(), abs=1e-12)

    # Metrics use labelled rows only: log loss of one weekly window against scikit-learn.
    metrics = output_frame(spark, config, "metrics")
    week = metrics[(metrics.granularity == "week") & (metrics.metric == "log_loss")]
    week = week[(week.slice_key == "") & (week.model_name == "fraud_detector")].iloc[0]
    inside = raw[
        raw.has_label
        & (raw.model_name == "fraud_detector")
        & (raw.model_version == week.model_version)
        & (raw.day >= week.window_start)
        & (raw.day < week.window_end)
    ]
    labels_of = early.toPandas().set_index("id").outcome
    expected = skm.log_loss(
        labels_of[inside.id].to_numpy(), inside.score, sample_weight=inside.weight, labels=[0, 1]
    )
    assert week.value == pytest.approx(expected, rel=1e-9)

    # The missing labels of one day arrive.
    arriving = labels.where(F.col("date") == F.lit(late_day))
    arriving.write.format("delta").mode("append").save(str(tmp_path / "labels"))
    lines: list[str] = []
    second = run_evaluation(spark, config, log=lines.append)
    assert second.mode == "incremental"
    assert any("change data feed" in line for line in lines), lines
    assert [(w.first, w.last) for w in second.windows if w.granularity == "day"] == [
        (late_day, late_day)
    ]
    assert second.input_versions == {"predictions": 0, "labels": 2}
    full = dataclasses.replace(
        config, output=dataclasses.replace(config.output, path=str(tmp_path / "full"))
    )
    run_evaluation(spark, full, full=True, log=lambda _: None)
    assert_same_tables(spark, config, full)
    after = output_frame(spark, config, "metrics")
    day_cov = after[
        (after.metric == "label_coverage")
        & (after.granularity == "day")
        & (after.window_start == late_day)
    ]
    assert len(day_cov) > 0 and (day_cov.value == 1.0).all()


def test_vacuumed_history_falls_back_to_the_look_back(spark, tmp_path) -> None:
    """After VACUUM the removed files of the recorded version are gone: the run
    says so and evaluates the look-back (all days) instead of failing."""
    rows = demo_predictions(spark, rows=3_000, days=3, start=START, positive_rate=0.2, seed=8)
    tables.write_predictions(rows, str(tmp_path / "predictions"))
    config = config_for(tmp_path, "metrics")
    run_evaluation(spark, config, log=lambda _: None)
    table = DeltaTable.forPath(spark, str(tmp_path / "predictions"))
    table.update(condition=F.col("id") % 7 == 0, set={"label": F.lit(1) - F.col("label")})
    with run_settings(spark, {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}):
        table.vacuum(0.0)
    lines: list[str] = []
    result = run_evaluation(spark, config, log=lines.append)
    assert result.mode == "initial", lines
    assert any("could not read" in line for line in lines), lines
    full = config_for(tmp_path, "full_recompute")
    run_evaluation(spark, full, full=True, log=lambda _: None)
    assert_same_tables(spark, config, full)
