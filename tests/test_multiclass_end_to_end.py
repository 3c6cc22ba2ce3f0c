"""Multiclass end to end: demo rows -> run_evaluation -> Delta tables -> scikit-learn.

Per (model, version, slice, day) the metrics are recomputed by scikit-learn
from the raw rows read back from the input table (weighted). Tolerances: the
confusion matrix, accuracy-type metrics, top-k, log loss and Brier do not
depend on binning: abs 1e-9. One-vs-rest AUCs (per class, macro, weighted)
and, with ``task.one_vs_one``, one-vs-one AUCs: the exact value lies inside
the stored guaranteed bound. Every test runs with and without the one-vs-one
split of the states.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import SPECIES, demo_multiclass_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 4, 1)


@pytest.fixture(scope="module", params=[False, True], ids=["ovr", "ovo"])
def multiclass(spark, tmp_path_factory, request):
    tmp = str(tmp_path_factory.mktemp("mc"))
    df = demo_multiclass_predictions(spark, rows=6_000, days=2, start=START, bad_row_rate=0.02)
    tables.write_predictions(df, f"{tmp}/predictions")
    config = parse_config(
        {
            "input": {"path": f"{tmp}/predictions", "date_partition_column": "date"},
            "task": {
                "type": "multiclass",
                "classes": list(SPECIES),
                "top_k": [2],
                "one_vs_one": request.param,
            },
            "slices": {"segment_columns": ["region"]},
            "output": {"path": f"{tmp}/metrics"},
        }
    )
    result = run_evaluation(spark, config, log=lambda _: None)
    raw = spark.read.format("delta").load(f"{tmp}/predictions").toPandas()
    return config, result, raw


def read(spark, config, name: str) -> pd.DataFrame:
    return tables.read_table(spark, tables.output_location(config, name)).toPandas()


def valid_rows(raw: pd.DataFrame) -> pd.DataFrame:
    complete = raw.probabilities.map(lambda m: set(m) == set(SPECIES))
    normalized = raw.probabilities.map(lambda m: abs(sum(m.values()) - 1) <= 1e-3)
    return raw[raw.label.isin(SPECIES) & complete & normalized].copy()


def expected_reason(row: pd.Series) -> str | None:
    """The first reject reason of a raw row, in the job's documented order."""
    probs = row.probabilities
    if row.label is None:
        return "null_label"
    if row.label not in SPECIES:
        return "unknown_label"
    if set(probs) != set(SPECIES):
        return "bad_probability_length"
    if any(not 0 <= v <= 1 for v in probs.values()):
        return "probability_out_of_range"
    if abs(sum(probs.values()) - 1) > 1e-3:
        return "probabilities_not_normalized"
    return None


def test_bad_rows_counted_under_their_reasons(multiclass) -> None:
    _, result, raw = multiclass
    reasons = raw.apply(expected_reason, axis=1).dropna().value_counts().to_dict()
    assert result.rows_read == len(raw)
    assert result.rows_evaluated == len(valid_rows(raw)) == len(raw) - sum(reasons.values())
    assert result.reject_counts == reasons
    assert len(reasons) >= 4


def test_multiclass_tables_match_sklearn_per_group(spark, multiclass) -> None:
    config, _, raw = multiclass
    rows = valid_rows(raw)
    rows["day"] = rows.event_time.dt.date
    metrics = read(spark, config, "metrics")
    confusion = read(spark, config, "confusion_matrices")
    labels = sorted(SPECIES)  # scikit-learn wants probability columns in sorted label order
    checked = 0
    for columns in config.slices_to_compute():
        for key, part in rows.groupby(["model_name", "model_version", "day", *columns]):
            model, version, day, *values = key
            where = (
                (metrics.model_name == model)
                & (metrics.model_version == version)
                & (metrics.slice_key == ",".join(columns))
                & (metrics.slice_value == ",".join(values))
                & (metrics.window_start == day)
            )
            group = metrics[where]
            overall = group[group.class_label.isna()].set_index("metric").value
            y = part.label.to_numpy()
            probs = np.array([[m[c] for c in labels] for m in part.probabilities])
            pred = np.array(labels)[probs.argmax(axis=1)]
            exact = {
                "accuracy": skm.accuracy_score(y, pred),
                "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
                "mcc": skm.matthews_corrcoef(y, pred),
                "cohen_kappa": skm.cohen_kappa_score(y, pred),
                "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
                "f1_weighted": skm.f1_score(y, pred, average="weighted", zero_division=0),
                "top_2_accuracy": skm.top_k_accuracy_score(y, probs, k=2, labels=labels),
                "log_loss": skm.log_loss(y, probs, labels=labels),
            }
            for name, value in exact.items():
                if np.isnan(overall[name]):  # NULL where scikit-learn returns 0 for 0/0
                    denominator = group[group.class_label.isna() & (group.metric == name)]
                    assert value == 0 and denominator.denominator.iloc[0] == 0, (key, name)
                    continue
                assert overall[name] == pytest.approx(value, abs=1e-9), (key, name)
            cells = confusion[
                (confusion.model_name == model)
                & (confusion.model_version == version)
                & (confusion.slice_key == ",".join(columns))
                & (confusion.slice_value == ",".join(values))
                & (confusion.window_start == day)
            ].pivot(index="actual_label", columns="predicted_label", values="n_rows")
            np.testing.assert_array_equal(
                cells.loc[labels, labels].to_numpy(), skm.confusion_matrix(y, pred, labels=labels)
            )
            ovo = group[group.class_label.isna() & (group.metric == "roc_auc_ovo_macro")]
            assert len(ovo) == int(config.task.one_vs_one)
            if set(y) == set(labels):
                for how in ("ovr", "ovo") if config.task.one_vs_one else ("ovr",):
                    auc = group[group.class_label.isna() & (group.metric == f"roc_auc_{how}_macro")]
                    value = skm.roc_auc_score(y, probs, multi_class=how, labels=labels)
                    lower, upper = auc.bound_lower.iloc[0], auc.bound_upper.iloc[0]
                    assert lower - 1e-12 <= value <= upper + 1e-12, how
            for c, label in enumerate(labels):
                if 0 < (y == label).sum() < len(y):
                    row = group[(group.class_label == label) & (group.metric == "roc_auc")].iloc[0]
                    value = skm.roc_auc_score(y == label, probs[:, c])
                    assert row.bound_lower - 1e-12 <= value <= row.bound_upper + 1e-12
            checked += 1
    assert checked >= 2 * 2 * 6  # versions x days x (overall + 5 regions)


