"""End to end: demo data -> run_evaluation -> Delta tables, checked against scikit-learn.

Per (model, version, slice, day) the metrics are recomputed by scikit-learn from
the raw rows read back from the input table. Tolerances:

* thresholds are bin edges, so confusion counts and every threshold metric
  must match to float precision (rtol 1e-9);
* log loss and Brier use per-row sums, so they match to rtol 1e-9;
* the exact ROC AUC must lie inside [bound_lower, bound_upper];
* binned AUC / AP / PR-AUC equal scikit-learn's on the binned scores (every
  score replaced by its bin's lower edge) to rtol 1e-9.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from compare import COMPARED, assert_same_tables
from conftest import jvm_scan_or_skip
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.core.slices import join_values
from clfeval.errors import ContractError, RejectLimitError
from clfeval.io import session, tables
from clfeval.pipeline import run_evaluation
from clfeval.spark import derive
from clfeval.spark.demo_data import demo_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 3, 1)
TIGHT = {"rtol": 1e-9, "atol": 1e-12}


def demo_config(tmp: str, **overrides) -> object:
    raw = {
        "input": {
            "path": f"{tmp}/predictions",
            "weight_column": "weight",
            "date_partition_column": "date",
        },
        "task": {"positive_label": 1, "negative_labels": [0]},
        "metrics": {"thresholds": [0.05, 0.5]},
        "slices": {"segment_columns": ["region", "device"], "crosses": [["region", "device"]]},
        "output": {"path": f"{tmp}/metrics"},
        "run": {"max_reject_fraction": 0.05},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    return parse_config(raw)


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """A small demo table (20k rows, 3 days) and one evaluation run over it."""
    tmp = str(tmp_path_factory.mktemp("e2e"))
    df = demo_predictions(spark, rows=20_000, days=3, start=START, positive_rate=0.1, seed=3)
    tables.write_predictions(df, f"{tmp}/predictions")
    config = demo_config(tmp)
    result = run_evaluation(spark, config, log=lambda _: None)
    return tmp, config, result


def read(spark, config, name: str) -> pd.DataFrame:
    return tables.read_table(spark, tables.output_location(config, name)).toPandas()


def valid_rows(spark, tmp: str, config) -> pd.DataFrame:
    """The demo's valid input rows with their event day and binned score (each
    score replaced by its bin's lower edge)."""
    layout = config.layout()
    raw = spark.read.format("delta").load(f"{tmp}/predictions").toPandas()
    raw = raw[raw.score.between(0, 1) & raw.label.notna()].copy()
    raw["day"] = raw.event_time.dt.date
    raw["binned"] = layout.edges[layout.bin_index(raw.score.to_numpy())]
    return raw


def test_every_row_is_evaluated_or_rejected(spark, demo) -> None:
    tmp, config, result = demo
    raw = spark.read.format("delta").load(f"{tmp}/predictions").toPandas()
    assert result.rows_read == len(raw)
    bad = raw.score.isna() | (raw.score < 0) | (raw.score > 1) | raw.label.isna()
    assert result.rows_rejected == int(bad.sum()) > 0
    assert set(result.reject_counts) <= {
        "null_score",
        "nan_score",
        "score_out_of_range",
        "null_label",
    }
    # null and NaN are told apart: pandas shows both as NaN, Spark does not
    assert result.reject_counts["null_score"] + result.reject_counts["nan_score"] == int(
        raw.score.isna().sum()
    )
    metrics = read(spark, config, "metrics")
    overall = metrics[(metrics.slice_key == "") & (metrics.metric == "roc_auc")]
    assert overall.n_rows.sum() == result.rows_evaluated
    runs = tables.read_runs(spark, config).toPandas()
    run = runs[runs.run_id == result.run_id].iloc[0]
    assert run.status == "succeeded"
    assert run.rows_read == result.rows_read and run.rows_rejected == result.rows_rejected
    assert dict(run.reject_counts) == result.reject_counts


def test_metric_rows_are_unique(spark, demo) -> None:
    _, config, _ = demo
    metrics = read(spark, config, "metrics")
    keys = [
        "model_name",
        "model_version",
        "slice_key",
        "slice_value",
        "granularity",
        "window_start",
        "metric",
        "class_label",
        "threshold",
    ]
    duplicated = metrics[metrics.fillna({"threshold": -1.0}).duplicated(keys, keep=False)]
    assert duplicated.empty, duplicated.sort_values(keys).head(6).to_string()


