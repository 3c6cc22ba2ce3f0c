"""Which inputs and days a run reads.

``read_sources`` pins the predictions (and the ``[labels]`` table) at their
current Delta versions and checks their contracts. ``plan_days`` decides the
days: a date range, every day (``--full``), or, incrementally, the days whose
input changed since the last successful run of the same results settings
(from Change Data Feed or the Delta log). ``partition_days`` proves, from
Delta's file statistics, when a date partition gives every row's event day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

from clfeval.config import Config
from clfeval.core import windows
from clfeval.errors import ContractError
from clfeval.io import delta_log, file_stats, tables
from clfeval.run.context import RunContext
from clfeval.spark import contract, selection


@dataclass(frozen=True)
class Source:
    """An input table pinned at the Delta version this run reads."""

    name: str  # "predictions" or "labels"
    loc: tables.TableLocation
    version: int
    table_id: str
    frame: DataFrame


@dataclass(frozen=True)
class DayPlan:
    """Which event days a run evaluates.

    ``mode``: ``range`` (--start-date/--end-date), ``full`` (--full, every day),
    ``initial`` (incremental with no earlier run: run.initial_lookback_days) or
    ``incremental`` (exactly ``days``: those whose input changed).
    """

    mode: str
    start: dt.date | None = None
    end: dt.date | None = None
    days: tuple[dt.date, ...] | None = None
    note: str = ""

    @property
    def nothing_changed(self) -> bool:
        """An incremental plan with no changed day."""
        return self.days is not None and not self.days


def read_sources(ctx: RunContext) -> dict[str, Source]:
    """Predictions (and labels) pinned at their current versions; contracts checked."""
    spark, config = ctx.spark, ctx.config
    sources = {}
    for name, loc, key in (
        ("predictions", tables.input_location(config), "input"),
        ("labels", tables.labels_location(config), "labels"),
    ):
        if loc is None:
            continue
        version = tables.table_version(spark, loc)
        if version is None:
            what = f"{key}.table" if loc.qualified_name else f"{key}.path"
            raise ContractError([f"{what}: {loc} does not exist or is not a Delta table"])
        frame = tables.read_table(spark, loc, version)
        sources[name] = Source(name, loc, version, tables.table_id(spark, loc), frame)
    predictions = sources["predictions"].frame
    if "labels" in sources:
        contract.check_labels_contract(predictions.schema, sources["labels"].frame.schema, config)
        predictions = selection.join_labels(predictions, sources["labels"].frame, config)
    fields = {f.name: f.dataType for f in predictions.schema.fields}
    contract.check_contract(
        predictions.schema,
        config,
        [p for p in ctx.task.column_problems(fields) if p],
        ctx.task.checks_label_column,
    )
    contract.check_filter(predictions, config)
    return sources


def initial_plan(config: Config, why: str) -> DayPlan:
    """The days of an incremental run with nothing to continue from."""
    n = config.run.initial_lookback_days
    if n == 0:
        return DayPlan("initial", note=f"{why}: every day in the input")
    today = dt.datetime.now(ZoneInfo(config.run.timezone)).date()
    first = today - dt.timedelta(days=n - 1)
    return DayPlan("initial", start=first, note=f"{why}: the last {n} days (from {first})")


def plan_days(
    ctx: RunContext,
    sources: dict[str, Source],
    start: dt.date | None,
    end: dt.date | None,
    full: bool,
) -> DayPlan:
    """The days to evaluate: the given range, every day, or the changed days."""
    spark, config = ctx.spark, ctx.config
    if start is not None or end is not None:
        return DayPlan("range", start, end, note="the given date range")
    if full:
        return DayPlan("full", note="--full: every day in the input")
    predictions = sources["predictions"]
    last = tables.last_baseline_run(spark, config, str(predictions.loc))
    if last is None:
        return initial_plan(config, "no earlier successful run of this config")
    before = last["input_versions"] or {}
    ids = last["input_table_ids"] or {}
    days: set[dt.date] = set()
    notes = []
    for source in sources.values():
        was = before.get(source.name)
        if was is None:
            return initial_plan(config, f"run {last['run_id']} recorded no {source.name} version")
        if ids.get(source.name) != source.table_id:
            return initial_plan(config, f"{source.name} is another Delta table (recreated?)")
        if was == source.version:
            notes.append(f"{source.name} unchanged at version {was}")
            continue
        if was > source.version:
            return initial_plan(
                config, f"{source.name} is at version {source.version}, before {was} (restored?)"
            )
        partition = config.input.date_partition_column if source.name == "predictions" else None
        changed = delta_log.changed_rows(spark, source.loc, was, source.version, partition)
        if changed is None:
            return initial_plan(
                config, f"the history of {source.name} since version {was} is no longer kept"
            )
        rows, how = changed
        if source.name == "labels":
            rows = selection.predictions_of_labels(predictions.frame, rows, config)
        try:
            found = selection.event_days(rows, config)
        except Exception as exc:
            if not delta_log.is_missing_file(exc):
                raise
            return initial_plan(
                config,
                f"could not read the rows {source.name} changed since version {was} "
                "(files removed by VACUUM)",
            )
        notes.append(
            f"{source.name} version {was} -> {source.version} ({how}): {len(found)} day(s)"
        )
        days |= found
    return DayPlan("incremental", days=tuple(sorted(days)), note="; ".join(notes))


@dataclass(frozen=True)
class PartitionDays:
    """Whether a date partition gives every selected row's event day (``holds``),
    and why or why not (``reason``, for the console)."""

    holds: bool
    reason: str


def partition_days(
    spark,
    config: Config,
    loc: tables.TableLocation,
    version: int,
    frame: DataFrame,
    days: list[dt.date] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> PartitionDays:
    """Whether every file of the input ``frame`` (``loc`` at ``version``) in the
    selected partitions (``days``, else [start, end]) holds only event times of
    its ``input.date_partition_column`` day, by Delta's file statistics
    (``io.file_stats``): TIMESTAMP dated in run.timezone, TIMESTAMP_NTZ by its
    wall clock (``core.windows.instants_on_day``). Where it does not hold, days
    come from the event times, as they always may."""
    i = config.input
    assert i.date_partition_column is not None
    time_type = frame.schema[i.event_time_column].dataType
    if isinstance(time_type, TimestampType):
        zone: str | None = config.run.timezone
    elif isinstance(time_type, TimestampNTZType):
        zone = None
    else:
        return PartitionDays(False, f"{i.event_time_column} is not a timestamp")
    try:
        files = file_stats.file_times(
            spark, loc, version, i.event_time_column, i.date_partition_column, days, start, end
        )
    except file_stats.FileTimesError as exc:
        return PartitionDays(False, str(exc))
    if not files:
        # No file checked proves nothing (and a selection of no file needs no proof).
        return PartitionDays(False, "no data file of the selected partitions to check")
    for f in files:
        if f.problem is not None:
            return PartitionDays(False, f.problem)
        assert f.day is not None and f.earliest is not None and f.latest is not None
        if not windows.instants_on_day(f.day, f.earliest, f.latest, zone):
            return PartitionDays(
                False, f"a file of {f.partition} holds {i.event_time_column} values of other days"
            )
    return PartitionDays(
        True,
        f"from the {i.date_partition_column} partition: Delta's statistics of its "
        f"{len(files)} files put every {i.event_time_column} on its partition's day "
        "(no event time decoded)",
    )


def selected_rows(ctx: RunContext, sources: dict[str, Source], plan: DayPlan) -> DataFrame:
    """The input rows of the plan's days (labels joined), with their event day:
    from the date partition where ``partition_days`` proves it, else from the
    event times."""
    config = ctx.config
    source = sources["predictions"]
    from_partition = None
    if config.input.date_partition_column is not None:
        from_partition = partition_days(
            ctx.spark,
            config,
            source.loc,
            source.version,
            source.frame,
            days=None if plan.days is None else list(plan.days),
            start=plan.start,
            end=plan.end,
        )
        how = "" if from_partition.holds else f"from {config.input.event_time_column}: "
        ctx.phase(f"event days {how}{from_partition.reason}")
    holds = from_partition is not None and from_partition.holds
    predictions = selection.with_event_day(source.frame, config, holds)
    if plan.days is not None:
        selected = selection.select_days(predictions, config, list(plan.days))
    else:
        selected = selection.select_range(predictions, config, plan.start, plan.end)
    if "labels" in sources:
        selected = selection.join_labels(selected, sources["labels"].frame, config)
    return selected


def describe_empty(ctx: RunContext, sources: dict[str, Source], plan: DayPlan) -> str:
    """What a selection that matched no input row asked for, and what the input
    holds instead (its days and model names; a query of a few rows)."""
    config = ctx.config
    asked = []
    if plan.days is not None:
        asked.append(f"days {', '.join(str(d) for d in plan.days[:5])}")
    elif plan.start is not None or plan.end is not None:
        asked.append(f"days {plan.start or 'the first'} to {plan.end or 'the last'}")
    if config.input.models:
        asked.append(f"models {', '.join(config.input.models)}")
    frame = sources["predictions"].frame
    day = selection.event_day(frame, config)
    span = frame.agg(F.min(day).alias("first"), F.max(day).alias("last")).first()
    name = F.col(config.input.model_name_column)
    models = [r[0] for r in frame.select(name).distinct().limit(11).collect()]
    shown = ", ".join(str(m) for m in sorted(models, key=str)[:10]) + (
        ", ..." if len(models) > 10 else ""
    )
    holds = (
        f"the input holds days {span['first']} to {span['last']} of models {shown}"
        if span["first"] is not None
        else "the input holds no rows"
    )
    return f"no input rows for {' and '.join(asked) or 'the selection'} ({holds})"
