"""Delta reads and idempotent writes of the output tables.

Every output table carries the key columns ``model_name, model_version,
slice_key, slice_value, granularity, window_start, window_end`` and is
partitioned by ``granularity, window_start``. A run replaces exactly the
windows it computed with Delta's ``replaceWhere``; the predicate is built only
from validated values (a granularity from a fixed list, ``datetime.date``
objects, model names that matched ``config.MODEL_NAME``), never from raw text.
Delta checks that every written row satisfies the predicate, and a failed write
commits nothing, so a crash leaves the previous state intact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from delta.tables import DeltaTable
from py4j.java_gateway import JavaObject
from py4j.protocol import Py4JError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import GRANULARITY_NAME, MODEL_NAME, Config
from clfeval.core.windows import WindowRange
from clfeval.schema import PARTITION_COLUMNS, RUNS_SCHEMA

GRANULARITY = GRANULARITY_NAME

# Table properties of the windowed output tables, set when a write creates one
# (Delta ignores them on later writes). Per-file min/max statistics only for the
# model columns: a (granularity, window_start) partition holds one file per model
# evaluated into it, so the model is what a reader can skip files by; statistics of
# every column cost more than writing the small file itself (20M-row benchmark
# run, 6 alternating repetitions in one process: 7.34 s -> 6.62 s, process CPU
# 12.6 -> 11.3 s). Tables created by an older clfeval keep their statistics;
# `ALTER TABLE ... SET TBLPROPERTIES` applies these to them.
OUTPUT_TABLE_PROPERTIES = {"delta.dataSkippingStatsColumns": "model_name,model_version"}


# Modes whose input versions a later incremental run may start from: they
# evaluated every change up to those versions (a date-range run did not).
BASELINE_MODES = ("full", "initial", "incremental")

# Delta's optimistic-concurrency conflicts (error classes and Java class names):
# the commit lost a race with another writer and may be retried.
CONCURRENT_MODIFICATION_MARKERS = (
    "DELTA_CONCURRENT_",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
)


@dataclass(frozen=True)
class TableLocation:
    """Either a path (``output.path``) or a catalog name (``output.catalog_schema``)."""

    name: str
    path: str | None = None
    qualified_name: str | None = None

    def __str__(self) -> str:
        return self.qualified_name or self.path or self.name


def output_location(config: Config, table: str) -> TableLocation:
    o = config.output
    full = f"{o.table_prefix}{table}"
    if o.catalog_schema:
        return TableLocation(table, qualified_name=f"{o.catalog_schema}.{full}")
    return TableLocation(table, path=os.path.join(o.path, full))


def input_location(config: Config) -> TableLocation:
    i = config.input
    return TableLocation("input", path=i.path, qualified_name=i.table)


def labels_location(config: Config) -> TableLocation | None:
    lab = config.labels
    if not lab.enabled:
        return None
    return TableLocation("labels", path=lab.path, qualified_name=lab.table)


def _delta_table(spark: SparkSession, loc: TableLocation) -> DeltaTable | None:
    if loc.qualified_name is not None:
        if not spark.catalog.tableExists(loc.qualified_name):
            return None
        return DeltaTable.forName(spark, loc.qualified_name)
    assert loc.path is not None
    if not DeltaTable.isDeltaTable(spark, loc.path):
        return None
    return DeltaTable.forPath(spark, loc.path)


def table_exists(spark: SparkSession, loc: TableLocation) -> bool:
    return _delta_table(spark, loc) is not None


def read_table(spark: SparkSession, loc: TableLocation, version: int | None = None) -> DataFrame:
    """The table's latest snapshot, or the snapshot of ``version`` (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    if loc.qualified_name is not None:
        return reader.table(loc.qualified_name)
    return reader.load(loc.path)


