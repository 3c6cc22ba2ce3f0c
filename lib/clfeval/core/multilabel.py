"""Multilabel metrics from binned, mergeable states (numpy only).

A multilabel model gives every row a set of true labels ``T`` (a subset of the
L configured labels, possibly empty) and a score ``s_l`` in [0, 1] per label;
at an operating threshold τ its predicted set is ``P = {l : s_l >= τ}``. Every
row adds to the state of its group:

* per label l, the binary state of ``s_l`` (``core.binary.BinaryState``: rows
  with l in T are the positives), arrays of shape (L, B);
* per operating threshold τ and example statistic, the sums that the
  example-based (``average="samples"``) metrics need (``EXAMPLE_STATISTICS``),
  each as ``n_pos`` (rows with a value > 0), ``n_neg`` (rows with value 0),
  ``w_pos`` (Σ w·v) and ``w_neg`` (Σ w·(1 − v)), so ``w_pos + w_neg`` is the
  total weight and ``w_pos / (w_pos + w_neg)`` the weighted mean of v;
* once per row, whether its label set is empty (``EMPTY_LABEL_SET``).

All are sums, so states of days, slices and runs add.

Conventions (scikit-learn's, with ``zero_division=0``, checked against
scikit-learn 1.9): per row, with I = |P ∩ T|,

* subset accuracy ``[P = T]`` (1 when both are empty, as ``accuracy_score``);
* Jaccard ``I / |P ∪ T|``, 0 when both are empty (``jaccard_score(average="samples")``);
* precision ``I / |P|``, 0 when P is empty; recall ``I / |T|``, 0 when T is empty;
* F1 ``2I / (|P| + |T|)``, 0 when both are empty (``f1_score(average="samples")``).

The sample averages are weighted means of these (``np.average(..., weights=w)``).
Hamming loss ``Σ_l (FP_l + FN_l) / (W·L)`` and the per-label, micro and macro
metrics come from the per-label states at τ, exactly (τ is a bin edge). Micro
metrics are the binary metrics of the sum of the per-label states, i.e. of the
flattened (row, label) indicator matrix, as ``average="micro"`` (ROC AUC and
average precision binned, with their bounds). Macro and weighted averages of
precision, recall, F1 and Jaccard run over all L labels, an undefined
per-label value counting as 0 (weighted: by each label's positive weight);
macro average precision counts a label without positives as 0 (as
scikit-learn, which warns); macro ROC AUC averages the labels whose AUC is
defined (scikit-learn raises for a label without positives or negatives).
Averages of bounded values are bounded by the averages of the bounds.

Not computed: coverage error and label-ranking average precision need each
row's ordering of its L scores, which per-label histograms do not keep (they
are not exact from these states, and no bounded estimate is offered).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from clfeval.core.binary import (
    BinaryEvaluation,
    BinaryState,
    Confusion,
    Curve,
    MetricValue,
    OperatingPoints,
    ThresholdPolicy,
    evaluate,
    ratio,
)
from clfeval.core.bins import BinLayout
from clfeval.core.expressions import CustomMetric
from clfeval.core.intervals import wilson

#: Example statistics kept per operating threshold, by index (``true_rank`` of
#: an example state row): the per-row values whose weighted means are the
#: metrics of the same name; ``empty_prediction_share`` is ``[|P| = 0]``.
EXAMPLE_STATISTICS = (
    "subset_accuracy",
    "jaccard_samples",
    "precision_samples",
    "recall_samples",
    "f1_samples",
    "empty_prediction_share",
)
#: Index of the threshold-free statistic ``[|T| = 0]`` (its state row has no bin).
EMPTY_LABEL_SET = len(EXAMPLE_STATISTICS)

#: Columns of an example statistic's sums, in ``ExampleSums`` arrays.
EXAMPLE_SUMS = ("n_pos", "n_neg", "w_pos", "w_neg")


def example_values(
    n_both: np.ndarray, n_predicted: np.ndarray, n_true: np.ndarray
) -> list[np.ndarray]:
    """The per-row values of ``EXAMPLE_STATISTICS`` from I = |P ∩ T|, |P| and |T|
    (arrays), with the empty-set conventions of the module docstring."""
    i, p, t = (np.asarray(a, dtype=np.float64) for a in (n_both, n_predicted, n_true))
    union = p + t - i

    def share(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    return [
        ((i == p) & (i == t)).astype(np.float64),
        share(i, union),
        share(i, p),
        share(i, t),
        share(2.0 * i, p + t),
        (p == 0).astype(np.float64),
    ]


@dataclass
class MultilabelState:
    """One group's state: per-label binary histograms (``labels``: (L, B) arrays
    of ``BinaryState.FIELDS``) and example sums keyed by (edge index of τ, or
    -1 for the threshold-free statistic; statistic index) -> array of
    ``EXAMPLE_SUMS``."""

    labels: dict[str, np.ndarray]
    examples: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, n_labels: int, n_bins: int) -> MultilabelState:
        arrays = {
            name: np.zeros(
                (n_labels, n_bins), dtype=np.int64 if name in ("n_pos", "n_neg") else float
            )
            for name in BinaryState.FIELDS
        }
        return cls(arrays)

    @property
    def n_labels(self) -> int:
        return self.labels["n_pos"].shape[0]

    def label_state(self, k: int) -> BinaryState:
        """The binary state of label k."""
        return BinaryState(*(self.labels[name][k].copy() for name in BinaryState.FIELDS))

    def micro_state(self) -> BinaryState:
        """The sum of the per-label states: the flattened (row, label) matrix."""
        return BinaryState(*(self.labels[name].sum(axis=0) for name in BinaryState.FIELDS))

    def add_example(self, edge: int, statistic: int, sums: np.ndarray) -> None:
        key = (edge, statistic)
        self.examples[key] = self.examples.get(key, np.zeros(4)) + np.asarray(sums, dtype=float)

    def __add__(self, other: MultilabelState) -> MultilabelState:
        out = MultilabelState({n: self.labels[n] + other.labels[n] for n in BinaryState.FIELDS})
        for source in (self, other):
            for (edge, statistic), sums in source.examples.items():
                out.add_example(edge, statistic, sums)
        return out

    @property
    def n_rows(self) -> int:
        """Valid rows: every row is in each label's state once."""
        if self.n_labels == 0:
            return 0
        return int(self.labels["n_pos"][0].sum() + self.labels["n_neg"][0].sum())

    @property
    def total_weight(self) -> float:
        if self.n_labels == 0:
            return 0.0
        return float(self.labels["w_pos"][0].sum() + self.labels["w_neg"][0].sum())

    @classmethod
    def from_scores(
        cls,
        layout: BinLayout,
        y_true: np.ndarray,
        scores: np.ndarray,
        weights: np.ndarray | None,
        thresholds: Iterable[float],
    ) -> MultilabelState:
        """Reference accumulation from raw rows: ``y_true`` an (n, L) 0/1 matrix,
        ``scores`` (n, L) in [0, 1], example sums at each of ``thresholds``."""
        y = np.asarray(y_true).astype(bool)
        s = np.asarray(scores, dtype=np.float64)
        n, n_labels = y.shape
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        state = cls.empty(n_labels, layout.n_bins)
        for k in range(n_labels):
            one = BinaryState.from_scores(layout, y[:, k], s[:, k], w)
            for name in BinaryState.FIELDS:
                state.labels[name][k] = getattr(one, name)
        n_true = y.sum(axis=1)
        for t in thresholds:
            predicted = s >= t
            values = example_values((predicted & y).sum(axis=1), predicted.sum(axis=1), n_true)
            for statistic, v in enumerate(values):
                state.add_example(layout.edge_index(t), statistic, _sums(v, w))
        state.add_example(-1, EMPTY_LABEL_SET, _sums((n_true == 0).astype(float), w))
        return state


