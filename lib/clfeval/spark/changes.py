"""Drift of metrics: each metric row's change against the previous window and a baseline.

For every series (model, version, slice, granularity, metric, class label,
threshold) ``change_vs_previous = value − value of the latest earlier window``;
with a baseline, ``change_vs_baseline = value − baseline value``, the baseline
being the same series on a fixed window (``window:YYYY-MM-DD``) or another
version of the same model on the same window (``champion:<version>``; the
champion's own rows have none). NULL where there is nothing to compare with.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from clfeval.schema import METRIC_SERIES, REJECTED_ROWS

SERIES = METRIC_SERIES


def _same(left: str, right: str, names: list[str]) -> Column:
    condition = F.lit(True)
    for name in names:
        condition = condition & F.col(f"{left}.{name}").eqNullSafe(F.col(f"{right}.{name}"))
    return condition


def metric_changes(metrics: DataFrame, current: Column, baseline: str | None) -> DataFrame:
    """Change rows for the metric rows selected by ``current``.

    ``metrics`` must hold the earlier windows and the baseline rows too.
    """
    metrics = metrics.where(F.col("value").isNotNull() & (F.col("metric") != F.lit(REJECTED_ROWS)))
    order = Window.partitionBy(*SERIES).orderBy("window_start")
    lagged = metrics.select(
        *[F.col(c) for c in (*SERIES, "window_start", "window_end", "value", "n_rows")],
        F.lag("window_start").over(order).alias("previous_window_start"),
        F.lag("value").over(order).alias("previous_value"),
        current.alias("is_current"),
    ).where(F.col("is_current"))
    base = metrics.select(*SERIES, "window_start", F.col("value").alias("baseline_value")).alias(
        "b"
    )
    cur = lagged.alias("c")
    if baseline is None:
        joined = cur.select("c.*", F.lit(None).cast("double").alias("baseline_value"))
    else:
        kind, _, arg = baseline.partition(":")
        if kind == "window":
            day = dt.date.fromisoformat(arg)
            same = list(SERIES)
            condition = _same("c", "b", same) & (F.col("b.window_start") == F.lit(day))
        else:
            same = [n for n in SERIES if n != "model_version"] + ["window_start"]
            # the champion itself has no baseline (as in the alert rules)
            condition = (
                _same("c", "b", same)
                & (F.col("b.model_version") == F.lit(arg))
                & (F.col("c.model_version") != F.lit(arg))
            )
        joined = cur.join(base, condition, "left").select("c.*", "b.baseline_value")
    return joined.select(
        *SERIES[:5],
        "window_start",
        "window_end",
        *SERIES[5:],
        "value",
        "n_rows",
        "previous_window_start",
        "previous_value",
        (F.col("value") - F.col("previous_value")).alias("change_vs_previous"),
        F.when(F.col("baseline_value").isNotNull(), F.lit(baseline).cast("string")).alias(
            "baseline"
        ),
        "baseline_value",
        (F.col("value") - F.col("baseline_value")).alias("change_vs_baseline"),
    )
