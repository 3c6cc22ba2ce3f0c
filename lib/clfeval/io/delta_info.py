"""What a Delta table is now: whether it exists, its version, id, location and
properties, through public interfaces only.

Three ways, the first that applies:

1. Delta's log read on the driver through the JVM adapter (``clfeval.jvm``;
   classic sessions, path tables): no Spark job, ~10 ms.
2. Delta's public Python API (``DeltaTable``: ``history(1)``, ``detail()``) on
   a classic session.
3. Over Spark Connect, where ``DeltaTable`` needs Delta's Connect plugin on the
   server: for catalog tables Delta's SQL (``DESCRIBE HISTORY``/``DETAIL`` of a
   name validated by ``config``), for path tables the table's log files as the
   Delta protocol defines them (``_delta_log/<version>.json`` commits and
   checkpoints), listed and read with Spark's public readers. No config text is
   ever pasted into SQL.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clfeval import jvm
from clfeval.config import QUALIFIED_NAME

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT_FILE = re.compile(r"^(\d{20})\.checkpoint(\.[^/]*)?\.parquet$")


@dataclass(frozen=True)
class TableRef:
    """A Delta table by path or by catalog name (one of the two)."""

    path: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.name is None):
            raise ValueError("a table is a path or a name")
        if self.name is not None and not QUALIFIED_NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a valid table name")


def has_delta_table_api(spark: SparkSession) -> bool:
    """Whether ``DeltaTable`` can be used: a classic session (over Spark Connect
    it needs Delta's Connect plugin, which a server may lack)."""
    return jvm.is_classic(spark)


def _delta_table(spark: SparkSession, ref: TableRef) -> DeltaTable | None:
    """``DeltaTable`` of a classic session, or None when the table does not exist."""
    if ref.name is not None:
        if not spark.catalog.tableExists(ref.name):
            return None
        return DeltaTable.forName(spark, ref.name)
    if not DeltaTable.isDeltaTable(spark, ref.path):
        return None
    return DeltaTable.forPath(spark, ref.path)


def _log_files(spark: SparkSession, location: str) -> list[str]:
    """The names of the files in the table's ``_delta_log`` folder (a listing, no
    Spark job); [] when there is no such folder."""
    folder = posixpath.join(location, "_delta_log")
    try:
        files = spark.read.format("binaryFile").load(folder).inputFiles()
    except PySparkException:
        return []
    return [posixpath.basename(f) for f in files]


def _listed_version(spark: SparkSession, location: str) -> int | None:
    """The latest commit's version from the log's file names; None without commits."""
    versions = [
        int(m.group(1)) for f in _log_files(spark, location) if (m := _COMMIT_FILE.match(f))
    ]
    return max(versions) if versions else None


def exists(spark: SparkSession, ref: TableRef) -> bool:
    """Whether the Delta table exists."""
    if ref.name is not None:
        return spark.catalog.tableExists(ref.name)
    if has_delta_table_api(spark):
        return DeltaTable.isDeltaTable(spark, ref.path)
    return _listed_version(spark, ref.path) is not None


def version(spark: SparkSession, ref: TableRef) -> int | None:
    """The latest committed version, or None when the table does not exist."""
    listed = jvm.delta_version(spark, ref.path)
    if listed is not None:
        return None if listed < 0 else listed
    if has_delta_table_api(spark):
        table = _delta_table(spark, ref)
        if table is None:
            return None
        return int(table.history(1).select("version").first()[0])
    if ref.name is not None:
        if not spark.catalog.tableExists(ref.name):
            return None
        # A name validated by QUALIFIED_NAME (TableRef): nothing else is in the text.
        row = spark.sql(f"DESCRIBE HISTORY {ref.name} LIMIT 1").select("version").first()
        return int(row[0])
    return _listed_version(spark, ref.path)


@dataclass(frozen=True)
class Detail:
    """A table's id (new for every table created), location and properties."""

    table_id: str
    location: str
    properties: dict[str, str]


def detail(spark: SparkSession, ref: TableRef) -> Detail | None:
    """The table's id, location and properties; None when it does not exist."""
    snapshot = jvm.delta_snapshot(spark, ref.path)
    if snapshot is not None and snapshot.version >= 0 and snapshot.table_id is not None:
        assert ref.path is not None
        return Detail(snapshot.table_id, ref.path, snapshot.properties)
    if has_delta_table_api(spark):
        table = _delta_table(spark, ref)
        if table is None:
            return None
        row = table.detail().select("id", "location", "properties").first()
        return Detail(str(row["id"]), str(row["location"]), dict(row["properties"] or {}))
    if ref.name is not None:
        if not spark.catalog.tableExists(ref.name):
            return None
        row = spark.sql(f"DESCRIBE DETAIL {ref.name}").select("id", "location", "properties")
        first = row.first()
        return Detail(str(first["id"]), str(first["location"]), dict(first["properties"] or {}))
    assert ref.path is not None
    return _detail_from_log(spark, ref.path)


def _detail_from_log(spark: SparkSession, location: str) -> Detail | None:
    """The latest ``metaData`` action of the table's log: from the newest commit
    file that has one, else from the newest checkpoint (which always holds it)."""
    names = _log_files(spark, location)
    folder = posixpath.join(location, "_delta_log")
    commits = sorted((f for f in names if _COMMIT_FILE.match(f)), reverse=True)
    if not commits:
        return None
    lines = (
        spark.read.text([posixpath.join(folder, f) for f in commits])
        .select(
            F.col("_metadata.file_name").alias("file"),
            F.get_json_object("value", "$.metaData.id").alias("id"),
            F.get_json_object("value", "$.metaData.configuration").alias("configuration"),
        )
        .where(F.col("id").isNotNull())
        .orderBy(F.col("file").desc())
        .first()
    )
    if lines is not None:
        return Detail(lines["id"], location, _json_map(lines["configuration"]))
    checkpoints = sorted(
        (f for f in names if _CHECKPOINT_FILE.match(f)),
        key=lambda f: int(f[:20]),
        reverse=True,
    )
    if not checkpoints:
        return None
    newest = [posixpath.join(folder, f) for f in checkpoints if f[:20] == checkpoints[0][:20]]
    row = (
        spark.read.parquet(*newest)
        .where(F.col("metaData").isNotNull())
        .select("metaData.id", "metaData.configuration")
        .first()
    )
    if row is None:
        return None
    return Detail(str(row["id"]), location, dict(row["configuration"] or {}))


def _json_map(text: str | None) -> dict[str, str]:
    import json

    return {str(k): str(v) for k, v in (json.loads(text) if text else {}).items()}
