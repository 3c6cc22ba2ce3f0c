"""The only module that sequences the steps of an evaluation run.

check config, input contract and row filter -> record the run as 'running' ->
one scan to per-bin states (binary or multiclass) -> count rejects (fail before
writing if too many; optional quarantine) -> write the daily
``score_histograms`` -> sum stored days into the rollup windows that contain
them (week, month, rolling) -> derive ``metrics``, ``confusion_matrices`` and
``curves`` for every written window from the stored histograms -> optional
``metric_changes`` (drift) and ``alerts`` -> record the run as 'succeeded'.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clfeval import __version__
from clfeval.config import Config
from clfeval.core import alerts, windows
from clfeval.core.binary import BinaryState, evaluate
from clfeval.core.multiclass import evaluate_multiclass
from clfeval.core.windows import WindowRange
from clfeval.errors import ConfigError, ContractError, RejectLimitError
from clfeval.io import tables
from clfeval.spark import aggregate, contract, derive
from clfeval.spark import changes as spark_changes

Log = Callable[[str], None]


@dataclass
class RunResult:
    run_id: str
    status: str
    rows_read: int = 0
    rows_evaluated: int = 0
    reject_counts: dict[str, int] = field(default_factory=dict)
    window: tuple[dt.date, dt.date] | None = None
    output_versions: dict[str, int] = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Rows not in the metrics: bad rows and rows ``input.filter`` left out."""
        return sum(self.reject_counts.values())

    @property
    def rows_bad(self) -> int:
        """Rejected rows that count towards ``run.max_reject_fraction``."""
        return self.rows_rejected - self.reject_counts.get(contract.EXCLUDED_BY_FILTER, 0)


class _Phases:
    """One console line per phase, with the time since the run started."""

    def __init__(self, log: Log):
        self.log = log
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        self.log(f"[clfeval {time.monotonic() - self.started:7.1f}s] {text}")


def negative_label_name(config: Config) -> str:
    negatives = config.negative_label_texts()
    if len(negatives) == 1:
        return negatives[0]
    return f"not_{config.positive_label_text()}"


def _read_input(spark: SparkSession, config: Config) -> tuple[DataFrame, int | None]:
    loc = tables.input_location(config)
    if not tables.table_exists(spark, loc):
        key = "input.table" if config.input.table else "input.path"
        raise ContractError([f"{key}: {loc} does not exist or is not a Delta table"])
    raw = tables.read_table(spark, loc)
    contract.check_contract(raw.schema, config)
    contract.check_filter(raw, config)
    return raw, tables.table_version(spark, loc)


def run_evaluation(
    spark: SparkSession,
    config: Config,
    start: dt.date | None = None,
    end: dt.date | None = None,
    log: Log = print,
) -> RunResult:
    """Evaluate the input days [start, end] (all days when None) and write every table."""
    phase = _Phases(log)
    if start is not None and end is not None and start > end:
        raise ConfigError([f"--start-date {start} is after --end-date {end}"])
    spark.conf.set("spark.sql.session.timeZone", config.run.timezone)
    layout = config.layout()
    phase(f"checking input {tables.input_location(config)}")
    raw, input_version = _read_input(spark, config)

    run_id = uuid.uuid4().hex
    result = RunResult(run_id, "running")
    tables.start_run(
        spark,
        config,
        {
            "run_id": run_id,
            "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "status": "running",
            "config_hash": config.fingerprint(),
            "code_version": __version__,
            "input": str(tables.input_location(config)),
            "input_version": input_version,
            "start_date": start,
            "end_date": end,
        },
    )
    try:
        _run(spark, config, layout, raw, start, end, result, phase)
    except BaseException as exc:
        result.status = "failed"
        tables.finish_run(
            spark, config, run_id, {**_run_fields(result), "message": str(exc)[:4000]}
        )
        raise
    result.status = "succeeded"
    tables.finish_run(spark, config, run_id, _run_fields(result))
    phase(f"run {run_id} succeeded")
    return result


def _run_fields(result: RunResult) -> dict:
    return {
        "status": result.status,
        "rows_read": result.rows_read,
        "rows_evaluated": result.rows_evaluated,
        "rows_rejected": result.rows_rejected,
        "reject_counts": result.reject_counts,
        "tables_written": sorted(result.output_versions),
        "output_versions": result.output_versions,
    }


