"""The pieces that make a run fast without changing its results: parallel writes
and per-run session settings."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from compare import assert_same_tables

from clfeval.config import parse_config
from clfeval.io import tables
from clfeval.io.session import RUN_CONF, run_settings
from clfeval.pipeline import _in_parallel, run_evaluation
from clfeval.spark import derive
from clfeval.spark.demo_data import demo_multiclass_predictions, demo_predictions


def test_in_parallel_returns_every_result_and_overlaps() -> None:
    started = threading.Barrier(3, timeout=5)  # fails unless all three run at once

    def action(value: int):
        def run() -> int:
            started.wait()
            return value * 10

        return run

    assert _in_parallel({"a": action(1), "b": action(2), "c": action(3)}) == {
        "a": 10,
        "b": 20,
        "c": 30,
    }


def test_in_parallel_waits_for_every_action_before_raising() -> None:
    finished = []

    def slow() -> str:
        time.sleep(0.3)
        finished.append("slow")
        return "done"

    def failing() -> str:
        raise ValueError("metrics write failed")

    with pytest.raises(ValueError, match="metrics write failed"):
        _in_parallel({"slow": slow, "failing": failing})
    # No write may outlive a failed attempt (the retry would race it).
    assert finished == ["slow"]


def test_run_settings_are_restored(spark) -> None:
    key = next(iter(RUN_CONF))
    spark.conf.set(key, "true")
    with run_settings(spark):
        assert spark.conf.get(key) == RUN_CONF[key]
    assert spark.conf.get(key) == "true"

    spark.conf.unset(key)
    unset = spark.conf.get(key, None)
    with pytest.raises(RuntimeError), run_settings(spark):
        assert spark.conf.get(key) == RUN_CONF[key]
        raise RuntimeError("a failed run")
    assert spark.conf.get(key, None) == unset


def _config(tmp: Path, output: str, multiclass: bool, driver_rows: int):
    if multiclass:
        task = {"type": "multiclass", "classes": ["setosa", "versicolor", "virginica"]}
        columns = {"probabilities_column": "probabilities", "label_column": "label"}
        segments = ["region"]
    else:
        task = {"positive_label": 1, "negative_labels": [0]}
        columns = {"weight_column": "weight"}
        segments = ["device"]
    raw = {
        "input": {"path": str(tmp / "predictions"), **columns},
        "task": task,
        "slices": {"segment_columns": segments, "min_slice_size": 150},
        "output": {"path": str(tmp / output), "granularities": ["day", "week"]},
        "run": {"driver_derive_max_rows": driver_rows, "max_reject_fraction": 0.5},
    }
    return parse_config(raw)


@pytest.mark.spark
@pytest.mark.parametrize("multiclass", [False, True])
def test_driver_and_executor_derive_write_the_same_tables(spark, tmp_path, multiclass) -> None:
    start = dt.date(2026, 6, 5)
    if multiclass:
        frame = demo_multiclass_predictions(
            spark, rows=3_000, days=3, start=start, classes=("setosa", "versicolor", "virginica")
        )
    else:
        frame = demo_predictions(spark, rows=6_000, days=3, start=start, positive_rate=0.2)
    tables.write_predictions(frame, str(tmp_path / "predictions"))
    on_executors = _config(tmp_path, "executors", multiclass, driver_rows=0)
    in_driver = _config(tmp_path, "driver", multiclass, driver_rows=1_000_000)
    run_evaluation(spark, on_executors, log=lambda _: None)
    run_evaluation(spark, in_driver, log=lambda _: None)
    assert_same_tables(spark, on_executors, in_driver)


@pytest.mark.spark
def test_per_group_runs_in_the_driver_only_below_the_limit(spark) -> None:
    rows = pd.DataFrame(
        {
            "model_name": ["m"] * 4,
            "model_version": ["v1", "v1", "v2", "v2"],
            "slice_key": [""] * 4,
            "slice_value": [""] * 4,
            "granularity": ["day"] * 4,
            "window_start": [dt.date(2026, 6, 5)] * 4,
            "window_end": [dt.date(2026, 6, 6)] * 4,
            "n_pos": [1, 2, 3, 4],
        }
    )
    histograms = spark.createDataFrame(rows)
    seen: list[tuple] = []  # filled only when run() executes in this (driver) process

    def run(key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        seen.append(key)
        out = derive._empty_combined().reindex(range(1))
        for name, value in zip(derive.KEY_COLUMNS, key, strict=True):
            out[name] = [value]
        out["output_table"] = ["metrics"]
        out["metric"] = ["n_pos_sum"]
        out["value"] = [float(group["n_pos"].sum())]
        return out

    def values(limit: int) -> dict[str, float]:
        frame = derive.per_group(histograms, run, limit).toPandas()
        return dict(zip(frame.model_version, frame.value, strict=True))

    assert values(0) == {"v1": 3.0, "v2": 7.0}
    assert seen == []  # executors
    assert values(3) == {"v1": 3.0, "v2": 7.0}  # 4 rows > 3: still the executors
    assert seen == []
    assert values(4) == {"v1": 3.0, "v2": 7.0}
    assert sorted(k[1] for k in seen) == ["v1", "v2"]  # the driver, once per group
