"""Custom metrics ([[metrics.custom]]) and the operating-point measures
(KS, Gini, informedness, markedness, likelihood ratios, diagnostic odds ratio).

Oracles: brute-force numpy over the raw rows (counts at ``score >= t``) and
scikit-learn. Tolerances: 1e-9 relative where the binned value is exact
(thresholds are bin edges; scores on edges); for continuous scores the exact KS
must lie inside the reported bound in every one of 1,000 random trials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest
from sklearn import metrics as skm

from clfeval.config import parse_config
from clfeval.core.binary import BinaryState, evaluate, ks_statistic
from clfeval.core.bins import make_layout
from clfeval.core.expressions import CustomMetric, ExpressionError, parse_expression
from clfeval.errors import ConfigError

THRESHOLDS = (0.05, 0.3, 0.5)
LAYOUT = make_layout("logit", 200, -8.0, 8.0, THRESHOLDS)
RTOL = 1e-9

RECALL = CustomMetric("my_recall", parse_expression("tp / (tp + fn)"), "max")
NET = CustomMetric("net_benefit", parse_expression("(tp - 3 * fp) / n"), "max")
CUSTOM = (
    CustomMetric("gated", parse_expression("(precision > 0.2) * max(recall, 0.5) + sqrt(f1)")),
    RECALL,
    NET,
    CustomMetric("lift", parse_expression("precision / prevalence")),
    CustomMetric("auc_recall", parse_expression("roc_auc * recall")),
)


def rows(seed: int, n: int = 3000, edges: bool = True, weighted: bool = False):
    rng = np.random.default_rng(seed)
    p = rng.choice(LAYOUT.edges, size=n) if edges else rng.beta(2, 5, n)
    y = (rng.random(n) < 0.1 + 0.8 * p).astype(int)
    w = rng.gamma(2.0, 1.0, n) if weighted else np.ones(n)
    return y, p, w


def cells(y, p, w, t):
    pred = p >= t
    return (
        float(w[pred & (y == 1)].sum()),
        float(w[pred & (y == 0)].sum()),
        float(w[~pred & (y == 0)].sum()),
        float(w[~pred & (y == 1)].sum()),
    )


def by_key(result) -> dict:
    return {(m.metric, m.threshold): m for m in result.metrics}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_operating_point_measures_equal_numpy_at_each_threshold(seed, weighted) -> None:
    y, p, w = rows(seed, weighted=weighted)
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    got = by_key(evaluate(state, LAYOUT, THRESHOLDS, 1.0, custom=CUSTOM))
    for t in THRESHOLDS:
        tp, fp, tn, fn = cells(y, p, w, t)
        tpr, fpr, tnr, fnr = tp / (tp + fn), fp / (fp + tn), tn / (tn + fp), fn / (fn + tp)
        precision, npv = tp / (tp + fp), tn / (tn + fn)
        expected = {
            "informedness": tpr + tnr - 1,
            "markedness": precision + npv - 1,
            "lr_plus": tpr / fpr,
            "lr_minus": fnr / tnr,
            "diagnostic_odds_ratio": (tp * tn) / (fp * fn),
            "my_recall": tpr,
            "net_benefit": (tp - 3 * fp) / (tp + fp + tn + fn),
            "lift": precision / ((tp + fn) / (tp + fp + tn + fn)),
        }
        for name, value in expected.items():
            assert got[(name, t)].value == pytest.approx(value, rel=RTOL), (name, t)
        assert got[("my_recall", t)].value == pytest.approx(got[("recall", t)].value, rel=1e-12)
        assert got[("my_recall", t)].numerator == pytest.approx(tp, rel=RTOL)
        assert got[("my_recall", t)].denominator == pytest.approx(tp + fn, rel=RTOL)
    auc = skm.roc_auc_score(y, p, sample_weight=w)
    assert got[("gini", None)].value == pytest.approx(2 * auc - 1, rel=RTOL)


def exact_ks(y, p, w) -> float:
    """max over every threshold (each distinct score, and above all) of |TPR − FPR|."""
    order = np.argsort(-p, kind="stable")
    p, y, w = p[order], y[order], w[order]
    tpr = np.cumsum(w * y) / (w * y).sum()
    fpr = np.cumsum(w * (1 - y)) / (w * (1 - y)).sum()
    last_of_each_score = np.r_[p[1:] != p[:-1], True]
    return float(np.max(np.abs(tpr - fpr)[last_of_each_score], initial=0.0))


def test_ks_equals_scipy_on_edge_scores_and_lies_inside_its_bound_always() -> None:
    from scipy.stats import ks_2samp

    y, p, w = rows(3)
    value = ks_statistic(BinaryState.from_scores(LAYOUT, y, p, w))
    assert value.value == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, rel=RTOL)
    rng = np.random.default_rng(11)
    widths = []
    for trial in range(1000):
        y, p, w = random_rows(rng, trial)
        ks = ks_statistic(BinaryState.from_scores(LAYOUT, y, p, w))
        exact = exact_ks(y, p, w)
        assert ks.bound_lower - 1e-12 <= exact <= ks.bound_upper + 1e-12, (trial, ks, exact)
        if trial % 4 in (0, 3):  # continuous scores
            widths.append((len(p), ks.bound_upper - ks.bound_lower))
    # Not a vacuous bound: continuous scores over 200 bins leave it narrow.
    large = [width for n, width in widths if n >= 200]
    assert 0 < np.median(large) < 0.05, np.median(large)


def test_custom_curve_and_its_recommended_threshold_equal_brute_force() -> None:
    y, p, w = rows(4, weighted=True)
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    result = evaluate(state, LAYOUT, THRESHOLDS, 1.0, custom=CUSTOM)
    curve = next(c for c in result.curves if c.name == "net_benefit")
    assert len(curve.x) == len(np.unique(p))  # one point per occupied bin
    for t, value in zip(curve.x, curve.y, strict=True):
        tp, fp, tn, fn = cells(y, p, w, t)
        assert value == pytest.approx((tp - 3 * fp) / (tp + fp + tn + fn), rel=RTOL)
    best = by_key(result)
    chosen = next(m for m in result.metrics if m.metric == "recommended_threshold_net_benefit")
    assert chosen.value == pytest.approx(float(np.max(curve.y)), rel=RTOL)
    assert chosen.threshold == float(curve.x[int(np.argmax(curve.y))])
    # the recommended threshold comes with its confusion matrix and every metric there
    assert chosen.threshold in {c.threshold for c in result.confusions}
    assert ("net_benefit", chosen.threshold) in best


def test_delta_method_interval_of_recall_is_walds() -> None:
    y, p, w = rows(5)
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    got = by_key(evaluate(state, LAYOUT, THRESHOLDS, 1.0, custom=CUSTOM))
    z = NormalDist().inv_cdf(0.975)
    for t in THRESHOLDS:
        r = got[("my_recall", t)]
        half = z * np.sqrt(r.value * (1 - r.value) / int(y.sum()))
        assert r.ci_lower == pytest.approx(r.value - half, rel=1e-9)
        assert r.ci_upper == pytest.approx(r.value + half, rel=1e-9)
        lift = got[("lift", t)]  # a function of the cells alone: an interval around it
        assert lift.ci_lower < lift.value < lift.ci_upper
        mixed = got[("auc_recall", t)]  # reads the threshold-free AUC: no interval
        assert mixed.value is not None and mixed.ci_lower is None


HOSTILE = [
    "__import__('os').system('true')",
    "tp.__class__",
    "lambda: tp",
    "(lambda x: x)(tp)",
    "tp ** 1000000",
    "tp ** fp",
    "no_such_count / tp",
    "tp[0]",
    "'text'",
    "open('/etc/passwd')",
    "tp if fp else tn",
    "[tp, fp]",
    "(" * 500 + "tp" + ")" * 500,
    "tp +",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_expressions_are_configuration_errors_naming_the_key(text) -> None:
    raw = {
        "input": {"path": "/data/predictions"},
        "metrics": {"custom": [{"name": "mine", "expression": text}]},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert "metrics.custom[0].expression (mine)" in str(info.value)


def test_names_optimize_and_parser_errors() -> None:
    base = {"input": {"path": "/data/predictions"}}
    bad = [
        ({"name": "recall", "expression": "tp"}, "already a metric's name"),
        ({"name": "Bad Name", "expression": "tp"}, "lower-case"),
        ({"name": "ok", "expression": "tp", "optimize": "up"}, "optimize"),
        ({"name": "ok", "expression": "tp", "colour": 1}, "metrics.custom[0].colour"),
    ]
    for item, words in bad:
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_config({**base, "metrics": {"custom": [item]}})
    with pytest.raises(ExpressionError, match="'os'"):
        parse_expression("os + 1")
    tree = parse_expression("max(tp, fp) / sqrt(n) + log(p) - abs(-fn) * exp(0) + (tp > fp)")
    value = tree.evaluate(
        {"tp": np.array([4.0]), "fp": np.array([1.0]), "n": 16.0, "p": np.e, "fn": 2.0}
    )
    assert value[0] == pytest.approx(4 / 4 + 1 - 2 + 1)
    assert np.isnan(parse_expression("tp / fp").evaluate({"tp": 1.0, "fp": 0.0})[0])
    assert np.isnan(parse_expression("log(fp)").evaluate({"fp": 0.0})[0])


def test_a_custom_config_has_the_same_fingerprint_in_every_process() -> None:
    """Incremental runs continue from a run with the same results fingerprint:
    it must not depend on the process (set order follows PYTHONHASHSEED)."""
    code = (
        "from clfeval.config import parse_config;"
        "print(parse_config({'input': {'path': '/p'}, 'metrics': {'custom': ["
        "{'name': 'a', 'expression': 'tp / (tp + fn + fp + tn) + recall * n_tp'}]}})"
        ".results_fingerprint())"
    )
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(prints) == 1, prints


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_custom_metrics_are_per_class_one_vs_rest_and_macro(weighted) -> None:
    """Per class on its one-vs-rest counts at the predicted class: ``tp / (tp + fn)``
    is scikit-learn's per-class recall, ``fp / (fp + tn)`` its one-vs-rest FPR;
    ``<name>_macro`` their mean."""
    from clfeval.core.multiclass import MulticlassState, evaluate_multiclass

    rng = np.random.default_rng(7)
    K, n = 4, 800
    y = rng.choice(K, size=n, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(0.0, 1.0, (n, K))
    logits[np.arange(n), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    w = rng.uniform(0.2, 3.0, n) if weighted else np.ones(n)
    classes = tuple(f"c{k}" for k in range(K))
    layout = make_layout("logit", 960, -12.0, 12.0, (0.5,))
    custom = (
        CustomMetric("class_recall", parse_expression("tp / (tp + fn)")),
        CustomMetric("class_fpr", parse_expression("fp / (fp + tn)")),
    )
    state = MulticlassState.from_scores(layout, y, probs, w)
    result = evaluate_multiclass(state, classes, layout, custom=custom)
    got = {(m.class_label, m.metric.metric): m.metric.value for m in result.metrics}
    pred = probs.argmax(axis=1)
    recalls = skm.recall_score(y, pred, average=None, sample_weight=w)
    for k, label in enumerate(classes):
        assert got[(label, "class_recall")] == pytest.approx(recalls[k], rel=RTOL)
        negatives = y != k
        fpr = w[negatives & (pred == k)].sum() / w[negatives].sum()
        assert got[(label, "class_fpr")] == pytest.approx(fpr, rel=RTOL)
    assert got[(None, "class_recall_macro")] == pytest.approx(recalls.mean(), rel=RTOL)


@pytest.mark.spark
def test_custom_metrics_end_to_end_equal_the_built_ins_in_every_row(
    spark, demo_output, tmp_path
) -> None:
    """A run of the demo config (which defines ``net_savings``) plus ``tp / (tp + fn)``:
    that custom metric equals ``recall`` in every metrics row (binary: per
    threshold; multiclass: per class), its curves are written, and the demo's
    ``net_savings`` has a recommended threshold with its confusion matrix."""
    from pathlib import Path

    from clfeval.config import load_config
    from clfeval.io import tables
    from clfeval.pipeline import run_evaluation

    root = Path(__file__).resolve().parents[1]
    extra = '{name = "my_recall", expression = "tp / (tp + fn)"}'
    for name, data in (
        ("demo.toml", "predictions"),
        ("demo_multiclass.toml", "predictions_multiclass"),
    ):
        custom = f"metrics.custom=[{extra}]"
        if name == "demo.toml":
            custom = (
                f"metrics.custom=[{extra}, "
                '{name = "net_savings", expression = "(20 * tp - fp) / n", optimize = "max"}]'
            )
        config = load_config(
            root / "conf" / name,
            [
                f"input.path={demo_output / data}",
                f"output.path={tmp_path}",
                custom,
                "metrics.max_bound_width=1e-9",
            ],
        )
        lines: list[str] = []
        run_evaluation(spark, config, log=lines.append)
        notes = [line for line in lines if "metrics.max_bound_width" in line]
        assert len(notes) == 1 and "binned value(s) have bounds wider than 1e-09" in notes[0]
    metrics = tables.read_table(spark, tables.output_location(config, "metrics")).toPandas()
    keys = ["model_name", "model_version", "slice_key", "slice_value", "granularity"]
    keys += ["window_start", "class_label", "threshold"]
    recall = metrics[metrics.metric == "recall"].set_index(keys).value
    mine = metrics[metrics.metric == "my_recall"].set_index(keys).value
    assert len(mine) == len(recall) > 0
    assert set(metrics.model_name[metrics.metric == "my_recall"]) == {
        "fraud_detector",
        "churn_model",
        "species_classifier",
    }
    joined = recall.to_frame("recall").join(mine.to_frame("mine"), how="outer")
    assert joined.recall.isna().equals(joined.mine.isna())
    np.testing.assert_allclose(joined.mine, joined.recall, rtol=1e-12)
    curves = tables.read_table(spark, tables.output_location(config, "curves"))
    assert curves.where("curve = 'net_savings' AND y IS NOT NULL").count() > 0
    top = metrics[(metrics.metric == "recall_at_top_0.01") & metrics.value.notna()]
    assert len(top) > 0 and (top.bound_lower <= top.value).all()  # the demo's budget
    assert (top.value <= top.bound_upper).all()
    chosen = metrics[metrics.metric == "recommended_threshold_net_savings"]
    assert len(chosen) > 0 and chosen.threshold.notna().all()
    confusion = tables.read_table(spark, tables.output_location(config, "confusion_matrices"))
    thresholds = {r.threshold for r in confusion.select("threshold").distinct().collect()}
    assert set(chosen.threshold) <= thresholds


def random_rows(rng, trial: int):
    """Random rows of one trial: continuous scores, heavy ties or exact 0/1 in
    turn, weighted every other trial, both classes present."""
    n = int(rng.integers(5, 400))
    kind = trial % 4
    if kind == 0:
        p = rng.beta(2, 5, n)
    elif kind == 1:
        p = rng.choice([0.1, 0.2, 0.2001, 0.7], n)
    elif kind == 2:
        p = rng.choice([0.0, 1.0, 0.5, 0.3], n)
    else:
        p = rng.random(n)
    y = (rng.random(n) < 0.2 + 0.6 * p).astype(int)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    w = rng.gamma(1.0, 1.0, n) if trial % 2 else np.ones(n)
    return y, p, w


def test_average_precision_and_partial_auc_lie_inside_their_bounds_always() -> None:
    """scikit-learn's exact AP and McClish partial AUC (max_fpr 0.1 and 0.3) inside
    the reported bounds in each of 1,000 random trials (ties, exact 0/1, weights)."""
    from clfeval.core.binary import average_precision_metric, partial_roc_auc

    rng = np.random.default_rng(21)
    for trial in range(1000):
        y, p, w = random_rows(rng, trial)
        state = BinaryState.from_scores(LAYOUT, y, p, w)
        ap = average_precision_metric(state, LAYOUT)
        exact = skm.average_precision_score(y, p, sample_weight=w)
        assert ap.bound_lower - 1e-12 <= exact <= ap.bound_upper + 1e-12, (trial, ap, exact)
        assert ap.bound_lower <= ap.value <= ap.bound_upper
        for max_fpr in (0.1, 0.3):
            raw, mcclish = partial_roc_auc(state, max_fpr)
            exact = skm.roc_auc_score(y, p, sample_weight=w, max_fpr=max_fpr)
            assert mcclish.bound_lower - 1e-12 <= exact <= mcclish.bound_upper + 1e-12, trial
            assert raw.bound_lower <= raw.value <= raw.bound_upper


@pytest.mark.parametrize("weighted", [False, True])
def test_partial_auc_and_skill_scores_equal_sklearn_on_edge_scores(weighted) -> None:
    y, p, w = rows(6, weighted=weighted)
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    got = by_key(evaluate(state, LAYOUT, THRESHOLDS, 1.0, partial_fprs=(0.1, 0.5)))
    for max_fpr in (0.1, 0.5):
        expected = skm.roc_auc_score(y, p, sample_weight=w, max_fpr=max_fpr)
        value = got[(f"partial_roc_auc_mcclish_{max_fpr:g}", None)].value
        assert value == pytest.approx(expected, rel=RTOL)
    assert got[("average_precision", None)].value == pytest.approx(
        skm.average_precision_score(y, p, sample_weight=w), rel=RTOL
    )
    prevalence = np.average(y, weights=w)
    brier = skm.brier_score_loss(y, p, sample_weight=w)
    base_loss = skm.log_loss(y, np.full(y.size, prevalence), sample_weight=w)
    loss = skm.log_loss(y, p, sample_weight=w)
    skill = got[("brier_skill_score", None)].value
    assert skill == pytest.approx(1 - brier / (prevalence * (1 - prevalence)), rel=RTOL)
    assert got[("log_loss_skill_score", None)].value == pytest.approx(
        1 - loss / base_loss, rel=1e-7
    )


def test_gains_lift_and_expected_cost_curves_equal_brute_force() -> None:
    from clfeval.core.binary import ThresholdPolicy

    y, p, w = rows(8, weighted=True)
    state = BinaryState.from_scores(LAYOUT, y, p, w)
    policy = ThresholdPolicy(cost_fp=1.0, cost_fn=7.0)
    result = evaluate(
        state,
        LAYOUT,
        THRESHOLDS,
        1.0,
        policy=policy,
        extra_curves=("gains", "lift", "expected_cost"),
    )
    curves = {c.name: c for c in result.curves}
    total, prevalence = w.sum(), np.average(y, weights=w)
    for k, t in enumerate(curves["gains"].thresholds):
        tp, fp, _tn, fn = cells(y, p, w, t)
        flagged = (tp + fp) / total
        assert curves["gains"].x[k] == pytest.approx(flagged, rel=RTOL)
        assert curves["gains"].y[k] == pytest.approx(tp / (tp + fn), rel=RTOL)
        assert curves["lift"].y[k] == pytest.approx(tp / (tp + fp) / prevalence, rel=RTOL)
        assert curves["expected_cost"].y[k] == pytest.approx((fp + 7 * fn) / total, rel=RTOL)
    assert "gains" not in {c.name for c in evaluate(state, LAYOUT, THRESHOLDS, 1.0).curves}


def test_budgets_and_constrained_rates_lie_inside_their_bounds_always() -> None:
    """Budgets (top 1%, 10%, 50% of the weight flagged) against flagging the
    sorted rows (ties in either order, the last row in part), and recall at FPR,
    precision at recall and specificity at sensitivity against every exact
    threshold: inside the bounds in each of 1,000 random trials; the values
    equal brute force where scores sit on bin edges."""
    from clfeval.core.binary import OperatingPoints, operating_point_metrics

    points = OperatingPoints(
        budgets=(0.01, 0.1, 0.5),
        recall_at_fpr=(0.05, 0.2),
        precision_at_recall=(0.5, 0.9),
        specificity_at_sensitivity=(0.8,),
    )
    rng = np.random.default_rng(31)
    for trial in range(1000):
        y, p, w = random_rows(rng, trial)
        state = BinaryState.from_scores(LAYOUT, y, p, w)
        got = {m.metric: m for m in operating_point_metrics(state, LAYOUT, points)}
        P, T = float(w[y == 1].sum()), float(w.sum())
        for reverse_ties in (False, True):
            key = (-p, y if reverse_ties else -y)  # ties: negatives or positives first
            order = np.lexsort(key[::-1])
            cw, cp = np.cumsum(w[order]), np.cumsum((w * y)[order])
            for q in points.budgets:
                k = int(np.searchsorted(cw, q * T))
                k = min(k, len(cw) - 1)
                before_w = cw[k - 1] if k else 0.0
                before_p = cp[k - 1] if k else 0.0
                tp = before_p + (q * T - before_w) * y[order][k]
                for name, exact in (
                    (f"recall_at_top_{q:g}", tp / P),
                    (f"precision_at_top_{q:g}", tp / (q * T)),
                ):
                    m = got[name]
                    assert m.bound_lower - 1e-9 <= exact <= m.bound_upper + 1e-9, (trial, name)
        # every threshold the exact scores allow: each distinct score, and above all
        cuts = np.r_[np.inf, np.unique(p)]
        tps = np.array([w[(p >= t) & (y == 1)].sum() for t in cuts]) / P
        fps = np.array([w[(p >= t) & (y == 0)].sum() for t in cuts]) / float(w[y == 0].sum())
        flagged = np.array([w[p >= t].sum() for t in cuts])
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(flagged > 0, tps * P / flagged, np.nan)
        exact = {
            **{f"recall_at_fpr_{x:g}": np.max(tps[fps <= x]) for x in points.recall_at_fpr},
            **{
                f"precision_at_recall_{x:g}": np.nanmax(np.where(tps >= x, precision, np.nan))
                for x in points.precision_at_recall
            },
            **{
                f"specificity_at_sensitivity_{x:g}": np.max(1 - fps[tps >= x])
                for x in points.specificity_at_sensitivity
            },
        }
        for name, value in exact.items():
            m = got[name]
            assert m.bound_lower - 1e-9 <= value <= m.bound_upper + 1e-9, (trial, name, m, value)
    y, p, w = rows(9, weighted=True)  # scores on edges: the values are exact
    got = {
        m.metric: m
        for m in operating_point_metrics(BinaryState.from_scores(LAYOUT, y, p, w), LAYOUT, points)
    }
    cuts = np.r_[np.inf, np.unique(p)]
    tps = np.array([w[(p >= t) & (y == 1)].sum() for t in cuts]) / w[y == 1].sum()
    fps = np.array([w[(p >= t) & (y == 0)].sum() for t in cuts]) / w[y == 0].sum()
    for x in points.recall_at_fpr:
        assert got[f"recall_at_fpr_{x:g}"].value == pytest.approx(np.max(tps[fps <= x]), rel=RTOL)


def test_interval_gradients_equal_finite_differences() -> None:
    """The delta method's gradient (forward-mode through the tree and the
    built-ins' definitions) against central differences of the evaluated value."""
    from clfeval.core.expressions import CELLS, _differentiate, count_values

    cells = np.array([40.0, 12.0, 300.0, 9.0])
    for text in (
        "tp / (tp + fn)",
        "mcc * f1 - log(npv) + markedness ** 2",
        "max(precision, recall) / sqrt(n) + exp(-fpr) - abs(tp - 3 * fp) / p",
        "prevalence * balanced_accuracy + informedness * accuracy",
    ):
        tree = parse_expression(text)
        _, gradient = _differentiate(tree.tree, cells)

        def value(x: np.ndarray, tree=tree) -> float:
            arrays = [np.asarray([v]) for v in x]
            counts = {c: np.asarray([0.0]) for c in ("n_tp", "n_fp", "n_tn", "n_fn")}
            return float(tree.evaluate(count_values(*arrays, counts))[0])

        for i in range(len(CELLS)):
            step = np.zeros(4)
            step[i] = 1e-4 * cells[i]
            numeric = (value(cells + step) - value(cells - step)) / (2 * step[i])
            assert gradient[i] == pytest.approx(numeric, rel=1e-5, abs=1e-9), (text, i)
