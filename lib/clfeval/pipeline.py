"""The only module that sequences the steps of an evaluation run.

check config, input contract and row filter (predictions pinned at their
current Delta version, joined to the [labels] table by id when configured) ->
plan the days (a date range, --full, or incremental: the days whose input
changed since the last successful run, from Change Data Feed or the Delta log)
-> record the run as 'running' -> one scan to per-bin states (binary or
multiclass) -> count rejects (fail before writing if too many; optional
quarantine) -> write the daily
``score_histograms`` -> sum stored days into the rollup windows that contain
them (week, month, rolling) -> derive ``metrics``, ``confusion_matrices`` and
``curves`` for every written window from the stored histograms (plus label
coverage) -> optional ``metric_changes`` (drift) and ``alerts`` -> record the
run as 'succeeded' with input versions, windows and output versions.

Every table write is one Delta commit. A write that loses a race with a
concurrent run (Delta's conflict exceptions, or score_histograms changed
between this run's read and its writes) is repeated, at most run.max_attempts
times.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from typing import TypeVar
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

from clfeval import __version__
from clfeval.config import Config
from clfeval.core import alerts, coverage, windows
from clfeval.core.binary import BinaryState, evaluate
from clfeval.core.multiclass import evaluate_multiclass
from clfeval.core.windows import WindowRange
from clfeval.errors import ConcurrentRunError, ConfigError, ContractError, RejectLimitError
from clfeval.io import delta_log, file_stats, session, tables
from clfeval.spark import aggregate, contract, derive
from clfeval.spark import changes as spark_changes

Log = Callable[[str], None]
T = TypeVar("T")
ALL_DAYS = WindowRange("day", dt.date(1900, 1, 1), dt.date(9999, 12, 31))


@dataclass
class RunResult:
    run_id: str
    status: str
    mode: str = "range"
    rows_read: int = 0
    rows_evaluated: int = 0
    reject_counts: dict[str, int] = field(default_factory=dict)
    windows: list[WindowRange] = field(default_factory=list)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    summary: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Rows not in the metrics: bad rows, filtered-out rows and unlabeled rows."""
        return sum(self.reject_counts.values())

    @property
    def rows_bad(self) -> int:
        """Rejected rows that count towards ``run.max_reject_fraction``."""
        return self.rows_rejected - sum(
            self.reject_counts.get(r, 0) for r in contract.NOT_BAD_REASONS
        )


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


def _read_sources(spark: SparkSession, config: Config) -> dict[str, Source]:
    """Predictions (and labels) pinned at their current versions; contracts checked."""
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
        predictions = contract.join_labels(predictions, sources["labels"].frame, config)
    contract.check_contract(predictions.schema, config)
    contract.check_filter(predictions, config)
    return sources


def _initial_plan(config: Config, why: str) -> DayPlan:
    n = config.run.initial_lookback_days
    if n == 0:
        return DayPlan("initial", note=f"{why}: every day in the input")
    today = dt.datetime.now(ZoneInfo(config.run.timezone)).date()
    first = today - dt.timedelta(days=n - 1)
    return DayPlan("initial", start=first, note=f"{why}: the last {n} days (from {first})")


