"""Multilabel metrics from binned states against scikit-learn on the same rows.

Tolerances: metrics at an operating threshold (confusion matrices, Hamming
loss, subset accuracy, sample/micro/macro/weighted precision, recall, F1 and
Jaccard) and label cardinality do not depend on binning (thresholds are bin
edges) and must match to 1e-9 (float summation order). Binned ROC AUC and
average precision must contain scikit-learn's exact value within their
guaranteed bounds (1e-12 slack) and lie within 5e-3 of it on these
few-hundred-row samples.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from clfeval.core.bins import make_layout
from clfeval.core.multilabel import MultilabelState, evaluate_multilabel

THRESHOLDS = (0.3, 0.5, 0.7)
LAYOUT = make_layout("logit", 960, -12.0, 12.0, THRESHOLDS)


def sample(rng: np.random.Generator, rows: int, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Label sets with unequal prevalences (some rows with none) and scores that
    favour the true labels; some scores exactly on a threshold (ties with it
    are predicted positive)."""
    prevalence = rng.uniform(0.05, 0.6, n_labels)
    y = (rng.uniform(size=(rows, n_labels)) < prevalence).astype(int)
    y[rng.uniform(size=rows) < 0.1] = 0
    logits = rng.normal(-1.0, 1.2, (rows, n_labels)) + 2.0 * y
    scores = 1.0 / (1.0 + np.exp(-logits))
    on_edge = rng.uniform(size=scores.shape) < 0.03
    scores[on_edge] = rng.choice(THRESHOLDS, size=int(on_edge.sum()))
    return y, scores


def by_name(result, class_label=None) -> dict:
    return {
        (m.metric.metric, m.metric.threshold): m.metric
        for m in result.metrics
        if m.class_label == class_label
    }


def assert_bounded(mine, exact: float, name: str) -> None:
    assert mine.bound_lower - 1e-12 <= exact <= mine.bound_upper + 1e-12, name
    assert abs(mine.value - exact) < 5e-3, name


