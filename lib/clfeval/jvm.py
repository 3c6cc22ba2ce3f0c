"""The one adapter to the JVM behind a classic PySpark session (py4j).

Nothing else in clfeval touches py4j, a session's ``_jvm``, a frame's ``_jdf``
or a JVM class name. Two optional accelerators live behind it, each with a
public-API fallback that gives the same results:

* clfeval's JVM scan (``jvm/``, built by ``make jar`` into
  ``clfeval/jars/clfeval-aggregators.jar``): ``scan_class`` returns its class
  when the jar is on the classpath and was built for the session's Spark line;
  otherwise ``None`` and a reason, and the scan runs in Spark SQL.
* Delta's log, read on the driver (``delta_snapshot``): a table's version, id
  and per-file statistics in ~10 ms, where the public ``DeltaTable.history(1)``
  and ``detail()`` run a Spark job each. Read-only: every commit goes through
  Delta's public writers.

A Spark Connect session has no JVM here: every function returns ``None``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

try:  # the Spark Connect client may be installed without py4j
    from py4j.protocol import Py4JError
except ImportError:  # pragma: no cover - every classic pyspark has py4j

    class Py4JError(Exception):  # type: ignore[no-redef]
        """Stands in for py4j's error where py4j is not installed."""


# clfeval's JVM scan; ``make jar`` records the Spark line it was compiled against.
AGGREGATORS_JAR = Path(__file__).resolve().parent / "jars" / "clfeval-aggregators.jar"
BUILD_INFO = "META-INF/clfeval-build.properties"
STATES_CLASS = "io.clfeval.PartitionStates"
MULTICLASS_CLASS = "io.clfeval.MulticlassStates"
# The scans' merges: a jar built before a scan merged its own states lacks them.
_REQUIRED_CLASSES = (STATES_CLASS + "$Merge", MULTICLASS_CLASS + "$Merge")


def _jvm(spark: SparkSession) -> Any | None:
    """The py4j view of the session's JVM; None for Spark Connect."""
    return getattr(spark, "_jvm", None)


def is_classic(spark: SparkSession) -> bool:
    """Whether the session is classic (its JVM is reachable from this process)."""
    return _jvm(spark) is not None


def set_log_level(spark: SparkSession, level: str) -> None:
    """Spark's log level, on a classic session (a Connect client has no log of its own)."""
    if is_classic(spark):
        spark.sparkContext.setLogLevel(level)


def cancel_all_jobs(spark: SparkSession) -> None:
    """Cancel the session's running Spark jobs: ``interruptAll`` where the session
    has it (Spark Connect), else the classic SparkContext's ``cancelAllJobs``."""
    interrupt = getattr(spark, "interruptAll", None)
    if interrupt is not None:
        try:
            interrupt()
            return
        except Exception:  # some classic lines only support it over Connect
            pass
    if is_classic(spark):
        spark.sparkContext.cancelAllJobs()


def active_stage_tasks(spark: SparkSession) -> tuple[int, int] | None:
    """(tasks done, tasks in all) of the running stages, from the classic
    SparkContext's status tracker; None over Spark Connect."""
    if not is_classic(spark):
        return None
    tracker = spark.sparkContext.statusTracker()
    done = total = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            done += info.numCompletedTasks
            total += info.numTasks
    return done, total


def spark_line(version: str) -> str:
    """``major.minor`` of a Spark version text ('4.2.0' -> '4.2')."""
    return ".".join(version.split(".")[:2])


@lru_cache(maxsize=4)
def jar_spark_line(jar: Path = AGGREGATORS_JAR) -> str | None:
    """The Spark line the jar was built for (``spark.line`` in BUILD_INFO); None
    when the jar or its record is missing."""
    try:
        with zipfile.ZipFile(jar) as archive:
            text = archive.read(BUILD_INFO).decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "spark.line":
            return value.strip()
    return None


@dataclass(frozen=True)
class ScanClasses:
    """The JVM scan's classes in the session's JVM."""

    binary: Any
    multiclass: Any


