"""The rows a report shows, read from the output tables with every filter in Spark.

Each table is filtered by model, versions, granularities, window range and
slices before anything reaches the driver; the score distribution is re-binned
by Spark to ``DISTRIBUTION_BUCKETS`` uniform score buckets. Nothing here asks
which task wrote the rows: the report shows what the tables hold (per-class
rows are the rows of a metric that has more than one ``class_label``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import reduce

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clfeval.config import Config
from clfeval.errors import ConfigError
from clfeval.io import tables
from clfeval.schema import LABEL_COVERAGE, REJECTED_ROWS

# Whole-model metrics of the headline and the trends, in display order; a
# report shows those the metrics table holds for the model.
HEADLINE_METRICS = (
    "roc_auc",
    "roc_auc_ovr_macro",
    "roc_auc_ovr_weighted",
    "roc_auc_micro",
    "roc_auc_macro",
    "average_precision",
    "average_precision_micro",
    "accuracy",
    "subset_accuracy",
    "hamming_loss",
    "jaccard_samples",
    "balanced_accuracy",
    "top_2_accuracy",
    "top_3_accuracy",
    "top_5_accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "f1_samples",
    "mcc",
    "log_loss",
    "brier_score",
    "ece",
    "top_label_ece",
    "prevalence",
)
# Metrics written per class (a metric with several class labels).
PER_CLASS_METRICS = (
    "precision",
    "recall",
    "f1",
    "support",
    "prevalence",
    "roc_auc",
    "average_precision",
    "ece",
)
# Metrics of the slice explorer (every slice, not only the overall one).
SLICE_METRICS = (
    "roc_auc",
    "roc_auc_ovr_macro",
    "roc_auc_micro",
    "average_precision",
    "accuracy",
    "hamming_loss",
    "f1_macro",
    "precision",
    "recall",
    "log_loss",
    "brier_score",
    "top_label_ece",
    "prevalence",
)
RECOMMENDED_PREFIX = "recommended_threshold_"
CURVES = ("roc", "pr", "calibration", "calibration_top_label")
DISTRIBUTION_BUCKETS = 20


@dataclass(frozen=True)
class ReportSelection:
    """Which rows a report reads; an empty tuple means every one the tables hold."""

    model: str
    versions: tuple[str, ...] = ()
    granularities: tuple[str, ...] = ()
    since: dt.date | None = None  # first window_start shown
    until: dt.date | None = None  # last window_start shown
    slice_keys: tuple[str, ...] | None = None  # None: every slice key; () none but overall


@dataclass
class ReportData:
    """The filtered rows of one model as pandas frames (what the page embeds)."""

    selection: ReportSelection
    metrics: pd.DataFrame
    curves: pd.DataFrame
    confusion: pd.DataFrame
    alerts: pd.DataFrame
    distribution: pd.DataFrame
    runs: pd.DataFrame
    config_hash: str = ""
    results_hash: str = ""
    weight_column: str | None = None
    confidence_level: float = 0.95
    thresholds: tuple[float, ...] = ()
    class_order: tuple[str, ...] = ()
    champion: str | None = None
    sources: dict[str, str] = field(default_factory=dict)


def _isin(name: str, values: tuple[str, ...]) -> Column:
    return F.col(name).isin(*[F.lit(v) for v in values])


def _key_filter(selection: ReportSelection) -> Column:
    """Model, versions, granularities and window range as one Column predicate."""
    parts = [F.col("model_name") == F.lit(selection.model)]
    if selection.versions:
        parts.append(_isin("model_version", selection.versions))
    if selection.granularities:
        parts.append(_isin("granularity", selection.granularities))
    if selection.since is not None:
        parts.append(F.col("window_start") >= F.lit(selection.since))
    if selection.until is not None:
        parts.append(F.col("window_start") <= F.lit(selection.until))
    return reduce(lambda a, b: a & b, parts)


def _overall() -> Column:
    return (F.col("slice_key") == F.lit("")) & (F.col("slice_value") == F.lit(""))


def _slice_filter(selection: ReportSelection) -> Column:
    if selection.slice_keys is None:
        return F.col("slice_key") != F.lit("")
    if not selection.slice_keys:
        return F.lit(False)
    return _isin("slice_key", selection.slice_keys)


def _read(spark: SparkSession, config: Config, name: str) -> DataFrame | None:
    loc = tables.output_location(config, name)
    return tables.read_table(spark, loc) if tables.table_exists(spark, loc) else None


def score_distribution(histograms: DataFrame, where: Column, buckets: int) -> DataFrame:
    """Rows per (version, window, class_label, score bucket) of the overall
    slice, from the documented state columns only: the rows with a class and
    a ``bin`` (multiclass confusion and rank rows have no bin, multilabel example
    rows no class), whose bin
    [bin_lower, bin_upper) falls in the uniform bucket of its midpoint, and
    ``n_pos`` / ``n_neg`` (rows whose label is / is not ``class_label``) summed
    over every other column of the state, whatever breakdown it keeps."""
    middle = (F.col("bin_lower") + F.col("bin_upper")) / 2
    bucket = F.least(F.floor(middle * buckets), F.lit(buckets - 1)).cast("int")
    return (
        histograms.where(
            where & _overall() & F.col("bin").isNotNull() & F.col("class_label").isNotNull()
        )
        .groupBy(
            "model_version", "granularity", "window_start", "class_label", bucket.alias("bucket")
        )
        .agg(F.sum("n_pos").alias("n_pos"), F.sum("n_neg").alias("n_neg"))
    )


def load_report_data(
    spark: SparkSession, config: Config, selection: ReportSelection, champion: str | None = None
) -> ReportData:
    """Read the selection's rows; a model, version or window range without
    metric rows is a ConfigError naming it and the table."""
    metrics_loc = tables.output_location(config, "metrics")
    metrics = _read(spark, config, "metrics")
    if metrics is None:
        raise ConfigError([f"no metrics table at {metrics_loc}: run jobs/evaluate.py first"])
    keys = _key_filter(selection)
    overall_metrics = (*HEADLINE_METRICS, *PER_CLASS_METRICS, LABEL_COVERAGE)
    wanted = (
        _overall()
        & (_isin("metric", overall_metrics) | F.col("metric").startswith(RECOMMENDED_PREFIX))
    ) | (_slice_filter(selection) & _isin("metric", SLICE_METRICS))
    columns = [
        "model_version", "slice_key", "slice_value", "granularity", "window_start", "window_end",
        "metric",
        "class_label", "threshold", "value", "ci_lower", "ci_upper", "n_rows", "weight_total",
    ]  # fmt: skip
    # Threshold metrics at the configured thresholds only (the table also holds
    # them at each recommended threshold).
    configured = F.col("threshold").isin(*[F.lit(float(t)) for t in config.metrics.thresholds])
    at_threshold = F.col("threshold").isNull() | configured
    at_threshold = at_threshold | F.col("metric").startswith(RECOMMENDED_PREFIX)
    metric_rows = metrics.where(keys & wanted & at_threshold).select(*columns).toPandas()
    if metric_rows.empty:
        _explain_empty(metrics, selection, metrics_loc)
    # Rejected rows are counted per day: the days of every window shown.
    no_range = ReportSelection(selection.model, selection.versions, granularities=("day",))
    days = (
        _key_filter(no_range)
        & _overall()
        & (F.col("metric") == F.lit(REJECTED_ROWS))
        & (F.col("window_start") >= F.lit(min(metric_rows.window_start)))
        & (F.col("window_start") < F.lit(max(metric_rows.window_end)))
    )
    rejected_days = metrics.where(days).select(*columns).toPandas()
    metric_rows = pd.concat([metric_rows, rejected_days], ignore_index=True)
    curves = _read(spark, config, "curves")
    curve_rows = (
        curves.where(keys & _overall() & _isin("curve", CURVES))
        .select(
            "model_version",
            "granularity",
            "window_start",
            "curve",
            "class_label",
            "point",
            "threshold",
            "x",
            "y",
        )
        .toPandas()
        if curves is not None
        else pd.DataFrame()
    )
    confusion = _read(spark, config, "confusion_matrices")
    confusion_rows = (
        confusion.where(keys & _overall())
        .select(
            "model_version",
            "granularity",
            "window_start",
            "threshold",
            "actual_label",
            "predicted_label",
            "n_rows",
            "weight",
        )
        .toPandas()
        if confusion is not None
        else pd.DataFrame()
    )
    alerts = _read(spark, config, "alerts")
    alert_rows = (
        alerts.where(keys & (_overall() | _slice_filter(selection)))
        .select(
            "rule",
            "model_version",
            "slice_key",
            "slice_value",
            "granularity",
            "window_start",
            "metric",
            "class_label",
            "threshold",
            "value",
            "condition",
            "limit",
            "baseline",
            "baseline_value",
            "change",
        )
        .toPandas()
        if alerts is not None
        else pd.DataFrame()
    )
    histograms = _read(spark, config, "score_histograms")
    distribution = (
        score_distribution(histograms, keys, DISTRIBUTION_BUCKETS).toPandas()
        if histograms is not None
        else pd.DataFrame()
    )
    runs = tables.read_runs(spark, config)
    run_rows = (
        runs.where(F.col("status") == F.lit("succeeded"))
        .orderBy(F.col("started_at").desc())
        .limit(50)
        .select(
            "run_id",
            "started_at",
            "mode",
            "input",
            "input_versions",
            "config_hash",
            "results_hash",
            "windows",
        )
        .toPandas()
        if runs is not None
        else pd.DataFrame()
    )
    return ReportData(
        selection=selection,
        metrics=metric_rows,
        curves=curve_rows,
        confusion=confusion_rows,
        alerts=alert_rows,
        distribution=distribution,
        runs=run_rows,
        config_hash=config.fingerprint(),
        results_hash=config.results_fingerprint(),
        weight_column=config.input.weight_column,
        confidence_level=config.metrics.confidence_level,
        thresholds=tuple(config.metrics.thresholds),
        class_order=tuple(str(c) for c in config.task.classes),
        champion=champion or _configured_champion(config),
        sources={"metrics": str(metrics_loc)},
    )


def _configured_champion(config: Config) -> str | None:
    baseline = config.output.drift_baseline or ""
    return baseline.split(":", 1)[1] if baseline.startswith("champion:") else None


def _explain_empty(metrics: DataFrame, selection: ReportSelection, loc: object) -> None:
    """Raise the ConfigError that names what of the selection has no rows."""
    model_rows = metrics.where(F.col("model_name") == F.lit(selection.model))
    if model_rows.limit(1).count() == 0:
        raise ConfigError([f"--model {selection.model!r}: no rows in {loc}"])
    if selection.versions:
        found = {
            r.model_version
            for r in model_rows.where(_isin("model_version", selection.versions))
            .select("model_version")
            .distinct()
            .collect()
        }
        missing = [v for v in selection.versions if v not in found]
        if missing:
            raise ConfigError(
                [f"--version {missing[0]!r}: no rows of {selection.model!r} in {loc}"]
            )
    raise ConfigError(
        [
            f"no metric rows of {selection.model!r} in {loc} for granularities "
            f"{list(selection.granularities) or 'all'} and windows from "
            f"{selection.since or 'the first'} to {selection.until or 'the last'}"
        ]
    )