def _run(
    spark: SparkSession,
    config: Config,
    layout,
    raw: DataFrame,
    start: dt.date | None,
    end: dt.date | None,
    result: RunResult,
    phase: _Phases,
) -> None:
    selected = contract.select_range(raw, config, start, end)
    if config.is_multiclass:
        rows = contract.normalize_multiclass(selected, config)
        k = len(config.class_texts())
        phase(f"scanning input: one aggregation to {k} classes x {layout.n_bins} bins per group")
        states = aggregate.scan_multiclass_states(rows, config, layout).persist()
    else:
        rows = contract.normalize(selected, config)
        phase(f"scanning input: one aggregation to {layout.n_bins} score bins per group")
        states = aggregate.scan_states(rows, config, layout).persist()
    try:
        per_day = aggregate.reject_counts(states).collect()
        result.rows_read = sum(int(r["n_rows"]) for r in per_day)
        for r in per_day:
            if r["reject_reason"]:
                reason = r["reject_reason"]
                result.reject_counts[reason] = result.reject_counts.get(reason, 0) + int(
                    r["n_rows"]
                )
        result.rows_evaluated = result.rows_read - result.rows_rejected
        phase(
            f"read {result.rows_read:,} rows: {result.rows_evaluated:,} evaluated, "
            f"{result.rows_rejected:,} rejected"
        )
        if result.rows_read == 0:
            phase("no input rows in the date range: nothing to write")
            return
        fraction = result.rows_bad / result.rows_read
        if fraction > config.run.max_reject_fraction:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(result.reject_counts.items()))
            raise RejectLimitError(
                [
                    f"{fraction:.2%} of {result.rows_read} rows were rejected, more than "
                    f"run.max_reject_fraction={config.run.max_reject_fraction} ({detail})"
                ]
            )
        days = [r["day"] for r in per_day if r["day"] is not None]
        if config.output.quarantine and result.rows_rejected > 0:
            phase(f"writing {result.rows_rejected:,} rejected rows to quarantine")
            result.output_versions["quarantine"] = tables.append_rows(
                spark,
                contract.rejected_rows(selected, config, result.run_id),
                tables.output_location(config, "quarantine"),
            )
        if not days:
            phase("every row was rejected: nothing to write")
            return
        window = (start or min(days), end or max(days))
        result.window = window
        day_range = WindowRange("day", window[0], window[1])
        reject_metrics = _reject_metric_rows(per_day)
        models = config.input.models
        phase(f"writing score_histograms for {window[0]} .. {window[1]}")
        histograms = aggregate.rollup_slices(states, config, layout)
        loc = tables.output_location(config, "score_histograms")
        result.output_versions["score_histograms"] = tables.replace_windows(
            spark, histograms, loc, [day_range], models
        )
    finally:
        states.unpersist()

    ranges = [day_range, *_write_rollups(spark, config, day_range, result, phase)]
    stored = _stored_histograms(spark, config, ranges)
    if config.is_multiclass:
        derived = derive.derive_multiclass_tables(
            stored,
            layout,
            config.class_texts(),
            config.task.top_k,
            config.metrics.confidence_level,
            config.metrics.calibration_bins,
            config.slices.min_slice_size,
        )
    else:
        derived = derive.derive_tables(
            stored,
            layout,
            config.metrics.thresholds,
            config.metrics.f_beta,
            config.positive_label_text(),
            negative_label_name(config),
            config.metrics.confidence_level,
            config.threshold_policy(),
            config.metrics.calibration_bins,
            config.slices.min_slice_size,
        )
    # Evaluated once per group, kept in memory (small: rows per group, not per input
    # row) while the three tables are written from it.
    derived = derived.persist()
    try:
        for name, df in derive.split_tables(derived).items():
            if name == "metrics" and reject_metrics:
                fields = [f.name for f in derive.METRICS_SCHEMA.fields]
                rows = [tuple(r.get(f) for f in fields) for r in reject_metrics]
                df = df.unionByName(spark.createDataFrame(rows, derive.METRICS_SCHEMA))
            phase(f"writing {name}")
            result.output_versions[name] = tables.replace_windows(
                spark, df, tables.output_location(config, name), ranges, models
            )
    finally:
        derived.unpersist()
    if config.output.drift:
        phase("writing metric_changes (change against the previous window and the baseline)")
        metrics = tables.read_table(spark, tables.output_location(config, "metrics"))
        if models:
            metrics = metrics.where(F.col("model_name").isin(*[F.lit(m) for m in models]))
        changes = spark_changes.metric_changes(
            metrics, tables.window_filter(ranges), config.output.drift_baseline
        )
        result.output_versions["metric_changes"] = tables.replace_windows(
            spark, changes, tables.output_location(config, "metric_changes"), ranges, models
        )
    if config.alerts:
        phase(f"evaluating {len(config.alerts)} alert rule(s)")
        result.alerts = _evaluate_alerts(spark, config, ranges)
        fields = [f.name for f in tables.ALERTS_SCHEMA.fields]
        rows = [tuple(a.get(f) for f in fields) for a in result.alerts]
        result.output_versions["alerts"] = tables.replace_windows(
            spark,
            spark.createDataFrame(rows, tables.ALERTS_SCHEMA),
            tables.output_location(config, "alerts"),
            ranges,
            models,
        )
    phase("summarizing")
    if config.is_multiclass:
        result.summary = summarize_multiclass(
            _stored_histograms(spark, config, [day_range]), config
        )
    else:
        result.summary = summarize(_stored_histograms(spark, config, [day_range]), config)