def test_metrics_match_sklearn_per_group(spark, demo) -> None:
    tmp, config, _ = demo
    raw = valid_rows(spark, tmp, config)
    metrics = read(spark, config, "metrics")
    confusion = read(spark, config, "confusion_matrices")
    # rejected_rows has one row per reason (class_label); the rest one per key and threshold
    index = metrics[metrics.metric != "rejected_rows"].set_index(
        [
            "model_name",
            "model_version",
            "slice_key",
            "slice_value",
            "window_start",
            "metric",
            "threshold",
        ],
        drop=False,
    )
    checked = 0
    for columns in config.slices_to_compute():
        keys = ["model_name", "model_version", "day", *columns]
        for key, part in raw.groupby(keys):
            model, version, day, *values = key
            where = (model, version, ",".join(columns), join_values(values), day)
            y, p, w = part.label.to_numpy(int), part.score.to_numpy(), part.weight.to_numpy()

            def value(metric, threshold=np.nan, where=where):
                return index.loc[(*where, metric, threshold)]

            np.testing.assert_allclose(
                value("log_loss").value, skm.log_loss(y, p, sample_weight=w, labels=[0, 1]), **TIGHT
            )
            np.testing.assert_allclose(
                value("brier_score").value, skm.brier_score_loss(y, p, sample_weight=w), **TIGHT
            )
            if 0 < y.sum() < len(y):
                auc = value("roc_auc")
                exact = skm.roc_auc_score(y, p, sample_weight=w)
                assert auc.bound_lower - 1e-12 <= exact <= auc.bound_upper + 1e-12
                b = part.binned.to_numpy()
                np.testing.assert_allclose(
                    auc.value, skm.roc_auc_score(y, b, sample_weight=w), **TIGHT
                )
                np.testing.assert_allclose(
                    value("average_precision").value,
                    skm.average_precision_score(y, b, sample_weight=w),
                    **TIGHT,
                )
            else:
                assert pd.isna(value("roc_auc").value)
            for t in config.metrics.thresholds:
                pred = (p >= t).astype(int)
                tn, fp, fn, tp = skm.confusion_matrix(
                    y, pred, sample_weight=w, labels=[0, 1]
                ).ravel()
                cells = confusion[
                    (confusion.model_name == model)
                    & (confusion.model_version == version)
                    & (confusion.slice_key == ",".join(columns))
                    & (confusion.slice_value == join_values(values))
                    & (confusion.window_start == day)
                    & (confusion.threshold == t)
                ].set_index(["actual_label", "predicted_label"])
                np.testing.assert_allclose(
                    [
                        cells.loc[("1", "1")].weight,
                        cells.loc[("0", "1")].weight,
                        cells.loc[("0", "0")].weight,
                        cells.loc[("1", "0")].weight,
                    ],
                    [tp, fp, tn, fn],
                    **TIGHT,
                )
                expected = {
                    "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
                    "precision": skm.precision_score(
                        y, pred, sample_weight=w, zero_division=np.nan
                    ),
                    "recall": skm.recall_score(y, pred, sample_weight=w, zero_division=np.nan),
                    "f1": skm.f1_score(y, pred, sample_weight=w, zero_division=np.nan),
                    "cohen_kappa": skm.cohen_kappa_score(y, pred, sample_weight=w),
                }
                if 0 < y.sum() < len(y) and 0 < pred.sum() < len(pred):
                    expected["mcc"] = skm.matthews_corrcoef(y, pred, sample_weight=w)
                for name, ref in expected.items():
                    got = value(name, t).value
                    if np.isnan(ref):
                        assert pd.isna(got), name
                    else:
                        np.testing.assert_allclose(got, ref, err_msg=name, **TIGHT)
            checked += 1
    assert checked > 100  # overall, 5 regions, 3 devices and their crosses, per model and day


def test_run_summary_matches_sklearn_over_the_runs_days(spark, demo) -> None:
    """The console summary: each model version over all of the run's days, overall
    slice, against scikit-learn on the same rows (binned scores for the AUC and
    average precision, raw scores for the rest; TIGHT; the exact AUC within the
    bound)."""
    tmp, config, result = demo
    raw = valid_rows(spark, tmp, config)
    threshold = config.metrics.thresholds[0]
    expected = []
    for (model, version), part in sorted(raw.groupby(["model_name", "model_version"])):
        y, p, w = part.label.to_numpy(int), part.score.to_numpy(), part.weight.to_numpy()
        b = part.binned.to_numpy()
        pred = (p >= threshold).astype(int)
        exact_auc = skm.roc_auc_score(y, p, sample_weight=w)
        expected.append(
            {
                "model": model,
                "version": version,
                "rows": len(part),
                "positives": int(y.sum()),
                "roc_auc": skm.roc_auc_score(y, b, sample_weight=w),
                "average_precision": skm.average_precision_score(y, b, sample_weight=w),
                "log_loss": skm.log_loss(y, p, sample_weight=w, labels=[0, 1]),
                "threshold": threshold,
                "precision": skm.precision_score(y, pred, sample_weight=w),
                "recall": skm.recall_score(y, pred, sample_weight=w),
            }
        )
        got = next(s for s in result.summary if (s["model"], s["version"]) == (model, version))
        assert got["auc_lower"] - 1e-12 <= exact_auc <= got["auc_upper"] + 1e-12
    assert [(s["model"], s["version"], s["rows"]) for s in result.summary] == [
        (e["model"], e["version"], e["rows"]) for e in expected
    ]
    for got, want in zip(result.summary, expected, strict=True):
        for name, value in want.items():
            if isinstance(value, float):
                np.testing.assert_allclose(got[name], value, err_msg=name, **TIGHT)
            else:
                assert got[name] == value, name