def _plan_days(
    spark: SparkSession,
    config: Config,
    sources: dict[str, Source],
    start: dt.date | None,
    end: dt.date | None,
    full: bool,
) -> DayPlan:
    """The days to evaluate: the given range, every day, or the changed days."""
    if start is not None or end is not None:
        return DayPlan("range", start, end, note="the given date range")
    if full:
        return DayPlan("full", note="--full: every day in the input")
    predictions = sources["predictions"]
    last = tables.last_baseline_run(spark, config, str(predictions.loc))
    if last is None:
        return _initial_plan(config, "no earlier successful run of this config")
    before = last["input_versions"] or {}
    ids = last["input_table_ids"] or {}
    days: set[dt.date] = set()
    notes = []
    for source in sources.values():
        was = before.get(source.name)
        if was is None:
            return _initial_plan(config, f"run {last['run_id']} recorded no {source.name} version")
        if ids.get(source.name) != source.table_id:
            return _initial_plan(config, f"{source.name} is another Delta table (recreated?)")
        if was == source.version:
            notes.append(f"{source.name} unchanged at version {was}")
            continue
        if was > source.version:
            return _initial_plan(
                config, f"{source.name} is at version {source.version}, before {was} (restored?)"
            )
        partition = config.input.date_partition_column if source.name == "predictions" else None
        changed = delta_log.changed_rows(spark, source.loc, was, source.version, partition)
        if changed is None:
            return _initial_plan(
                config, f"the history of {source.name} since version {was} is no longer kept"
            )
        rows, how = changed
        if source.name == "labels":
            rows = contract.predictions_of_labels(predictions.frame, rows, config)
        try:
            found = contract.event_days(rows, config)
        except Exception as exc:
            if not delta_log.is_missing_file(exc):
                raise
            return _initial_plan(
                config,
                f"could not read the rows {source.name} changed since version {was} "
                "(files removed by VACUUM)",
            )
        notes.append(
            f"{source.name} version {was} -> {source.version} ({how}): {len(found)} day(s)"
        )
        days |= found
    return DayPlan("incremental", days=tuple(sorted(days)), note="; ".join(notes))


def run_evaluation(
    spark: SparkSession,
    config: Config,
    start: dt.date | None = None,
    end: dt.date | None = None,
    log: Log = print,
    full: bool = False,
) -> RunResult:
    """Evaluate and write every table.

    With ``start``/``end``: the input days in [start, end]. With ``full``: every
    day. Otherwise incremental: the days whose input (predictions or labels)
    changed since the last successful incremental/full run of this config.
    """
    if start is not None and end is not None and start > end:
        raise ConfigError([f"--start-date {start} is after --end-date {end}"])
    settings = dict(session.RUN_CONF)
    if not config.is_multiclass:
        groups = derive.groups_per_arrow_batch(config.layout().n_bins)
        settings[session.ARROW_RECORDS_PER_BATCH] = str(groups)
    with session.run_settings(spark, settings):
        return _evaluate(spark, config, start, end, log, full)


def _evaluate(
    spark: SparkSession,
    config: Config,
    start: dt.date | None,
    end: dt.date | None,
    log: Log,
    full: bool,
) -> RunResult:
    phase = _Phases(log)
    spark.conf.set("spark.sql.session.timeZone", config.run.timezone)
    layout = config.layout()
    phase(f"checking input {tables.input_location(config)}")
    sources = _read_sources(spark, config)
    plan = _plan_days(spark, config, sources, start, end, full)
    phase(f"{plan.mode} run: {plan.note}")

    run_id = uuid.uuid4().hex
    result = RunResult(run_id, "running", mode=plan.mode)
    result.input_versions = {name: s.version for name, s in sources.items()}
    record = {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "status": "running",
        "config_hash": config.fingerprint(),
        "results_hash": config.results_fingerprint(),
        "code_version": __version__,
        "input": str(sources["predictions"].loc),
        "input_version": sources["predictions"].version,
        "input_versions": result.input_versions,
        "input_table_ids": {name: s.table_id for name, s in sources.items()},
        "mode": plan.mode,
        "start_date": start,
        "end_date": end,
    }
    # The run's row is committed while the input is scanned (reading writes
    # nothing); _run waits for it before its first write.
    with ThreadPoolExecutor(max_workers=1) as recorder:
        recorded = recorder.submit(
            _retrying,
            config,
            phase,
            "recording the run",
            lambda: tables.start_run(spark, config, record),
        )
        try:
            _run(spark, config, layout, sources, plan, result, phase, recorded.result)
            first_version = recorded.result()
        except BaseException as exc:
            if recorded.exception() is not None:
                raise  # no row of this run to mark failed
            result.status = "failed"
            fields = {**_run_fields(result), "message": str(exc)[:4000]}
            _retrying(
                config,
                phase,
                "recording the failure",
                lambda: tables.finish_run(spark, config, record, fields, recorded.result()),
            )
            raise
    result.status = "succeeded"
    _retrying(
        config,
        phase,
        "recording the run",
        lambda: tables.finish_run(spark, config, record, _run_fields(result), first_version),
    )
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
        "windows": [
            {"granularity": w.granularity, "first_start": w.first, "last_start": w.last}
            for w in result.windows
        ],
        "attempts": result.attempts,
    }


