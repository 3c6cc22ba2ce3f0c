"""Binary classification metrics from binned, mergeable states (numpy only).

Conventions (as scikit-learn's ``roc_curve``):

* a row is *predicted positive* iff ``score >= threshold``;
* every count is weighted by the sample weight ``w`` (``w = 1`` without a
  weight column); unweighted counts are carried beside them;
* a ratio whose denominator is 0 is undefined and returned as ``None`` (NULL in
  the tables), never as an exception or a fake 0. Numerator and denominator are
  returned with every ratio so that a NULL can be explained.

Within a bin all scores are treated as tied. For AUC this gives an exact
interval: the binned trapezoid AUC is the midpoint of

    lower = sum_b Wpos_b * Wneg_{<b}           / (P * N)
    upper = lower + sum_b Wpos_b * Wneg_b      / (P * N)

where ``Wneg_{<b}`` is the negative weight in bins below ``b``; the exact AUC of
the unbinned scores always lies in [lower, upper] (only pairs that share a bin
can be ordered either way). When all scores in a bin are equal (e.g. scores on
bin edges), the binned results equal scikit-learn's to float precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from clfeval.core.bins import BinLayout
from clfeval.core.expressions import GROUP_METRICS, CustomMetric, count_values, delta_interval
from clfeval.core.intervals import delong_interval, f1_interval, mcc_interval, wilson

# scikit-learn's log_loss clips probabilities to [eps, 1 - eps] with float64 eps.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


@dataclass
class BinaryState:
    """Per-bin sums for one group (model, version, slice, window).

    Every array has one entry per bin of the layout:
        n_pos, n_neg: row counts of positives / negatives (int64)
        w_pos, w_neg: sums of weights of positives / negatives
        loss_sum:     sum of ``w * -log(clip(p))`` (positives) and
                      ``w * -log(1 - clip(p))`` (negatives), ``clip`` to [eps, 1-eps]
        sq_err_sum:   sum of ``w * (y - p)**2`` (Brier numerator)
        score_sum:    sum of ``w * p`` (calibration)

    States add: the state of a union of rows is the sum of their states.
    """

    n_pos: np.ndarray
    n_neg: np.ndarray
    w_pos: np.ndarray
    w_neg: np.ndarray
    loss_sum: np.ndarray
    sq_err_sum: np.ndarray
    score_sum: np.ndarray

    FIELDS = ("n_pos", "n_neg", "w_pos", "w_neg", "loss_sum", "sq_err_sum", "score_sum")

    @classmethod
    def empty(cls, n_bins: int) -> BinaryState:
        ints = {name: np.zeros(n_bins, dtype=np.int64) for name in ("n_pos", "n_neg")}
        floats = {name: np.zeros(n_bins) for name in cls.FIELDS[2:]}
        return cls(**ints, **floats)

    @classmethod
    def from_scores(
        cls,
        layout: BinLayout,
        y_true: np.ndarray,
        scores: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> BinaryState:
        """Reference accumulation from raw rows (``y_true`` in {0, 1}, scores in [0, 1])."""
        y = np.asarray(y_true).astype(bool)
        p = np.asarray(scores, dtype=np.float64)
        w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
        bins = layout.bin_index(p)
        n = layout.n_bins
        clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        loss = np.where(y, -np.log(clipped), -np.log1p(-clipped))
        return cls(
            n_pos=np.bincount(bins[y], minlength=n).astype(np.int64),
            n_neg=np.bincount(bins[~y], minlength=n).astype(np.int64),
            w_pos=np.bincount(bins[y], weights=w[y], minlength=n),
            w_neg=np.bincount(bins[~y], weights=w[~y], minlength=n),
            loss_sum=np.bincount(bins, weights=w * loss, minlength=n),
            sq_err_sum=np.bincount(bins, weights=w * (y - p) ** 2, minlength=n),
            score_sum=np.bincount(bins, weights=w * p, minlength=n),
        )

    def __add__(self, other: BinaryState) -> BinaryState:
        return BinaryState(*(getattr(self, f) + getattr(other, f) for f in self.FIELDS))

    @property
    def positive_weight(self) -> float:
        return float(self.w_pos.sum())

    @property
    def negative_weight(self) -> float:
        return float(self.w_neg.sum())

    @property
    def total_weight(self) -> float:
        return self.positive_weight + self.negative_weight

    @property
    def n_rows(self) -> int:
        return int(self.n_pos.sum() + self.n_neg.sum())


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is 0."""
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True)
class Confusion:
    """Confusion counts at one threshold: weighted (tp..fn) and unweighted (n_tp..n_fn)."""

    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float
    n_tp: int
    n_fp: int
    n_tn: int
    n_fn: int


@dataclass(frozen=True)
class MetricValue:
    """One metric of one group. ``threshold`` is None for threshold-free metrics."""

    metric: str
    value: float | None
    threshold: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    bound_lower: float | None = None
    bound_upper: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None


def _tail_sums(x: np.ndarray) -> np.ndarray:
    """``out[b] = sum(x[b:])``: what is predicted positive at the lower edge of bin b."""
    return np.cumsum(x[::-1])[::-1]


