"""Multiclass metrics from binned states against scikit-learn on the same rows.

Tolerances: metrics of the confusion matrix, top-k accuracy, log loss and
Brier score do not depend on binning and must match to 1e-9 (float summation
order). Binned AUCs must contain the exact (scikit-learn) value within their
guaranteed bound and lie within 2e-3 of it on these few-hundred-row samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from clfeval.core.bins import make_layout
from clfeval.core.multiclass import MulticlassState, evaluate_multiclass

LAYOUT = make_layout("logit", 960, -12.0, 12.0, tuple(k / 10 for k in range(1, 10)))


def sample(rng: np.random.Generator, rows: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """True classes with unequal prevalences and softmax probabilities that favour them."""
    prior = rng.dirichlet(np.full(K, 2.0))
    y = rng.choice(K, size=rows, p=prior)
    logits = rng.normal(0.0, 1.0, (rows, K))
    logits[np.arange(rows), y] += rng.uniform(0.5, 2.0)
    probs = np.exp(logits)
    return y, probs / probs.sum(axis=1, keepdims=True)


def by_name(result, class_label=None) -> dict:
    return {m.metric.metric: m.metric for m in result.metrics if m.class_label == class_label}


@pytest.mark.parametrize(("K", "weighted", "seed"), [(3, False, 1), (5, True, 2), (12, True, 3)])
def test_multiclass_metrics_match_sklearn(K: int, weighted: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, probs = sample(rng, 900, K)
    w = rng.uniform(0.2, 3.0, y.size) if weighted else None
    classes = tuple(f"c{k}" for k in range(K))
    state = MulticlassState.from_scores(LAYOUT, y, probs, w, one_vs_one=True)
    result = evaluate_multiclass(state, classes, LAYOUT, top_k=(1, 2))
    got = by_name(result)
    pred = probs.argmax(axis=1)
    labels = np.arange(K)

    np.testing.assert_allclose(
        result.confusion_w,
        skm.confusion_matrix(y, pred, labels=labels, sample_weight=w),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(result.confusion_n, skm.confusion_matrix(y, pred, labels=labels))
    exact = {
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=w),
        "mcc": skm.matthews_corrcoef(y, pred, sample_weight=w),
        "cohen_kappa": skm.cohen_kappa_score(y, pred, sample_weight=w),
        "top_2_accuracy": skm.top_k_accuracy_score(y, probs, k=2, labels=labels, sample_weight=w),
        "top_1_accuracy": skm.top_k_accuracy_score(y, probs, k=1, labels=labels, sample_weight=w),
        "log_loss": skm.log_loss(y, probs, labels=labels, sample_weight=w),
        "brier_score": skm.brier_score_loss(
            y, probs, labels=labels, sample_weight=w, scale_by_half=False
        ),
    }
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, average=average, sample_weight=w, zero_division=0
        )
        exact |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    for name, value in exact.items():
        assert got[name].value == pytest.approx(value, abs=1e-9), name

    p, r, f, support = skm.precision_recall_fscore_support(
        y, pred, labels=labels, sample_weight=w, zero_division=0
    )
    for c, label in enumerate(classes):
        mine = by_name(result, label)
        assert mine["recall"].value == pytest.approx(r[c], abs=1e-9)
        assert mine["support"].value == pytest.approx(support[c], abs=1e-9)
        if mine["precision"].value is not None:
            assert mine["precision"].value == pytest.approx(p[c], abs=1e-9)
            assert mine["f1"].value == pytest.approx(f[c], abs=1e-9)
        exact_auc = skm.roc_auc_score(y == c, probs[:, c], sample_weight=w)
        auc = mine["roc_auc"]
        assert auc.bound_lower - 1e-12 <= exact_auc <= auc.bound_upper + 1e-12
        assert abs(auc.value - exact_auc) < 2e-3
        assert auc.ci_lower < auc.value < auc.ci_upper

    aucs = {
        "roc_auc_ovr_macro": skm.roc_auc_score(
            y, probs, multi_class="ovr", average="macro", sample_weight=w
        ),
        "roc_auc_ovr_weighted": skm.roc_auc_score(
            y, probs, multi_class="ovr", average="weighted", sample_weight=w
        ),
    }
    if w is None:  # scikit-learn's one-vs-one does not take sample weights
        aucs["roc_auc_ovo_macro"] = skm.roc_auc_score(y, probs, multi_class="ovo", average="macro")
        aucs["roc_auc_ovo_weighted"] = skm.roc_auc_score(
            y, probs, multi_class="ovo", average="weighted"
        )
    for name, value in aucs.items():
        mine = got[name]
        assert mine.bound_lower - 1e-12 <= value <= mine.bound_upper + 1e-12, name
        assert abs(mine.value - value) < 2e-3, name


def test_states_add_like_rows() -> None:
    rng = np.random.default_rng(8)
    y, probs = sample(rng, 400, 4)
    w = rng.uniform(0.2, 3.0, y.size)
    whole = MulticlassState.from_scores(LAYOUT, y, probs, w, one_vs_one=True)
    a = MulticlassState.from_scores(LAYOUT, y[:150], probs[:150], w[:150], one_vs_one=True)
    b = MulticlassState.from_scores(LAYOUT, y[150:], probs[150:], w[150:], one_vs_one=True)
    summed = a + b
    names = [*MulticlassState.OVR_FIELDS, "confusion_n", "confusion_w", "rank_n", "rank_w"]
    for name in names:
        np.testing.assert_allclose(getattr(summed, name), getattr(whole, name), rtol=1e-12)
    for got, want in zip(summed.one_vs_one_aucs(), whole.one_vs_one_aucs(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_one_vs_rest_state_grows_with_k_not_k_squared() -> None:
    """Without the one-vs-one split nothing of size K² x bins exists: the
    one-vs-rest arrays are K x bins, and no one-vs-one AUC is reported (it needs
    the split); the other metrics are those of the state with the split."""
    rng = np.random.default_rng(10)
    K = 30
    y, probs = sample(rng, 600, K)
    classes = tuple(f"c{k}" for k in range(K))
    lean = MulticlassState.from_scores(LAYOUT, y, probs)
    full = MulticlassState.from_scores(LAYOUT, y, probs, one_vs_one=True)
    arrays = [v for v in vars(lean).values() if isinstance(v, np.ndarray)]
    assert max(a.size for a in arrays) == K * LAYOUT.n_bins
    assert lean.pairs is None and lean.one_vs_one_aucs() is None
    got = by_name(evaluate_multiclass(lean, classes, LAYOUT, top_k=(3,)))
    want = by_name(evaluate_multiclass(full, classes, LAYOUT, top_k=(3,)))
    assert "roc_auc_ovo_macro" not in got and "roc_auc_ovo_macro" in want
    assert set(want) - set(got) == {"roc_auc_ovo_macro", "roc_auc_ovo_weighted"}
    for name, metric in got.items():
        assert metric.value == want[name].value, name
    exact = skm.roc_auc_score(y, probs, multi_class="ovo", average="macro")
    ovo = want["roc_auc_ovo_macro"]
    assert ovo.bound_lower - 1e-12 <= exact <= ovo.bound_upper + 1e-12


def test_top_label_calibration_matches_sklearn_calibration_curve() -> None:
    rng = np.random.default_rng(9)
    y, probs = sample(rng, 2000, 5)
    state = MulticlassState.from_scores(LAYOUT, y, probs)
    result = evaluate_multiclass(state, tuple("abcde"), LAYOUT, calibration_bins=10)
    curve = next(c for label, c in result.curves if c.name == "calibration_top_label")
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    rate, mean_p = calibration_curve(right, confidence, n_bins=10)
    np.testing.assert_allclose(curve.y, rate, atol=1e-12)
    np.testing.assert_allclose(curve.x, mean_p, atol=1e-12)
    share = np.histogram(confidence, bins=np.linspace(0, 1, 11))[0]
    share = share[share > 0] / y.size
    ece = float(np.dot(share, np.abs(mean_p - rate)))
    assert by_name(result)["top_label_ece"].value == pytest.approx(ece, abs=1e-12)


def test_undefined_per_class_values_are_null_and_absent_classes_left_out() -> None:
    # class 2 never occurs and is never predicted; class 1 is never predicted
    y = np.array([0, 0, 1, 1, 0])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.7, 0.2, 0.1], [0.2, 0.1, 0.7]]
    )
    probs[4] = [0.9, 0.05, 0.05]
    result = evaluate_multiclass(
        MulticlassState.from_scores(LAYOUT, y, probs), ("a", "b", "c"), LAYOUT
    )
    assert by_name(result, "b")["precision"].value is None
    assert by_name(result, "c")["recall"].value is None
    pred = probs.argmax(axis=1)
    macro = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert by_name(result)["precision_macro"].value == pytest.approx(macro[0])
    assert by_name(result)["recall_macro"].value == pytest.approx(macro[1])