def error_mentions(exc: BaseException, markers: tuple[str, ...]) -> bool:
    """Whether an error's class name or message holds one of ``markers`` (Spark and
    Delta errors reach Python as captured exceptions carrying the JVM's text)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in markers)


def is_concurrent_modification(exc: BaseException) -> bool:
    """True for a Delta commit conflict with a concurrent writer (retryable)."""
    return error_mentions(exc, CONCURRENT_MODIFICATION_MARKERS)


def _delta_log(spark: SparkSession, loc: TableLocation) -> tuple[JavaObject, JavaObject] | None:
    """The JVM view and Delta's (internal, Scala) log object of a path table,
    reached through py4j; None where they are not reachable: catalog tables,
    Spark Connect, another Delta build. Callers then use the public API."""
    jvm = getattr(spark, "_jvm", None)  # Spark Connect sessions have none
    if loc.path is None or jvm is None:
        return None
    try:
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, loc.path)
    except Py4JError:
        return None
    return jvm, log


def _log_snapshot(spark: SparkSession, loc: TableLocation) -> JavaObject | None:
    """The latest snapshot of a path table, read by Delta's log on the driver (a
    listing of ``_delta_log`` and the last commit: ~10 ms, where ``history(1)`` or
    ``detail()`` run a Spark job, ~200 ms each and several per run); None where
    ``_delta_log`` is."""
    reached = _delta_log(spark, loc)
    if reached is None:
        return None
    jvm, log = reached
    try:
        none = jvm.scala.Option.empty()
        # update(stalenessAcceptable=false, ...): list the log now, never a cached state
        return log.update(False, none, none)
    except Py4JError:
        return None


def table_id(spark: SparkSession, loc: TableLocation) -> str:
    """The Delta table's id (new for every table created, kept across versions)."""
    snapshot = _log_snapshot(spark, loc)
    if snapshot is not None and snapshot.version() >= 0:
        return str(snapshot.metadata().id())
    table = _delta_table(spark, loc)
    if table is None:
        raise FileNotFoundError(f"{loc} is not a Delta table")
    return str(table.detail().select("id").first()[0])


def table_version(spark: SparkSession, loc: TableLocation) -> int | None:
    """The latest committed Delta version, or None when the table does not exist."""
    snapshot = _log_snapshot(spark, loc)
    if snapshot is not None:
        version = int(snapshot.version())
        return None if version < 0 else version
    table = _delta_table(spark, loc)
    if table is None:
        return None
    return int(table.history(1).select("version").first()[0])


def window_predicate(ranges: list[WindowRange], models: tuple[str, ...]) -> str:
    """The replaceWhere predicate of a run, from validated values only."""
    parts = []
    for r in ranges:
        if not GRANULARITY.match(r.granularity):
            raise ValueError(f"unknown granularity {r.granularity!r}")
        if not isinstance(r.first, dt.date) or not isinstance(r.last, dt.date):
            raise TypeError("window bounds must be datetime.date objects")
        parts.append(
            f"(granularity = '{r.granularity}'"
            f" AND window_start >= DATE'{r.first.isoformat()}'"
            f" AND window_start <= DATE'{r.last.isoformat()}')"
        )
    predicate = "(" + " OR ".join(parts) + ")"
    for model in models:
        if not MODEL_NAME.match(model):
            raise ValueError(f"model name {model!r} is not valid in a predicate")
    if models:
        predicate += " AND model_name IN (" + ", ".join(f"'{m}'" for m in models) + ")"
    return predicate


def window_filter(ranges: list[WindowRange]) -> Column:
    """The same windows as a DataFrame filter (typed literals)."""
    conditions = [
        (F.col("granularity") == F.lit(r.granularity))
        & (F.col("window_start") >= F.lit(r.first))
        & (F.col("window_start") <= F.lit(r.last))
        for r in ranges
    ]
    return reduce(lambda a, b: a | b, conditions)


def replace_windows(
    spark: SparkSession,
    df: DataFrame,
    loc: TableLocation,
    ranges: list[WindowRange],
    models: tuple[str, ...],
    expand: Callable[[DataFrame], DataFrame] | None = None,
) -> int | None:
    """Atomically replace the rows of ``ranges`` (and models) with ``df``; returns the version.

    ``expand``, if given, turns ``df``'s rows into the table's rows after the
    write's shuffle (e.g. compact rows exploded), so the shuffle moves ``df``."""
    # mergeSchema: columns added by a newer clfeval (NULL in older rows) join the table.
    # Always replaceWhere, also for a table not created yet: deciding "append" from an
    # earlier existence check would let a run that lost the race to create the table
    # append a second copy of the windows another run just wrote.
    # One task per (granularity, window_start): one file per window instead of one
    # per window and shuffle partition (fewer small files, a faster commit).
    partitioned = df.repartition(*[F.col(c) for c in PARTITION_COLUMNS])
    if expand is not None:
        partitioned = expand(partitioned)
    writer = (
        partitioned.write.format("delta")
        .partitionBy(*PARTITION_COLUMNS)
        .option("mergeSchema", "true")
        .mode("overwrite")
        .option("replaceWhere", window_predicate(ranges, models))
        .options(**OUTPUT_TABLE_PROPERTIES)
    )
    if loc.qualified_name is not None:
        writer.saveAsTable(loc.qualified_name)
    else:
        writer.save(loc.path)
    return table_version(spark, loc)


