"""Monitoring rows a run adds to its tables: rejected rows and label coverage
(rows of ``metrics``), metric drift (``metric_changes``) and fired alert rules
(``alerts``); and the console's note on binned values whose bounds are wide."""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clfeval.core import alerts, coverage, windows
from clfeval.core.windows import WindowRange
from clfeval.io import tables
from clfeval.run.context import RunContext
from clfeval.schema import (
    ALERTS_SCHEMA,
    EXCLUDED_BY_FILTER,
    KEY_COLUMNS,
    LABEL_COVERAGE,
    REJECTED_ROWS,
    UNLABELED,
)
from clfeval.spark import changes


def _of_models(ctx: RunContext, frame):
    models = ctx.config.input.models
    if not models:
        return frame
    return frame.where(F.col("model_name").isin(*[F.lit(m) for m in models]))


def reject_metric_rows(per_day: list) -> list[dict]:
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
                    "metric": REJECTED_ROWS,
                    "class_label": r["reject_reason"],
                    "value": float(r["n_rows"]),
                    "n_rows": int(r["n_rows"]),
                }
            )
    return out


def coverage_metric_rows(ctx: RunContext, per_day: list, ranges: list[WindowRange]) -> list[dict]:
    """``label_coverage`` rows for every window: this run's days from its scan,
    other days of its rollup windows from their stored daily coverage rows."""
    rows: dict[tuple, list[int]] = {}
    for r in per_day:
        if not (r["model_name"] and r["model_version"] and r["day"]):
            continue
        if r["reject_reason"] == EXCLUDED_BY_FILTER:
            continue
        counts = rows.setdefault((r["model_name"], r["model_version"], r["day"]), [0, 0])
        counts[0] += int(r["n_rows"])
        if r["reject_reason"] == UNLABELED:
            counts[1] += int(r["n_rows"])
    run_days = {day for r in ranges if r.granularity == "day" for day in windows.window_starts(r)}
    daily = [coverage.DailyCoverage(m, v, d, n, u) for (m, v, d), (n, u) in rows.items()]
    loc = ctx.output("metrics")
    if any(r.granularity != "day" for r in ranges) and tables.table_exists(ctx.spark, loc):
        # Only the days the rollup windows span reach the driver.
        first = min(r.first for r in ranges)
        end = max(windows.window_end(r.granularity, r.last) for r in ranges)
        stored = tables.read_table(ctx.spark, loc).where(
            (F.col("metric") == F.lit(LABEL_COVERAGE))
            & (F.col("granularity") == F.lit("day"))
            & (F.col("window_start") >= F.lit(first))
            & (F.col("window_start") < F.lit(end))
        )
        stored = _of_models(ctx, stored)
        for r in stored.select(
            "model_name", "model_version", "window_start", "value", "n_rows"
        ).collect():
            if r["window_start"] in run_days:
                continue
            n = int(r["n_rows"])
            daily.append(
                coverage.DailyCoverage(
                    r["model_name"],
                    r["model_version"],
                    r["window_start"],
                    n,
                    n - round(r["value"] * n),
                )
            )
    return coverage.coverage_rows(daily, ranges)


def write_metric_changes(ctx: RunContext, ranges: list[WindowRange]) -> int | None:
    """Write ``metric_changes`` of the run's windows (against the previous window
    and the configured baseline) from the whole ``metrics`` table; its version."""
    metrics = _of_models(ctx, tables.read_table(ctx.spark, ctx.output("metrics")))
    rows = changes.metric_changes(
        metrics, tables.window_filter(ranges), ctx.config.output.drift_baseline
    )
    return tables.replace_windows(
        ctx.spark, rows, ctx.output("metric_changes"), ranges, ctx.config.input.models
    )


def fired_alerts(ctx: RunContext, ranges: list[WindowRange]) -> list[dict]:
    """Fire the alert rules on this run's windows; baselines from the whole metrics table.

    Only the rules' metrics and granularities reach the driver (rows per group and
    window, never per input row).
    """
    rules = ctx.config.alerts
    metrics = tables.read_table(ctx.spark, ctx.output("metrics")).where(
        F.col("metric").isin(*[F.lit(r.metric) for r in rules])
        & F.col("granularity").isin(*[F.lit(r.granularity) for r in rules])
    )
    metrics = _of_models(ctx, metrics)
    columns = [f.name for f in dataclasses.fields(alerts.MetricPoint)]
    rows = metrics.select(*columns, tables.window_filter(ranges).alias("current")).collect()

    def point(r) -> alerts.MetricPoint:
        return alerts.MetricPoint(*[r[c] for c in columns])

    history = [point(r) for r in rows]
    current = [point(r) for r in rows if r["current"]]
    return alerts.evaluate_rules(rules, current, history)


def write_alerts(ctx: RunContext, ranges: list[WindowRange], fired: list[dict]) -> int | None:
    """Replace the run's windows of ``alerts`` with ``fired``; the table's version."""
    fields = [f.name for f in ALERTS_SCHEMA.fields]
    rows = [tuple(a.get(f) for f in fields) for a in fired]
    return tables.replace_windows(
        ctx.spark,
        ctx.spark.createDataFrame(rows, ALERTS_SCHEMA),
        ctx.output("alerts"),
        ranges,
        ctx.config.input.models,
    )


def wide_bounds(metrics: DataFrame, max_width: float) -> str | None:
    """A console line when binned values have guaranteed bounds wider than
    ``metrics.max_bound_width``: how many, and the widest with its series; None
    when there are none (or the check is off, ``max_width`` 0)."""
    if max_width <= 0:
        return None
    width = F.col("bound_upper") - F.col("bound_lower")
    # One aggregation: the count, and the widest row as the largest struct led by its width.
    found = (
        metrics.where(width > F.lit(max_width))
        .agg(
            F.count(F.lit(1)).alias("n_wide"),
            F.max(F.struct(width.alias("width"), "metric", *KEY_COLUMNS[:6])).alias("widest"),
        )
        .first()
    )
    widest = None if found is None or found.n_wide == 0 else found.widest
    if widest is None:
        return None
    where = f"{widest.slice_key}={widest.slice_value}" if widest.slice_key else "overall"
    return (
        f"{found.n_wide:,} binned value(s) have bounds wider than {max_width:g} "
        f"(metrics.max_bound_width; widest: {widest.metric} ±{widest.width / 2:.3g} for "
        f"{widest.model_name} {widest.model_version} {where}, {widest.granularity} "
        f"{widest.window_start}); more bins (bins.count) or larger slices narrow them"
    )