def test_stored_curves_match_sklearn_on_binned_scores(spark, demo) -> None:
    """Every point of the stored ROC and PR curves, in ``point`` order, equals
    scikit-learn's curve on the binned scores (each score replaced by its bin's
    lower edge; rtol 1e-9): the points leave Python as arrays and are exploded
    into rows by the write, so this checks their order, count and thresholds."""
    tmp, config, _ = demo
    raw = valid_rows(spark, tmp, config)
    curves = read(spark, config, "curves")
    checked = 0
    for (model, version, device, day), part in raw.groupby(
        ["model_name", "model_version", "device", "day"]
    ):
        y, b, w = part.label.to_numpy(int), part.binned.to_numpy(), part.weight.to_numpy()
        if not 0 < y.sum() < len(y):
            continue
        group = curves[
            (curves.model_name == model)
            & (curves.model_version == version)
            & (curves.slice_key == "device")
            & (curves.slice_value == device)
            & (curves.window_start == day)
        ]
        roc = group[group.curve == "roc"].sort_values("point")
        assert list(roc.point) == list(range(len(roc)))
        fpr, tpr, thresholds = skm.roc_curve(y, b, sample_weight=w, drop_intermediate=False)
        np.testing.assert_allclose(roc.threshold, thresholds, **TIGHT)
        np.testing.assert_allclose(roc.x, fpr, **TIGHT)
        np.testing.assert_allclose(roc.y, tpr, **TIGHT)
        pr = group[group.curve == "pr"].sort_values("point")
        precision, recall, _ = skm.precision_recall_curve(y, b, sample_weight=w)
        # scikit-learn's points from the highest threshold down, after (recall 0, precision 1)
        np.testing.assert_allclose(pr.x, recall[::-1], **TIGHT)
        np.testing.assert_allclose(pr.y, precision[::-1], **TIGHT)
        checked += 1
    assert checked >= 10  # 3 devices x models x days


