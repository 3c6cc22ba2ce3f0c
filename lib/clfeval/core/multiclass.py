"""Multiclass metrics from binned, mergeable states (numpy only).

A K-class model gives every row a probability vector ``p`` (``p_c`` for class
c, in the configured class order), a true class ``t`` and a predicted class
``j`` (a column of the input, or ``argmax p`` with the first maximum winning,
as ``numpy.argmax``). Every row contributes to the state of its group:

* ``n[c, t, b]``, ``w[c, t, b]``: rows (weights) whose true class is t and whose
  probability of class c falls in bin b of the layout, for every c. Summed over
  t != c this is the one-vs-rest state of class c; ``n[i, j, :]`` against
  ``n[i, i, :]`` gives the one-vs-one comparison A(i|j) of Hand & Till.
* ``score_sum[c, b]`` (Σ w·p_c) and ``sq_err_sum[c, b]`` (Σ w·(p_c − [t = c])²):
  per-class calibration and the multiclass Brier score.
* ``loss_sum[c, b]``: Σ w·−ln clip(p_c) over rows whose true class is c (log loss).
* ``confusion_n[t, j]``, ``confusion_w[t, j]``: the K×K confusion matrix.
* ``rank_n[t, r]``, ``rank_w[t, r]``: rows whose true class has rank r, i.e.
  ``r = #{c : p_c > p_t}``; top-k accuracy is the share with ``r < k`` (a tie
  with the true class counts in its favour).
* ``top_label``: a binary state of the predicted class's probability, positive
  when the prediction is right (top-label calibration).

All are sums, so states of days, slices and runs add.

Metric conventions follow scikit-learn with ``labels=None`` and
``zero_division=0``: per-class precision/recall/F1 are reported for every
configured class (NULL when undefined); the macro and weighted averages run
over the classes that occur as a true or a predicted class in the group, an
undefined per-class value counting as 0. Micro precision = recall = F1 =
accuracy (single-label). Balanced accuracy is the mean recall over classes with
support. MCC is Gorodkin's R_K, ``(c·s − Σ_k p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²))``
with c the correct weight, s the total, t_k and p_k true and predicted totals;
Cohen's kappa ``(p_o − p_e)/(1 − p_e)``.

ROC AUC: one-vs-rest per class (binned, with the guaranteed bound and a DeLong
interval as in the binary case), their macro mean and support-weighted mean;
one-vs-one (Hand & Till) ``A(i, j) = (A(i|j) + A(j|i)) / 2`` over all pairs,
macro and weighted by the pair's share of rows. Averages of bounded values
are bounded by the averages of the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clfeval.core.binary import (
    LOG_LOSS_EPS,
    BinaryState,
    Confusion,
    Curve,
    MetricValue,
    average_precision,
    calibration,
    custom_metrics,
    pr_curve,
    ratio,
    roc_auc,
    roc_curve,
    with_wilson,
)
from clfeval.core.bins import BinLayout
from clfeval.core.expressions import CustomMetric
from clfeval.core.intervals import delong_interval


@dataclass
class MulticlassState:
    """Sums of one group; see the module docstring. K classes, B bins."""

    n: np.ndarray  # (K, K, B) int64: [score class c, true class t, bin]
    w: np.ndarray  # (K, K, B)
    score_sum: np.ndarray  # (K, B)
    sq_err_sum: np.ndarray  # (K, B)
    loss_sum: np.ndarray  # (K, B)
    confusion_n: np.ndarray  # (K, K) int64: [true, predicted]
    confusion_w: np.ndarray  # (K, K)
    rank_n: np.ndarray  # (K, K) int64: [true, rank of the true class]
    rank_w: np.ndarray  # (K, K)
    top_label: BinaryState = field(default_factory=lambda: BinaryState.empty(0))

    @classmethod
    def empty(cls, n_classes: int, n_bins: int) -> MulticlassState:
        K, B = n_classes, n_bins
        return cls(
            n=np.zeros((K, K, B), dtype=np.int64),
            w=np.zeros((K, K, B)),
            score_sum=np.zeros((K, B)),
            sq_err_sum=np.zeros((K, B)),
            loss_sum=np.zeros((K, B)),
            confusion_n=np.zeros((K, K), dtype=np.int64),
            confusion_w=np.zeros((K, K)),
            rank_n=np.zeros((K, K), dtype=np.int64),
            rank_w=np.zeros((K, K)),
            top_label=BinaryState.empty(B),
        )

    @classmethod
    def from_scores(
        cls,
        layout: BinLayout,
        y_true: np.ndarray,
        probabilities: np.ndarray,
        weights: np.ndarray | None = None,
        y_pred: np.ndarray | None = None,
    ) -> MulticlassState:
        """Reference accumulation from raw rows (class indices, an (n, K) matrix)."""
        probs = np.asarray(probabilities, dtype=np.float64)
        rows, K = probs.shape
        t = np.asarray(y_true, dtype=np.int64)
        j = np.argmax(probs, axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
        w = np.ones(rows) if weights is None else np.asarray(weights, dtype=np.float64)
        state = cls.empty(K, layout.n_bins)
        bins = layout.bin_index(probs.ravel()).reshape(rows, K)
        p_true = probs[np.arange(rows), t]
        rank = (probs > p_true[:, None]).sum(axis=1)
        for c in range(K):
            truth = (t == c).astype(np.float64)
            np.add.at(state.n[c], (t, bins[:, c]), 1)
            np.add.at(state.w[c], (t, bins[:, c]), w)
            np.add.at(state.score_sum[c], bins[:, c], w * probs[:, c])
            np.add.at(state.sq_err_sum[c], bins[:, c], w * (probs[:, c] - truth) ** 2)
            clipped = np.clip(probs[:, c], LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
            np.add.at(state.loss_sum[c], bins[:, c], truth * w * -np.log(clipped))
        np.add.at(state.confusion_n, (t, j), 1)
        np.add.at(state.confusion_w, (t, j), w)
        np.add.at(state.rank_n, (t, rank), 1)
        np.add.at(state.rank_w, (t, rank), w)
        right = j == t
        state.top_label = BinaryState.from_scores(layout, right, probs[np.arange(rows), j], w)
        return state

    @property
    def n_classes(self) -> int:
        return self.n.shape[0]

    @property
    def n_rows(self) -> int:
        return int(self.confusion_n.sum())

    @property
    def total_weight(self) -> float:
        return float(self.confusion_w.sum())

    def one_vs_rest(self, c: int) -> BinaryState:
        """Binary state of "class c" against all others on ``p_c``."""
        others = np.arange(self.n_classes) != c
        return BinaryState(
            n_pos=self.n[c, c].copy(),
            n_neg=self.n[c, others].sum(axis=0),
            w_pos=self.w[c, c].copy(),
            w_neg=self.w[c, others].sum(axis=0),
            loss_sum=self.loss_sum[c].copy(),
            sq_err_sum=self.sq_err_sum[c].copy(),
            score_sum=self.score_sum[c].copy(),
        )

    def one_vs_one(self, i: int, j: int) -> BinaryState:
        """Binary state of class i (positive) against class j (negative) on ``p_i``."""
        B = self.n.shape[2]
        return BinaryState(
            self.n[i, i].copy(),
            self.n[i, j].copy(),
            self.w[i, i].copy(),
            self.w[i, j].copy(),
            np.zeros(B),
            np.zeros(B),
            np.zeros(B),
        )


@dataclass(frozen=True)
class ClassMetric:
    """A metric row: ``class_label`` None for metrics of the whole group."""

    class_label: str | None
    metric: MetricValue


@dataclass(frozen=True)
class MulticlassEvaluation:
    metrics: list[ClassMetric]
    confusion_n: np.ndarray
    confusion_w: np.ndarray
    curves: list[tuple[str | None, Curve]]


def _mean_with_bounds(name: str, items: list[tuple[MetricValue, float]]) -> MetricValue:
    """Weighted mean of values and of their bounds; None when nothing is defined."""
    items = [(m, wt) for m, wt in items if m.value is not None and wt > 0]
    if not items:
        return MetricValue(name, None)
    weights = np.array([wt for _, wt in items])

    def avg(values: list[float]) -> float:
        return float(np.dot(values, weights) / weights.sum())

    return MetricValue(
        name,
        avg([m.value for m, _ in items]),
        bound_lower=avg([m.bound_lower for m, _ in items]),
        bound_upper=avg([m.bound_upper for m, _ in items]),
    )


def _auc_metric(name: str, state: BinaryState, confidence: float | None) -> MetricValue:
    auc = roc_auc(state)
    if auc is None:
        return MetricValue(name, None)
    ci = (
        None
        if confidence is None
        else delong_interval(auc.value, state.n_pos, state.n_neg, confidence)
    )
    return MetricValue(
        name,
        auc.value,
        bound_lower=auc.lower,
        bound_upper=auc.upper,
        ci_lower=None if ci is None else ci[0],
        ci_upper=None if ci is None else ci[1],
    )


def _class_counts(state: MulticlassState) -> dict[str, np.ndarray]:
    cw, cn = state.confusion_w, state.confusion_n
    return {
        "tp": np.diag(cw),
        "support": cw.sum(axis=1),
        "predicted": cw.sum(axis=0),
        "n_tp": np.diag(cn),
        "n_support": cn.sum(axis=1),
        "n_predicted": cn.sum(axis=0),
    }


def confusion_metrics(
    state: MulticlassState, classes: tuple[str, ...], confidence: float
) -> list[ClassMetric]:
    """Accuracy, per-class and averaged precision/recall/F1, balanced accuracy, MCC, kappa."""
    k = _class_counts(state)
    tp, support, predicted = k["tp"], k["support"], k["predicted"]
    total = float(support.sum())
    out: list[ClassMetric] = []
    per_class: dict[str, list[float | None]] = {"precision": [], "recall": [], "f1": []}
    for c, label in enumerate(classes):
        values = {
            "precision": MetricValue(
                "precision", ratio(tp[c], predicted[c]), None, tp[c], predicted[c]
            ),
            "recall": MetricValue("recall", ratio(tp[c], support[c]), None, tp[c], support[c]),
            "f1": MetricValue(
                "f1",
                ratio(2 * tp[c], support[c] + predicted[c]),
                None,
                2 * tp[c],
                support[c] + predicted[c],
            ),
            "support": MetricValue("support", float(support[c]), None, float(support[c]), total),
        }
        counts = {"precision": int(k["n_predicted"][c]), "recall": int(k["n_support"][c])}
        for m in with_wilson(list(values.values()), counts, confidence):
            out.append(ClassMetric(label, m))
        for name in per_class:
            per_class[name].append(values[name].value)
    present = (support > 0) | (predicted > 0)
    for name, values in per_class.items():
        filled = np.array([0.0 if v is None else v for v in values])
        macro = float(filled[present].mean()) if present.any() else None
        weighted = ratio(float(np.dot(filled, support)), total)
        out.append(ClassMetric(None, MetricValue(f"{name}_macro", macro)))
        out.append(ClassMetric(None, MetricValue(f"{name}_weighted", weighted)))
    correct = float(tp.sum())
    accuracy = MetricValue("accuracy", ratio(correct, total), None, correct, total)
    out += [
        ClassMetric(None, m)
        for m in with_wilson([accuracy], {"accuracy": state.n_rows}, confidence)
    ]
    for name in ("precision", "recall", "f1"):
        out.append(
            ClassMetric(
                None, MetricValue(f"{name}_micro", ratio(correct, total), None, correct, total)
            )
        )
    recalls = tp[support > 0] / support[support > 0]
    out.append(
        ClassMetric(
            None, MetricValue("balanced_accuracy", float(recalls.mean()) if recalls.size else None)
        )
    )
    # On shares of the total weight: the same (scale-free) value, and no product of
    # sums that over- or underflows for extreme weights.
    if total > 0:
        c_share, t_share, p_share = correct / total, support / total, predicted / total
        cov_tp = c_share - float(np.dot(t_share, p_share))
        den = (1.0 - float(np.dot(p_share, p_share))) * (1.0 - float(np.dot(t_share, t_share)))
    else:
        cov_tp, den = 0.0, 0.0
    den = max(den, 0.0)
    out.append(
        ClassMetric(
            None, MetricValue("mcc", ratio(cov_tp, np.sqrt(den)), None, cov_tp, np.sqrt(den))
        )
    )
    if total > 0:
        p_o, p_e = correct / total, float(np.dot(support / total, predicted / total))
        out.append(
            ClassMetric(
                None,
                MetricValue("cohen_kappa", ratio(p_o - p_e, 1 - p_e), None, p_o - p_e, 1 - p_e),
            )
        )
    else:
        out.append(ClassMetric(None, MetricValue("cohen_kappa", None)))
    return out


def score_metrics(
    state: MulticlassState,
    classes: tuple[str, ...],
    layout: BinLayout,
    top_k: tuple[int, ...],
    confidence: float,
    calibration_bins: int,
) -> tuple[list[ClassMetric], list[tuple[str | None, Curve]]]:
    """AUCs (OvR, OvO), average precision, top-k, log loss, Brier, calibration; curves."""
    K = len(classes)
    total = state.total_weight
    support = state.confusion_w.sum(axis=1)
    out: list[ClassMetric] = []
    curves: list[tuple[str | None, Curve]] = []
    ovr_aucs: list[tuple[MetricValue, float]] = []
    for c, label in enumerate(classes):
        ovr = state.one_vs_rest(c)
        auc = _auc_metric("roc_auc", ovr, confidence)
        ovr_aucs.append((auc, float(support[c])))
        pr = pr_curve(ovr, layout)
        out.append(ClassMetric(label, auc))
        out.append(
            ClassMetric(
                label,
                MetricValue("average_precision", None if pr is None else average_precision(pr)),
            )
        )
        prevalence = MetricValue(
            "prevalence", ratio(float(support[c]), total), None, float(support[c]), total
        )
        out += [
            ClassMetric(label, m)
            for m in with_wilson([prevalence], {"prevalence": state.n_rows}, confidence)
        ]
        reliability, cal_metrics = calibration(ovr, layout, calibration_bins)
        out += [ClassMetric(label, m) for m in cal_metrics if m.metric in ("ece", "mce")]
        for curve in (roc_curve(ovr, layout), pr, reliability):
            if curve is not None:
                curves.append((label, curve))
    out.append(
        ClassMetric(None, _mean_with_bounds("roc_auc_ovr_macro", [(m, 1.0) for m, _ in ovr_aucs]))
    )
    out.append(ClassMetric(None, _mean_with_bounds("roc_auc_ovr_weighted", ovr_aucs)))
    pairs: list[tuple[MetricValue, float]] = []
    for i in range(K):
        for j in range(i + 1, K):
            a_ij, a_ji = roc_auc(state.one_vs_one(i, j)), roc_auc(state.one_vs_one(j, i))
            if a_ij is None or a_ji is None:
                continue
            pair = MetricValue(
                "pair",
                (a_ij.value + a_ji.value) / 2,
                bound_lower=(a_ij.lower + a_ji.lower) / 2,
                bound_upper=(a_ij.upper + a_ji.upper) / 2,
            )
            pairs.append((pair, float(support[i] + support[j])))
    out.append(
        ClassMetric(None, _mean_with_bounds("roc_auc_ovo_macro", [(m, 1.0) for m, _ in pairs]))
    )
    out.append(ClassMetric(None, _mean_with_bounds("roc_auc_ovo_weighted", pairs)))
    rank_w = state.rank_w.sum(axis=0)
    for k in top_k:
        hits = float(rank_w[:k].sum())
        m = MetricValue(f"top_{k}_accuracy", ratio(hits, total), None, hits, total)
        out += [
            ClassMetric(None, x) for x in with_wilson([m], {m.metric: state.n_rows}, confidence)
        ]
    loss, sq = float(state.loss_sum.sum()), float(state.sq_err_sum.sum())
    out.append(ClassMetric(None, MetricValue("log_loss", ratio(loss, total), None, loss, total)))
    out.append(ClassMetric(None, MetricValue("brier_score", ratio(sq, total), None, sq, total)))
    reliability, cal_metrics = calibration(state.top_label, layout, calibration_bins)
    for m in cal_metrics:
        if m.metric in ("ece", "mce"):
            out.append(ClassMetric(None, MetricValue(f"top_label_{m.metric}", m.value)))
    if reliability is not None:
        curves.append(
            (
                None,
                Curve(
                    "calibration_top_label", reliability.thresholds, reliability.x, reliability.y
                ),
            )
        )
    return out, curves


def evaluate_multiclass(
    state: MulticlassState,
    classes: tuple[str, ...],
    layout: BinLayout,
    top_k: tuple[int, ...] = (),
    confidence: float = 0.95,
    calibration_bins: int = 10,
    custom: tuple[CustomMetric, ...] = (),
) -> MulticlassEvaluation:
    """Every multiclass metric, the K×K confusion matrix and per-class curves of one group."""
    metrics = confusion_metrics(state, classes, confidence)
    more, curves = score_metrics(state, classes, layout, top_k, confidence, calibration_bins)
    metrics += more
    metrics += custom_class_metrics(state, classes, custom, metrics, confidence)
    return MulticlassEvaluation(metrics, state.confusion_n, state.confusion_w, curves)


def custom_class_metrics(
    state: MulticlassState,
    classes: tuple[str, ...],
    custom: tuple[CustomMetric, ...],
    computed: list[ClassMetric],
    confidence: float,
) -> list[ClassMetric]:
    """Each custom metric per class on its one-vs-rest counts at the predicted
    class (tp = the class predicted and true, fp = predicted but not true,
    fn = true but not predicted, tn = the rest), with the class's own ``roc_auc``
    and ``average_precision`` and the model's ``log_loss`` and ``brier_score``;
    then ``<name>_macro``: the mean over the classes present (true or predicted)
    where the value is defined."""
    if not custom:
        return []
    k = _class_counts(state)
    total, n_total = float(k["support"].sum()), float(k["n_support"].sum())
    by_key = {(m.class_label, m.metric.metric): m.metric.value for m in computed}
    present = (k["support"] > 0) | (k["predicted"] > 0)
    out: list[ClassMetric] = []
    per_class: dict[str, list[float]] = {m.name: [] for m in custom}
    for c, label in enumerate(classes):
        tp = float(k["tp"][c])
        fp, fn = float(k["predicted"][c]) - tp, float(k["support"][c]) - tp
        cells = {
            "tp": tp,
            "fp": max(fp, 0.0),
            "tn": max(total - tp - fp - fn, 0.0),
            "fn": max(fn, 0.0),
        }
        n_tp = float(k["n_tp"][c])
        n_fp, n_fn = float(k["n_predicted"][c]) - n_tp, float(k["n_support"][c]) - n_tp
        counts = {"n_tp": n_tp, "n_fp": n_fp, "n_tn": n_total - n_tp - n_fp - n_fn, "n_fn": n_fn}
        group = {
            "roc_auc": by_key.get((label, "roc_auc")),
            "average_precision": by_key.get((label, "average_precision")),
            "log_loss": by_key.get((None, "log_loss")),
            "brier_score": by_key.get((None, "brier_score")),
        }
        group = {g: np.nan if v is None else float(v) for g, v in group.items()}
        for metric in custom_metrics(
            custom, [_confusion(cells, counts)], group, int(n_total), confidence
        ):
            out.append(ClassMetric(label, metric))
            if present[c] and metric.value is not None:
                per_class[metric.metric].append(metric.value)
    for name, values in per_class.items():
        macro = float(np.mean(values)) if values else None
        out.append(ClassMetric(None, MetricValue(f"{name}_macro", macro)))
    return out


def _confusion(cells: dict[str, float], counts: dict[str, float]) -> Confusion:
    return Confusion(
        None,  # type: ignore[arg-type]  # multiclass counts are at the predicted class
        cells["tp"],
        cells["fp"],
        cells["tn"],
        cells["fn"],
        int(counts["n_tp"]),
        int(counts["n_fp"]),
        int(counts["n_tn"]),
        int(counts["n_fn"]),
    )
