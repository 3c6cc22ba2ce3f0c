"""Multiclass metrics from binned, mergeable states (numpy only).

A K-class model gives every row a probability vector ``p`` (``p_c`` for class
c, in the configured class order), a true class ``t`` and a predicted class
``j`` (a column of the input, or ``argmax p`` with the first maximum winning,
as ``numpy.argmax``). Every row contributes to the state of its group, which
grows with K and the number of bins B, not with K² x B:

* per class c, the one-vs-rest binary state on ``p_c`` (``ovr``, arrays of
  shape (K, B)): rows whose true class is c (positives) and the others
  (negatives) per bin of ``p_c``, their weights, ``loss_sum`` (Σ w·−ln clip(p_c)
  over the positives: the log loss), ``sq_err_sum`` (Σ w·(p_c − [t = c])²: the
  Brier score) and ``score_sum`` (Σ w·p_c: calibration);
* ``confusion_n[t, j]``, ``confusion_w[t, j]``: the K×K confusion matrix;
* ``rank_n[t, r]``, ``rank_w[t, r]``: rows whose true class has rank r, i.e.
  ``r = #{c : p_c > p_t}``; top-k accuracy is the share with ``r < k`` (a tie
  with the true class counts in its favour);
* ``top_label``: a binary state of the predicted class's probability, positive
  when the prediction is right (top-label calibration);
* only for one-vs-one AUC (``pairs``, opt-in): per (class c, true class t, bin
  of ``p_c``) the rows and weights, kept sparse (one entry per non-empty cell).

All are sums, so states of days, slices and runs add. Memory per group is
O(K·B + K²) numbers, plus the non-empty cells of ``pairs`` when kept; no
K×K×B array is ever allocated (one-vs-one works one score class at a time).

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
macro and weighted by the pair's share of rows, where ``pairs`` is kept.
Averages of bounded values are bounded by the averages of the bounds.
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
class PairHistograms:
    """The one-vs-one split, sparse: entry e holds the rows ``n[e]`` (weights
    ``w[e]``) whose true class is ``true_class[e]`` and whose probability of
    ``score_class[e]`` falls in bin ``bin[e]``. Entries of the same cell add."""

    score_class: np.ndarray  # int64
    true_class: np.ndarray  # int64
    bin: np.ndarray  # int64
    n: np.ndarray  # int64
    w: np.ndarray  # float64

    @classmethod
    def empty(cls) -> PairHistograms:
        ints = [np.zeros(0, dtype=np.int64) for _ in range(4)]
        return cls(*ints, np.zeros(0))

    def __add__(self, other: PairHistograms) -> PairHistograms:
        return PairHistograms(
            *[
                np.concatenate([getattr(self, f), getattr(other, f)])
                for f in ("score_class", "true_class", "bin", "n", "w")
            ]
        )

    def score_class_block(self, c: int, n_classes: int, n_bins: int) -> tuple[np.ndarray, ...]:
        """Dense ``(n, w)`` of shape (K, B) of score class c: row t is the
        histogram of ``p_c`` over the rows of true class t."""
        mine = self.score_class == c
        n = np.zeros((n_classes, n_bins), dtype=np.int64)
        w = np.zeros((n_classes, n_bins))
        np.add.at(n, (self.true_class[mine], self.bin[mine]), self.n[mine])
        np.add.at(w, (self.true_class[mine], self.bin[mine]), self.w[mine])
        return n, w


@dataclass
class MulticlassState:
    """Sums of one group; see the module docstring. K classes, B bins."""

    ovr_n_pos: np.ndarray  # (K, B) int64: [class c, bin of p_c], rows of true class c
    ovr_n_neg: np.ndarray  # (K, B) int64: rows of another true class
    ovr_w_pos: np.ndarray  # (K, B)
    ovr_w_neg: np.ndarray  # (K, B)
    loss_sum: np.ndarray  # (K, B)
    sq_err_sum: np.ndarray  # (K, B)
    score_sum: np.ndarray  # (K, B)
    confusion_n: np.ndarray  # (K, K) int64: [true, predicted]
    confusion_w: np.ndarray  # (K, K)
    rank_n: np.ndarray  # (K, K) int64: [true, rank of the true class]
    rank_w: np.ndarray  # (K, K)
    top_label: BinaryState = field(default_factory=lambda: BinaryState.empty(0))
    pairs: PairHistograms | None = None

    OVR_FIELDS = (
        "ovr_n_pos",
        "ovr_n_neg",
        "ovr_w_pos",
        "ovr_w_neg",
        "loss_sum",
        "sq_err_sum",
        "score_sum",
    )

    @classmethod
    def empty(cls, n_classes: int, n_bins: int, one_vs_one: bool = False) -> MulticlassState:
        K, B = n_classes, n_bins
        return cls(
            ovr_n_pos=np.zeros((K, B), dtype=np.int64),
            ovr_n_neg=np.zeros((K, B), dtype=np.int64),
            ovr_w_pos=np.zeros((K, B)),
            ovr_w_neg=np.zeros((K, B)),
            loss_sum=np.zeros((K, B)),
            sq_err_sum=np.zeros((K, B)),
            score_sum=np.zeros((K, B)),
            confusion_n=np.zeros((K, K), dtype=np.int64),
            confusion_w=np.zeros((K, K)),
            rank_n=np.zeros((K, K), dtype=np.int64),
            rank_w=np.zeros((K, K)),
            top_label=BinaryState.empty(B),
            pairs=PairHistograms.empty() if one_vs_one else None,
        )

    @classmethod
    def from_scores(
        cls,
        layout: BinLayout,
        y_true: np.ndarray,
        probabilities: np.ndarray,
        weights: np.ndarray | None = None,
        y_pred: np.ndarray | None = None,
        one_vs_one: bool = False,
    ) -> MulticlassState:
        """Reference accumulation from raw rows (class indices, an (n, K) matrix)."""
        probs = np.asarray(probabilities, dtype=np.float64)
        rows, K = probs.shape
        t = np.asarray(y_true, dtype=np.int64)
        j = np.argmax(probs, axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
        w = np.ones(rows) if weights is None else np.asarray(weights, dtype=np.float64)
        state = cls.empty(K, layout.n_bins, one_vs_one)
        bins = layout.bin_index(probs.ravel()).reshape(rows, K)
        p_true = probs[np.arange(rows), t]
        rank = (probs > p_true[:, None]).sum(axis=1)
        for c in range(K):
            truth = t == c
            b = bins[:, c]
            np.add.at(state.ovr_n_pos[c], b[truth], 1)
            np.add.at(state.ovr_n_neg[c], b[~truth], 1)
            np.add.at(state.ovr_w_pos[c], b[truth], w[truth])
            np.add.at(state.ovr_w_neg[c], b[~truth], w[~truth])
            np.add.at(state.score_sum[c], b, w * probs[:, c])
            np.add.at(state.sq_err_sum[c], b, w * (probs[:, c] - truth) ** 2)
            clipped = np.clip(probs[:, c], LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
            np.add.at(state.loss_sum[c], b, truth * w * -np.log(clipped))
        if one_vs_one:
            state.pairs = PairHistograms(
                np.repeat(np.arange(K)[None, :], rows, axis=0).ravel(),
                np.repeat(t, K),
                bins.ravel(),
                np.ones(rows * K, dtype=np.int64),
                np.repeat(w, K),
            )
        np.add.at(state.confusion_n, (t, j), 1)
        np.add.at(state.confusion_w, (t, j), w)
        np.add.at(state.rank_n, (t, rank), 1)
        np.add.at(state.rank_w, (t, rank), w)
        right = j == t
        state.top_label = BinaryState.from_scores(layout, right, probs[np.arange(rows), j], w)
        return state

    def __add__(self, other: MulticlassState) -> MulticlassState:
        """The state of the union of both groups' rows."""
        names = [*self.OVR_FIELDS, "confusion_n", "confusion_w", "rank_n", "rank_w"]
        summed = {name: getattr(self, name) + getattr(other, name) for name in names}
        top = BinaryState(
            *[getattr(self.top_label, f) + getattr(other.top_label, f) for f in BinaryState.FIELDS]
        )
        pairs = None
        if self.pairs is not None and other.pairs is not None:
            pairs = self.pairs + other.pairs
        return MulticlassState(**summed, top_label=top, pairs=pairs)

    @property
    def n_classes(self) -> int:
        return self.ovr_n_pos.shape[0]

    @property
    def n_bins(self) -> int:
        return self.ovr_n_pos.shape[1]

    @property
    def n_rows(self) -> int:
        return int(self.confusion_n.sum())

    @property
    def total_weight(self) -> float:
        return float(self.confusion_w.sum())

    def one_vs_rest(self, c: int) -> BinaryState:
        """Binary state of "class c" against all others on ``p_c``."""
        return BinaryState(*[getattr(self, name)[c].copy() for name in self.OVR_FIELDS])

    def one_vs_one_aucs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``A(i|j)``, its lower and upper bound, as (K, K) arrays (NaN where
        undefined): the binned AUC of ``p_i`` separating true class i (positive)
        from true class j (negative). None unless ``pairs`` is kept. Works one
        score class at a time: O(K·B) memory."""
        if self.pairs is None:
            return None
        K, B = self.n_classes, self.n_bins
        value, lower, upper = (np.full((K, K), np.nan) for _ in range(3))
        zeros = np.zeros(B)
        for i in range(K):
            n, w = self.pairs.score_class_block(i, K, B)
            if not n[i].any():
                continue
            for j in range(K):
                if j == i or not n[j].any():
                    continue
                auc = roc_auc(BinaryState(n[i], n[j], w[i], w[j], zeros, zeros, zeros))
                if auc is not None:
                    value[i, j], lower[i, j], upper[i, j] = auc.value, auc.lower, auc.upper
        return value, lower, upper


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
    out += _one_vs_one_metrics(state, support)
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


def _one_vs_one_metrics(state: MulticlassState, support: np.ndarray) -> list[ClassMetric]:
    """Hand & Till's macro and pair-weighted one-vs-one AUC, where the state keeps
    the one-vs-one split (nothing otherwise)."""
    aucs = state.one_vs_one_aucs()
    if aucs is None:
        return []
    value, lower, upper = aucs
    pairs: list[tuple[MetricValue, float]] = []
    for i in range(state.n_classes):
        for j in range(i + 1, state.n_classes):
            if np.isnan(value[i, j]) or np.isnan(value[j, i]):
                continue
            pair = MetricValue(
                "pair",
                (value[i, j] + value[j, i]) / 2,
                bound_lower=(lower[i, j] + lower[j, i]) / 2,
                bound_upper=(upper[i, j] + upper[j, i]) / 2,
            )
            pairs.append((pair, float(support[i] + support[j])))
    return [
        ClassMetric(None, _mean_with_bounds("roc_auc_ovo_macro", [(m, 1.0) for m, _ in pairs])),
        ClassMetric(None, _mean_with_bounds("roc_auc_ovo_weighted", pairs)),
    ]


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