def test_run_summary_matches_sklearn_over_the_runs_days(spark, multiclass) -> None:
    """The console summary: each model version over both days, overall slice,
    against scikit-learn on the same rows (1e-9; the AUCs within 2e-3, as in
    test_core_multiclass, and the one-vs-rest AUC within its bound)."""
    config, result, raw = multiclass
    rows = valid_rows(raw)
    labels = sorted(SPECIES)
    versions = sorted(rows.groupby(["model_name", "model_version"]))
    assert [(s["model"], s["version"]) for s in result.summary] == [k for k, _ in versions]
    for got, ((_, _), part) in zip(result.summary, versions, strict=True):
        y = part.label.to_numpy()
        probs = np.array([[m[c] for c in labels] for m in part.probabilities])
        pred = np.array(labels)[probs.argmax(axis=1)]
        assert got["rows"] == len(part) and got["classes"] == len(SPECIES)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-9)
        f1 = skm.f1_score(y, pred, average="macro", zero_division=0)
        assert got["f1_macro"] == pytest.approx(f1, abs=1e-9)
        assert got["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=labels), abs=1e-9)
        assert ("roc_auc_ovo_macro" in got) == config.task.one_vs_one
        for how in ("ovr", "ovo") if config.task.one_vs_one else ("ovr",):
            name = f"roc_auc_{how}_macro"
            exact = skm.roc_auc_score(y, probs, multi_class=how, labels=labels)
            assert got[name] == pytest.approx(exact, abs=2e-3), name
        exact = skm.roc_auc_score(y, probs, multi_class="ovr", labels=labels)
        assert got["auc_lower"] - 1e-12 <= exact <= got["auc_upper"] + 1e-12


def test_curves_per_class_and_top_label(spark, multiclass) -> None:
    config, _, _ = multiclass
    curves = read(spark, config, "curves")
    overall = curves[curves.slice_key == ""]
    for label in SPECIES:
        assert set(overall[overall.class_label == label].curve) == {"roc", "pr", "calibration"}
    assert (overall[overall.class_label.isna()].curve == "calibration_top_label").all()


def test_stored_state_rows_are_of_the_three_documented_kinds(spark, multiclass) -> None:
    """score_histograms as the README's table reference says: class rows (a
    class, predicted or not, a bin; the true class only with one-vs-one),
    confusion rows (predicted and true class, predicted = true, no bin) and rank
    rows (true class and rank, no class, no bin); at most 2·K·bins + 2·K² rows a
    group (times K for the class rows with one-vs-one)."""
    config, _, _ = multiclass
    states = read(spark, config, "score_histograms")
    binned = states[states.bin.notna()]
    counts = states[states.bin.isna()]
    ranks = counts[counts.true_rank.notna()]
    confusion = counts[counts.true_rank.isna()]
    assert len(binned) and len(ranks) and len(confusion)
    assert binned.class_label.isin(SPECIES).all() and binned.predicted.notna().all()
    assert binned.true_label.notna().all() == config.task.one_vs_one
    assert binned.true_label.isna().all() != config.task.one_vs_one
    assert binned.true_rank.isna().all()
    assert ranks.class_label.isna().all() and ranks.predicted.isna().all()
    assert ranks.true_label.isin(SPECIES).all()
    assert confusion.class_label.isin(SPECIES).all() and confusion.true_label.isin(SPECIES).all()
    assert (confusion.predicted == True).all()  # noqa: E712
    K, bins = len(SPECIES), config.layout().n_bins
    per_group = states.groupby(["model_version", "slice_key", "slice_value", "window_start"]).size()
    assert per_group.max() <= 2 * K * bins * (K if config.task.one_vs_one else 1) + 2 * K * K
