"""What a Delta table's per-file statistics prove about its rows.

Delta records, for each data file, the minimum, maximum and NULL count of its
first columns (``add.stats`` in the log). Delta's own data skipping trusts them
to leave files out of a query, so a reader may trust them as much.

Read here: the range of a date-partitioned table's event times, file by file,
from which ``run.plan.partition_days`` decides whether every file holds only times of its
partition's day. Then the scan takes each row's event day from the partition
value (a constant per file) and never decodes the event times (INT96
timestamps, Spark's default, are converted row by row, a sixth of a scan).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clfeval import jvm
from clfeval.io.tables import TableLocation

# Delta truncates timestamps in statistics down to milliseconds (PROTOCOL.md,
# "Per-file Statistics"): a file's true maximum lies below its recorded one + 1 ms.
STATS_TRUNCATION = dt.timedelta(milliseconds=1)
# Before 1900 zones had local mean time offsets of seconds, which Delta's statistics
# write cut to whole minutes: such recorded times may be off by up to a minute.
_EARLIEST_EXACT_YEAR = 1900


class FileTimesError(Exception):
    """The files' times cannot be read from the log (the message says why)."""


@dataclass(frozen=True)
class FileTimes:
    """One data file's event times as Delta's statistics bound them: its
    partition's ``day``, and every time in it lies in [earliest, latest]; or
    ``problem``, why its statistics bound nothing (then the rest is None)."""

    partition: str | None
    day: dt.date | None = None
    earliest: dt.datetime | None = None
    latest: dt.datetime | None = None
    problem: str | None = None


def file_times(
    spark: SparkSession,
    loc: TableLocation,
    version: int,
    time_column: str,
    partition_column: str,
    days: list[dt.date] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[FileTimes]:
    """The times of every file of ``loc`` at ``version`` in the selected partitions
    (the dates ``days``, else those in [start, end]) from their statistics of
    ``time_column``: min and max, the max widened by Delta's truncation.

    Raises FileTimesError where the log is not reachable on the driver (a catalog
    table, Spark Connect) or the table moved past ``version``.
    """
    snapshot = jvm.delta_snapshot(spark, loc.path)
    if snapshot is None:
        raise FileTimesError("the table's log is not reachable from the driver")
    if snapshot.version != version:
        raise FileTimesError("the table changed since it was read")
    try:
        files = snapshot.files()
    except LookupError as exc:
        raise FileTimesError(str(exc)) from exc
    # With column mapping, partition values and statistics are keyed by each
    # column's physical name, which the schema's field metadata holds.
    physical = physical_names(snapshot.schema_json)
    time_column = physical.get(time_column, time_column)
    partition = F.col("partitionValues")[F.lit(physical.get(partition_column, partition_column))]
    if days is not None:
        files = files.where(partition.cast("date").isin(*[F.lit(d) for d in days]))
    if start is not None:
        files = files.where(partition.cast("date") >= F.lit(start))
    if end is not None:
        files = files.where(partition.cast("date") <= F.lit(end))
    rows = files.select(partition.alias("partition"), F.col("stats")).collect()
    return [_file_times(row["partition"], row["stats"], time_column) for row in rows]


PHYSICAL_NAME = "delta.columnMapping.physicalName"


def physical_names(schema_json: str | None) -> dict[str, str]:
    """Logical -> physical column name of a Delta schema's top-level columns
    (only those with column mapping's metadata)."""
    if not schema_json:
        return {}
    fields = json.loads(schema_json).get("fields", [])
    return {
        f["name"]: f["metadata"][PHYSICAL_NAME]
        for f in fields
        if isinstance(f.get("metadata"), dict) and PHYSICAL_NAME in f["metadata"]
    }


def _file_times(partition: str | None, stats_text: str | None, column: str) -> FileTimes:
    """One file's times from its partition value and statistics (JSON)."""
    if partition is None:
        return FileTimes(partition, problem="a file has a NULL date partition")
    if stats_text is None:
        return FileTimes(partition, problem=f"a file of {partition} has no statistics")
    unknown = FileTimes(partition, problem=f"a file of {partition} has no statistics of {column}")
    try:
        day = dt.date.fromisoformat(partition)
        stats = json.loads(stats_text)
        nulls = stats["nullCount"][column]
    except (KeyError, TypeError, ValueError):
        return unknown
    # First: a file of NULL times only has no minimum or maximum at all.
    if nulls != 0:
        return FileTimes(partition, problem=f"a file of {partition} has NULL {column} values")
    try:
        earliest = dt.datetime.fromisoformat(stats["minValues"][column])
        latest = dt.datetime.fromisoformat(stats["maxValues"][column])
    except (KeyError, TypeError, ValueError):
        return unknown
    if earliest.year < _EARLIEST_EXACT_YEAR:
        problem = f"a file of {partition} has {column} values before {_EARLIEST_EXACT_YEAR}"
        return FileTimes(partition, problem=problem)
    # The latest time the file may hold: below the recorded maximum + 1 ms.
    latest = latest + STATS_TRUNCATION - dt.timedelta(microseconds=1)
    return FileTimes(partition, day, earliest, latest)