@pytest.mark.parametrize(
    ("n_labels", "weighted", "seed"),
    [(2, False, 1), (4, True, 2), (7, False, 3), (12, True, 4), (5, True, 5), (30, False, 6)],
)
def test_multilabel_metrics_match_sklearn(n_labels: int, weighted: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, scores = sample(rng, 700, n_labels)
    y[:3, :] = 1  # every label has positives and negatives (scikit-learn's AUC needs both)
    y[3:6, :] = 0
    w = rng.uniform(0.2, 3.0, y.shape[0]) if weighted else None
    labels = tuple(f"l{k}" for k in range(n_labels))
    state = MultilabelState.from_scores(LAYOUT, y, scores, w, THRESHOLDS)
    result = evaluate_multilabel(state, labels, LAYOUT, THRESHOLDS, beta=2.0)
    got = by_name(result)

    for t in THRESHOLDS:
        pred = (scores >= t).astype(int)
        mcm = skm.multilabel_confusion_matrix(y, pred, sample_weight=w)
        cells = {(label, c.threshold): c for label, c in result.confusions}
        for k, label in enumerate(labels):
            c = cells[(label, t)]
            np.testing.assert_allclose([c.tn, c.fp, c.fn, c.tp], mcm[k].ravel(), rtol=1e-12)
        exact = {
            "hamming_loss": skm.hamming_loss(y, pred, sample_weight=w),
            "subset_accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        }
        for average in ("samples", "micro", "macro", "weighted"):
            kw = {"average": average, "sample_weight": w, "zero_division": 0}
            exact[f"jaccard_{average}"] = skm.jaccard_score(y, pred, **kw)
            exact[f"precision_{average}"] = skm.precision_score(y, pred, **kw)
            exact[f"recall_{average}"] = skm.recall_score(y, pred, **kw)
            exact[f"f1_{average}"] = skm.f1_score(y, pred, **kw)
        for name, value in exact.items():
            assert got[(name, t)].value == pytest.approx(value, abs=1e-9), (name, t)
        assert got[("subset_accuracy", t)].ci_lower <= got[("subset_accuracy", t)].value
        per_label_f1 = skm.f1_score(y, pred, average=None, sample_weight=w, zero_division=0)
        for k, label in enumerate(labels):
            mine = by_name(result, label)[("f1", t)].value
            assert (mine or 0.0) == pytest.approx(per_label_f1[k], abs=1e-9)

    cardinality = np.average(y.sum(axis=1), weights=w)
    assert got[("label_cardinality", None)].value == pytest.approx(cardinality, abs=1e-9)
    assert got[("label_density", None)].value == pytest.approx(cardinality / n_labels, abs=1e-9)
    empty = np.average(y.sum(axis=1) == 0, weights=w)
    assert got[("empty_label_set_share", None)].value == pytest.approx(empty, abs=1e-9)

    for average in ("micro", "macro", "weighted"):
        auc = skm.roc_auc_score(y, scores, average=average, sample_weight=w)
        assert_bounded(got[(f"roc_auc_{average}", None)], auc, f"roc_auc_{average}")
        ap = skm.average_precision_score(y, scores, average=average, sample_weight=w)
        assert_bounded(got[(f"average_precision_{average}", None)], ap, f"ap_{average}")
    for k, label in enumerate(labels):
        mine = by_name(result, label)
        auc = skm.roc_auc_score(y[:, k], scores[:, k], sample_weight=w)
        assert_bounded(mine[("roc_auc", None)], auc, label)
        assert mine[("roc_auc", None)].ci_lower < mine[("roc_auc", None)].ci_upper


def test_label_without_positives_follows_sklearn_averages() -> None:
    """A label that never occurs: macro average precision counts it as 0 (as
    scikit-learn, which warns); macro ROC AUC averages the labels where it is
    defined (scikit-learn raises), i.e. equals scikit-learn on those labels."""
    rng = np.random.default_rng(11)
    y, scores = sample(rng, 500, 4)
    y[:, 2] = 0
    y[:3, [0, 1, 3]] = 1
    labels = ("a", "b", "c", "d")
    state = MultilabelState.from_scores(LAYOUT, y, scores, None, THRESHOLDS)
    got = by_name(evaluate_multilabel(state, labels, LAYOUT, THRESHOLDS, beta=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ap = skm.average_precision_score(y, scores, average="macro")
    assert_bounded(got[("average_precision_macro", None)], ap, "ap_macro")
    keep = [0, 1, 3]
    auc = skm.roc_auc_score(y[:, keep], scores[:, keep], average="macro")
    assert_bounded(got[("roc_auc_macro", None)], auc, "roc_auc_macro")
    pred = (scores >= 0.5).astype(int)
    for name, fn in (("precision", skm.precision_score), ("f1", skm.f1_score)):
        value = fn(y, pred, average="macro", zero_division=0)
        assert got[(f"{name}_macro", 0.5)].value == pytest.approx(value, abs=1e-12)


def test_empty_sets_follow_sklearn_zero_division() -> None:
    """Rows with an empty true set, an empty predicted set, or both, one at a
    time and together: every sample-averaged metric as scikit-learn's with
    zero_division=0 (both empty: subset accuracy 1, the others 0)."""
    y = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 1]])
    scores = np.array(
        [[0.1, 0.2, 0.3], [0.4, 0.1, 0.1], [0.9, 0.2, 0.1], [0.8, 0.1, 0.6], [0.2, 0.5, 0.5]]
    )
    labels = ("a", "b", "c")
    pred = (scores >= 0.5).astype(int)
    for rows in ([0], [1], [2], [3], list(range(5))):
        state = MultilabelState.from_scores(LAYOUT, y[rows], scores[rows], None, (0.5,))
        got = by_name(evaluate_multilabel(state, labels, LAYOUT, (0.5,), beta=1.0))
        t, p = y[rows], pred[rows]
        assert got[("subset_accuracy", 0.5)].value == skm.accuracy_score(t, p)
        for name, fn in (
            ("jaccard", skm.jaccard_score),
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            want = fn(t, p, average="samples", zero_division=0)
            assert got[(f"{name}_samples", 0.5)].value == pytest.approx(want, abs=1e-12), (
                name,
                rows,
            )


def test_states_add_like_rows() -> None:
    rng = np.random.default_rng(8)
    y, scores = sample(rng, 400, 5)
    w = rng.uniform(0.2, 3.0, y.shape[0])
    whole = MultilabelState.from_scores(LAYOUT, y, scores, w, THRESHOLDS)
    a = MultilabelState.from_scores(LAYOUT, y[:150], scores[:150], w[:150], THRESHOLDS)
    b = MultilabelState.from_scores(LAYOUT, y[150:], scores[150:], w[150:], THRESHOLDS)
    summed = a + b
    for name, array in whole.labels.items():
        np.testing.assert_allclose(summed.labels[name], array, rtol=1e-12)
    assert summed.examples.keys() == whole.examples.keys()
    for key, sums in whole.examples.items():
        np.testing.assert_allclose(summed.examples[key], sums, rtol=1e-12)


def test_config_names_the_bad_multilabel_key() -> None:
    from clfeval.config import parse_config
    from clfeval.errors import ConfigError

    base = {"input": {"path": "/p", "label_column": "tags"}}

    def problems(task: dict) -> str:
        with pytest.raises(ConfigError) as caught:
            parse_config({**base, "task": task})
        return str(caught.value)

    assert "task.labels: a multilabel task needs 2 to 500 labels, got 1" in problems(
        {"type": "multilabel", "labels": ["a"]}
    )
    assert "task.labels[2]: 'a' is listed twice" in problems(
        {"type": "multilabel", "labels": ["a", "b", "a"]}
    )
    assert "task.classes: only used with task.type = 'multiclass'" in problems(
        {"type": "multilabel", "labels": ["a", "b"], "classes": ["x", "y", "z"]}
    )
    assert "task.labels: only used with task.type = 'multilabel'" in problems(
        {"type": "binary", "labels": ["a", "b"]}
    )
    config = parse_config({**base, "task": {"type": "multilabel", "labels": ["a", "b"]}})
    assert config.task.labels == ("a", "b")