def _evaluate_alerts(spark: SparkSession, config: Config, ranges: list[WindowRange]) -> list[dict]:
    """Fire the alert rules on this run's windows; baselines from the whole metrics table.

    Only the rules' metrics and granularities reach the driver (rows per group and
    window, never per input row).
    """
    metrics = tables.read_table(spark, tables.output_location(config, "metrics")).where(
        F.col("metric").isin(*[F.lit(r.metric) for r in config.alerts])
        & F.col("granularity").isin(*[F.lit(r.granularity) for r in config.alerts])
    )
    if config.input.models:
        metrics = metrics.where(F.col("model_name").isin(*[F.lit(m) for m in config.input.models]))
    columns = [f.name for f in dataclasses.fields(alerts.MetricPoint)]
    rows = metrics.select(*columns, tables.window_filter(ranges).alias("current")).collect()

    def point(r) -> alerts.MetricPoint:
        return alerts.MetricPoint(*[r[c] for c in columns])

    history = [point(r) for r in rows]
    current = [point(r) for r in rows if r["current"]]
    return alerts.evaluate_rules(config.alerts, current, history)


def _reject_metric_rows(per_day: list) -> list[dict]:
    """``rejected_rows`` metric rows (class_label = reason) per model, version and day.

    Only rows that can be placed in a window (model, version and day known);
    all others are in the ``runs`` table's ``reject_counts``.
    """
    out = []
    for r in per_day:
        if r["reject_reason"] and r["model_name"] and r["model_version"] and r["day"]:
            out.append(
                {
                    "model_name": r["model_name"],
                    "model_version": r["model_version"],
                    "slice_key": "",
                    "slice_value": "",
                    "granularity": "day",
                    "window_start": r["day"],
                    "window_end": r["day"] + dt.timedelta(days=1),
                    "metric": "rejected_rows",
                    "class_label": r["reject_reason"],
                    "value": float(r["n_rows"]),
                    "n_rows": int(r["n_rows"]),
                }
            )
    return out


