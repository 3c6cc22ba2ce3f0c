"""Confidence intervals: exactness of binned DeLong, coverage by simulation, bootstrap.

All seeded. Coverage: over 1000 samples from a known distribution the 95%
intervals must cover the true value in 93-97% of trials.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score

from clfeval.core.binary import BinaryState, evaluate, roc_auc
from clfeval.core.bins import make_layout
from clfeval.core.intervals import (
    delong_interval,
    delong_variance,
    f1_interval,
    mcc_interval,
    wilson,
)

LAYOUT = make_layout("logit", 400, -8.0, 8.0, (0.5,))


def brute_force_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """DeLong's AUC and variance from the O(P·N) pair matrix (ties count 1/2)."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    auc = psi.mean()
    return auc, v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def test_binned_delong_equals_direct_delong_on_binned_scores() -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):
        y = rng.random(700) < 0.3
        p = 1 / (
            1 + np.exp(-np.where(y, rng.normal(0.5, 1.5, y.size), rng.normal(-1, 1.5, y.size)))
        )
        binned = LAYOUT.edges[LAYOUT.bin_index(p)]
        state = BinaryState.from_scores(LAYOUT, y, p)
        auc, var = delong_variance(state.n_pos, state.n_neg)
        ref_auc, ref_var = brute_force_delong(binned[y], binned[~y])
        np.testing.assert_allclose(auc, ref_auc, rtol=1e-12)
        np.testing.assert_allclose(var, ref_var, rtol=1e-10)


def test_delong_coverage_of_true_auc() -> None:
    rng = np.random.default_rng(2026)
    true_auc = NormalDist().cdf(1 / np.sqrt(2))  # positives N(1,1), negatives N(0,1)
    covered, trials = 0, 1000
    for _ in range(trials):
        pos, neg = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 140)
        y = np.r_[np.ones(60, bool), np.zeros(140, bool)]
        p = 1 / (1 + np.exp(-np.r_[pos, neg]))
        state = BinaryState.from_scores(LAYOUT, y, p)
        low, high = delong_interval(roc_auc(state).value, state.n_pos, state.n_neg, 0.95)
        covered += low <= true_auc <= high
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_wilson_coverage_of_true_recall() -> None:
    rng = np.random.default_rng(7)
    true_recall, n, trials = 0.8, 40, 1000
    covered = 0
    for _ in range(trials):
        hits = rng.binomial(n, true_recall)
        low, high = wilson(hits, n, 0.95)
        covered += low <= true_recall <= high
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_wilson_matches_closed_form_and_edges() -> None:
    low, high = wilson(0, 10, 0.95)
    assert low < 1e-12 and 0.25 < high < 0.35  # the Wilson interval is not degenerate at 0
    # Wilson's bounds are the roots pi of |p - pi| = z * sqrt(pi (1 - pi) / n):
    # (1 + z²/n) pi² - (2p + z²/n) pi + p² = 0
    p, n, z = 0.81, 100, NormalDist().inv_cdf(0.975)
    roots = np.sort(np.roots([1 + z * z / n, -(2 * p + z * z / n), p * p]).real)
    np.testing.assert_allclose(wilson(81, 100, 0.95), roots, rtol=1e-12)
    assert wilson(0, 0, 0.95) is None


def test_auc_interval_agrees_with_sklearn_bootstrap() -> None:
    rng = np.random.default_rng(11)
    y = rng.random(600) < 0.25
    p = 1 / (1 + np.exp(-np.where(y, rng.normal(0.8, 1.2, y.size), rng.normal(-0.8, 1.2, y.size))))
    metrics = {
        m.metric: m
        for m in evaluate(BinaryState.from_scores(LAYOUT, y, p), LAYOUT, (0.5,), 1.0).metrics
    }
    auc = metrics["roc_auc"]
    boot = []
    for _ in range(1000):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].any() and not y[idx].all():
            boot.append(roc_auc_score(y[idx], p[idx]))
    low, high = np.percentile(boot, [2.5, 97.5])
    assert abs(auc.ci_lower - low) < 0.015 and abs(auc.ci_upper - high) < 0.015


