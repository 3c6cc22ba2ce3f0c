"""Confidence intervals: exactness of binned DeLong, coverage by simulation, bootstrap.

All seeded. Coverage: over 1000 samples from a known distribution the 95%
intervals must cover the true value in 93-97% of trials.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from sklearn.metrics import roc_auc_score

from clfeval.core.binary import BinaryState, evaluate, roc_auc
from clfeval.core.bins import make_layout
from clfeval.core.intervals import delong_interval, delong_variance, wilson

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
    assert by_name["f1"].ci_lower is None  # no interval method for F1 yet: NULL, not a guess
