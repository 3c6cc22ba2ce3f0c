"""A central merge: the stored daily states of several places added up.

Each place (a cloud, a region) evaluates its own predictions with clfeval and
stores its daily states in ``score_histograms``. A merge reads those states
(never a prediction) from every ``[[sources]]`` entry, checks that they can be
added (same task, labels, classes, bin layout and thresholds: the settings
each run records in ``runs.state_settings``), and hands the sums to the steps
an evaluation runs after its scan: rollups, derive, publish, drift, alerts.

The central daily state of (model, version, day, slice, class, bin) is the sum
of the sources' states of the same key, so every count in the central tables
equals that of one run over the union of the predictions. ``source`` is a slice
column: the state of slice ``source`` = ``a`` is source ``a``'s overall state,
and a cross ``source,region`` is each source's ``region`` states tagged with the
source's name.

Incremental: the central run records each source's ``score_histograms`` Delta
version (``runs.input_versions``, keyed by source name); the next run re-merges
the days whose stored states changed since (from the Delta log of each source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from clfeval import __version__
from clfeval.config import SOURCE_COLUMN, Config, SourceConfig, source_location
from clfeval.errors import ContractError
from clfeval.io import delta_log, tables
from clfeval.run import plan
from clfeval.run.context import RunContext
from clfeval.schema import (
    BELOW_MIN_SLICE_SIZE,
    HISTOGRAM_SCHEMA,
    LABEL_COVERAGE,
    REJECTED_ROWS,
    STATE_SUMS,
)

HISTOGRAMS = "score_histograms"
# The settings compared across sources, in the words of the error.
COMPARED_SETTINGS = {
    "task": "task (type, labels, classes)",
    "layout_id": "bin layout (bins, thresholds, calibration bins)",
}


@dataclass(frozen=True)
class MergeInputs:
    """The sources a merge reads, each's ``score_histograms`` pinned at the
    version read (``plan.Source``, keyed by source name), and the sources left
    out with ``--allow-missing-sources`` (each with why)."""

    sources: dict[str, plan.Source]
    configs: dict[str, SourceConfig]
    missing: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        """``runs.input`` of a merge: every configured source, by name and place."""
        return "merge of " + "; ".join(
            f"{name}: {source_location(s)}" for name, s in sorted(self.configs.items())
        )


def version_tuple(text: str | None) -> tuple[int, ...]:
    """A version text as numbers to compare ('0.10.1' -> (0, 10, 1)); the
    leading digits of each part only ('1.2.0rc1' -> (1, 2, 0))."""
    out = []
    for part in (text or "").split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        out.append(int(digits or 0))
    return tuple(out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def read_sources(ctx: RunContext, allow_missing: bool) -> MergeInputs:
    """Every source's ``score_histograms`` pinned at its current version, checked:
    readable, written by this clfeval or an older one, with the state settings
    of this merge's config, not the same table as another source.

    Raises ContractError naming each location and what is wrong, before anything
    is written. With ``allow_missing``, a source that does not exist or cannot be
    read is left out (and named in ``missing``) instead; the others are still
    checked."""
    spark, config = ctx.spark, ctx.config
    problems: list[str] = []
    missing: list[str] = []
    pinned: dict[str, plan.Source] = {}
    by_table_id: dict[str, str] = {}
    ours = config.state_settings()
    for source in config.sources:
        where = f"source {source.name!r} ({source_location(source)})"
        loc = tables.source_table_location(source, HISTOGRAMS)
        try:
            version = tables.table_version(spark, loc)
            unreachable = None if version is not None else f"no Delta table {loc}"
        except Exception as exc:  # a store that refuses us or is not there
            version, unreachable = None, f"{loc} cannot be read ({_first_line(exc)})"
        if version is None:
            text = f"{where}: {unreachable}"
            (missing if allow_missing else problems).append(text)
            continue
        frame = tables.read_table(spark, loc, version)
        table_id = tables.table_id(spark, loc)
        if table_id in by_table_id:
            problems.append(
                f"{where}: the same table as source {by_table_id[table_id]!r} "
                "(listed twice; its states would be counted twice)"
            )
            continue
        by_table_id[table_id] = source.name
        problems += _source_problems(ctx, source, where, frame, ours)
        pinned[source.name] = plan.Source(source.name, loc, version, table_id, frame)
    if not pinned and not problems:
        problems.append("no source could be read: " + "; ".join(missing))
    if problems:
        raise ContractError(problems)
    configs = {s.name: s for s in config.sources}
    return MergeInputs(pinned, configs, missing)


def _source_problems(
    ctx: RunContext, source: SourceConfig, where: str, frame: DataFrame, ours: dict
) -> list[str]:
    """Why one source's states cannot be added to this merge's (empty: they can)."""
    problems = []
    known = {f.name for f in HISTOGRAM_SCHEMA.fields}
    unknown = sorted(set(frame.columns) - known)
    if unknown:
        problems.append(
            f"{where}: score_histograms has columns this clfeval {__version__} does not know "
            f"({', '.join(unknown)}): written by a newer clfeval; upgrade the merge's clfeval"
        )
    latest = _latest_run(ctx, source)
    if latest is not None and version_tuple(latest["code_version"]) > version_tuple(__version__):
        problems.append(
            f"{where}: its states were written by clfeval {latest['code_version']}, newer than "
            f"this clfeval {__version__}; upgrade the merge's clfeval"
        )
    settings = None if latest is None else latest.get("state_settings")
    if settings is None:
        # Written before runs recorded their settings: the layout is in the states.
        layouts = sorted(r[0] for r in frame.select("layout_id").distinct().collect())
        expected = ctx.task.state_layout_id()
        if expected not in layouts:
            problems.append(
                f"{where}: its states have layout(s) {', '.join(layouts) or 'none'}, "
                f"this merge's config has {expected} "
                "(bins, thresholds, calibration bins or the task's state shape differ)"
            )
        return problems
    theirs = json.loads(settings)
    for key, what in COMPARED_SETTINGS.items():
        if theirs.get(key) == ours[key]:
            continue
        if key == "layout_id":
            differs = [
                f"{name} {theirs.get(name)} (here {ours[name]})"
                for name in ("bins", "thresholds", "calibration_bins")
                if theirs.get(name) != ours[name]
            ]
        else:
            mine, other = ours[key], theirs.get(key) or {}
            differs = [
                f"{key}.{name} {other.get(name)!r} (here {mine.get(name)!r})"
                for name in sorted(set(mine) | set(other))
                if other.get(name) != mine.get(name)
            ]
        problems.append(f"{where}: its {what} differs: {', '.join(differs) or key}")
    stored_slices = _slice_keys(theirs.get("slices") or {})
    for needed in needed_slice_keys(ctx.config):
        if needed not in stored_slices:
            problems.append(
                f"{where}: it stores no slice {needed!r} (it stores "
                f"{', '.join(repr(k) for k in sorted(stored_slices))}); "
                "remove it from this merge's [slices] or add it at the source"
            )
    return problems


def _slice_keys(slices: dict) -> set[str]:
    """The slice keys a run with these ``[slices]`` settings stores."""
    keys = {""}
    keys |= set(slices.get("segment_columns") or [])
    keys |= {",".join(c) for c in slices.get("crosses") or []}
    return keys


def central_slices(config: Config) -> list[tuple[str, ...]]:
    """The merge's slices: its configured ones, and ``source`` alone in any case."""
    out = config.slices_to_compute()
    return out if (SOURCE_COLUMN,) in out else [*out, (SOURCE_COLUMN,)]


