"""Confidence intervals from binned states (numpy and the standard library only).

* Wilson score interval for proportions (precision, recall, accuracy, ...):
  with p the observed proportion, n the number of rows in the denominator and
  z the normal quantile of the confidence level,
  ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
* DeLong's interval for ROC AUC, exact on binned scores: every positive in bin
  b has placement ``V10_b = (N_{<b} + N_b/2) / N`` and every negative
  ``V01_b = (P_{>b} + P_b/2) / P``; ``Var(AUC) = S10/P + S01/N`` with S10, S01
  the sample variances of the placements (denominators P-1, N-1). The
  interval is ``AUC ± z·sqrt(Var)``, clipped to [0, 1].

* Delta method for F1 and MCC at a threshold. Both are functions f of the
  confusion counts x = (TP, FP, FN, TN) that do not change when all counts are
  scaled (homogeneous of degree 0), so under multinomial sampling
  ``Var(f) ≈ Σ_i x_i (∂f/∂x_i)²`` (the covariance term vanishes by Euler's
  theorem). With ``D = 2TP + FP + FN``:
  ``∂F1/∂TP = 2(FP+FN)/D²``, ``∂F1/∂FP = ∂F1/∂FN = -2TP/D²``, ``∂F1/∂TN = 0``.
  With ``M = TP·TN − FP·FN`` and ``Q = (TP+FP)(TP+FN)(TN+FP)(TN+FN)``:
  ``∂MCC/∂x = (∂M/∂x)/sqrt(Q) − MCC/2 · ∂ln Q/∂x``.
  The interval is built on a scale where the normal approximation is better
  and mapped back, so it stays inside the metric's range: logit for F1
  (``se_logit = se / (F1(1−F1))``), Fisher's z = atanh for MCC
  (``se_z = se / (1 − MCC²)``). It is NULL where that scale is undefined
  (F1 ∈ {0, 1}, |MCC| = 1) or the variance is 0.

Weights: the point estimates are weighted; the intervals use unweighted row
counts as sample sizes (placements and proportions are computed from row
counts, which is exact without weights and an approximation with them).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def normal_quantile(confidence: float) -> float:
    """Two-sided z for a confidence level, e.g. 0.95 -> 1.95996."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: float, n: float, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval of ``successes / n``; None when n == 0."""
    if n <= 0:
        return None
    z = normal_quantile(confidence)
    p = min(max(successes / n, 0.0), 1.0)
    z2 = z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, center - half), min(1.0, center + half)


def delong_variance(n_pos: np.ndarray, n_neg: np.ndarray) -> tuple[float, float] | None:
    """(AUC, Var(AUC)) by DeLong from per-bin row counts; None without both classes
    or with a single row in a class (the sample variance needs two)."""
    P, N = float(n_pos.sum()), float(n_neg.sum())
    if P < 2 or N < 2:
        return None
    pos = n_pos.astype(np.float64)
    neg = n_neg.astype(np.float64)
    neg_below = np.cumsum(neg) - neg
    pos_above = pos[::-1].cumsum()[::-1] - pos
    v10 = (neg_below + neg / 2) / N  # placement of each positive in its bin
    v01 = (pos_above + pos / 2) / P  # placement of each negative in its bin
    auc = float(np.dot(pos, v10) / P)
    s10 = float(np.dot(pos, (v10 - auc) ** 2) / (P - 1))
    s01 = float(np.dot(neg, (v01 - auc) ** 2) / (N - 1))
    return auc, s10 / P + s01 / N


def delong_interval(
    auc: float, n_pos: np.ndarray, n_neg: np.ndarray, confidence: float
) -> tuple[float, float] | None:
    """``auc ± z·sqrt(Var)`` with DeLong's variance, clipped to [0, 1]."""
    result = delong_variance(n_pos, n_neg)
    if result is None:
        return None
    half = normal_quantile(confidence) * math.sqrt(result[1])
    return max(0.0, auc - half), min(1.0, auc + half)


def _transformed_interval(
    value: float, variance: float, confidence: float, forward, backward, slope: float
) -> tuple[float, float] | None:
    if variance <= 0 or slope <= 0:
        return None
    half = normal_quantile(confidence) * math.sqrt(variance) / slope
    center = forward(value)
    return backward(center - half), backward(center + half)


def f1_interval(
    value: float, tp: float, fp: float, fn: float, confidence: float
) -> tuple[float, float] | None:
    """Delta-method interval of F1 on the logit scale (see module docstring).

    ``value`` is the (possibly weighted) point estimate; tp, fp, fn are the row
    counts that set the variance.
    """
    d = 2 * tp + fp + fn
    if d <= 0 or not 0.0 < value < 1.0:
        return None
    g_tp = 2 * (fp + fn) / d**2
    g_other = -2 * tp / d**2
    variance = tp * g_tp**2 + (fp + fn) * g_other**2
    return _transformed_interval(
        value,
        variance,
        confidence,
        lambda f: math.log(f / (1 - f)),
        lambda x: 1 / (1 + math.exp(-x)),
        value * (1 - value),
    )


def mcc_interval(
    value: float, tp: float, fp: float, fn: float, tn: float, confidence: float
) -> tuple[float, float] | None:
    """Delta-method interval of MCC on Fisher's z scale (see module docstring)."""
    margins = (tp + fp, tp + fn, tn + fp, tn + fn)
    if min(margins) <= 0 or not -1.0 < value < 1.0:
        return None
    q = math.prod(margins)
    a_b, a_c, d_b, d_c = (1 / m for m in margins)
    dlnq = {"tp": a_b + a_c, "fp": a_b + d_b, "fn": a_c + d_c, "tn": d_b + d_c}
    dm = {"tp": tn, "fp": -fn, "fn": -fp, "tn": tp}
    mcc = (tp * tn - fp * fn) / math.sqrt(q)
    counts = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    variance = sum(x * (dm[k] / math.sqrt(q) - mcc / 2 * dlnq[k]) ** 2 for k, x in counts.items())
    return _transformed_interval(value, variance, confidence, math.atanh, math.tanh, 1 - value**2)