def scan_classes(spark: SparkSession) -> tuple[ScanClasses | None, str]:
    """The JVM scan's classes, or None and why the scan runs in Spark SQL."""
    jvm = _jvm(spark)
    if jvm is None:
        return None, "Spark Connect: no JVM in this process"
    built_for = jar_spark_line()
    running = spark_line(spark.version)
    if built_for is not None and built_for != running:
        return None, f"clfeval's jar was built for Spark {built_for}, this is Spark {running}"
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        for name in _REQUIRED_CLASSES:
            jvm.java.lang.Class.forName(name, True, loader)
    except Exception:  # py4j reports a missing class as a Py4JJavaError
        return None, "JVM scan not found (run `make jar`, or pass the jar with --jars)"
    try:
        return ScanClasses(jvm.io.clfeval.PartitionStates, jvm.io.clfeval.MulticlassStates), ""
    except Py4JError as exc:
        return None, f"JVM scan not usable: {type(exc).__name__}"


def call_on_frame(method: Any, frame: DataFrame, *args: Any) -> DataFrame:
    """``method(frame's Dataset, *args)``, a static JVM method returning a Dataset,
    as a Python DataFrame of the same session."""
    result = method(frame._jdf, *args)
    return DataFrame(result, frame.sparkSession)


@dataclass(frozen=True)
class DeltaSnapshot:
    """A path table's latest snapshot as Delta's log on the driver reads it."""

    version: int
    table_id: str | None
    properties: dict[str, str]
    schema_json: str | None  # Delta's schemaString (JSON), with column-mapping metadata
    _snapshot: Any
    _spark: SparkSession

    def files(self) -> DataFrame:
        """The snapshot's data files (Delta's ``add`` actions: ``path``,
        ``partitionValues``, ``stats``, ...). Built on demand: it replays the log's
        file actions, which the version, id and properties do not need."""
        try:
            return DataFrame(self._snapshot.allFiles().toDF(), self._spark)
        except Py4JError as exc:
            raise LookupError(f"the log's files could not be read: {exc}") from exc


def _latest_snapshot(spark: SparkSession, path: str | None) -> Any | None:
    """Delta's JVM snapshot of the table at ``path``, its log listed now (never a
    cached state); None for catalog tables, Spark Connect or another Delta build."""
    jvm = _jvm(spark)
    if path is None or jvm is None:
        return None
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    none = jvm.scala.Option.empty()
    # update(stalenessAcceptable=false, ...): list the log now (Delta 3.3 to 4.4)
    return log.update(False, none, none)


def delta_version(spark: SparkSession, path: str | None) -> int | None:
    """The latest version of the Delta table at ``path`` (-1: no table there) from
    the log on the driver: a listing and no Spark job, where ``history(1)`` runs
    one. None where ``delta_snapshot`` is; callers then use Delta's public API."""
    try:
        snapshot = _latest_snapshot(spark, path)
        return None if snapshot is None else int(snapshot.version())
    except (Py4JError, ValueError, LookupError, TypeError):
        return None


def delta_snapshot(spark: SparkSession, path: str | None) -> DeltaSnapshot | None:
    """The latest snapshot of the Delta table at ``path``, listed now (never a
    cached state); None for catalog tables, Spark Connect, another Delta build,
    or any error: callers then use Delta's public API."""
    try:
        snapshot = _latest_snapshot(spark, path)
        if snapshot is None:
            return None
        version = int(snapshot.version())
        if version < 0:
            return DeltaSnapshot(version, None, {}, None, snapshot, spark)
        metadata = json.loads(snapshot.metadata().json())["metaData"]
        properties = {str(k): str(v) for k, v in (metadata.get("configuration") or {}).items()}
        return DeltaSnapshot(
            version,
            str(metadata["id"]),
            properties,
            metadata.get("schemaString"),
            snapshot,
            spark,
        )
    except (Py4JError, ValueError, LookupError, TypeError):
        return None


def query_plan(frame: DataFrame) -> str | None:
    """The executed physical plan of ``frame`` as text; None over Spark Connect."""
    jdf = getattr(frame, "_jdf", None)
    if jdf is None:
        return None
    return str(jdf.queryExecution().executedPlan().toString())
