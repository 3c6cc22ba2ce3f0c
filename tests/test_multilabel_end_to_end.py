"""Multilabel end to end: demo rows -> run_evaluation -> Delta tables -> scikit-learn.

Weighted rows. Per (model, version, slice, day) and per week, the metrics are
recomputed by scikit-learn from the raw rows read back from the input table.
Tolerances: metrics at an operating threshold (per-label confusion matrices,
Hamming loss, subset accuracy, sample/micro/macro Jaccard, F1, precision and
recall) and label cardinality do not depend on binning: abs 1e-9. ROC AUC and
average precision (micro, macro): the exact value lies inside the stored
guaranteed bound (1e-12 slack).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import TAGS, demo_multilabel_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 4, 6)  # a Monday: both days in one week
THRESHOLDS = [0.3, 0.5]


@pytest.fixture(scope="module")
def multilabel(spark, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ml"))
    df = demo_multilabel_predictions(spark, rows=3_000, days=2, start=START, bad_row_rate=0.03)
    df = df.withColumn("w", F.lit(0.25) + F.rand(5) * F.lit(2.0))
    tables.write_predictions(df, f"{tmp}/predictions")
    config = parse_config(
        {
            "input": {
                "path": f"{tmp}/predictions",
                "date_partition_column": "date",
                "label_column": "tags",
                "probabilities_column": "tag_scores",
                "weight_column": "w",
            },
            "task": {"type": "multilabel", "labels": list(TAGS)},
            "metrics": {"thresholds": THRESHOLDS},
            "slices": {"segment_columns": ["region"]},
            "output": {"path": f"{tmp}/metrics", "granularities": ["day", "week"]},
        }
    )
    result = run_evaluation(spark, config, log=lambda _: None)
    raw = spark.read.format("delta").load(f"{tmp}/predictions").toPandas()
    return config, result, raw


def read(spark, config, name: str) -> pd.DataFrame:
    return tables.read_table(spark, tables.output_location(config, name)).toPandas()


def expected_reason(row: pd.Series) -> str | None:
    """The first reject reason of a raw row, in the task's documented order."""
    if row.tags is None:
        return "null_label"
    if set(row.tags) - set(TAGS):
        return "unknown_label"
    if set(row.tag_scores) != set(TAGS):
        return "missing_label_score"
    if any(math.isnan(v) for v in row.tag_scores.values()):
        return "nan_score"
    return None