def needed_slice_keys(config: Config) -> list[str]:
    """The slice keys each source must store: the merge's slices without ``source``."""
    keys = [",".join(c for c in s if c != SOURCE_COLUMN) for s in central_slices(config)]
    return list(dict.fromkeys(keys))


def _latest_run(ctx: RunContext, source: SourceConfig) -> dict | None:
    """The source's latest succeeded run (its current row in ``runs``), or None."""
    loc = tables.source_table_location(source, "runs")
    if not tables.table_exists(ctx.spark, loc):
        return None
    runs = tables.current_runs(tables.read_table(ctx.spark, loc))
    columns = ["code_version", "ended_at"]
    if "state_settings" in runs.columns:
        columns.append("state_settings")
    row = (
        runs.where(F.col("status") == F.lit("succeeded"))
        .orderBy(F.col("ended_at").desc())
        .select(*columns)
        .first()
    )
    return None if row is None else row.asDict()


def plan_days(ctx: RunContext, inputs: MergeInputs, start, end, full: bool) -> plan.DayPlan:
    """The days to merge: the given range, every day, or the days whose stored
    states changed in any source since the last successful merge of this config."""
    spark, config = ctx.spark, ctx.config
    if start is not None or end is not None:
        return plan.DayPlan("range", start, end, note="the given date range")
    if full:
        return plan.DayPlan("full", note="--full: every day the sources hold")
    last = tables.last_baseline_run(spark, config, inputs.input_name)
    if last is None:
        return plan.initial_plan(config, "no earlier successful merge of this config")
    before = last["input_versions"] or {}
    ids = last["input_table_ids"] or {}
    days: set = set()
    notes = []
    for name, source in sorted(inputs.sources.items()):
        was = before.get(name)
        if was is None:
            return plan.initial_plan(config, f"run {last['run_id']} did not merge source {name}")
        if ids.get(name) != source.table_id:
            return plan.initial_plan(config, f"source {name}'s score_histograms is another table")
        if was == source.version:
            notes.append(f"{name} unchanged at version {was}")
            continue
        if was > source.version:
            return plan.initial_plan(config, f"source {name} is at version {source.version}")
        changed = delta_log.changed_rows(spark, source.loc, was, source.version, "window_start")
        if changed is None:
            return plan.initial_plan(config, f"source {name}'s history since {was} is gone")
        rows, how = changed
        found = {
            r[0]
            for r in rows.where(F.col("granularity") == F.lit("day"))
            .select("window_start")
            .distinct()
            .collect()
        }
        notes.append(f"{name} version {was} -> {source.version} ({how}): {len(found)} day(s)")
        days |= found
    return plan.DayPlan("incremental", days=tuple(sorted(days)), note="; ".join(notes))