class _StaleReadError(Exception):
    """Another run committed to score_histograms between this run's read and write."""


def _retrying(config: Config, phase: _Phases, what: str, action: Callable[[], T]) -> T:
    """Run ``action``; when its Delta commit loses a race with a concurrent run
    (or reads states another run replaced meanwhile), wait a jittered, growing
    pause and run it again, at most ``run.max_attempts`` times."""
    attempts = config.run.max_attempts
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not (isinstance(exc, _StaleReadError) or tables.is_concurrent_modification(exc)):
                raise
            if attempt == attempts:
                raise ConcurrentRunError(
                    [
                        f"{what}: other runs committed to the same tables {attempts} times "
                        "(run.max_attempts); every table holds a committed state, rerun later"
                    ]
                ) from exc
            pause = random.uniform(0.5, 1.5) * attempt
            phase(f"{what}: a concurrent run committed first; retrying in {pause:.1f}s")
            time.sleep(pause)
    raise AssertionError("unreachable")


def _run(
    spark: SparkSession,
    config: Config,
    layout,
    sources: dict[str, Source],
    plan: DayPlan,
    result: RunResult,
    phase: _Phases,
    wait_for_run_record: Callable[[], object],
) -> None:
    """Scan, then (once the run's row is committed) write every table."""
    if plan.days is not None and not plan.days:
        phase("no input changed since the last run: nothing to write")
        return
    from_partition = _days_from_partition(spark, config, sources["predictions"], plan)
    if from_partition is not None:
        how = "" if from_partition.holds else f"from {config.input.event_time_column}: "
        phase(f"event days {how}{from_partition.reason}")
    predictions = contract.with_event_day(
        sources["predictions"].frame, config, from_partition is not None and from_partition.holds
    )
    if plan.days is not None:
        selected = contract.select_days(predictions, config, list(plan.days))
    else:
        selected = contract.select_range(predictions, config, plan.start, plan.end)
    if "labels" in sources:
        selected = contract.join_labels(selected, sources["labels"].frame, config)
    jvm = aggregate.jvm_scan(spark, layout)
    if config.is_multiclass:
        rows = contract.normalize_multiclass(selected, config)
        grain = f"{len(config.class_texts())} classes x {layout.n_bins} bins"
        usable = jvm is not None and aggregate.multiclass_jvm_fits(rows, config, layout, jvm)
        scan = aggregate.scan_multiclass_states
    else:
        rows = contract.normalize(selected, config)
        grain = f"{layout.n_bins} score bins"
        usable = jvm is not None and aggregate.jvm_groups_by(rows, config)
        scan = aggregate.scan_states
    if jvm is None:
        how = "Spark SQL (JVM scan not found)"
    elif not usable:
        limit = " or too many classes x bins" if config.is_multiclass else ""
        how = f"Spark SQL (collated key columns{limit})"
    else:
        how = "clfeval's JVM scan"
    phase(f"scanning input: one aggregation to {grain} per group ({how})")
    states = scan(rows, config, layout, jvm).persist()
    fresh: DataFrame | None = None
    try:
        per_day = aggregate.reject_counts(states).collect()
        wait_for_run_record()
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
        if result.rows_read == 0 and plan.days is None:
            phase("no input rows in the date range: nothing to write")
            return
        fraction = result.rows_bad / result.rows_read if result.rows_read else 0.0
        if fraction > config.run.max_reject_fraction:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(result.reject_counts.items()))
            raise RejectLimitError(
                [
                    f"{fraction:.2%} of {result.rows_read} rows were rejected, more than "
                    f"run.max_reject_fraction={config.run.max_reject_fraction} ({detail})"
                ]
            )
        scanned_days = [r["day"] for r in per_day if r["day"] is not None]
        if config.output.quarantine and result.rows_rejected > 0:
            phase(f"writing {result.rows_rejected:,} rejected rows to quarantine")
            quarantined = contract.rejected_rows(selected, config, result.run_id)
            result.output_versions["quarantine"] = _retrying(
                config,
                phase,
                "writing quarantine",
                lambda: tables.append_rows(
                    spark, quarantined, tables.output_location(config, "quarantine")
                ),
            )
        if plan.days is not None:
            day_ranges = windows.day_ranges(list(plan.days))
        elif scanned_days:
            first = plan.start or min(scanned_days)
            day_ranges = [WindowRange("day", first, plan.end or max(scanned_days))]
        else:
            phase("every row was rejected: nothing to write")
            return
        # Not written here: _write_windows writes them together with their
        # rollups and the derived tables, all computed from them in memory.
        fresh = aggregate.rollup_slices(states, config, layout).persist()

        extra_metrics = _reject_metric_rows(per_day)
        attempt = 0

        def write_windows() -> None:
            nonlocal attempt
            attempt += 1
            result.attempts = attempt
            # Until this run's histograms are committed, every attempt writes them
            # (a lost commit race); after that, a retry derives from the stored ones.
            own = fresh if "score_histograms" not in result.output_versions else None
            _write_windows(
                spark,
                config,
                layout,
                sources,
                day_ranges,
                per_day,
                extra_metrics,
                result,
                phase,
                own,
            )

        _retrying(config, phase, "writing the windows", write_windows)
    finally:
        states.unpersist()
        if fresh is not None:
            fresh.unpersist()