def _literal(value: object, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.MapType):
        items = value or {}
        if not items:
            return F.lit(None).cast(data_type)
        flat = [c for k, v in sorted(items.items()) for c in (F.lit(k), F.lit(v))]
        return F.create_map(*flat).cast(data_type)
    if isinstance(data_type, T.ArrayType):
        element = data_type.elementType
        if isinstance(element, T.StructType):
            items = [
                F.struct(*[F.lit(v[f.name]).cast(f.dataType).alias(f.name) for f in element.fields])
                for v in (value or [])
            ]
        else:
            items = [F.lit(v) for v in (value or [])]
        return F.array(*items).cast(data_type)
    return F.lit(value).cast(data_type)


def _run_row(spark: SparkSession, record: dict, ended_now: bool = False) -> DataFrame:
    """The run's row as a one-row DataFrame of RUNS_SCHEMA (``ended_at`` now, if asked).

    A local relation, not literals: Spark inlines a literal timestamp or number
    into the code it generates, so a row of literals generated and compiled new
    classes in every run (four a run, ~20-45 ms of Janino each, then JIT work on
    them), where the same code for every row is compiled once per session."""
    values = {**record, "ended_at": dt.datetime.now(dt.UTC)} if ended_now else record
    return spark.createDataFrame(
        [tuple(values.get(f.name) for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA
    )


def start_run(spark: SparkSession, config: Config, record: dict) -> int | None:
    """Append the run's first row (status 'running') to the runs table.

    Returns the first version that can hold the row (the table's version before the
    append + 1), which lets ``finish_run`` find the row's file from the commits
    since then; None where the log is not reachable that way (``_log_snapshot``)."""
    loc = output_location(config, "runs")
    before = _log_snapshot(spark, loc)
    # mergeSchema: a runs table written by an older clfeval gains the new columns.
    writer = (
        _run_row(spark, record).write.format("delta").mode("append").option("mergeSchema", "true")
    )
    if loc.qualified_name is not None:
        writer.saveAsTable(loc.qualified_name)
    else:
        writer.save(loc.path)
    return None if before is None else int(before.version()) + 1


def finish_run(
    spark: SparkSession,
    config: Config,
    record: dict,
    updates: dict,
    first_version: int | None = None,
) -> None:
    """Set the final fields of a run's row (status, counts, versions, end time).

    ``record`` is the row ``start_run`` wrote and ``first_version`` what it returned."""
    loc = output_location(config, "runs")
    if first_version is not None and _replace_run_row(
        spark, loc, {**record, **updates}, first_version
    ):
        return
    table = _delta_table(spark, loc)
    if table is None:
        return
    types = {f.name: f.dataType for f in RUNS_SCHEMA.fields}
    assignments = {k: _literal(v, types[k]) for k, v in updates.items()}
    assignments["ended_at"] = F.current_timestamp()
    table.update(condition=F.col("run_id") == F.lit(record["run_id"]), set=assignments)


def _replace_run_row(
    spark: SparkSession, loc: TableLocation, row: dict, first_version: int
) -> bool:
    """Replace the run's row in one commit that removes the file ``start_run`` wrote
    (found in the commits since ``first_version``) and adds a file with ``row``.

    That is the commit Delta's UPDATE makes, without the work UPDATE needs to find
    the row: replaying the table's log into its file list, scanning the candidate
    files for the row, rewriting the file from what it read (seven Spark jobs,
    0.65 s in a warm 2M-row run, against one job and 0.21 s here; whole runs
    4.38 -> 4.05 s and 0.66 CPU-s less, medians of 8, alternating in one
    process). Done only when the file's statistics show it holds this run's row
    alone (one record, run_id min and max equal to it: an OPTIMIZE that merged
    rows into one file, or a user's rewrite, leaves no such file) and the table
    has clfeval's runs columns unpartitioned. A concurrent commit that removed
    the same file (OPTIMIZE, a user's UPDATE) fails this commit with Delta's
    conflict error. Internal Scala API (``_delta_log``): False wherever it is not
    reachable, fails or does not apply, and the caller then runs the UPDATE
    (which sets the same values, also if this commit got through before an
    error)."""
    reached = _delta_log(spark, loc)
    if reached is None:
        return False
    jvm, log = reached
    none = jvm.scala.Option.empty()
    try:
        txn = log.startTransaction()
        metadata = txn.metadata()
        schema = T.StructType.fromJson(json.loads(metadata.schemaString()))
        if (
            metadata.partitionColumns().nonEmpty()
            or schema.simpleString() != RUNS_SCHEMA.simpleString()
        ):
            return False
        row_file = _run_row_file(log, first_version, int(txn.readVersion()), row["run_id"], none)
        if row_file is None:
            return False
        added = txn.writeFiles(_run_row(spark, row, ended_now=True)._jdf)
        update = getattr(jvm.org.apache.spark.sql.delta, "DeltaOperations$Update")(none)
        txn.commit(added.appended(row_file.remove()), update)
        return True
    # Also a schema or statistics this code does not parse: the run's work is done,
    # and the UPDATE can still record it.
    except (Py4JError, ValueError, LookupError, TypeError):
        return False


def _run_row_file(
    log: JavaObject, first: int, last: int, run_id: str, none: JavaObject
) -> JavaObject | None:
    """The AddFile of commits ``first..last`` that holds ``run_id``'s row alone and
    that no later commit of the range removed; None when there is none."""
    if last < first:
        return None
    found = None
    commits = log.getChanges(first, last, none, True)  # True: a missing commit file raises
    while commits.hasNext():
        actions = commits.next()._2().iterator()
        while actions.hasNext():
            action = actions.next()
            kind = action.getClass().getSimpleName()
            if kind == "AddFile" and action.deletionVector() is None and action.stats():
                stats = json.loads(action.stats())
                if (
                    stats.get("numRecords") == 1
                    and stats.get("minValues", {}).get("run_id") == run_id
                    and stats.get("maxValues", {}).get("run_id") == run_id
                ):
                    found = action
            elif kind == "RemoveFile" and found is not None and action.path() == found.path():
                found = None
    return found


def last_baseline_run(spark: SparkSession, config: Config, input_name: str) -> dict | None:
    """The latest succeeded full/initial/incremental run with the same results
    settings (``Config.results_fingerprint``) and input:
    its run_id, started_at, input_versions and input_table_ids; None when there
    is none."""
    loc = output_location(config, "runs")
    if not table_exists(spark, loc):
        return None
    runs = read_table(spark, loc)
    if "results_hash" not in runs.columns:
        return None
    row = (
        runs.where(
            (F.col("status") == F.lit("succeeded"))
            & F.col("mode").isin(*[F.lit(m) for m in BASELINE_MODES])
            & (F.col("results_hash") == F.lit(config.results_fingerprint()))
            & (F.col("input") == F.lit(input_name))
        )
        .orderBy(F.col("started_at").desc())
        .select("run_id", "started_at", "input_versions", "input_table_ids")
        .first()
    )
    return None if row is None else row.asDict()


def append_rows(spark: SparkSession, df: DataFrame, loc: TableLocation) -> int | None:
    """Append ``df`` (schema merged) and return the table's new version."""
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
    if loc.qualified_name is not None:
        writer.saveAsTable(loc.qualified_name)
    else:
        writer.save(loc.path)
    return table_version(spark, loc)


def write_predictions(df: DataFrame, path: str, partition_column: str = "date") -> None:
    """(Over)write a predictions table partitioned by date (demo data, tests, benchmarks)."""
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
        partition_column
    ).save(path)


VIEW_TABLES = ("metrics", "confusion_matrices", "curves")


def create_latest_views(spark: SparkSession, config: Config) -> list[str]:
    """``latest_<prefix><table>`` views: each model's rows of its latest daily window.

    With ``output.catalog_schema`` the views are created in that schema (next to
    the tables); with ``output.path`` in the session's current database, over
    ``delta.`<path>```. Identifiers come from validated config values only
    (schema and prefix are checked by config.py; a path holding a backtick is
    refused), so no config text can change the statement.
    """
    created = []
    for table in VIEW_TABLES:
        loc = output_location(config, table)
        if loc.qualified_name is not None:
            source = loc.qualified_name
            view = f"{config.output.catalog_schema}.latest_{config.output.table_prefix}{table}"
        else:
            assert loc.path is not None
            if "`" in loc.path:
                raise ValueError(f"output path {loc.path!r} holds a backtick")
            source = f"delta.`{os.path.abspath(loc.path)}`"
            view = f"latest_{config.output.table_prefix}{table}"
        spark.sql(
            f"CREATE OR REPLACE VIEW {view} AS "
            f"SELECT t.* FROM {source} AS t "
            f"JOIN (SELECT model_name AS latest_model, max(window_start) AS latest_start "
            f"FROM {source} WHERE granularity = 'day' GROUP BY model_name) AS l "
            f"ON t.model_name = l.latest_model AND t.window_start = l.latest_start "
            f"WHERE t.granularity = 'day'"
        )
        created.append(view)
    return created