def _selected_days(day_plan: plan.DayPlan) -> Column:
    """The plan's days among daily rows (``granularity`` = 'day')."""
    day = F.col("window_start")
    condition = F.col("granularity") == F.lit("day")
    if day_plan.days is not None:
        return condition & day.isin(*[F.lit(d) for d in day_plan.days])
    if day_plan.start is not None:
        condition = condition & (day >= F.lit(day_plan.start))
    if day_plan.end is not None:
        condition = condition & (day <= F.lit(day_plan.end))
    return condition


def _of_models(config: Config, frame: DataFrame) -> DataFrame:
    if not config.input.models:
        return frame
    return frame.where(F.col("model_name").isin(*[F.lit(m) for m in config.input.models]))


def daily_states(ctx: RunContext, inputs: MergeInputs, day_plan: plan.DayPlan) -> DataFrame:
    """The central daily states of the plan's days, in ``HISTOGRAM_SCHEMA``: per
    central slice, the sources' states of that slice summed (``source`` in a
    slice: each source's own rows, its name in the slice value)."""
    config = ctx.config
    keys = [f.name for f in HISTOGRAM_SCHEMA.fields if f.name not in STATE_SUMS]
    tagged = []
    for name, source in sorted(inputs.sources.items()):
        stored = source.frame.where(
            _selected_days(day_plan)
            & (F.col("layout_id") == F.lit(ctx.task.state_layout_id()))
            & ctx.task.own_states()
        )
        stored = _of_models(config, stored)
        for columns in central_slices(config):
            base = ",".join(c for c in columns if c != SOURCE_COLUMN)
            rows = stored.where(F.col("slice_key") == F.lit(base))
            if SOURCE_COLUMN in columns:
                # Source names hold no ',' or '\\' (config.MODEL_NAME): no escaping needed.
                value = F.lit(name) if not base else F.concat(F.lit(name + ","), "slice_value")
                rows = rows.withColumn("slice_key", F.lit(",".join(columns))).withColumn(
                    "slice_value", value
                )
            tagged.append(rows.select(*keys, *STATE_SUMS))
    union = reduce(DataFrame.unionByName, tagged)
    summed = union.groupBy(*keys).agg(*[F.sum(s).alias(s) for s in STATE_SUMS])
    return summed.select(*[F.col(f.name).cast(f.dataType) for f in HISTOGRAM_SCHEMA.fields])


NOT_ROW_COUNTS = (REJECTED_ROWS, LABEL_COVERAGE, BELOW_MIN_SLICE_SIZE)


def row_counts(ctx: RunContext, inputs: MergeInputs, day_plan: plan.DayPlan) -> list[dict]:
    """Rows per (model, version, day, reject reason; '' = evaluated) of the plan's
    days, summed over the sources, from their ``metrics`` rows of the overall
    slice: ``rejected_rows`` per reason, and evaluated rows as the largest
    ``n_rows`` of a day's metrics (the whole group's). The same rows as the
    ``per_day`` of an evaluation's scan, for the run's counts and the central
    ``rejected_rows`` metrics."""
    config = ctx.config
    counts: dict[tuple, int] = {}
    for source in inputs.sources.values():
        loc = tables.source_table_location(inputs.configs[source.name], "metrics")
        if not tables.table_exists(ctx.spark, loc):
            continue
        day_rows = _of_models(
            config,
            tables.read_table(ctx.spark, loc).where(
                _selected_days(day_plan) & (F.col("slice_key") == F.lit(""))
            ),
        )
        rejected = day_rows.where(F.col("metric") == F.lit(REJECTED_ROWS)).select(
            "model_name", "model_version", "window_start", "class_label", "n_rows"
        )
        evaluated = (
            day_rows.where(~F.col("metric").isin(*[F.lit(m) for m in NOT_ROW_COUNTS]))
            .groupBy("model_name", "model_version", "window_start")
            .agg(F.lit("").alias("class_label"), F.max("n_rows").alias("n_rows"))
        )
        for r in rejected.unionByName(evaluated).collect():
            key = (r["model_name"], r["model_version"], r["window_start"], r["class_label"])
            counts[key] = counts.get(key, 0) + int(r["n_rows"] or 0)
    return [
        {"model_name": m, "model_version": v, "day": d, "reject_reason": reason, "n_rows": n}
        for (m, v, d, reason), n in sorted(counts.items(), key=lambda kv: str(kv[0]))
    ]