def test_derive_gives_the_same_rows_in_any_arrow_batch_size(spark, demo) -> None:
    """The binary derive reads one row per group, batched by
    spark.sql.execution.arrow.maxRecordsPerBatch: three groups per batch give
    the rows of one batch for all (same values to rtol 1e-12)."""
    _, config, _ = demo
    histograms = tables.read_table(spark, tables.output_location(config, "score_histograms"))

    def derived(groups_per_batch: int) -> dict[str, pd.DataFrame]:
        with session.run_settings(spark, {derive.ARROW_RECORDS_PER_BATCH: str(groups_per_batch)}):
            combined = derive.derive_tables(
                histograms,
                config.layout(),
                config.metrics.thresholds,
                config.metrics.f_beta,
                config.positive_label_text(),
                "0",
            )
            parts = derive.split_tables(combined)
            parts["curves"] = derive.expand_curves(parts["curves"])
            return {name: df.toPandas() for name, df in parts.items()}

    small, large = derived(3), derived(100_000)
    assert len(small["metrics"]) > 100
    for name in small:
        columns = list(small[name].columns)
        a = small[name].sort_values(columns).reset_index(drop=True)
        b = large[name].sort_values(columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_rerun_is_idempotent_and_leaves_other_windows_alone(spark, demo) -> None:
    _, config, _ = demo
    names = ("score_histograms", "metrics", "confusion_matrices", "curves")
    before = {n: read(spark, config, n) for n in names}
    day2 = START + dt.timedelta(days=1)
    run_evaluation(spark, config, day2, day2, log=lambda _: None)
    for n in names:
        after = read(spark, config, n)
        assert len(after) == len(before[n]), n
        cols = list(after.columns)
        a = after.sort_values(cols).reset_index(drop=True)
        b = before[n].sort_values(cols).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    runs = tables.read_runs(spark, config).toPandas()
    assert (runs.status == "succeeded").sum() == 2


def test_missing_column_is_a_contract_error_naming_it(spark, demo) -> None:
    tmp, _, _ = demo
    config = demo_config(
        tmp,
        input={"score_column": "probability", "label_column": "target"},
        output={"path": f"{tmp}/other"},
    )
    with pytest.raises(ContractError) as info:
        run_evaluation(spark, config, log=lambda _: None)
    text = str(info.value)
    assert "'probability'" in text and "'target'" in text
    assert not tables.table_exists(spark, tables.output_location(config, "metrics"))


def test_reject_limit_fails_before_writing(spark, demo) -> None:
    tmp, _, _ = demo
    config = demo_config(tmp, run={"max_reject_fraction": 0.0}, output={"path": f"{tmp}/strict"})
    with pytest.raises(RejectLimitError, match="null_label"):
        run_evaluation(spark, config, log=lambda _: None)
    assert not tables.table_exists(spark, tables.output_location(config, "score_histograms"))
    runs = tables.read_runs(spark, config).toPandas()
    assert list(runs.status) == ["failed"]


def test_tables_carry_intervals_calibration_and_recommendations(spark, demo) -> None:
    _, config, _ = demo
    metrics = read(spark, config, "metrics")
    auc = metrics[(metrics.metric == "roc_auc") & metrics.value.notna() & (metrics.n_positive > 5)]
    assert len(auc) > 0
    assert (auc.ci_lower <= auc.value).all() and (auc.value <= auc.ci_upper).all()
    recall = metrics[(metrics.metric == "recall") & metrics.value.notna()]
    assert recall.ci_lower.notna().all()
    names = set(metrics.metric)
    assert {"ece", "brier_reliability", "recommended_threshold_max_f1"} <= names
    curves = read(spark, config, "curves")
    assert {"roc", "pr", "calibration"} == set(curves.curve)
    confusion = read(spark, config, "confusion_matrices")
    best = metrics[(metrics.metric == "recommended_threshold_max_f1") & metrics.threshold.notna()]
    row = best.iloc[0]
    match = confusion[
        (confusion.model_name == row.model_name)
        & (confusion.model_version == row.model_version)
        & (confusion.slice_key == row.slice_key)
        & (confusion.slice_value == row.slice_value)
        & (confusion.window_start == row.window_start)
        & (confusion.threshold == row.threshold)
    ]
    assert len(match) == 4  # its confusion counts are in the table


def test_plan_has_one_input_scan_and_one_exchange(spark, demo) -> None:
    """Regression guard (no timing): the scan is read once and only aggregated rows shuffle."""
    from clfeval.spark import aggregate
    from clfeval.tasks import task_for

    tmp, config, _ = demo
    layout = config.layout()
    raw = spark.read.format("delta").load(f"{tmp}/predictions")
    rows = task_for(config).normalize(raw)

    def plan(frame) -> str:
        return frame._jdf.queryExecution().executedPlan().toString()

    sql = plan(aggregate.scan_states(rows, config, layout))
    assert sql.count("Scan parquet") == 1, sql  # also matches "FileScan parquet"
    assert sql.count("Exchange") == 1, sql
    # The JVM scan reads the normalized rows (one parquet scan, no exchange) per
    # partition; its compact partial states are the only rows exchanged, inside
    # the RDD it returns (its plan is that RDD's scan).
    jvm = jvm_scan_or_skip(spark, layout)
    assert aggregate.jvm_groups_by(rows, config)
    assert plan(rows).count("Scan parquet") == 1 and "Exchange" not in plan(rows), plan(rows)
    states = aggregate.scan_states(rows, config, layout, jvm)
    outer = plan(states)
    assert outer.count("Scan ExistingRDD") == 1 and "parquet" not in outer, outer
    assert "Exchange" not in outer, outer
    lineage = states._jdf.queryExecution().toRdd().toDebugString()
    assert lineage.count("FileScanRDD") == 1 and lineage.count("ShuffledRowRDD") == 1, lineage


def test_sql_aggregation_fallback_writes_the_same_tables(
    spark, demo, tmp_path, monkeypatch
) -> None:
    """Without the JVM scan (jar not built or not passed to spark-submit) the
    run falls back to Spark SQL's aggregation: the same tables (floats rtol 1e-9)."""
    from clfeval.spark import aggregate

    tmp, config, _ = demo
    fallback = demo_config(tmp, output={"path": str(tmp_path / "sql")})
    monkeypatch.setattr(aggregate, "jvm_scan", lambda spark, layout: (None, "JVM scan not found"))
    lines: list[str] = []
    run_evaluation(spark, fallback, log=lines.append)
    assert any("Spark SQL (JVM scan not found)" in line for line in lines), lines
    for name in COMPARED:
        assert len(read(spark, fallback, name)) > 0, name
    assert_same_tables(spark, config, fallback)
