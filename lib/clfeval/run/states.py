"""Stored daily states and the rollup windows summed from them.

A rollup (week, month, rolling N days) is the sum of its days' stored states
in ``score_histograms``, never a rescan of the predictions: counts add up
exactly, so a rollup equals a scan of the whole window.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clfeval.core import windows
from clfeval.core.windows import WindowRange
from clfeval.io import tables
from clfeval.run.context import RunContext
from clfeval.spark import aggregate

ALL_DAYS = WindowRange("day", dt.date(1900, 1, 1), dt.date(9999, 12, 31))


def stored_histograms(
    ctx: RunContext, ranges: list[WindowRange], version: int | None = None
) -> DataFrame:
    """This config's stored states of ``ranges`` (its layout, models and task)
    in ``score_histograms`` at ``version`` (latest when None)."""
    config = ctx.config
    stored = tables.read_table(ctx.spark, ctx.output("score_histograms"), version)
    stored = stored.where(
        tables.window_filter(ranges) & (F.col("layout_id") == F.lit(ctx.task.state_layout_id()))
    )
    if config.input.models:
        stored = stored.where(F.col("model_name").isin(*[F.lit(m) for m in config.input.models]))
    return stored.where(ctx.task.own_states())


def same_histograms(
    ctx: RunContext, ranges: list[WindowRange], version_a: int | None, version_b: int | None
) -> bool:
    """Whether the stored states of ``ranges`` are the same at two versions."""
    return aggregate.same_states(
        stored_histograms(ctx, ranges, version_a), stored_histograms(ctx, ranges, version_b)
    )


def rollups(
    ctx: RunContext,
    day_ranges: list[WindowRange],
    version: int | None,
    own_histograms: DataFrame,
) -> tuple[list[WindowRange], DataFrame | None, DataFrame | None]:
    """Every rollup window containing one of the run's days, its histograms
    (sums of the daily histograms stored at ``version``, where ``own_histograms``
    (the run's days) replace the stored rows of the run's days) and the days
    each series' window covers (``aggregate.rollup_days_covered``).
    ``([], None, None)`` when there are none."""
    granularities = [g for g in ctx.config.output.granularities if g != "day"]
    if not granularities:
        return [], None, None
    if version is None:
        daily = own_histograms
    else:
        others = stored_histograms(ctx, [ALL_DAYS], version).where(
            ~tables.window_filter(day_ranges)
        )
        # By name, as a table written by another clfeval version may order
        # (or lack) columns differently.
        daily = others.unionByName(own_histograms, allowMissingColumns=True)
    latest = daily.agg(F.max("window_start")).first()[0] or day_ranges[-1].last
    affected = [
        windows.affected(g, r.first, r.last, latest) for g in granularities for r in day_ranges
    ]
    # A rolling window is written once its last day is stored (see windows.affected).
    affected = [a for a in affected if a.windows.first <= a.windows.last]
    if not affected:
        return [], None, None
    targets = windows.merge_ranges([a.windows for a in affected])
    sources = windows.merge_ranges(
        [WindowRange("day", a.source_first, a.source_last) for a in affected]
    )
    needed = daily.where(tables.window_filter(sources))
    rolled = reduce(DataFrame.unionByName, [aggregate.rollup_windows(needed, t) for t in targets])
    covered = reduce(
        DataFrame.unionByName, [aggregate.rollup_days_covered(needed, t) for t in targets]
    )
    return targets, rolled, covered
