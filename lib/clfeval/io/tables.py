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
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from clfeval.config import GRANULARITY_NAME, MODEL_NAME, Config, SourceConfig
from clfeval.core.windows import WindowRange
from clfeval.errors import OutputError
from clfeval.io import delta_info
from clfeval.schema import OUTPUT_TABLES, PARTITION_COLUMNS, RUNS_SCHEMA

GRANULARITY = GRANULARITY_NAME

# Table properties of the windowed output tables, set when a write creates one
# (Delta ignores them on later writes). Per-file min/max statistics only for the
# model columns: a (granularity, window_start) partition holds one file per model
# evaluated into it, so the model is what a reader can skip files by; statistics of
# every column cost more than writing the small file itself. Tables created by an
# older clfeval keep their statistics; `ALTER TABLE ... SET TBLPROPERTIES` applies
# these to them.
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


def source_table_location(source: SourceConfig, table: str) -> TableLocation:
    """Where output table ``table`` of a merge's source (``[[sources]]``) lives."""
    full = f"{source.table_prefix}{table}"
    if source.catalog_schema:
        return TableLocation(table, qualified_name=f"{source.catalog_schema}.{full}")
    assert source.path is not None
    return TableLocation(table, path=os.path.join(source.path, full))


def input_location(config: Config) -> TableLocation:
    i = config.input
    return TableLocation("input", path=i.path, qualified_name=i.table)


def labels_location(config: Config) -> TableLocation | None:
    lab = config.labels
    if not lab.enabled:
        return None
    return TableLocation("labels", path=lab.path, qualified_name=lab.table)


def _ref(loc: TableLocation) -> delta_info.TableRef:
    if loc.qualified_name is not None:
        return delta_info.TableRef(name=loc.qualified_name)
    return delta_info.TableRef(path=loc.path)


def table_exists(spark: SparkSession, loc: TableLocation) -> bool:
    return delta_info.exists(spark, _ref(loc))


_LOCAL = re.compile(r"^(file:)?[^:]*$")


def check_output_location(spark: SparkSession, config: Config) -> None:
    """Fail before any read or scan when the output tables cannot be written:
    a local output folder that is a file or not writable, a table folder that is
    not a Delta table, or a Delta table that cannot be read (OutputError, naming
    the path and table). Object stores are checked by the table reads alone."""
    problems = []
    if config.output.catalog_schema is None:
        base = config.output.path
        if _LOCAL.match(base):
            problems += _local_folder_problems(base.removeprefix("file:"))
    if not problems:
        for table in OUTPUT_TABLES:
            loc = output_location(config, table)
            problem = _table_problem(spark, loc)
            if problem:
                problems.append(problem)
    if problems:
        raise OutputError(problems)


def _local_folder_problems(base: str) -> list[str]:
    path = os.path.abspath(base)
    if os.path.exists(path) and not os.path.isdir(path):
        return [f"output.path {base!r} is a file, not a folder"]
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return [f"output.path {base!r} lies under {existing!r}, which is a file"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"output.path {base!r}: {existing!r} is not writable by this user"]
    if os.path.isdir(path):
        for table in OUTPUT_TABLES:
            folder = os.path.join(path, table)
            if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
                return [f"output.path {base!r}: table folder {folder!r} is not writable"]
    return []


def _table_problem(spark: SparkSession, loc: TableLocation) -> str | None:
    """Why the output table ``loc`` cannot take a run's writes, or None."""
    if loc.path is not None and _LOCAL.match(loc.path):
        local = loc.path.removeprefix("file:")
        if os.path.isfile(local):
            return f"output table {loc.name}: {loc.path!r} is a file, not a Delta table"
        if (
            os.path.isdir(local)
            and os.listdir(local)
            and not os.path.isdir(os.path.join(local, "_delta_log"))
        ):
            return f"output table {loc.name}: {loc.path!r} is a folder that is not a Delta table"
    try:
        # Reading the table's latest version replays its log: a corrupt log fails here.
        table_version(spark, loc)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return f"output table {loc.name}: Delta table {loc} cannot be read ({first})"
    return None


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


def table_id(spark: SparkSession, loc: TableLocation) -> str:
    """The Delta table's id (new for every table created, kept across versions)."""
    found = delta_info.detail(spark, _ref(loc))
    if found is None:
        raise FileNotFoundError(f"{loc} is not a Delta table")
    return found.table_id


def storage_location(spark: SparkSession, loc: TableLocation) -> str:
    """Where the table's files are (a catalog table's location from its detail)."""
    if loc.path is not None:
        return loc.path
    found = delta_info.detail(spark, _ref(loc))
    if found is None:
        raise FileNotFoundError(f"{loc} is not a Delta table")
    return found.location


def table_properties(spark: SparkSession, loc: TableLocation) -> dict[str, str]:
    """The table's properties (``delta.*`` settings and the user's)."""
    found = delta_info.detail(spark, _ref(loc))
    return {} if found is None else found.properties


