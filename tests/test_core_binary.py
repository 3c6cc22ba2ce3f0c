"""core.binary against scikit-learn on the same rows (no Spark).

Tolerances: where every score sits on a bin edge, all scores in a bin are equal
and the binned results must equal scikit-learn's to float precision
(rtol 1e-9, atol 1e-12). For continuous scores the exact AUC must lie inside the
reported bound (with a 1e-12 slack for summation order).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from clfeval.core.binary import BinaryState, evaluate, roc_auc
from clfeval.core.bins import make_layout

THRESHOLDS = (0.05, 0.3, 0.5)
LAYOUT = make_layout("logit", 200, -8.0, 8.0, THRESHOLDS)
TIGHT = {"rtol": 1e-9, "atol": 1e-12}


def edge_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Scores drawn from the layout's edges, including exactly 0 and exactly 1."""
    return rng.choice(LAYOUT.edges, size=n)


def labels_for(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    return (rng.random(scores.size) < 0.1 + 0.8 * scores).astype(int)


def metric_map(result) -> dict:
    return {(m.metric, m.threshold): m for m in result.metrics}


CASES = [(seed, weighted) for seed in (1, 2, 3) for weighted in (False, True)]


@pytest.mark.parametrize(("seed", "weighted"), CASES)
def test_edge_scores_match_sklearn_exactly(seed: int, weighted: bool) -> None:
    rng = np.random.default_rng(seed)
    p = edge_scores(rng, 3000)
    y = labels_for(rng, p)
    w = rng.gamma(2.0, 1.0, p.size) if weighted else None
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    result = evaluate(state, LAYOUT, THRESHOLDS, beta=2.0)
    got = metric_map(result)

    np.testing.assert_allclose(
        got[("roc_auc", None)].value, skm.roc_auc_score(y, p, sample_weight=w), **TIGHT
    )
    np.testing.assert_allclose(
        got[("average_precision", None)].value,
        skm.average_precision_score(y, p, sample_weight=w),
        **TIGHT,
    )
    prec, rec, _ = skm.precision_recall_curve(y, p, sample_weight=w)
    np.testing.assert_allclose(got[("pr_auc", None)].value, skm.auc(rec, prec), **TIGHT)
    np.testing.assert_allclose(
        got[("log_loss", None)].value, skm.log_loss(y, p, sample_weight=w), **TIGHT
    )
    np.testing.assert_allclose(
        got[("brier_score", None)].value, skm.brier_score_loss(y, p, sample_weight=w), **TIGHT
    )

    for t in THRESHOLDS:
        pred = (p >= t).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, pred, sample_weight=w, labels=[0, 1]).ravel()
        c = next(c for c in result.confusions if c.threshold == t)
        np.testing.assert_allclose([c.tp, c.fp, c.tn, c.fn], [tp, fp, tn, fn], **TIGHT)
        n_tn, n_fp, n_fn, n_tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert (c.n_tp, c.n_fp, c.n_tn, c.n_fn) == (n_tp, n_fp, n_tn, n_fn)
        P, R, F, _ = skm.precision_recall_fscore_support(
            y, pred, sample_weight=w, average="binary", zero_division=np.nan
        )
        _, _, F2, _ = skm.precision_recall_fscore_support(
            y, pred, beta=2.0, sample_weight=w, average="binary", zero_division=np.nan
        )
        expected = {
            "precision": P,
            "recall": R,
            "f1": F,
            "f_beta_2": F2,
            "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
            "mcc": skm.matthews_corrcoef(y, pred, sample_weight=w),
            "cohen_kappa": skm.cohen_kappa_score(y, pred, sample_weight=w),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=w),
            "specificity": tn / (tn + fp),
            "fpr": fp / (fp + tn),
            "fnr": fn / (fn + tp),
            "npv": tn / (tn + fn),
            "predicted_positive_rate": (tp + fp) / (tp + fp + tn + fn),
        }
        for name, value in expected.items():
            np.testing.assert_allclose(got[(name, t)].value, value, err_msg=name, **TIGHT)


