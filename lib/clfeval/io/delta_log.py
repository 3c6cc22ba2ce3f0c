"""Which rows of a Delta table changed between two versions (incremental runs).

Two sources, in this order:

1. Change Data Feed, when the table records it for every version in the range
   (``delta.enableChangeDataFeed = true``): the inserted, deleted and updated
   (pre- and post-image) rows themselves.
2. Otherwise the transaction log: the data files that commits ``after+1 .. to``
   added or removed (``_delta_log/<version>.json``). Rows of added files are
   read from the current snapshot, rows of removed files from the snapshot at
   ``after`` (time travel), each restricted to those files by
   ``_metadata.file_name``. A copy-on-write UPDATE rewrites whole files, so this
   is a superset of the rows that really changed: safe, never a miss.

Both give ``None`` when the history needed is gone (log cleanup): the caller
then falls back to a full look-back instead of guessing. Data files removed by
VACUUM only show when the rows are read (``is_missing_file``).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clfeval.io.tables import TableLocation, error_mentions, storage_location, table_properties

CDF_PROPERTY = "delta.enableChangeDataFeed"
# Errors of reading a data file that no longer exists (VACUUM removed it).
MISSING_FILE_MARKERS = ("FILE_NOT_EXIST", "FileNotFoundException", "PATH_NOT_FOUND")


def is_missing_file(exc: BaseException) -> bool:
    """True when reading changed rows failed because a data file is gone."""
    return error_mentions(exc, MISSING_FILE_MARKERS)


@dataclass(frozen=True)
class FileChanges:
    added: frozenset[str]  # data file names (no folder), URL-decoded
    removed: frozenset[str]
    # partition values of every added or removed file ({} when unpartitioned)
    partitions: tuple[dict[str, str | None], ...] = ()

    def partition_values(self, column: str) -> set[str] | None:
        """The values of partition ``column`` among the changed files, or None when
        some file has no such partition value (then nothing can be pruned)."""
        values = set()
        for p in self.partitions:
            value = p.get(column)
            if value is None:
                return None
            values.add(value)
        return values


def file_changes(
    spark: SparkSession, location: str, after_version: int, to_version: int
) -> FileChanges | None:
    """Files added and removed by commits (after_version, to_version]; None when a
    commit file of that range no longer exists."""
    if to_version <= after_version:
        return FileChanges(frozenset(), frozenset())
    commits = [
        posixpath.join(location, "_delta_log", f"{v:020d}.json")
        for v in range(after_version + 1, to_version + 1)
    ]
    try:
        lines = spark.read.text(commits)
        actions = lines.select(
            F.col("_metadata.file_name").alias("commit"),
            F.get_json_object("value", "$.add.path").alias("added"),
            F.get_json_object("value", "$.remove.path").alias("removed"),
            F.coalesce(
                F.get_json_object("value", "$.add.dataChange"),
                F.get_json_object("value", "$.remove.dataChange"),
            ).alias("data_change"),
            F.coalesce(
                F.get_json_object("value", "$.add.partitionValues"),
                F.get_json_object("value", "$.remove.partitionValues"),
            ).alias("partitions"),
        ).where(F.col("added").isNotNull() | F.col("removed").isNotNull())
        rows = actions.collect()
    except PySparkException:  # PATH_NOT_FOUND: the log was cleaned up
        return None
    return _net_changes(rows)


def _net_changes(rows: list) -> FileChanges:
    """The data files whose rows changed, from the add/remove actions of a range
    of commits (``commit``: the commit file's name, which orders them).

    Actions with ``dataChange = false`` (OPTIMIZE, auto compaction, a rewrite that
    leaves the rows as they were) change no row: left out, so that compaction
    does not make every day look changed. But rows move with them: a rewrite of a
    file this range added makes its new files added too, and a file this range
    rewrote and then removed for real is followed back to the files it came from,
    which the earlier snapshot holds."""

    def name(path: str) -> str:
        return posixpath.basename(unquote(path))

    added: set[str] = set()
    removed: set[str] = set()
    partitions: list[dict[str, str | None]] = []
    origins: dict[str, set[str]] = {}  # file -> the files a rewrite in range made it from
    commits: dict[str, list] = {}
    for r in rows:
        commits.setdefault(r["commit"], []).append(r)
    for commit in sorted(commits):
        actions = commits[commit]
        rewrite = [r for r in actions if str(r["data_change"]).lower() == "false"]
        rewritten_from = {name(r["removed"]) for r in rewrite if r["removed"]}
        for r in rewrite:
            if r["added"]:
                made = name(r["added"])
                sources = set()
                for old in rewritten_from:
                    sources |= origins.get(old, {old})
                origins[made] = sources
                if rewritten_from & added:
                    added.add(made)
                    partitions.append(json.loads(r["partitions"] or "{}"))
        for r in actions:
            if str(r["data_change"]).lower() == "false":
                continue
            if r["added"]:
                added.add(name(r["added"]))
            if r["removed"]:
                gone = name(r["removed"])
                removed |= origins.get(gone, {gone})
            partitions.append(json.loads(r["partitions"] or "{}"))
    return FileChanges(frozenset(added), frozenset(removed), tuple(partitions))


def _file_in(names: frozenset[str]):
    if not names:
        return F.lit(False)
    return F.col("_metadata.file_name").isin(*[F.lit(n) for n in sorted(names)])


def _read_version(spark: SparkSession, location: str, version: int | None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(location)


def _records_change_data(spark: SparkSession, loc: TableLocation) -> bool:
    properties = table_properties(spark, loc)
    return str(properties.get(CDF_PROPERTY, "false")).lower() == "true"


def changed_rows(
    spark: SparkSession,
    loc: TableLocation,
    after_version: int,
    to_version: int,
    partition_column: str | None = None,
) -> tuple[DataFrame, str] | None:
    """Rows touched by commits (after_version, to_version], with the source used
    ('change data feed' or 'transaction log'); None when the history is gone.

    The frame has the table's data columns (CDF metadata columns dropped). With
    ``partition_column`` (a partition column of the table) the log-based read is
    limited to the partitions of the changed files, so finding one changed day
    reads that day's files, not the whole table.
    """
    location = storage_location(spark, loc)
    current = _read_version(spark, location, to_version)
    if _records_change_data(spark, loc):
        try:
            feed = (
                spark.read.format("delta")
                .option("readChangeFeed", "true")
                .option("startingVersion", after_version + 1)
                .option("endingVersion", to_version)
                .load(location)
            )
            feed.schema  # noqa: B018 - analysis fails here when a version has no change data
            return feed.select(*current.columns), "change data feed"
        except PySparkException:
            pass  # CDF enabled after `after_version`: use the log
    changes = file_changes(spark, location, after_version, to_version)
    if changes is None:
        return None
    try:
        added = current.where(_file_in(changes.added))
        before = _read_version(spark, location, after_version)
        removed = before.where(_file_in(changes.removed))
        before.schema  # noqa: B018 - time travel fails here when the version was vacuumed
    except PySparkException:
        return None
    values = changes.partition_values(partition_column) if partition_column else None
    if values is not None and partition_column is not None:
        within = F.col(partition_column).cast("string").isin(*[F.lit(v) for v in sorted(values)])
        added, removed = added.where(within), removed.where(within)
    columns = [c for c in current.columns if c in before.columns]
    return added.select(*columns).unionByName(removed.select(*columns)), "transaction log"
