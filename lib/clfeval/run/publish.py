"""The run's windows derived and written, all from one version of the states.

The run's days come from its own scan (in memory, not yet written) or, on a
retry after its states were committed, from ``score_histograms`` itself. The
rollups are summed from them and the other stored days; the days, the rollups
and the tables derived from both are then written at once (one parallel step),
instead of each written, read back and derived from in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame

from clfeval.core.windows import WindowRange
from clfeval.io import tables
from clfeval.run import commit, monitoring
from clfeval.run.context import RunContext, RunResult
from clfeval.run.states import rollups, same_histograms, stored_histograms
from clfeval.schema import METRICS_SCHEMA
from clfeval.spark import aggregate, derive


@dataclass(frozen=True)
class Published:
    """What one publishing attempt wrote: its windows, the tables' new versions,
    the console summary of its days and the alert rules that fired."""

    windows: list[WindowRange]
    versions: dict[str, int | None]
    summary: list[dict]
    alerts: list[dict]


# Actions of the parallel phase that write no table.
NOT_TABLES = ("summary", "wide_bounds")


def publish_windows(
    ctx: RunContext,
    day_ranges: list[WindowRange],
    extra_metrics: list[dict],
    per_day: list,
    own_histograms: DataFrame | None,
    committed: dict[str, int | None],
) -> Published:
    """Rollups, derived tables, drift and alerts of the run's days ``day_ranges``.

    ``extra_metrics`` are metric rows the run adds (rejected rows); with a
    ``[labels]`` table, label coverage is added from ``per_day`` (the scan's
    rows per model, version, day and reject reason). ``committed`` is the
    commit protocol's record: the ``score_histograms`` version is entered the
    moment it is committed, so that a retry after a failed parallel write
    derives from the stored states instead of writing its own again.

    Raises ``commit.StaleReadError`` when another run committed different daily
    states between this run's read and its commit (its rollups may lack them),
    or different states of this run's windows after its commit: the caller runs
    it again on the stored states.
    """
    spark, config, task = ctx.spark, ctx.config, ctx.task
    models = config.input.models
    histograms_loc = ctx.output("score_histograms")
    read_version = tables.table_version(spark, histograms_loc)
    read_back = None
    if own_histograms is None:
        read_back = stored_histograms(ctx, day_ranges, read_version).persist()
    days = own_histograms if read_back is None else read_back
    rollup_ranges, rolled, covered = rollups(ctx, day_ranges, read_version, days)
    if rolled is not None:
        ctx.phase(
            "rolling up "
            + ", ".join(f"{t.granularity} from {t.first}" for t in rollup_ranges)
            + " (this run's days and the stored ones)"
        )
        rolled = rolled.persist()
    ranges = [*day_ranges, *rollup_ranges]
    # By name: stored rows may order (or lack) columns differently.
    states = days if rolled is None else days.unionByName(rolled, allowMissingColumns=True)

    def write_histograms() -> int | None:
        version = tables.replace_windows(spark, states, histograms_loc, ranges, models)
        committed["score_histograms"] = version
        return version

    writes: dict[str, Callable[[], object]] = {"score_histograms": write_histograms}
    if config.labels.enabled:
        extra_metrics = extra_metrics + monitoring.coverage_metric_rows(ctx, per_day, ranges)
    # Evaluated once per group and kept in memory (small: rows per group, not per
    # input row) for the writes below. No count() first: the writes run at once,
    # and a task needing a cached block another task is computing waits and reads
    # it, so each group is still evaluated once, without one more job.
    derived = task.derive(states).persist()
    try:
        for name, df in derive.split_tables(derived).items():
            if name == "metrics" and extra_metrics:
                fields = [f.name for f in METRICS_SCHEMA.fields]
                rows = [tuple(r.get(f) for f in fields) for r in extra_metrics]
                df = df.unionByName(spark.createDataFrame(rows, METRICS_SCHEMA))
            if name == "metrics":
                df = aggregate.with_days_covered(df, covered)
            loc = ctx.output(name)
            expand = derive.WRITE_EXPANSIONS.get(name)
            writes[name] = lambda df=df, loc=loc, expand=expand: tables.replace_windows(
                spark, df, loc, ranges, models, expand=expand
            )
        day_states = states.where(tables.window_filter(day_ranges))
        writes["summary"] = lambda: task.summarize(day_states)
        derived_metrics = derive.split_tables(derived)["metrics"]
        writes["wide_bounds"] = lambda: monitoring.wide_bounds(
            derived_metrics, config.metrics.max_bound_width
        )
        ctx.phase(
            f"deriving metrics, confusion matrices and curves of {len(ranges)} window "
            f"range(s); writing {', '.join(n for n in writes if n not in NOT_TABLES)} "
            "(in parallel)"
        )
        done = commit.in_parallel(writes)
    finally:
        derived.unpersist()
        for cached in (read_back, rolled):
            if cached is not None:
                cached.unpersist()
    summary = done.pop("summary")
    wide = done.pop("wide_bounds")
    if wide is not None:
        ctx.phase(f"note: {wide}")
    versions: dict[str, int | None] = dict(done)
    committed.update(versions)
    written = versions["score_histograms"]
    if rollup_ranges and not commit.no_other_daily_commit(ctx, read_version, written):
        raise commit.StaleReadError()
    read_version = written
    fired: list[dict] = []
    if config.output.drift:
        ctx.phase("writing metric_changes (change against the previous window and the baseline)")
        versions["metric_changes"] = monitoring.write_metric_changes(ctx, ranges)
    if config.alerts:
        ctx.phase(f"evaluating {len(config.alerts)} alert rule(s)")
        fired = monitoring.fired_alerts(ctx, ranges)
        versions["alerts"] = monitoring.write_alerts(ctx, ranges, fired)
    committed.update(versions)
    latest = tables.table_version(spark, histograms_loc)
    if latest != read_version and not same_histograms(ctx, ranges, read_version, latest):
        raise commit.StaleReadError()
    return Published(ranges, versions, summary, fired)


def publish_run(
    ctx: RunContext,
    day_ranges: list[WindowRange],
    per_day: list,
    fresh: DataFrame,
    result: RunResult,
) -> None:
    """Publish a run's daily states ``fresh`` (``publish_windows``), retried when a
    concurrent run committed first (``commit.retrying``); fills ``result``.
    ``per_day``: rows per (model, version, day, reject reason) for the
    ``rejected_rows`` and label-coverage metrics."""
    extra_metrics = monitoring.reject_metric_rows(per_day)
    committed: dict[str, int | None] = {}

    def attempt() -> Published:
        result.attempts += 1
        # Until this run's histograms are committed, every attempt writes them
        # (a lost commit race); after that, a retry derives from the stored ones.
        own = fresh if "score_histograms" not in committed else None
        try:
            return publish_windows(ctx, day_ranges, extra_metrics, per_day, own, committed)
        finally:
            result.output_versions.update(committed)

    result.attempts = 0
    published = commit.retrying(ctx, "writing the windows", attempt)
    result.windows = published.windows
    result.summary = published.summary
    result.alerts = published.alerts