def _write_rollups(
    spark: SparkSession,
    config: Config,
    days: WindowRange,
    result: RunResult,
    phase: _Phases,
) -> list[WindowRange]:
    """Recompute and store every rollup window containing one of ``days``, from the
    stored daily histograms; returns the rollup window ranges written."""
    rollups = [g for g in config.output.granularities if g != "day"]
    if not rollups:
        return []
    loc = tables.output_location(config, "score_histograms")
    daily = _stored_histograms(
        spark, config, [WindowRange("day", dt.date(1900, 1, 1), dt.date(9999, 12, 31))]
    )
    latest = daily.agg(F.max("window_start")).first()[0] or days.last
    affected = [windows.affected(g, days.first, days.last, latest) for g in rollups]
    source = WindowRange(
        "day", min(a.source_first for a in affected), max(a.source_last for a in affected)
    )
    needed = _stored_histograms(spark, config, [source])
    phase(
        "writing rollups "
        + ", ".join(f"{a.windows.granularity} from {a.windows.first}" for a in affected)
    )
    rolled = reduce(
        DataFrame.unionByName, [aggregate.rollup_windows(needed, a.windows) for a in affected]
    )
    result.output_versions["score_histograms"] = tables.replace_windows(
        spark, rolled, loc, [a.windows for a in affected], config.input.models
    )
    return [a.windows for a in affected]


def _stored_histograms(spark: SparkSession, config: Config, ranges: list[WindowRange]) -> DataFrame:
    stored = tables.read_table(spark, tables.output_location(config, "score_histograms"))
    stored = stored.where(
        tables.window_filter(ranges) & (F.col("layout_id") == F.lit(config.layout().layout_id))
    )
    if config.input.models:
        stored = stored.where(F.col("model_name").isin(*[F.lit(m) for m in config.input.models]))
    if config.is_multiclass:
        classes = [F.lit(c) for c in config.class_texts()]
        stored = stored.where(
            F.col("true_label").isin(*classes) & F.col("class_label").isin(*classes)
        )
    else:
        stored = stored.where(F.col("true_label").isNull())
    return stored


def summarize(stored: DataFrame, config: Config) -> list[dict]:
    """Whole-window metrics per model version, overall slice (states merged in Spark)."""
    layout = config.layout()
    merged = (
        stored.where(F.col("slice_key") == F.lit(""))
        .groupBy("model_name", "model_version", "bin")
        .agg(*[F.sum(c).alias(c) for c in BinaryState.FIELDS])
        .toPandas()
    )
    threshold = config.metrics.thresholds[0]
    out = []
    for (model, version), rows in sorted(merged.groupby(["model_name", "model_version"])):
        state = derive.state_from_pandas(rows, layout.n_bins)
        values = {
            (m.metric, m.threshold): m
            for m in evaluate(state, layout, (threshold,), config.metrics.f_beta).metrics
        }
        auc = values[("roc_auc", None)]
        out.append(
            {
                "model": model,
                "version": version,
                "rows": state.n_rows,
                "positives": int(state.n_pos.sum()),
                "roc_auc": auc.value,
                "auc_lower": auc.bound_lower,
                "auc_upper": auc.bound_upper,
                "average_precision": values[("average_precision", None)].value,
                "log_loss": values[("log_loss", None)].value,
                "threshold": threshold,
                "precision": values[("precision", threshold)].value,
                "recall": values[("recall", threshold)].value,
            }
        )
    return out


def summarize_multiclass(stored: DataFrame, config: Config) -> list[dict]:
    """Whole-window multiclass metrics per model version, overall slice."""
    layout = config.layout()
    classes = config.class_texts()
    keys = ["class_label", "true_label", "predicted", "true_rank", "bin"]
    merged = (
        stored.where(F.col("slice_key") == F.lit(""))
        .groupBy("model_name", "model_version", *keys)
        .agg(*[F.sum(c).alias(c) for c in BinaryState.FIELDS])
        .toPandas()
    )
    out = []
    for (model, version), rows in sorted(merged.groupby(["model_name", "model_version"])):
        state = derive.multiclass_state_from_pandas(rows, classes, layout.n_bins)
        result = evaluate_multiclass(state, classes, layout, config.task.top_k)
        values = {m.metric.metric: m.metric for m in result.metrics if m.class_label is None}
        auc = values["roc_auc_ovr_macro"]
        out.append(
            {
                "model": model,
                "version": version,
                "rows": state.n_rows,
                "classes": len(classes),
                "accuracy": values["accuracy"].value,
                "f1_macro": values["f1_macro"].value,
                "roc_auc_ovr_macro": auc.value,
                "auc_lower": auc.bound_lower,
                "auc_upper": auc.bound_upper,
                "roc_auc_ovo_macro": values["roc_auc_ovo_macro"].value,
                "log_loss": values["log_loss"].value,
            }
        )
    return out