def _sums(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.array([(v > 0).sum(), (v == 0).sum(), (w * v).sum(), (w * (1.0 - v)).sum()])


@dataclass(frozen=True)
class LabelMetric:
    """A metric row: ``class_label`` the label, None for metrics of the whole group."""

    class_label: str | None
    metric: MetricValue


@dataclass(frozen=True)
class MultilabelEvaluation:
    metrics: list[LabelMetric]
    #: (label, confusion at a threshold): each label's 2 x 2 matrix
    confusions: list[tuple[str, Confusion]]
    #: (label or None for the micro curves, curve)
    curves: list[tuple[str | None, Curve]]
    #: each label's binary evaluation (for its counts)
    per_label: list[BinaryEvaluation]


def _mean(name: str, values: list[MetricValue], weights: np.ndarray, threshold=None) -> MetricValue:
    """Weighted mean of ``values`` (None counts as 0, weights summing to 0: None)
    with the weighted means of their bounds where every value has them."""
    total = float(weights.sum())
    if total <= 0:
        return MetricValue(name, None, threshold)

    def avg(xs: list[float | None]) -> float:
        return float(np.dot([0.0 if x is None else x for x in xs], weights) / total)

    bounded = all(m.bound_lower is not None for m in values if m.value is not None)
    lower = avg([m.bound_lower if m.value is not None else 0.0 for m in values])
    upper = avg([m.bound_upper if m.value is not None else 0.0 for m in values])
    return MetricValue(
        name,
        avg([m.value for m in values]),
        threshold,
        bound_lower=lower if bounded else None,
        bound_upper=upper if bounded else None,
    )


def _jaccard(c: Confusion) -> MetricValue:
    """Per-label Jaccard TP/(TP + FP + FN) (``jaccard_score`` of the label's column)."""
    den = c.tp + c.fp + c.fn
    return MetricValue("jaccard", ratio(c.tp, den), c.threshold, c.tp, den)


def _averaged(
    state: MultilabelState,
    per_label: list[BinaryEvaluation],
    micro: BinaryEvaluation,
    thresholds: tuple[float, ...],
) -> list[MetricValue]:
    """Macro and weighted averages (module docstring) at each threshold and of
    ROC AUC and average precision; micro Jaccard."""
    support = state.labels["w_pos"].sum(axis=1)
    ones = np.ones(len(per_label))
    out: list[MetricValue] = []
    values = [{(m.metric, m.threshold): m for m in e.metrics} for e in per_label]
    confusions = [{c.threshold: c for c in e.confusions} for e in per_label]
    for t in thresholds:
        jaccards = [_jaccard(c[t]) for c in confusions]
        for name in ("precision", "recall", "f1", "jaccard"):
            items = jaccards if name == "jaccard" else [v[(name, t)] for v in values]
            items = [replace(m, bound_lower=None, bound_upper=None) for m in items]
            out.append(_mean(f"{name}_macro", items, ones, t))
            out.append(_mean(f"{name}_weighted", items, support, t))
        c = next(x for x in micro.confusions if x.threshold == t)
        den = c.tp + c.fp + c.fn
        out.append(MetricValue("jaccard_micro", ratio(c.tp, den), t, c.tp, den))
    aucs = [v[("roc_auc", None)] for v in values]
    defined = np.array([m.value is not None for m in aucs], dtype=float)
    out.append(_mean("roc_auc_macro", aucs, defined))
    out.append(_mean("roc_auc_weighted", aucs, support * defined))
    aps = [v[("average_precision", None)] for v in values]
    out.append(_mean("average_precision_macro", aps, ones))
    out.append(_mean("average_precision_weighted", aps, support))
    return out


def example_metrics(
    state: MultilabelState,
    layout: BinLayout,
    thresholds: tuple[float, ...],
    micro: BinaryEvaluation,
    confidence: float = 0.95,
) -> list[MetricValue]:
    """Example-based metrics at each threshold (``EXAMPLE_STATISTICS``, Hamming
    loss, predicted label cardinality; subset accuracy with a Wilson interval
    on row counts) and the threshold-free label cardinality, density and share
    of rows with an empty label set."""
    n_labels = state.n_labels
    weight = state.total_weight
    out: list[MetricValue] = []
    for t in thresholds:
        edge = layout.edge_index(t)
        for statistic, name in enumerate(EXAMPLE_STATISTICS):
            n_pos, n_neg, w_pos, w_neg = state.examples.get((edge, statistic), np.zeros(4))
            m = MetricValue(name, ratio(w_pos, w_pos + w_neg), t, w_pos, w_pos + w_neg)
            if statistic == 0 and m.value is not None:
                ci = wilson(m.value * (n_pos + n_neg), n_pos + n_neg, confidence)
                if ci is not None:
                    m = replace(m, ci_lower=ci[0], ci_upper=ci[1])
            out.append(m)
        c = next(x for x in micro.confusions if x.threshold == t)
        errors, cells = c.fp + c.fn, weight * n_labels
        out.append(MetricValue("hamming_loss", ratio(errors, cells), t, errors, cells))
        flagged = c.tp + c.fp
        out.append(
            MetricValue("predicted_label_cardinality", ratio(flagged, weight), t, flagged, weight)
        )
    positives = float(state.labels["w_pos"].sum())
    cardinality = ratio(positives, weight)
    out.append(MetricValue("label_cardinality", cardinality, None, positives, weight))
    density = None if cardinality is None else cardinality / n_labels
    out.append(MetricValue("label_density", density, None, positives, weight * n_labels))
    _, _, w_empty, w_rest = state.examples.get((-1, EMPTY_LABEL_SET), np.zeros(4))
    out.append(
        MetricValue(
            "empty_label_set_share", ratio(w_empty, w_empty + w_rest), None, w_empty, weight
        )
    )
    return out


def evaluate_multilabel(
    state: MultilabelState,
    labels: tuple[str, ...],
    layout: BinLayout,
    thresholds: tuple[float, ...],
    beta: float,
    confidence: float = 0.95,
    policy: ThresholdPolicy | None = None,
    calibration_bins: int = 10,
    custom: tuple[CustomMetric, ...] = (),
    points: OperatingPoints | None = None,
) -> MultilabelEvaluation:
    """Every multilabel metric of one group: each label's binary evaluation
    (``core.binary.evaluate``; plus its Jaccard), the micro evaluation (every
    binary metric of the summed state, named ``<metric>_micro``), the macro and
    weighted averages and the example-based metrics."""
    thresholds = tuple(thresholds)

    def run(s: BinaryState) -> BinaryEvaluation:
        return evaluate(
            s,
            layout,
            thresholds,
            beta,
            confidence,
            policy,
            calibration_bins,
            custom,
            (),
            (),
            points,
        )

    per_label = [run(state.label_state(k)) for k in range(len(labels))]
    micro = run(state.micro_state())
    metrics: list[LabelMetric] = []
    confusions: list[tuple[str, Confusion]] = []
    curves: list[tuple[str | None, Curve]] = []
    for label, result in zip(labels, per_label, strict=True):
        metrics += [LabelMetric(label, m) for m in result.metrics]
        metrics += [LabelMetric(label, _jaccard(c)) for c in result.confusions]
        confusions += [(label, c) for c in result.confusions]
        curves += [(label, c) for c in result.curves]
    metrics += [LabelMetric(None, replace(m, metric=f"{m.metric}_micro")) for m in micro.metrics]
    curves += [(None, replace(c, name=f"{c.name}_micro")) for c in micro.curves]
    metrics += [LabelMetric(None, m) for m in _averaged(state, per_label, micro, thresholds)]
    metrics += [
        LabelMetric(None, m) for m in example_metrics(state, layout, thresholds, micro, confidence)
    ]
    return MultilabelEvaluation(metrics, confusions, curves, per_label)