def matrices(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([[int(t in set(tags)) for t in TAGS] for tags in part.tags])
    scores = np.array([[m[t] for t in TAGS] for m in part.tag_scores])
    return y, scores, part.w.to_numpy()


def test_bad_rows_counted_under_their_reasons(multilabel) -> None:
    _, result, raw = multilabel
    reasons = raw.apply(expected_reason, axis=1).dropna().value_counts().to_dict()
    assert result.rows_read == len(raw)
    assert result.rows_evaluated == len(raw) - sum(reasons.values())
    assert result.reject_counts == reasons
    assert set(reasons) == {"null_label", "unknown_label", "missing_label_score", "nan_score"}


def check_group(group: pd.DataFrame, cells: pd.DataFrame, part: pd.DataFrame, key) -> None:
    y, scores, w = matrices(part)
    overall = group[group.class_label.isna()]
    value = {
        (r.metric, None if np.isnan(r.threshold) else r.threshold): r for r in overall.itertuples()
    }
    for t in THRESHOLDS:
        pred = (scores >= t).astype(int)
        exact = {
            "hamming_loss": skm.hamming_loss(y, pred, sample_weight=w),
            "subset_accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        }
        for average in ("samples", "micro", "macro"):
            kw = {"average": average, "sample_weight": w, "zero_division": 0}
            exact[f"jaccard_{average}"] = skm.jaccard_score(y, pred, **kw)
            exact[f"f1_{average}"] = skm.f1_score(y, pred, **kw)
            exact[f"precision_{average}"] = skm.precision_score(y, pred, **kw)
            exact[f"recall_{average}"] = skm.recall_score(y, pred, **kw)
        for name, want in exact.items():
            assert value[(name, t)].value == pytest.approx(want, abs=1e-9), (key, name, t)
        mcm = skm.multilabel_confusion_matrix(y, pred, sample_weight=w)
        at = cells[cells.threshold == t].set_index(["actual_label", "predicted_label"]).weight
        for k, tag in enumerate(TAGS):
            other = f"not_{tag}"
            got = [at[(other, other)], at[(other, tag)], at[(tag, other)], at[(tag, tag)]]
            np.testing.assert_allclose(got, mcm[k].ravel(), rtol=1e-9, atol=1e-9)
    cardinality = np.average(y.sum(axis=1), weights=w)
    assert value[("label_cardinality", None)].value == pytest.approx(cardinality, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ap = skm.average_precision_score(y, scores, average="micro", sample_weight=w)
    ranked = [("average_precision_micro", ap)]
    if 0 < y.sum() < y.size:
        ranked.append(
            ("roc_auc_micro", skm.roc_auc_score(y, scores, average="micro", sample_weight=w))
        )
    if all(0 < y[:, k].sum() < len(y) for k in range(len(TAGS))):
        macro = skm.roc_auc_score(y, scores, average="macro", sample_weight=w)
        ranked.append(("roc_auc_macro", macro))
    for name, exact_value in ranked:
        row = value[(name, None)]
        assert row.bound_lower - 1e-12 <= exact_value <= row.bound_upper + 1e-12, (key, name)


def test_multilabel_tables_match_sklearn_per_group(spark, multilabel) -> None:
    config, _, raw = multilabel
    rows = raw[raw.apply(expected_reason, axis=1).isna()].copy()
    rows["day"] = rows.event_time.dt.date
    metrics = read(spark, config, "metrics")
    confusion = read(spark, config, "confusion_matrices")
    checked = 0
    for granularity, when in (("day", "day"), ("week", None)):
        for columns in config.slices_to_compute():
            by = ["model_name", "model_version", *([when] if when else []), *columns]
            for key, part in rows.groupby(by):
                model, version, *rest = key
                day = rest.pop(0) if when else START
                where = {
                    "model_name": model,
                    "model_version": version,
                    "slice_key": ",".join(columns),
                    "slice_value": ",".join(rest),
                    "granularity": granularity,
                    "window_start": day,
                }

                def pick(frame: pd.DataFrame, where=where) -> pd.DataFrame:
                    mask = np.ones(len(frame), dtype=bool)
                    for column, v in where.items():
                        mask &= (frame[column] == v).to_numpy()
                    return frame[mask]

                check_group(pick(metrics), pick(confusion), part, key)
                checked += 1
    assert checked >= 30  # (2 days + the week) x 2 versions x (overall + regions)


def test_run_summary_and_curves(spark, multilabel) -> None:
    """The console summary per version over both days (overall slice) against
    scikit-learn; per-label and micro curves are written."""
    config, result, raw = multilabel
    rows = raw[raw.apply(expected_reason, axis=1).isna()]
    versions = sorted(rows.groupby(["model_name", "model_version"]))
    assert [(s["model"], s["version"]) for s in result.summary] == [k for k, _ in versions]
    for got, (_, part) in zip(result.summary, versions, strict=True):
        y, scores, w = matrices(part)
        pred = (scores >= THRESHOLDS[0]).astype(int)
        assert got["rows"] == len(part) and got["labels"] == len(TAGS)
        assert got["hamming_loss"] == pytest.approx(skm.hamming_loss(y, pred, sample_weight=w))
        f1 = skm.f1_score(y, pred, average="macro", sample_weight=w, zero_division=0)
        assert got["f1_macro"] == pytest.approx(f1, abs=1e-9)
        auc = skm.roc_auc_score(y, scores, average="micro", sample_weight=w)
        assert got["auc_lower"] - 1e-12 <= auc <= got["auc_upper"] + 1e-12
    curves = read(spark, config, "curves")
    overall = curves[curves.slice_key == ""]
    for tag in TAGS:
        assert {"roc", "pr"} <= set(overall[overall.class_label == tag].curve)
    assert {"roc_micro", "pr_micro"} <= set(overall[overall.class_label.isna()].curve)
