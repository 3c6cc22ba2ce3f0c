"""The sequence of an evaluation run; each step lives in ``clfeval.run``.

1. Check the output location (writable, Delta tables), then the inputs:
   predictions (and the ``[labels]`` table) pinned at their current Delta
   versions, their contracts (``run.plan.read_sources``).
2. Plan the days: a date range, every day (``--full``), or the days whose input
   changed since the last successful run (``run.plan.plan_days``).
3. Mark runs whose driver died 'abandoned'; record this run as 'running'
   (``run.commit.RunRecord``), in the background.
4. One scan of the selected rows to per-bin states (the task's ``scan``).
5. Count rejects; fail before writing if there are too many; quarantine them.
6. Publish the windows: the daily states, the rollups summed from stored days,
   and the tables derived from both, drift and alerts (``run.publish``), retried
   when a concurrent run committed first (``run.commit.retrying``).
7. Record the run as 'succeeded' (or 'failed', with the error) with its input
   versions, windows and output versions.

A merge (``run_merge``) replaces steps 1, 2, 4 and 5: it reads the daily states
stored by other places' runs (``run.merge``) instead of scanning predictions;
the publish and record steps are the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from clfeval.config import Config
from clfeval.core import windows
from clfeval.core.windows import WindowRange
from clfeval.errors import ConfigError, RejectLimitError, RunInterrupted
from clfeval.io import session, tables
from clfeval.run import commit, merge, plan, publish
from clfeval.run.context import Log, Phases, RunContext, RunResult, StopRequest
from clfeval.run.progress import TaskProgress
from clfeval.spark import aggregate
from clfeval.tasks import task_for

__all__ = ["RunResult", "run_evaluation"]


def run_evaluation(
    spark: SparkSession,
    config: Config,
    start: dt.date | None = None,
    end: dt.date | None = None,
    log: Log = print,
    full: bool = False,
    live: bool = False,
    stop: StopRequest | None = None,
) -> RunResult:
    """Evaluate and write every table.

    With ``start``/``end``: the input days in [start, end]. With ``full``: every
    day. Otherwise incremental: the days whose input (predictions or labels)
    changed since the last successful incremental/full run of this config.
    ``log`` receives the console lines; ``live``: it is a terminal (a progress
    line is redrawn in place); ``stop``: set by a signal handler to stop the run
    (recorded as failed, naming the signal; RunInterrupted is raised).
    """
    with _run_context(spark, config, start, end, Phases(log, live, stop)) as ctx:
        return _evaluate(ctx, start, end, full)


@contextmanager
def _run_context(
    spark: SparkSession, config: Config, start: dt.date | None, end: dt.date | None, phases: Phases
) -> Iterator[RunContext]:
    """A run's context, after the checks every run makes, with the run's
    session settings in force while it lasts."""
    if start is not None and end is not None and start > end:
        raise ConfigError([f"--start-date {start} is after --end-date {end}"])
    session.check_spark_version(spark)
    task = task_for(config)
    ctx = RunContext(spark, config, task, phases)
    with session.run_settings(spark, {**session.RUN_CONF, **task.session_settings()}):
        spark.conf.set("spark.sql.session.timeZone", config.run.timezone)
        tables.check_output_location(spark, config)
        yield ctx


def _mark_abandoned(ctx: RunContext) -> None:
    for run_id in commit.mark_abandoned(ctx):
        ctx.phase(f"marked run {run_id} abandoned (its driver is gone)")


def _evaluate(ctx: RunContext, start: dt.date | None, end: dt.date | None, full: bool) -> RunResult:
    ctx.phase(f"checking input {tables.input_location(ctx.config)}")
    sources = plan.read_sources(ctx)
    day_plan = plan.plan_days(ctx, sources, start, end, full)
    ctx.phase(f"{day_plan.mode} run: {day_plan.note}")
    _mark_abandoned(ctx)
    record = commit.RunRecord(ctx, sources, day_plan, start, end)
    return _recorded(
        ctx, record, day_plan, lambda r: _scan_and_publish(ctx, sources, day_plan, record, r)
    )


def run_merge(
    spark: SparkSession,
    config: Config,
    start: dt.date | None = None,
    end: dt.date | None = None,
    log: Log = print,
    full: bool = False,
    live: bool = False,
    stop: StopRequest | None = None,
    allow_missing: bool = False,
) -> RunResult:
    """Merge the stored daily states of ``config.sources`` into the central tables
    (``run.merge``); the days as in ``run_evaluation``, from the sources' states.
    ``allow_missing``: a source that cannot be read is left out (named in the
    run's row) instead of failing the run."""
    with _run_context(spark, config, start, end, Phases(log, live, stop)) as ctx:
        ctx.phase(f"checking {len(config.sources)} source(s)")
        inputs = merge.read_sources(ctx, allow_missing)
        for why in inputs.missing:
            ctx.phase(f"warning: left out (--allow-missing-sources): {why}")
        day_plan = merge.plan_days(ctx, inputs, start, end, full)
        ctx.phase(f"{day_plan.mode} merge: {day_plan.note}")
        _mark_abandoned(ctx)
        record = commit.RunRecord(ctx, inputs.sources, day_plan, start, end, inputs.input_name)
        if inputs.missing:
            record.row["message"] = "sources left out: " + "; ".join(inputs.missing)
        return _recorded(
            ctx, record, day_plan, lambda r: _merge_and_publish(ctx, inputs, day_plan, r)
        )


def _recorded(
    ctx: RunContext,
    record: commit.RunRecord,
    day_plan: plan.DayPlan,
    work: Callable[[RunResult], None],
) -> RunResult:
    """Run ``work`` while the run's row records it: 'running', then 'succeeded',
    or 'failed' with the error (or the signal that stopped it)."""
    result = RunResult(record.run_id, "running", day_plan.mode)
    result.input_versions = record.input_versions
    with ThreadPoolExecutor(max_workers=1) as recorder:
        record.start(recorder)
        try:
            work(result)
            record.wait_started()
        except BaseException as exc:
            stop = ctx.phase.stop
            stop.acknowledged.set()  # no more cancelling: the failure is recorded below
            if record.start_failed():
                raise  # no row of this run to mark failed
            result.status = "failed"
            message = str(exc) if stop.reason is None else f"stopped by {stop.reason}"
            record.finish(result, message=message)
            if stop.reason is not None and not isinstance(exc, RunInterrupted):
                raise RunInterrupted(stop.reason, stop.exit_code) from exc
            raise
    result.status = "succeeded"
    record.finish(result)
    ctx.phase.stop.acknowledged.set()  # recorded: a signal from here on changes nothing
    ctx.phase(f"run {result.run_id} succeeded")
    return result


def _scan_and_publish(
    ctx: RunContext,
    sources: dict[str, plan.Source],
    day_plan: plan.DayPlan,
    record: commit.RunRecord,
    result: RunResult,
) -> None:
    """Scan, then (once the run's row is committed) write every table; fills ``result``."""
    if day_plan.nothing_changed:
        ctx.phase("no input changed since the last run: nothing to write")
        return
    task, config = ctx.task, ctx.config
    selected = plan.selected_rows(ctx, sources, day_plan)
    rows = task.normalize(selected)
    jvm, why_not = aggregate.jvm_scan(ctx.spark, ctx.layout)
    ctx.phase(f"scanning input: {task.scan_description(rows, jvm, why_not)}")
    states = task.scan(rows, jvm).persist()
    fresh: DataFrame | None = None
    try:
        with TaskProgress(ctx.spark, ctx.phase, "scanning input"):
            per_day = aggregate.reject_counts(states).collect()
        record.wait_started()
        _count_rows(per_day, result)
        excluded = f", {result.rows_excluded:,} left out by input.filter"
        ctx.phase(
            f"read {result.rows_read:,} rows: {result.rows_evaluated:,} evaluated, "
            f"{result.rows_rejected:,} rejected" + (excluded if result.rows_excluded else "")
        )
        if result.rows_read == 0:
            result.empty_selection = plan.describe_empty(ctx, sources, day_plan)
            ctx.phase(f"warning: {result.empty_selection}: nothing to write")
            if day_plan.days is None:
                return
        _check_reject_limit(config, result)
        if config.output.quarantine and result.rows_rejected + result.rows_excluded > 0:
            quarantined_rows = result.rows_rejected + result.rows_excluded
            ctx.phase(f"writing {quarantined_rows:,} rejected rows to quarantine")
            quarantined = task.rejected_rows(selected, result.run_id)
            result.output_versions["quarantine"] = commit.retrying(
                ctx,
                "writing quarantine",
                lambda: tables.append_rows(ctx.spark, quarantined, ctx.output("quarantine")),
            )
        day_ranges = _day_ranges(day_plan, per_day)
        if not day_ranges:
            ctx.phase("every row was rejected: nothing to write")
            return
        # Not written here: publish writes them together with their rollups and
        # the derived tables, all computed from them in memory.
        fresh = aggregate.rollup_slices(
            states,
            config,
            ctx.layout,
            task.class_keys,
            task.class_columns(),
            task.state_layout_id(),
        ).persist()
        publish.publish_run(ctx, day_ranges, per_day, fresh, result)
    finally:
        states.unpersist()
        if fresh is not None:
            fresh.unpersist()


def _merge_and_publish(
    ctx: RunContext, inputs: merge.MergeInputs, day_plan: plan.DayPlan, result: RunResult
) -> None:
    """The sources' states of the plan's days summed, then published like a scan's."""
    if day_plan.nothing_changed:
        ctx.phase("no source's states changed since the last merge: nothing to write")
        return
    ctx.phase(f"reading the stored states of {', '.join(sorted(inputs.sources))}")
    per_day = merge.row_counts(ctx, inputs, day_plan)
    _count_rows(per_day, result)
    ctx.phase(f"the sources evaluated {result.rows_evaluated:,} rows of the selected days")
    day_ranges = _day_ranges(day_plan, per_day)
    if not day_ranges:
        ctx.phase("warning: the sources hold no states of the selected days: nothing to write")
        return
    fresh = merge.daily_states(ctx, inputs, day_plan).persist()
    try:
        publish.publish_run(ctx, day_ranges, per_day, fresh, result)
    finally:
        fresh.unpersist()


def _count_rows(per_day: list, result: RunResult) -> None:
    """Rows read, evaluated and rejected per reason, from the scan's per-day counts."""
    result.rows_read = sum(int(r["n_rows"]) for r in per_day)
    for r in per_day:
        if r["reject_reason"]:
            reason = r["reject_reason"]
            result.reject_counts[reason] = result.reject_counts.get(reason, 0) + int(r["n_rows"])
    result.rows_evaluated = result.rows_read - result.rows_rejected - result.rows_excluded


def _check_reject_limit(config: Config, result: RunResult) -> None:
    """Fail before any write when bad rows exceed ``run.max_reject_fraction``."""
    fraction = result.rows_bad / result.rows_read if result.rows_read else 0.0
    if fraction > config.run.max_reject_fraction:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(result.reject_counts.items()))
        raise RejectLimitError(
            [
                f"{fraction:.2%} of {result.rows_read} rows were rejected, more than "
                f"run.max_reject_fraction={config.run.max_reject_fraction} ({detail})"
            ]
        )


def _day_ranges(day_plan: plan.DayPlan, per_day: list) -> list[WindowRange]:
    """The run's daily windows: the planned days, or the scanned range."""
    if day_plan.days is not None:
        return windows.day_ranges(list(day_plan.days))
    scanned = [r["day"] for r in per_day if r["day"] is not None]
    if not scanned:
        return []
    first = day_plan.start or min(scanned)
    return [WindowRange("day", first, day_plan.end or max(scanned))]