def test_threshold_metrics_carry_wilson_intervals() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.4
    p = rng.random(500)
    result = evaluate(BinaryState.from_scores(LAYOUT, y, p), LAYOUT, (0.5,), 1.0)
    by_name = {m.metric: m for m in result.metrics if m.threshold == 0.5}
    c = next(c for c in result.confusions if c.threshold == 0.5)
    expected = wilson(c.n_tp, c.n_tp + c.n_fn, 0.95)
    np.testing.assert_allclose([by_name["recall"].ci_lower, by_name["recall"].ci_upper], expected)
    f1 = f1_interval(by_name["f1"].value, c.n_tp, c.n_fp, c.n_fn, 0.95)
    assert (by_name["f1"].ci_lower, by_name["f1"].ci_upper) == f1
    assert by_name["f1"].ci_lower < by_name["f1"].value < by_name["f1"].ci_upper
    assert by_name["mcc"].ci_lower < by_name["mcc"].value < by_name["mcc"].ci_upper


# Cell probabilities (TP, FP, FN, TN) of a classifier at a fixed threshold.
CELLS = np.array([0.2, 0.1, 0.1, 0.6])


def f1_of(x: np.ndarray) -> float:
    return 2 * x[0] / (2 * x[0] + x[1] + x[2])


def mcc_of(x: np.ndarray) -> float:
    tp, fp, fn, tn = x
    return (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def test_delta_method_variance_matches_numerical_gradient() -> None:
    """The closed-form gradients of the docstring, checked by central differences:
    on the transformed scale each half-width is z·sqrt(Σ x_i (∂f/∂x_i)²)·(dT/df)."""
    x = np.array([37.0, 11.0, 9.0, 143.0])
    z = NormalDist().inv_cdf(0.975)
    cases = (
        (f1_of, f1_interval(f1_of(x), *x[:3], 0.95), lambda f: np.log(f / (1 - f))),
        (mcc_of, mcc_interval(mcc_of(x), *x, 0.95), np.arctanh),
    )
    for metric, (low, high), transform in cases:
        grad = np.array([(metric(x + h) - metric(x - h)) / 2e-6 for h in np.eye(4) * 1e-6])
        value = metric(x)
        slope = (transform(value + 1e-6) - transform(value - 1e-6)) / 2e-6
        expected_half = z * np.sqrt(np.sum(x * grad**2)) * slope
        halves = [transform(high) - transform(value), transform(value) - transform(low)]
        np.testing.assert_allclose(halves, expected_half, rtol=1e-5)


def test_f1_and_mcc_interval_coverage() -> None:
    rng = np.random.default_rng(99)
    true_f1, true_mcc = f1_of(CELLS), mcc_of(CELLS)
    covered_f1 = covered_mcc = 0
    trials = 1000
    for _ in range(trials):
        tp, fp, fn, tn = rng.multinomial(300, CELLS).astype(float)
        low, high = f1_interval(f1_of(np.array([tp, fp, fn, tn])), tp, fp, fn, 0.95)
        covered_f1 += low <= true_f1 <= high
        low, high = mcc_interval(mcc_of(np.array([tp, fp, fn, tn])), tp, fp, fn, tn, 0.95)
        covered_mcc += low <= true_mcc <= high
    assert 0.93 <= covered_f1 / trials <= 0.97, covered_f1 / trials
    assert 0.93 <= covered_mcc / trials <= 0.97, covered_mcc / trials


def test_f1_and_mcc_intervals_agree_with_sklearn_bootstrap() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(800) < 0.3
    p = 1 / (1 + np.exp(-np.where(y, rng.normal(0.8, 1.2, y.size), rng.normal(-0.8, 1.2, y.size))))
    result = evaluate(BinaryState.from_scores(LAYOUT, y, p), LAYOUT, (0.5,), 1.0)
    by_name = {m.metric: m for m in result.metrics if m.threshold == 0.5}
    for name, score in (("f1", f1_score), ("mcc", matthews_corrcoef)):
        assert abs(by_name[name].value - score(y, p >= 0.5)) < 1e-12
        boot = []
        for _ in range(1000):
            idx = rng.integers(0, y.size, y.size)
            boot.append(score(y[idx], p[idx] >= 0.5))
        low, high = np.percentile(boot, [2.5, 97.5])
        assert abs(by_name[name].ci_lower - low) < 0.015, (name, by_name[name].ci_lower, low)
        assert abs(by_name[name].ci_upper - high) < 0.015, (name, by_name[name].ci_upper, high)


def test_degenerate_f1_and_mcc_have_no_interval() -> None:
    assert f1_interval(0.0, 0, 5, 5, 0.95) is None
    assert f1_interval(1.0, 9, 0, 0, 0.95) is None
    assert mcc_interval(1.0, 9, 0, 0, 9, 0.95) is None
    assert mcc_interval(0.0, 0, 0, 3, 9, 0.95) is None  # a zero margin: MCC undefined