@pytest.mark.parametrize(("seed", "weighted"), CASES)
def test_roc_and_pr_points_match_sklearn_curves(seed: int, weighted: bool) -> None:
    rng = np.random.default_rng(seed)
    p = edge_scores(rng, 2000)
    y = labels_for(rng, p)
    w = rng.uniform(0.1, 3.0, p.size) if weighted else None
    result = evaluate(BinaryState.from_scores(LAYOUT, y, p, w), LAYOUT, THRESHOLDS, 1.0)
    roc = next(c for c in result.curves if c.name == "roc")
    fpr, tpr, thr = skm.roc_curve(y, p, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(roc.x, fpr, **TIGHT)
    np.testing.assert_allclose(roc.y, tpr, **TIGHT)
    np.testing.assert_array_equal(roc.thresholds[1:], thr[1:])
    pr = next(c for c in result.curves if c.name == "pr")
    prec, rec, _ = skm.precision_recall_curve(y, p, sample_weight=w)
    np.testing.assert_allclose(pr.x, rec[::-1], **TIGHT)
    np.testing.assert_allclose(pr.y, prec[::-1], **TIGHT)


@pytest.mark.parametrize("seed", range(8))
def test_exact_auc_inside_binned_bound_for_continuous_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    y = (rng.random(n) < 0.05).astype(int)
    z = np.where(y == 1, rng.normal(-1.5, 1.3, n), rng.normal(-5.0, 1.3, n))
    p = 1 / (1 + np.exp(-z))
    p[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # extreme scores exactly 0 and 1, and a threshold
    w = rng.gamma(2.0, 1.0, n) if seed % 2 else None
    exact = skm.roc_auc_score(y, p, sample_weight=w)
    auc = roc_auc(BinaryState.from_scores(LAYOUT, y, p, w))
    assert auc is not None
    assert auc.lower - 1e-12 <= exact <= auc.upper + 1e-12
    assert auc.upper - auc.lower < 0.02  # the bound is informative, not [0, 1]


def test_undefined_metrics_are_none_with_counts() -> None:
    p = np.array([0.1, 0.2, 0.7])
    y = np.zeros(3, dtype=int)  # a slice with no positives
    result = evaluate(BinaryState.from_scores(LAYOUT, y, p), LAYOUT, (0.5,), 1.0)
    got = metric_map(result)
    assert got[("roc_auc", None)].value is None
    assert got[("average_precision", None)].value is None
    assert got[("recall", 0.5)].value is None
    assert got[("recall", 0.5)].denominator == 0
    assert got[("precision", 0.5)].value == 0.0  # 0 of 1 predicted positive is a real 0
    assert got[("mcc", 0.5)].value is None
    assert got[("balanced_accuracy", 0.5)].value is None
    np.testing.assert_allclose(got[("specificity", 0.5)].value, 2 / 3)


def test_empty_state_gives_nulls_not_errors() -> None:
    from clfeval.core.binary import BinaryState as S

    result = evaluate(S.empty(LAYOUT.n_bins), LAYOUT, (0.5,), 1.0)
    values = {m.metric: m.value for m in result.metrics}
    assert values["log_loss"] is None and values["accuracy"] is None
    assert result.curves == []


def test_states_add_like_concatenated_rows() -> None:
    rng = np.random.default_rng(11)
    p = rng.random(1000)
    y = labels_for(rng, p)
    w = rng.random(1000)
    whole = BinaryState.from_scores(LAYOUT, y, p, w)
    halves = BinaryState.from_scores(LAYOUT, y[:400], p[:400], w[:400]) + BinaryState.from_scores(
        LAYOUT, y[400:], p[400:], w[400:]
    )
    for name in BinaryState.FIELDS:
        np.testing.assert_allclose(getattr(halves, name), getattr(whole, name), rtol=1e-12)


@pytest.mark.parametrize(("seed", "weighted"), CASES)
def test_recommended_thresholds_match_sklearn_curves(seed: int, weighted: bool) -> None:
    from clfeval.core.binary import ThresholdPolicy

    rng = np.random.default_rng(seed)
    p = edge_scores(rng, 2000)
    y = labels_for(rng, p)
    w = rng.uniform(0.1, 3.0, p.size) if weighted else None
    policy = ThresholdPolicy(cost_fp=1.0, cost_fn=7.0, recall_floor=0.7, fpr_cap=0.1)
    result = evaluate(BinaryState.from_scores(LAYOUT, y, p, w), LAYOUT, (0.5,), 1.0, 0.95, policy)
    got = {m.metric.removeprefix("recommended_threshold_"): m for m in result.metrics}
    fpr, tpr, _ = skm.roc_curve(y, p, sample_weight=w, drop_intermediate=False)
    prec, rec, _ = skm.precision_recall_curve(y, p, sample_weight=w)
    P = np.sum(w[y == 1]) if weighted else np.sum(y == 1)
    N = np.sum(w[y == 0]) if weighted else np.sum(y == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * prec * rec / (prec + rec)
    np.testing.assert_allclose(got["max_f1"].value, np.nanmax(f1), **TIGHT)
    np.testing.assert_allclose(got["max_youden"].value, np.max(tpr - fpr), **TIGHT)
    cost = 1.0 * fpr * N + 7.0 * (1 - tpr) * P
    np.testing.assert_allclose(got["min_cost"].value, cost[1:].min(), **TIGHT)
    np.testing.assert_allclose(
        got["precision_at_recall_floor"].value, prec[rec >= 0.7].max(), **TIGHT
    )
    np.testing.assert_allclose(got["recall_at_fpr_cap"].value, tpr[fpr <= 0.1].max(), **TIGHT)
    # each recommendation is an exact threshold with its confusion counts
    for m in got.values():
        if m.threshold is not None and m.metric != "roc_auc":
            assert any(c.threshold == m.threshold for c in result.confusions)
    youden = got["max_youden"].threshold
    pred = p >= youden
    wt = np.ones_like(p) if w is None else w
    tpr_at = wt[pred & (y == 1)].sum() / P
    fpr_at = wt[pred & (y == 0)].sum() / N
    np.testing.assert_allclose(tpr_at - fpr_at, got["max_youden"].value, **TIGHT)


@pytest.mark.parametrize("seed", range(3))
def test_calibration_matches_sklearn_calibration_curve(seed: int) -> None:
    from sklearn.calibration import calibration_curve

    from clfeval.core.binary import calibration

    layout = make_layout("logit", 200, -8.0, 8.0, tuple(k / 10 for k in range(1, 10)))
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 3.0, 4000)  # continuous: no score sits exactly on an edge
    y = (rng.random(p.size) < np.clip(p * 1.3, 0, 1)).astype(int)  # miscalibrated on purpose
    curve, values = calibration(BinaryState.from_scores(layout, y, p), layout, 10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(curve.y, prob_true, **TIGHT)
    np.testing.assert_allclose(curve.x, prob_pred, **TIGHT)
    got = {m.metric: m.value for m in values}
    which = np.minimum((p * 10).astype(int), 9)
    share = np.bincount(which, minlength=10) / p.size
    keep = share > 0
    gap = np.abs(prob_pred - prob_true)
    np.testing.assert_allclose(got["ece"], np.dot(share[keep], gap), **TIGHT)
    np.testing.assert_allclose(got["mce"], gap.max(), **TIGHT)
    # Murphy: REL - RES + UNC approximates Brier (exact for scores constant within bins)
    brier = skm.brier_score_loss(y, p)
    approx = got["brier_reliability"] - got["brier_resolution"] + got["brier_uncertainty"]
    assert abs(approx - brier) < 0.01
    np.testing.assert_allclose(got["brier_uncertainty"], y.mean() * (1 - y.mean()), **TIGHT)


@pytest.mark.parametrize("scale", [1e-250, 1e-30, 1e30, 1e250])
def test_weighted_metrics_are_scale_free_at_extreme_weights(scale: float) -> None:
    """Multiplying every weight by a constant changes no metric: the AUC, its
    bounds, MCC and the rest equal the unit-weight values (relative 1e-9), also
    where products of weight sums would over- or underflow a double."""
    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.2
    p = np.clip(rng.beta(2, 5, 3000) + 0.3 * y, 0, 1)
    w = rng.uniform(0.5, 2.0, 3000)
    layout = make_layout("logit", 200, -8.0, 8.0, (0.5,))
    base = evaluate(BinaryState.from_scores(layout, y, p, w), layout, (0.5,), 1.0)
    scaled = evaluate(BinaryState.from_scores(layout, y, p, w * scale), layout, (0.5,), 1.0)
    want = {(m.metric, m.threshold): m for m in base.metrics}
    for m in scaled.metrics:
        ref = want[(m.metric, m.threshold)]
        # log loss and Brier are means (scale-free too, checked with them); the minimum
        # expected cost is in weight units.
        if m.metric == "recommended_threshold_min_cost" or ref.value is None:
            continue
        assert m.value == pytest.approx(ref.value, rel=1e-9, abs=1e-12), m.metric
        for bound in ("bound_lower", "bound_upper"):
            if getattr(ref, bound) is not None:
                assert getattr(m, bound) == pytest.approx(getattr(ref, bound), rel=1e-9), m.metric
