"""Rollup windows (ISO week, month, rolling N days) from stored daily states.

Six days from Saturday 2026-03-28 to Thursday 2026-04-02 cross a week and a
month boundary. For every week, month and rolling-3-day window in the tables
the metrics must equal scikit-learn over the raw rows of the whole window:
log loss and Brier to rtol 1e-9, confusion counts exactly (thresholds are bin
edges), the exact ROC AUC inside the stored bound. A rerun of one day must
leave every table's content unchanged.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.core.windows import affected
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 3, 28)
GRANULARITIES = ["day", "week", "month", "rolling_3"]


@pytest.fixture(scope="module")
def rolled(spark, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("rollups"))
    df = demo_predictions(spark, rows=12_000, days=6, start=START, positive_rate=0.15, seed=5)
    tables.write_predictions(df, f"{tmp}/predictions")
    config = parse_config(
        {
            "input": {"path": f"{tmp}/predictions", "weight_column": "weight"},
            "task": {"positive_label": 1, "negative_labels": [0]},
            "metrics": {"thresholds": [0.1]},
            "slices": {"segment_columns": ["device"]},
            "output": {"path": f"{tmp}/metrics", "granularities": GRANULARITIES},
        }
    )
    run_evaluation(spark, config, log=lambda _: None)
    raw = spark.read.format("delta").load(f"{tmp}/predictions").toPandas()
    raw = raw[raw.score.between(0, 1) & raw.label.notna()].copy()
    raw["day"] = raw.event_time.dt.date
    return config, raw


def read(spark, config, name: str) -> pd.DataFrame:
    return tables.read_table(spark, tables.output_location(config, name)).toPandas()


def test_window_arithmetic() -> None:
    week = affected("week", dt.date(2026, 3, 28), dt.date(2026, 4, 2), dt.date(2026, 4, 2))
    assert (week.windows.first, week.windows.last) == (dt.date(2026, 3, 23), dt.date(2026, 3, 30))
    assert week.source_last == dt.date(2026, 4, 5)
    month = affected("month", dt.date(2026, 3, 28), dt.date(2026, 4, 2), dt.date(2026, 4, 2))
    assert (month.windows.first, month.source_last) == (dt.date(2026, 3, 1), dt.date(2026, 4, 30))
    rolling = affected("rolling_3", dt.date(2026, 3, 30), dt.date(2026, 3, 30), dt.date(2026, 4, 2))
    # windows containing 03-30 start 03-28, 03-29, 03-30
    assert (rolling.windows.first, rolling.windows.last) == (
        dt.date(2026, 3, 28),
        dt.date(2026, 3, 30),
    )


def test_rollup_metrics_equal_direct_computation_over_the_window(spark, rolled) -> None:
    config, raw = rolled
    metrics = read(spark, config, "metrics")
    confusion = read(spark, config, "confusion_matrices")
    windows = metrics[metrics.granularity != "day"][
        ["granularity", "window_start", "window_end"]
    ].drop_duplicates()
    expected = {
        ("week", dt.date(2026, 3, 23)),
        ("week", dt.date(2026, 3, 30)),
        ("month", dt.date(2026, 3, 1)),
        ("month", dt.date(2026, 4, 1)),
    } | {("rolling_3", START + dt.timedelta(days=k)) for k in range(-2, 4)}
    assert set(zip(windows.granularity, windows.window_start, strict=True)) == expected
    checked = 0
    for w in windows.itertuples():
        inside = raw[(raw.day >= w.window_start) & (raw.day < w.window_end)]
        for slice_key, groups in (("", [((), inside)]), ("device", inside.groupby(["device"]))):
            for values, part in groups:
                slice_value = ",".join(values)
                for version, rows in part.groupby("model_version"):
                    for model, group in rows.groupby("model_name"):
                        sel = (
                            (metrics.granularity == w.granularity)
                            & (metrics.window_start == w.window_start)
                            & (metrics.model_name == model)
                            & (metrics.model_version == version)
                            & (metrics.slice_key == slice_key)
                            & (metrics.slice_value == slice_value)
                        )
                        mine = metrics[sel & metrics.threshold.isna()].set_index("metric")
                        y = group.label.to_numpy(int)
                        p, wt = group.score.to_numpy(), group.weight.to_numpy()
                        assert mine.loc["log_loss", "value"] == pytest.approx(
                            skm.log_loss(y, p, sample_weight=wt, labels=[0, 1]), rel=1e-9
                        )
                        assert mine.loc["brier_score", "value"] == pytest.approx(
                            skm.brier_score_loss(y, p, sample_weight=wt), rel=1e-9
                        )
                        exact = skm.roc_auc_score(y, p, sample_weight=wt)
                        auc = mine.loc["roc_auc"]
                        assert auc.bound_lower - 1e-12 <= exact <= auc.bound_upper + 1e-12
                        cells = confusion[
                            (confusion.granularity == w.granularity)
                            & (confusion.window_start == w.window_start)
                            & (confusion.model_name == model)
                            & (confusion.model_version == version)
                            & (confusion.slice_key == slice_key)
                            & (confusion.slice_value == slice_value)
                            & (confusion.threshold == 0.1)
                        ].set_index(["actual_label", "predicted_label"])
                        tn, fp, fn, tp = skm.confusion_matrix(y, p >= 0.1, labels=[0, 1]).ravel()
                        assert [
                            cells.loc[(a, b)].n_rows
                            for a, b in (("1", "1"), ("0", "1"), ("0", "0"), ("1", "0"))
                        ] == [tp, fp, tn, fn]
                        checked += 1
    assert checked >= len(expected) * 4 * 2


def test_days_covered_counts_the_days_each_window_holds(spark, rolled) -> None:
    """``days_covered`` of every metric row: 1 for a day; for a rollup, the days
    of the window on which the series (model, version, slice) has rows, counted
    from the raw rows. The six input days leave both weeks, both months and the
    first and last rolling windows partly covered."""
    config, raw = rolled
    metrics = read(spark, config, "metrics")
    assert (metrics[metrics.granularity == "day"].days_covered == 1).all()
    rollup = metrics[metrics.granularity != "day"]
    series = ["model_name", "model_version", "slice_key", "slice_value"]
    windows = rollup[[*series, "granularity", "window_start", "window_end", "days_covered"]]
    windows = windows.drop_duplicates()
    overall = raw.assign(slice_key="", slice_value="")
    by_device = raw.assign(slice_key="device", slice_value=raw.device)
    rows = pd.concat([overall, by_device])
    partial = 0
    for w in windows.itertuples():
        inside = rows[
            (rows.model_name == w.model_name)
            & (rows.model_version == w.model_version)
            & (rows.slice_key == w.slice_key)
            & (rows.slice_value == w.slice_value)
            & (rows.day >= w.window_start)
            & (rows.day < w.window_end)
        ]
        assert w.days_covered == inside.day.nunique(), w
        partial += w.days_covered < (w.window_end - w.window_start).days
    assert partial > 0 and len(windows) > partial


def test_rerun_of_one_day_refreshes_rollups_to_the_same_content(spark, rolled) -> None:
    config, _ = rolled
    before = {name: read(spark, config, name) for name in ("score_histograms", "metrics", "curves")}
    result = run_evaluation(
        spark, config, dt.date(2026, 3, 30), dt.date(2026, 3, 30), log=lambda _: None
    )
    # Every rolling window containing the day is complete (the stored days run to
    # 04-02), so all three are rewritten: those starting 03-28, 03-29 and 03-30,
    # the last two ending after the rerun day.
    rolling = [(w.first, w.last) for w in result.windows if w.granularity == "rolling_3"]
    assert rolling == [(dt.date(2026, 3, 28), dt.date(2026, 3, 30))]
    for name, old in before.items():
        new = read(spark, config, name)
        numeric = [c for c in new.columns if new[c].dtype.kind == "f"]
        keys = [c for c in new.columns if c not in numeric]
        a = old.astype({k: str for k in keys}).sort_values(keys).reset_index(drop=True)
        b = new.astype({k: str for k in keys}).sort_values(keys).reset_index(drop=True)
        assert a[keys].equals(b[keys]), name
        np.testing.assert_allclose(
            a[numeric].to_numpy(float), b[numeric].to_numpy(float), rtol=1e-9, equal_nan=True
        )