def table_version(spark: SparkSession, loc: TableLocation) -> int | None:
    """The latest committed Delta version, or None when the table does not exist."""
    return delta_info.version(spark, _ref(loc))


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
    _save(writer, loc)
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


def _save(writer, loc: TableLocation) -> None:
    if loc.qualified_name is not None:
        writer.saveAsTable(loc.qualified_name)
    else:
        writer.save(loc.path)


def start_run(spark: SparkSession, config: Config, record: dict) -> None:
    """Append the run's first row (status 'running') to the runs table."""
    _append_run_row(spark, config, record)


def finish_run(spark: SparkSession, config: Config, record: dict, updates: dict) -> None:
    """Append the run's final row: ``record`` with ``updates`` (status, counts,
    versions) and ``ended_at`` now.

    The runs table is a log of run events, appended to only: a blind append never
    conflicts with a concurrent run's commit and reads nothing first, where
    rewriting the 'running' row in place (UPDATE, MERGE or ``replaceWhere``) costs
    a scan of the table and two Spark jobs per run. A run's current state is its
    latest row (``current_runs``; the ``latest_runs`` view of ``jobs/views.py``)."""
    _append_run_row(spark, config, {**record, **updates}, ended_now=True)


def _append_run_row(spark: SparkSession, config: Config, record: dict, ended_now: bool = False):
    # mergeSchema: a runs table written by an older clfeval gains the new columns.
    writer = (
        _run_row(spark, record, ended_now)
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
    )
    _save(writer, output_location(config, "runs"))


def current_runs(runs: DataFrame) -> DataFrame:
    """Each run's current state: its latest row (the final row with the latest
    ``ended_at``; the 'running' row until there is one)."""
    latest_first = Window.partitionBy("run_id").orderBy(F.col("ended_at").desc_nulls_last())
    return (
        runs.withColumn("event_rank", F.row_number().over(latest_first))
        .where(F.col("event_rank") == 1)
        .drop("event_rank")
    )


def read_runs(spark: SparkSession, config: Config) -> DataFrame | None:
    """The current state of every run recorded in the output's runs table (None
    when there is no such table)."""
    loc = output_location(config, "runs")
    if not table_exists(spark, loc):
        return None
    return current_runs(read_table(spark, loc))


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
    _save(df.write.format("delta").mode("append").option("mergeSchema", "true"), loc)
    return table_version(spark, loc)


def write_predictions(df: DataFrame, path: str, partition_column: str = "date") -> None:
    """(Over)write a predictions table partitioned by date (demo data, tests, benchmarks)."""
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
        partition_column
    ).save(path)


VIEW_TABLES = ("metrics", "confusion_matrices", "curves")


def views_persist(spark: SparkSession) -> bool:
    """Whether views created in the session's current database outlive it (a Hive
    or Unity Catalog metastore; not Spark's in-memory catalog)."""
    return spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "in-memory"


def create_latest_views(spark: SparkSession, config: Config) -> list[str]:
    """``latest_<prefix><table>`` views: each model's rows of its latest daily
    window, and ``latest_<prefix>runs``: each run's current state (its latest row).

    With ``output.catalog_schema`` the views are created in that schema (next to
    the tables); with ``output.path`` in the session's current database, over
    ``delta.`<path>```. Identifiers come from validated config values only
    (schema and prefix are checked by config.py; a path holding a backtick is
    refused), so no config text can change the statement.
    """
    created = []
    for table in (*VIEW_TABLES, "runs"):
        loc = output_location(config, table)
        if loc.qualified_name is not None:
            source = loc.qualified_name
            view = f"{config.output.catalog_schema}.latest_{config.output.table_prefix}{table}"
        else:
            assert loc.path is not None
            if "`" in loc.path:
                raise ValueError(f"output path {loc.path!r} holds a backtick")
            # Object-store paths (s3a://, abfss://, gs://) as they are; local ones absolute.
            path = loc.path if ":" in loc.path else os.path.abspath(loc.path)
            source = f"delta.`{path}`"
            view = f"latest_{config.output.table_prefix}{table}"
        spark.sql(f"CREATE OR REPLACE VIEW {view} AS {_latest_rows_query(table, source)}")
        created.append(view)
    return created


def _latest_rows_query(table: str, source: str) -> str:
    if table == "runs":
        columns = ", ".join(f.name for f in RUNS_SCHEMA.fields)
        return (
            f"SELECT {columns} FROM (SELECT t.*, row_number() OVER "
            f"(PARTITION BY run_id ORDER BY ended_at DESC NULLS LAST) AS event_rank "
            f"FROM {source} AS t) WHERE event_rank = 1"
        )
    return (
        f"SELECT t.* FROM {source} AS t "
        f"JOIN (SELECT model_name AS latest_model, max(window_start) AS latest_start "
        f"FROM {source} WHERE granularity = 'day' GROUP BY model_name) AS l "
        f"ON t.model_name = l.latest_model AND t.window_start = l.latest_start "
        f"WHERE t.granularity = 'day'"
    )