def confusion_at(state: BinaryState, layout: BinLayout, thresholds: tuple[float, ...]) -> list:
    """Confusion counts at each threshold (each must be an edge of ``layout``)."""
    tp_w, fp_w = _tail_sums(state.w_pos), _tail_sums(state.w_neg)
    tp_n, fp_n = _tail_sums(state.n_pos), _tail_sums(state.n_neg)
    P, N = state.positive_weight, state.negative_weight
    nP, nN = int(state.n_pos.sum()), int(state.n_neg.sum())
    out = []
    for t in thresholds:
        j = layout.edge_index(t)
        tp, fp = float(tp_w[j]), float(fp_w[j])
        ntp, nfp = int(tp_n[j]), int(fp_n[j])
        # Differences of float sums can fall a rounding error below zero.
        tn, fn = max(N - fp, 0.0), max(P - tp, 0.0)
        out.append(Confusion(t, tp, fp, tn, fn, ntp, nfp, nN - nfp, nP - ntp))
    return out


def threshold_metrics(c: Confusion, beta: float) -> list[MetricValue]:
    """Metrics at one operating threshold from its (weighted) confusion counts.

    accuracy = (TP+TN)/T, precision = TP/(TP+FP), recall = TP/(TP+FN),
    specificity = TN/(TN+FP), fpr = FP/(FP+TN), fnr = FN/(FN+TP), npv = TN/(TN+FN),
    f1 = 2TP/(2TP+FP+FN), f_beta = (1+b²)TP/((1+b²)TP+b²FN+FP),
    mcc = (TP·TN − FP·FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)),
    balanced_accuracy = (recall+specificity)/2,
    cohen_kappa = (p_o − p_e)/(1 − p_e) with p_o = accuracy and
    p_e = ((TP+FP)(TP+FN) + (FN+TN)(FP+TN))/T²,
    predicted_positive_rate = (TP+FP)/T, informedness = recall + specificity − 1
    (Youden's J), markedness = precision + npv − 1, lr_plus = recall/fpr,
    lr_minus = fnr/specificity, diagnostic_odds_ratio = (TP·TN)/(FP·FN).
    """
    tp, fp, tn, fn = c.tp, c.fp, c.tn, c.fn
    total = tp + fp + tn + fn
    b2 = beta * beta

    def m(name: str, num: float, den: float) -> MetricValue:
        return MetricValue(name, ratio(num, den), c.threshold, num, den)

    recall = ratio(tp, tp + fn)
    specificity = ratio(tn, tn + fp)
    # MCC on the shares of the total weight: the same value (it is scale-free), and
    # its product of four sums neither overflows nor underflows for extreme weights.
    if total > 0:
        s_tp, s_fp, s_tn, s_fn = tp / total, fp / total, tn / total, fn / total
    else:
        s_tp = s_fp = s_tn = s_fn = 0.0
    mcc_num = s_tp * s_tn - s_fp * s_fn
    mcc_den = math.sqrt(max((s_tp + s_fp) * (s_tp + s_fn) * (s_tn + s_fp) * (s_tn + s_fn), 0.0))
    if total > 0:
        p_o = (tp + tn) / total
        p_e = (s_tp + s_fp) * (s_tp + s_fn) + (s_fn + s_tn) * (s_fp + s_tn)
        kappa = m("cohen_kappa", p_o - p_e, 1.0 - p_e)
    else:
        kappa = MetricValue("cohen_kappa", None, c.threshold)
    balanced = None if recall is None or specificity is None else (recall + specificity) / 2
    informed = None if recall is None or specificity is None else recall + specificity - 1
    precision, npv = ratio(tp, tp + fp), ratio(tn, tn + fn)
    marked = None if precision is None or npv is None else precision + npv - 1
    fpr, fnr = ratio(fp, fp + tn), ratio(fn, fn + tp)
    return [
        m("accuracy", tp + tn, total),
        m("precision", tp, tp + fp),
        m("recall", tp, tp + fn),
        m("specificity", tn, tn + fp),
        m("fpr", fp, fp + tn),
        m("fnr", fn, fn + tp),
        m("npv", tn, tn + fn),
        m("f1", 2 * tp, 2 * tp + fp + fn),
        m(f"f_beta_{beta:g}", (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp),
        m("mcc", mcc_num, mcc_den),
        MetricValue("balanced_accuracy", balanced, c.threshold),
        kappa,
        m("predicted_positive_rate", tp + fp, total),
        MetricValue("informedness", informed, c.threshold),
        MetricValue("markedness", marked, c.threshold),
        MetricValue("lr_plus", None, c.threshold)
        if recall is None or fpr is None
        else m("lr_plus", recall, fpr),
        MetricValue("lr_minus", None, c.threshold)
        if fnr is None or specificity is None
        else m("lr_minus", fnr, specificity),
        m("diagnostic_odds_ratio", s_tp * s_tn, s_fp * s_fn),
    ]


def _row_count_denominators(c: Confusion) -> dict[str, int]:
    """Unweighted row count behind each proportion's denominator (Wilson's n)."""
    total = c.n_tp + c.n_fp + c.n_tn + c.n_fn
    return {
        "accuracy": total,
        "precision": c.n_tp + c.n_fp,
        "recall": c.n_tp + c.n_fn,
        "specificity": c.n_tn + c.n_fp,
        "fpr": c.n_fp + c.n_tn,
        "fnr": c.n_fn + c.n_tp,
        "npv": c.n_tn + c.n_fn,
        "predicted_positive_rate": total,
    }


def with_intervals(c: Confusion, metrics: list[MetricValue], confidence: float) -> list:
    """Wilson intervals for the proportions, delta-method intervals for F1 and MCC."""
    out = []
    for m in with_wilson(metrics, _row_count_denominators(c), confidence):
        interval = None
        if m.value is not None and m.metric == "f1":
            interval = f1_interval(m.value, c.n_tp, c.n_fp, c.n_fn, confidence)
        elif m.value is not None and m.metric == "mcc":
            interval = mcc_interval(m.value, c.n_tp, c.n_fp, c.n_fn, c.n_tn, confidence)
        if interval is not None:
            m = replace(m, ci_lower=interval[0], ci_upper=interval[1])
        out.append(m)
    return out


def with_wilson(metrics: list[MetricValue], counts: dict[str, int], confidence: float) -> list:
    """Attach Wilson intervals to the proportions named in ``counts``."""
    out = []
    for m in metrics:
        n = counts.get(m.metric)
        interval = None if n is None or m.value is None else wilson(m.value * n, n, confidence)
        if interval is not None:
            m = replace(m, ci_lower=interval[0], ci_upper=interval[1])
        out.append(m)
    return out


@dataclass(frozen=True)
class AucInterval:
    value: float
    lower: float
    upper: float


def roc_auc(state: BinaryState) -> AucInterval | None:
    """Binned ROC AUC (trapezoid, ties within a bin) with its guaranteed interval.

    Computed on each class's shares of its own weight (``w_pos / P``, ``w_neg /
    N``), so that the value is scale-free and P·N never over- or underflows."""
    P, N = state.positive_weight, state.negative_weight
    if not (0 < P < math.inf and 0 < N < math.inf):
        return None
    pos, neg = state.w_pos / P, state.w_neg / N
    neg_below = np.cumsum(neg) - neg
    lower = float(np.dot(pos, neg_below))
    tied = float(np.dot(pos, neg))
    # clip: summation order can put a perfect separation at 1 + 1e-16
    lower, upper = min(lower, 1.0), min(lower + tied, 1.0)
    return AucInterval(min((lower + upper) / 2, 1.0), lower, upper)


def _occupied_descending(state: BinaryState) -> np.ndarray:
    """Bins with positive weight, highest score first: the curves' distinct thresholds."""
    return np.flatnonzero((state.w_pos + state.w_neg) > 0)[::-1]


@dataclass(frozen=True)
class Curve:
    """Points of a curve, in the order they are drawn (threshold descending)."""

    name: str
    thresholds: np.ndarray
    x: np.ndarray
    y: np.ndarray


def roc_curve(state: BinaryState, layout: BinLayout) -> Curve | None:
    """ROC points (x = FPR, y = TPR) at each occupied bin's lower edge, from (0, 0)."""
    P, N = state.positive_weight, state.negative_weight
    if P <= 0 or N <= 0:
        return None
    bins = _occupied_descending(state)
    tps = np.cumsum(state.w_pos[bins])
    fps = np.cumsum(state.w_neg[bins])
    return Curve(
        "roc",
        np.concatenate([[np.inf], layout.lower[bins]]),
        np.concatenate([[0.0], fps / N]),
        np.concatenate([[0.0], tps / P]),
    )


def pr_curve(state: BinaryState, layout: BinLayout) -> Curve | None:
    """PR points (x = recall, y = precision) at each occupied bin, after (0, 1)."""
    P = state.positive_weight
    if P <= 0:
        return None
    bins = _occupied_descending(state)
    tps = np.cumsum(state.w_pos[bins])
    fps = np.cumsum(state.w_neg[bins])
    return Curve(
        "pr",
        np.concatenate([[np.inf], layout.lower[bins]]),
        np.concatenate([[0.0], tps / P]),
        np.concatenate([[1.0], tps / (tps + fps)]),
    )


EXTRA_CURVES = ("gains", "lift", "expected_cost")


def gains_curves(
    state: BinaryState, layout: BinLayout, policy: ThresholdPolicy, names: tuple[str, ...]
) -> list[Curve]:
    """The curves ``names`` asks for (``metrics.extra_curves``; each as many
    points as ROC, so none by default), at each occupied bin's lower edge
    (threshold descending), with the share of the total weight flagged
    q = (TP + FP)/T: ``gains`` (x = q, y = recall,
    the cumulative-gains curve), ``lift`` (x = q, y = precision/prevalence) and
    ``expected_cost`` (x = threshold, y = (cost_fp·FP + cost_fn·FN)/T with the
    configured costs)."""
    P, N = state.positive_weight, state.negative_weight
    T = P + N
    if not names or not (0 < P < math.inf and 0 < N < math.inf):
        return []
    bins = _occupied_descending(state)
    tp, fp = np.cumsum(state.w_pos[bins]) / T, np.cumsum(state.w_neg[bins]) / T
    flagged, share = tp + fp, P / T
    fn = np.maximum(share - tp, 0.0)
    thresholds = layout.lower[bins]
    curves = {
        "gains": lambda: Curve("gains", thresholds, flagged, tp / share),
        "lift": lambda: Curve("lift", thresholds, flagged, tp / flagged / share),
        "expected_cost": lambda: Curve(
            "expected_cost", thresholds, thresholds, policy.cost_fp * fp + policy.cost_fn * fn
        ),
    }
    return [curves[name]() for name in names]


def average_precision(pr: Curve) -> float:
    """AP = sum_k (R_k - R_{k-1}) * P_k over thresholds descending (scikit-learn's)."""
    return float(np.dot(np.diff(pr.x), pr.y[1:]))


def average_precision_metric(state: BinaryState, layout: BinLayout) -> MetricValue:
    """Binned average precision with its guaranteed bounds.

    The binned value treats each bin as one group of tied scores. The rows of
    bin b may be ordered any way: with TP₀, FP₀ the weights above the bin and
    p_b, n_b its own, the precision at a positive that has c of the bin's
    positive weight at or above it lies between g(c) = (TP₀ + c)/(TP₀ + FP₀ +
    n_b + c) (every negative of the bin first) and f(c) = (TP₀ + c)/(TP₀ + FP₀
    + c) (none), for any ordering or grouping of ties. Both increase with c, so
    the bin adds to P·AP at least ∫₀^{p_b} g(c) dc = p_b + (a − b)·ln((b + p_b)/b)
    (a = TP₀, b = TP₀ + FP₀ + n_b; a right Riemann sum of an increasing
    function exceeds its integral) and at most p_b·f(p_b)."""
    pr = pr_curve(state, layout)
    if pr is None:
        return MetricValue("average_precision", None)
    value = average_precision(pr)
    P = state.positive_weight
    # On shares of P (highest bin first): scale-free, and no product of sums that
    # over- or underflows for extreme weights.
    pos, neg = state.w_pos[::-1] / P, state.w_neg[::-1] / P
    tp0 = np.cumsum(pos) - pos
    fp0 = np.cumsum(neg) - neg
    a, b = tp0, tp0 + fp0 + neg
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(b > 0, np.log(np.where(b > 0, (b + pos) / b, 1.0)), 0.0)
        lower_parts = np.where(pos > 0, pos + (a - b) * log_term, 0.0)
        top = tp0 + fp0 + pos
        upper_parts = np.where(pos > 0, pos * (tp0 + pos) / np.where(top > 0, top, 1.0), 0.0)
    lower = float(np.clip(lower_parts.sum(), 0.0, 1.0))
    upper = float(np.clip(upper_parts.sum(), 0.0, 1.0))
    return MetricValue(
        "average_precision",
        value,
        bound_lower=min(lower, value),
        bound_upper=max(upper, value),
    )


def partial_roc_auc(state: BinaryState, max_fpr: float) -> list[MetricValue]:
    """ROC AUC up to FPR = ``max_fpr`` (raw area, and McClish's standardization
    ½·(1 + (A − m)/(M − m)) with m = max_fpr²/2, M = max_fpr, as scikit-learn's
    ``roc_auc_score(max_fpr=...)``), each with guaranteed bounds.

    Inside bin b the exact ROC path runs from (F₀, T₀) to (F₀ + n_b/N, T₀ +
    p_b/P) within that rectangle: the area up to ``max_fpr`` lies between the
    path that goes right first (negatives first) and the one that goes up first;
    the value is the binned (diagonal) path's area."""
    suffix = f"{max_fpr:g}"
    names = (f"partial_roc_auc_{suffix}", f"partial_roc_auc_mcclish_{suffix}")
    P, N = state.positive_weight, state.negative_weight
    if not (0 < P < math.inf and 0 < N < math.inf):
        return [MetricValue(n, None) for n in names]
    pos, neg = state.w_pos[::-1] / P, state.w_neg[::-1] / N
    x0, y0 = np.cumsum(neg) - neg, np.cumsum(pos) - pos
    x1, y1 = x0 + neg, y0 + pos
    width = np.clip(np.minimum(x1, max_fpr) - x0, 0.0, None)  # part of the bin left of the cut
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(neg > 0, width / np.where(neg > 0, neg, 1.0), 0.0)
    # diagonal: height grows linearly across the bin; up to the cut, its mean height
    diagonal = width * (y0 + pos * share / 2)
    value = float(diagonal.sum())
    lower, upper = float((width * y0).sum()), float((width * y1).sum())
    low, high = max_fpr * max_fpr / 2, max_fpr

    def mcclish(area: float) -> float:
        return 0.5 * (1 + (area - low) / (high - low))

    return [
        MetricValue(names[0], value, bound_lower=lower, bound_upper=upper),
        MetricValue(
            names[1], mcclish(value), bound_lower=mcclish(lower), bound_upper=mcclish(upper)
        ),
    ]


def skill_scores(state: BinaryState, log_loss: float | None, brier: float | None) -> list:
    """Skill against always predicting the prevalence π: brier_skill_score =
    1 − Brier/(π(1 − π)), log_loss_skill_score = 1 − log loss/H(π) with
    H(π) = −π·ln π − (1 − π)·ln(1 − π) (NULL when π is 0 or 1)."""
    total = state.total_weight
    base = state.positive_weight / total if total > 0 else None
    if base is None or not 0 < base < 1:
        return [MetricValue("brier_skill_score", None), MetricValue("log_loss_skill_score", None)]
    entropy = -base * math.log(base) - (1 - base) * math.log1p(-base)
    return [
        MetricValue(
            "brier_skill_score", None if brier is None else 1 - brier / (base * (1 - base))
        ),
        MetricValue("log_loss_skill_score", None if log_loss is None else 1 - log_loss / entropy),
    ]


def pr_auc(pr: Curve) -> float:
    """Trapezoid area under the PR curve, as ``sklearn.metrics.auc(recall, precision)``."""
    return float(np.dot(np.diff(pr.x), (pr.y[1:] + pr.y[:-1]) / 2))


def threshold_free_metrics(
    state: BinaryState,
    layout: BinLayout,
    confidence: float = 0.95,
    partial_fprs: tuple[float, ...] = (),
) -> list[MetricValue]:
    """ROC AUC (+ bounds, DeLong CI), Gini, KS, average precision (+ bounds),
    PR-AUC, partial ROC AUC at each of ``partial_fprs`` (+ bounds), log loss,
    Brier, prevalence, skill scores.

    log_loss = sum(w * -log p_true) / sum(w), brier_score = sum(w * (y - p)^2) / sum(w),
    prevalence = P / (P + N).
    """
    total = state.total_weight
    auc = roc_auc(state)
    pr = pr_curve(state, layout)
    if auc is None:
        auc_metric = MetricValue("roc_auc", None)
    else:
        ci = delong_interval(auc.value, state.n_pos, state.n_neg, confidence)
        auc_metric = MetricValue(
            "roc_auc",
            auc.value,
            bound_lower=auc.lower,
            bound_upper=auc.upper,
            ci_lower=None if ci is None else ci[0],
            ci_upper=None if ci is None else ci[1],
        )
    out = [
        auc_metric,
        _gini(auc_metric),
        ks_statistic(state),
        average_precision_metric(state, layout),
        MetricValue("pr_auc", None if pr is None else pr_auc(pr)),
    ]
    for max_fpr in partial_fprs:
        out += partial_roc_auc(state, max_fpr)
    loss, sq = float(state.loss_sum.sum()), float(state.sq_err_sum.sum())
    out += [
        MetricValue("log_loss", ratio(loss, total), None, loss, total),
        MetricValue("brier_score", ratio(sq, total), None, sq, total),
        MetricValue(
            "prevalence", ratio(state.positive_weight, total), None, state.positive_weight, total
        ),
        *skill_scores(state, ratio(loss, total), ratio(sq, total)),
    ]
    return with_wilson(out, {"prevalence": state.n_rows}, confidence)


def _gini(auc: MetricValue) -> MetricValue:
    """gini = 2·AUC − 1, with AUC's bounds and interval mapped the same way."""

    def g(x: float | None) -> float | None:
        return None if x is None else 2 * x - 1

    return MetricValue(
        "gini",
        g(auc.value),
        bound_lower=g(auc.bound_lower),
        bound_upper=g(auc.bound_upper),
        ci_lower=g(auc.ci_lower),
        ci_upper=g(auc.ci_upper),
    )


def ks_statistic(state: BinaryState) -> MetricValue:
    """Kolmogorov–Smirnov statistic max_t |TPR(t) − FPR(t)| (the largest gap
    between the classes' score distributions), with its guaranteed bounds.

    The value is the maximum over the bin edges, thresholds the exact scores
    reach too, so it is the lower bound. Inside bin b, whose rows may be ordered
    any way, the gap d moves from d_b (threshold at the bin's upper edge) by at
    most +Wpos_b/P (its positives first) and −Wneg_b/N (its negatives first):
    the upper bound is max_b max(|d_b|, d_b + Wpos_b/P, Wneg_b/N − d_b)."""
    P, N = state.positive_weight, state.negative_weight
    if not (0 < P < math.inf and 0 < N < math.inf):
        return MetricValue("ks_statistic", None)
    pos, neg = state.w_pos[::-1] / P, state.w_neg[::-1] / N  # highest bin first
    after = np.cumsum(pos) - np.cumsum(neg)  # gap at each bin's lower edge
    before = np.concatenate([[0.0], after[:-1]])  # gap at its upper edge
    value = float(np.max(np.abs(np.concatenate([[0.0], after]))))
    upper = float(np.max(np.maximum.reduce([np.abs(before), before + pos, neg - before])))
    value, upper = min(value, 1.0), min(max(upper, value), 1.0)
    return MetricValue("ks_statistic", value, bound_lower=value, bound_upper=upper)


def custom_metrics(
    custom: tuple[CustomMetric, ...],
    confusions: list[Confusion],
    group: dict[str, float],
    n_rows: int,
    confidence: float,
) -> list[MetricValue]:
    """Each custom metric at each threshold of ``confusions`` (``core.expressions``):
    value, numerator and denominator when the expression is a division, and a
    delta-method interval where it exists. ``group``: the threshold-free values."""
    out = []
    for c in confusions:
        cells = {"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn}
        counts = {"n_tp": c.n_tp, "n_fp": c.n_fp, "n_tn": c.n_tn, "n_fn": c.n_fn}
        arrays = {k: np.asarray([float(v)]) for k, v in {**cells, **counts}.items()}
        values = {
            **count_values(
                arrays["tp"],
                arrays["fp"],
                arrays["tn"],
                arrays["fn"],
                {k: arrays[k] for k in counts},
            ),
            **group,
        }
        for metric in custom:
            value = _scalar(metric.expression.evaluate(values))
            parts = metric.expression.ratio_parts
            num = den = None
            if parts is not None:
                num, den = (_scalar(e.evaluate(values)) for e in parts)
            interval = None
            if value is not None:
                interval = delta_interval(metric.expression, cells, n_rows, confidence)
            out.append(
                MetricValue(
                    metric.name,
                    value,
                    c.threshold,
                    num,
                    den,
                    ci_lower=None if interval is None else interval[0],
                    ci_upper=None if interval is None else interval[1],
                )
            )
    return out


def _scalar(values: np.ndarray) -> float | None:
    v = float(values[0])
    return None if math.isnan(v) else v


def custom_curves(
    custom: tuple[CustomMetric, ...], state: BinaryState, layout: BinLayout, group: dict[str, float]
) -> tuple[list[Curve], list[MetricValue]]:
    """Each custom metric over every occupied bin's lower edge (the distinct
    thresholds, highest first) as a curve (x = threshold, y = value), and for
    those with ``optimize``, ``recommended_threshold_<name>``: the threshold with
    the largest (smallest) defined value, ties to the higher threshold."""
    bins = _occupied_descending(state)
    if bins.size == 0 or not custom:
        return [], []
    P, N = state.positive_weight, state.negative_weight
    tp, fp = np.cumsum(state.w_pos[bins]), np.cumsum(state.w_neg[bins])
    n_tp, n_fp = np.cumsum(state.n_pos[bins]), np.cumsum(state.n_neg[bins])
    nP, nN = float(state.n_pos.sum()), float(state.n_neg.sum())
    counts = {
        "n_tp": n_tp.astype(float),
        "n_fp": n_fp.astype(float),
        "n_tn": nN - n_fp,
        "n_fn": nP - n_tp,
    }
    fn, tn = np.maximum(P - tp, 0.0), np.maximum(N - fp, 0.0)
    values = {**count_values(tp, fp, tn, fn, counts), **group}
    thresholds = layout.lower[bins]
    curves, recommended = [], []
    for metric in custom:
        y = metric.expression.evaluate(values) * np.ones(bins.size)
        curves.append(Curve(metric.name, thresholds, thresholds, y))
        if metric.optimize is None:
            continue
        name = f"recommended_threshold_{metric.name}"
        if np.isnan(y).all():
            recommended.append(MetricValue(name, None))
            continue
        k = int(np.nanargmax(y) if metric.optimize == "max" else np.nanargmin(y))
        recommended.append(MetricValue(name, float(y[k]), float(thresholds[k])))
    return curves, recommended


def calibration(
    state: BinaryState, layout: BinLayout, n_bins: int
) -> tuple[Curve | None, list[MetricValue]]:
    """Reliability diagram on ``n_bins`` uniform score bins, ECE, MCE, Brier decomposition.

    The uniform edges k/n_bins are edges of the layout, so each calibration bin
    is an exact union of layout bins. Per non-empty calibration bin k with
    weight W_k: mean predicted p̄_k = Σw·p / W_k, observed rate ȳ_k = W_pos,k / W_k.
    ece = Σ_k W_k/W·|p̄_k − ȳ_k|, mce = max_k |p̄_k − ȳ_k|,
    brier_reliability = Σ_k W_k/W·(p̄_k − ȳ_k)², brier_resolution = Σ_k W_k/W·(ȳ_k − ȳ)²,
    brier_uncertainty = ȳ(1 − ȳ) (Murphy's decomposition; REL − RES + UNC equals the
    Brier score when scores are constant within each calibration bin).
    """
    names = ("ece", "mce", "brier_reliability", "brier_resolution", "brier_uncertainty")
    total = state.total_weight
    if total <= 0:
        return None, [MetricValue(n, None) for n in names]
    edges = np.arange(n_bins + 1) / n_bins  # the same floats as the layout edges k / n
    # calibration bin of each layout bin; the bin of scores == 1 joins the last one
    which = np.minimum(np.searchsorted(edges, layout.lower, side="right") - 1, n_bins - 1)
    weight = np.bincount(which, weights=state.w_pos + state.w_neg, minlength=n_bins)
    pos = np.bincount(which, weights=state.w_pos, minlength=n_bins)
    score = np.bincount(which, weights=state.score_sum, minlength=n_bins)
    keep = weight > 0
    mean_p = score[keep] / weight[keep]
    rate = pos[keep] / weight[keep]
    share = weight[keep] / total
    base = state.positive_weight / total
    gap = np.abs(mean_p - rate)
    values = (
        float(np.dot(share, gap)),
        float(gap.max()),
        float(np.dot(share, gap**2)),
        float(np.dot(share, (rate - base) ** 2)),
        base * (1 - base),
    )
    curve = Curve("calibration", edges[:-1][keep], mean_p, rate)
    return curve, [MetricValue(n, v) for n, v in zip(names, values, strict=True)]


@dataclass(frozen=True)
class ThresholdPolicy:
    """Inputs of the recommended thresholds: error costs and operating constraints."""

    cost_fp: float = 1.0
    cost_fn: float = 1.0
    recall_floor: float = 0.8
    fpr_cap: float = 0.05


def recommended_thresholds(state: BinaryState, layout: BinLayout, policy: ThresholdPolicy) -> list:
    """Best thresholds among the lower edges of occupied bins (the distinct thresholds).

    max_f1:  argmax 2TP / (2TP + FP + FN);  max_youden: argmax TPR - FPR;
    min_cost: argmin cost_fp·FP + cost_fn·FN (weighted counts, so the slice's own
    prevalence is used); precision_at_recall_floor: the highest precision with
    recall >= floor; recall_at_fpr_cap: the highest recall with FPR <= cap.
    ``value`` is the objective at the chosen threshold; ties go to the higher
    threshold. A rule with no feasible threshold gives value None.
    """
    P, N = state.positive_weight, state.negative_weight
    bins = _occupied_descending(state)
    if P <= 0 or N <= 0 or bins.size == 0:
        return []
    tp = np.cumsum(state.w_pos[bins])
    fp = np.cumsum(state.w_neg[bins])
    fn = P - tp
    thresholds = layout.lower[bins]
    tpr, fpr = tp / P, fp / N
    precision = tp / (tp + fp)
    rules = {
        "max_f1": (2 * tp / (2 * tp + fp + fn), np.ones(bins.size, bool)),
        "max_youden": (tpr - fpr, np.ones(bins.size, bool)),
        "min_cost": (-(policy.cost_fp * fp + policy.cost_fn * fn), np.ones(bins.size, bool)),
        "precision_at_recall_floor": (precision, tpr >= policy.recall_floor),
        "recall_at_fpr_cap": (tpr, fpr <= policy.fpr_cap),
    }
    out = []
    for name, (objective, feasible) in rules.items():
        metric = f"recommended_threshold_{name}"
        if not feasible.any():
            out.append(MetricValue(metric, None))
            continue
        k = int(np.argmax(np.where(feasible, objective, -np.inf)))
        value = -objective[k] if name == "min_cost" else objective[k]
        out.append(MetricValue(metric, float(value), float(thresholds[k])))
    return out


@dataclass(frozen=True)
class OperatingPoints:
    """Fixed operating points (``[metrics]``): ``budgets`` (shares of the total
    weight flagged, highest scores first), ``recall_at_fpr``,
    ``precision_at_recall`` and ``specificity_at_sensitivity`` (each a list of
    constraint values)."""

    budgets: tuple[float, ...] = ()
    recall_at_fpr: tuple[float, ...] = ()
    precision_at_recall: tuple[float, ...] = ()
    specificity_at_sensitivity: tuple[float, ...] = ()


def _bins_from_top(state: BinaryState) -> tuple[np.ndarray, ...]:
    """Per bin, highest first, on shares of P and N: positive and negative
    weight of the bin (pos, neg) and above it (tp0, fp0)."""
    P, N = state.positive_weight, state.negative_weight
    pos, neg = state.w_pos[::-1] / P, state.w_neg[::-1] / N
    return pos, neg, np.cumsum(pos) - pos, np.cumsum(neg) - neg


def budget_metrics(state: BinaryState, layout: BinLayout, budget: float) -> list[MetricValue]:
    """Flag the highest-scored share ``budget`` of the total weight: precision,
    recall and lift (precision/prevalence) of the flagged rows, with bounds, and
    ``threshold_at_top_<budget>``: the lower edge of the bin the cut falls in.

    Bins above the cut are flagged whole; of the cut bin, weight r is flagged,
    whose positive part lies between max(0, r − n_b) and min(r, p_b) whatever the
    order of its rows (the value takes the bin's own mix, r·p_b/(p_b + n_b))."""
    suffix = f"{budget:g}"
    names = [f"{m}_at_top_{suffix}" for m in ("precision", "recall", "lift", "threshold")]
    P, N = state.positive_weight, state.negative_weight
    if not (0 < P < math.inf and 0 < N < math.inf):
        return [MetricValue(n, None) for n in names]
    T = P + N
    pos, neg = state.w_pos[::-1] / T, state.w_neg[::-1] / T  # shares of the total
    both = pos + neg
    flagged_above = np.cumsum(both) - both
    cut = int(np.searchsorted(np.cumsum(both), budget * (1 - 1e-12), side="left"))
    cut = min(cut, both.size - 1)
    tp0 = float(pos[:cut].sum())
    rest = max(budget - float(flagged_above[cut]), 0.0)
    p_b, n_b = float(pos[cut]), float(neg[cut])
    tp_low, tp_high = tp0 + max(0.0, rest - n_b), tp0 + min(rest, p_b)
    tp_mid = tp0 + (rest * p_b / (p_b + n_b) if p_b + n_b > 0 else 0.0)
    # equal to a bound when the bin is pure: keep the order through rounding
    tp_low, tp_high = min(tp_low, tp_mid), max(tp_high, tp_mid)
    share = P / T
    edge = float(layout.lower[::-1][cut])

    def metric(name: str, scale: float) -> MetricValue:
        return MetricValue(
            name,
            tp_mid * scale,
            bound_lower=tp_low * scale,
            bound_upper=min(tp_high * scale, 1.0 / share if name.startswith("lift") else 1.0),
        )

    return [
        metric(names[0], 1 / budget),
        metric(names[1], 1 / share),
        metric(names[2], 1 / (budget * share)),
        MetricValue(names[3], edge, edge),
    ]


EPS = 1e-12


def constrained_metrics(state: BinaryState, points: OperatingPoints) -> list[MetricValue]:
    """The best value of one rate under a constraint on another, over every
    threshold, with bounds: ``recall_at_fpr_<x>`` (highest recall with FPR ≤ x),
    ``precision_at_recall_<x>`` (highest precision with recall ≥ x),
    ``specificity_at_sensitivity_<x>`` (highest specificity with recall ≥ x).

    The value is the best over the bin edges (thresholds the exact scores reach
    too, so it is the lower bound). Inside a bin the rows may be ordered with its
    positives first: the point (TP₀ + p_b, FP₀) is then reached, which bounds
    what any threshold inside the bin can give (upper bound). NULL (and no
    bounds) when no edge meets the constraint."""
    P, N = state.positive_weight, state.negative_weight
    out: list[MetricValue] = []
    names = [
        *(f"recall_at_fpr_{x:g}" for x in points.recall_at_fpr),
        *(f"precision_at_recall_{x:g}" for x in points.precision_at_recall),
        *(f"specificity_at_sensitivity_{x:g}" for x in points.specificity_at_sensitivity),
    ]
    if not (0 < P < math.inf and 0 < N < math.inf):
        return [MetricValue(n, None) for n in names]
    pos, neg, tp0, fp0 = _bins_from_top(state)
    # edges: above every bin (nothing flagged), then each bin's lower edge
    tpr = np.concatenate([[0.0], np.cumsum(pos)])
    fpr = np.concatenate([[0.0], np.cumsum(neg)])
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tpr + fpr * N / P > 0, tpr / (tpr + fpr * N / P), np.nan)
        inside_precision = (tp0 + pos) / (tp0 + pos + fp0 * N / P)
    inside_tpr = tp0 + pos

    def best(name: str, values, feasible, inside_values, inside_feasible) -> MetricValue:
        if not feasible.any():
            return MetricValue(name, None)
        value = float(np.nanmax(np.where(feasible, values, -np.inf)))
        upper = value
        if inside_feasible.any():
            upper = max(upper, float(np.nanmax(np.where(inside_feasible, inside_values, -np.inf))))
        return MetricValue(name, value, bound_lower=value, bound_upper=min(upper, 1.0))

    # Rates are sums of shares: a rate that is exactly x may come out a rounding
    # error either side of it, so constraints are met within EPS.
    for x in points.recall_at_fpr:
        out.append(best(f"recall_at_fpr_{x:g}", tpr, fpr <= x + EPS, inside_tpr, fp0 <= x + EPS))
    for x in points.precision_at_recall:
        out.append(
            best(
                f"precision_at_recall_{x:g}",
                precision,
                (tpr >= x - EPS) & ~np.isnan(precision),
                inside_precision,
                inside_tpr >= x - EPS,
            )
        )
    for x in points.specificity_at_sensitivity:
        out.append(
            best(
                f"specificity_at_sensitivity_{x:g}",
                1 - fpr,
                tpr >= x - EPS,
                1 - fp0,
                inside_tpr >= x - EPS,
            )
        )
    return out


def operating_point_metrics(
    state: BinaryState, layout: BinLayout, points: OperatingPoints
) -> list[MetricValue]:
    """Every fixed operating point of ``points`` (budgets, constrained rates)."""
    out = [m for q in points.budgets for m in budget_metrics(state, layout, q)]
    return out + constrained_metrics(state, points)


@dataclass(frozen=True)
class BinaryEvaluation:
    metrics: list[MetricValue]
    confusions: list[Confusion]
    curves: list[Curve]


def evaluate(
    state: BinaryState,
    layout: BinLayout,
    thresholds: tuple[float, ...],
    beta: float,
    confidence: float = 0.95,
    policy: ThresholdPolicy | None = None,
    calibration_bins: int = 10,
    custom: tuple[CustomMetric, ...] = (),
    partial_fprs: tuple[float, ...] = (),
    extra_curves: tuple[str, ...] = (),
    points: OperatingPoints | None = None,
) -> BinaryEvaluation:
    """All binary metrics (with intervals), confusion matrices and curves of one group.

    Confusion matrices are given at the configured thresholds and at every
    recommended threshold (so each recommendation comes with its counts),
    custom metrics (``custom``) at each of those thresholds and as curves.
    """
    recommended = recommended_thresholds(state, layout, policy or ThresholdPolicy())
    threshold_free = threshold_free_metrics(state, layout, confidence, partial_fprs)
    group = {m.metric: np.nan if m.value is None else m.value for m in threshold_free}
    group = {name: group[name] for name in GROUP_METRICS}
    custom_curve_list, custom_recommended = custom_curves(custom, state, layout, group)
    recommended += custom_recommended
    extra = [m.threshold for m in recommended if m.threshold is not None]
    all_thresholds = tuple(sorted(set(thresholds) | set(extra)))
    confusions = confusion_at(state, layout, all_thresholds)
    metrics = threshold_free + recommended
    if points is not None:
        metrics += operating_point_metrics(state, layout, points)
    for c in confusions:
        metrics.extend(with_intervals(c, threshold_metrics(c, beta), confidence))
    metrics.extend(custom_metrics(custom, confusions, group, state.n_rows, confidence))
    reliability, calibration_metrics = calibration(state, layout, calibration_bins)
    metrics.extend(calibration_metrics)
    curves = [
        c for c in (roc_curve(state, layout), pr_curve(state, layout), reliability) if c is not None
    ]
    curves += gains_curves(state, layout, policy or ThresholdPolicy(), extra_curves)
    return BinaryEvaluation(metrics, confusions, curves + custom_curve_list)