@dataclass(frozen=True)
class PartitionDays:
    """Whether a date partition gives every selected row's event day (``holds``),
    and why or why not (``reason``, for the console)."""

    holds: bool
    reason: str


def partition_days(
    spark: SparkSession,
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


def _days_from_partition(
    spark: SparkSession, config: Config, source: Source, plan: DayPlan
) -> PartitionDays | None:
    """``partition_days`` of the run's selection; None without a date partition column."""
    i = config.input
    if i.date_partition_column is None:
        return None
    return partition_days(
        spark,
        config,
        source.loc,
        source.version,
        source.frame,
        days=None if plan.days is None else list(plan.days),
        start=plan.start,
        end=plan.end,
    )


def _write_windows(
    spark: SparkSession,
    config: Config,
    layout,
    sources: dict[str, Source],
    day_ranges: list[WindowRange],
    per_day: list,
    extra_metrics: list[dict],
    result: RunResult,
    phase: _Phases,
    own_histograms: DataFrame | None = None,
) -> None:
    """Rollups, derived tables, drift and alerts of the run's windows, all from
    one version of score_histograms, written in one parallel step.

    The run's days come from ``own_histograms`` (in memory, not yet written) or,
    without it (a retry after this run's histograms were committed), from
    score_histograms itself. The rollups are summed from them and the other days
    stored in score_histograms; the days, the rollups and the derived tables
    computed from both are then written at once, instead of the days written,
    the rollups computed from what was stored and written, and everything read
    back and derived from in turn (day-only 20M-row run 7.44 s -> 6.76 s).

    Raises _StaleReadError when another run committed different daily states to
    score_histograms between this run's read and its commit (its rollups may lack
    them), or different states of this run's windows after its commit: the
    caller runs it again on the stored states.
    """
    models = config.input.models
    histograms_loc = tables.output_location(config, "score_histograms")
    read_version = tables.table_version(spark, histograms_loc)
    read_back = None
    if own_histograms is None:
        read_back = _stored_histograms(spark, config, day_ranges, read_version).persist()
    days = own_histograms if read_back is None else read_back
    rollups, rolled = _rollups(spark, config, day_ranges, read_version, days)
    if rolled is not None:
        phase(
            "rolling up "
            + ", ".join(f"{t.granularity} from {t.first}" for t in rollups)
            + " (this run's days and the stored ones)"
        )
        rolled = rolled.persist()
    ranges = [*day_ranges, *rollups]
    # By name: stored rows may order (or lack) columns differently.
    stored = days if rolled is None else days.unionByName(rolled, allowMissingColumns=True)

    def write_histograms() -> int | None:
        version = tables.replace_windows(spark, stored, histograms_loc, ranges, models)
        # Recorded at once: if a parallel write fails, the retry must not
        # derive from states it believes unwritten.
        result.output_versions["score_histograms"] = version
        return version

    writes: dict[str, Callable[[], object]] = {"score_histograms": write_histograms}
    result.windows = ranges
    if "labels" in sources:
        extra_metrics = extra_metrics + _coverage_metric_rows(spark, config, per_day, ranges)
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
    # Evaluated once per group and kept in memory (small: rows per group, not per
    # input row) for the three writes below. No count() first: the writes run at
    # once, and a task needing a cached block another task is computing waits and
    # reads it, so each group is still evaluated once, without one more job
    # (checked: 231 evaluations for 231 groups; 20M-row run 6.98 -> 6.63 s).
    derived = derived.persist()
    try:
        for name, df in derive.split_tables(derived).items():
            if name == "metrics" and extra_metrics:
                fields = [f.name for f in derive.METRICS_SCHEMA.fields]
                rows = [tuple(r.get(f) for f in fields) for r in extra_metrics]
                df = df.unionByName(spark.createDataFrame(rows, derive.METRICS_SCHEMA))
            loc = tables.output_location(config, name)
            expand = derive.WRITE_EXPANSIONS.get(name)
            writes[name] = lambda df=df, loc=loc, expand=expand: tables.replace_windows(
                spark, df, loc, ranges, models, expand=expand
            )
        summarize_run = summarize_multiclass if config.is_multiclass else summarize
        day_states = stored.where(tables.window_filter(day_ranges))
        writes["summary"] = lambda: summarize_run(day_states, config)
        phase(
            f"deriving metrics, confusion matrices and curves of {len(ranges)} window "
            f"range(s); writing {', '.join(n for n in writes if n != 'summary')} (in parallel)"
        )
        done = _in_parallel(writes)
    finally:
        derived.unpersist()
        for cached in (read_back, rolled):
            if cached is not None:
                cached.unpersist()
    result.summary = done.pop("summary")
    result.output_versions.update(done)
    written = result.output_versions["score_histograms"]
    if rollups and not _no_other_daily_commit(spark, config, read_version, written):
        raise _StaleReadError()
    read_version = written
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
    latest = tables.table_version(spark, histograms_loc)
    if latest != read_version and not _same_histograms(spark, config, ranges, read_version, latest):
        raise _StaleReadError()


def _in_parallel(actions: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent actions (Delta commits to different tables, a summary) on
    threads: most of a small table's write is driver-side latency (log listing,
    commit), which overlaps. Waits for every action before raising the first
    error, so no write outlives a failed attempt."""
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        futures = {name: pool.submit(action) for name, action in actions.items()}
    # Leaving the pool waited for every action; result() re-raises an action's error.
    return {name: future.result() for name, future in futures.items()}


def _same_histograms(
    spark: SparkSession,
    config: Config,
    ranges: list[WindowRange],
    version_a: int | None,
    version_b: int | None,
) -> bool:
    """Whether the stored states of ``ranges`` are the same at two versions."""
    return aggregate.same_states(
        _stored_histograms(spark, config, ranges, version_a),
        _stored_histograms(spark, config, ranges, version_b),
    )


def _coverage_metric_rows(
    spark: SparkSession, config: Config, per_day: list, ranges: list[WindowRange]
) -> list[dict]:
    """``label_coverage`` rows for every window: this run's days from its scan,
    other days of its rollup windows from their stored daily coverage rows."""
    rows: dict[tuple, list[int]] = {}
    for r in per_day:
        if not (r["model_name"] and r["model_version"] and r["day"]):
            continue
        if r["reject_reason"] == contract.EXCLUDED_BY_FILTER:
            continue
        counts = rows.setdefault((r["model_name"], r["model_version"], r["day"]), [0, 0])
        counts[0] += int(r["n_rows"])
        if r["reject_reason"] == contract.UNLABELED:
            counts[1] += int(r["n_rows"])
    run_days = {day for r in ranges if r.granularity == "day" for day in windows.window_starts(r)}
    daily = [coverage.DailyCoverage(m, v, d, n, u) for (m, v, d), (n, u) in rows.items()]
    loc = tables.output_location(config, "metrics")
    if any(r.granularity != "day" for r in ranges) and tables.table_exists(spark, loc):
        # Only the days the rollup windows span reach the driver.
        first = min(r.first for r in ranges)
        end = max(windows.window_end(r.granularity, r.last) for r in ranges)
        stored = tables.read_table(spark, loc).where(
            (F.col("metric") == F.lit("label_coverage"))
            & (F.col("granularity") == F.lit("day"))
            & (F.col("window_start") >= F.lit(first))
            & (F.col("window_start") < F.lit(end))
        )
        if config.input.models:
            stored = stored.where(
                F.col("model_name").isin(*[F.lit(m) for m in config.input.models])
            )
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


def _no_other_daily_commit(
    spark: SparkSession, config: Config, read_version: int | None, written: int | None
) -> bool:
    """Whether the daily states stored just before this run's commit ``written``
    are those it read at ``read_version`` (its rollups summed them): no commit
    in between, or only ones that left the daily states as they were (identical
    rewrites by a concurrent run are harmless)."""
    assert written is not None
    if read_version is None:
        return written == 0
    return written == read_version + 1 or _same_histograms(
        spark, config, [ALL_DAYS], read_version, written - 1
    )


def _rollups(
    spark: SparkSession,
    config: Config,
    day_ranges: list[WindowRange],
    version: int | None,
    own_histograms: DataFrame,
) -> tuple[list[WindowRange], DataFrame | None]:
    """Every rollup window containing one of the run's days, and its histograms:
    sums of the daily histograms stored at ``version``, where ``own_histograms``
    (the run's days) replace the stored rows of the run's days.
    ``([], None)`` when there are none."""
    granularities = [g for g in config.output.granularities if g != "day"]
    if not granularities:
        return [], None
    if version is None:
        daily = own_histograms
    else:
        others = _stored_histograms(spark, config, [ALL_DAYS], version).where(
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
        return [], None
    targets = windows.merge_ranges([a.windows for a in affected])
    sources = windows.merge_ranges(
        [WindowRange("day", a.source_first, a.source_last) for a in affected]
    )
    needed = daily.where(tables.window_filter(sources))
    rolled = reduce(DataFrame.unionByName, [aggregate.rollup_windows(needed, t) for t in targets])
    return targets, rolled


def _stored_histograms(
    spark: SparkSession, config: Config, ranges: list[WindowRange], version: int | None = None
) -> DataFrame:
    loc = tables.output_location(config, "score_histograms")
    stored = tables.read_table(spark, loc, version)
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
        state = derive.state_from_rows(rows, layout.n_bins)
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
