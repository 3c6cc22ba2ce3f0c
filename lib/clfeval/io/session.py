"""Building a SparkSession with Delta Lake, and the supported Spark lines.

Locally (``python jobs/...``) the session is built here and Delta's jars come
from Maven Central through delta-spark's ``configure_spark_with_delta_pip``
(Ivy caches them). Under ``spark-submit`` the JVM already exists, so jars and
static SQL settings must come from the command line (``--packages`` with
``DELTA_PACKAGE`` and the two ``--conf`` lines of ``DELTA_CONF``, see
docs/deploy.md); ``getOrCreate`` then returns that session.

A session gets no JVM options and keeps Hadoop's own file systems. The
``fast-local`` profile (``build_session(profile=...)``, ``CLFEVAL_PROFILE``)
is an opt-in for one-machine benchmarks: it adds JIT and garbage-collector
options and clfeval's local file system (``LOCAL_PROFILE``).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from clfeval import jvm
from clfeval.errors import UnsupportedSparkError

# The Spark lines clfeval is tested on (README, "Supported Spark"), each with its
# Delta line: Spark 3.5 + Delta 3.3 (Scala 2.12), 4.0 + Delta 4.0, 4.2 + Delta 4.4.
SUPPORTED_SPARK_LINES = ("3.5", "4.0", "4.2")


def delta_package(spark_version: str, delta_version: str) -> str:
    """The Maven coordinate of Delta's jar for a pyspark and delta-spark version,
    as delta-spark's ``configure_spark_with_delta_pip`` asks for it: Delta 3.x is
    built for Scala 2.12, 4.0 for Scala 2.13, 4.1 and later per Spark line."""
    spark_line = spark_line_of(spark_version)
    major, minor = (int(x) for x in delta_version.split(".")[:2])
    if major < 4:
        return f"io.delta:delta-spark_2.12:{delta_version}"
    if (major, minor) == (4, 0):
        return f"io.delta:delta-spark_2.13:{delta_version}"
    return f"io.delta:delta-spark_{spark_line}_2.13:{delta_version}"


def spark_line_of(version: str) -> str:
    """``major.minor`` of a version text ('4.2.0' -> '4.2')."""
    return ".".join(version.split(".")[:2])


def _installed_delta_package() -> str:
    from importlib.metadata import version

    return delta_package(version("pyspark"), version("delta-spark"))


DELTA_PACKAGE = _installed_delta_package()

AGGREGATORS_JAR = jvm.AGGREGATORS_JAR

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


# Spark keeps the classes it generates for a query (whole-stage code, projections,
# orderings) in a cache of 100 entries by default. One binary run generates ~140
# distinct classes, so with 100 every run of a long-lived session (a notebook, a
# scheduler running several configs) compiles them all again, and the JIT
# compiles them again. A static setting, so it is set when the session is built;
# compiled classes are small.
CODEGEN_CONF = {"spark.sql.codegen.cache.maxEntries": "1000"}


# fast-local profile only. Hadoop's local file system (file: paths), without
# Hadoop's native library (none comes with pyspark from PyPI), starts a `chmod`
# process for every file and directory it creates and a `readlink` process for
# every Delta commit. clfeval's jar has the same file system with those two calls
# made in the JVM (jvm/.../NioRawLocalFileSystem.java). On the driver's class
# path, not only in spark.jars: Hadoop opens file: paths while the JVM starts,
# before spark.jars are loaded. For local masters, whose driver is also the
# executor; a cluster's file systems are the cluster's.
LOCAL_FILE_SYSTEM_CONF = {
    "spark.driver.extraClassPath": str(AGGREGATORS_JAR),
    "spark.hadoop.fs.file.impl": "io.clfeval.NioLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "io.clfeval.NioLocalFs",
}


def _jar_has_file_system() -> bool:
    """Whether the built jar holds the file system's classes (a jar built before
    they existed does not, and Hadoop would then fail to start the JVM)."""
    try:
        with zipfile.ZipFile(AGGREGATORS_JAR) as jar:
            names = set(jar.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return all(
        f"{LOCAL_FILE_SYSTEM_CONF[key].replace('.', '/')}.class" in names
        for key in ("spark.hadoop.fs.file.impl", "spark.hadoop.fs.AbstractFileSystem.file.impl")
    )


# fast-local profile only: the JVM options of a local session (driver and
# executor in one JVM, started by this process). A batch run on few cores spends
# much of its CPU in the JIT compiler's top tier (C2) compiling Spark's planner,
# Delta's commit path and Parquet's writer, code a run goes through a few times.
# C2's time grows with how much it inlines into each method it compiles, so
# limits below HotSpot's (InlineSmallCode 2500 bytes of compiled code,
# FreqInlineSize 325 bytecodes) cut it while the row loops' small methods still
# inline. The parallel garbage collector: a batch job wants throughput, not G1's
# short pauses, and G1's concurrent work competes with the tasks for few cores.
# Figures: docs/performance.md.
LOCAL_JVM_OPTIONS = "-XX:+UseParallelGC -XX:InlineSmallCode=1500 -XX:FreqInlineSize=150"


FAST_LOCAL = "fast-local"
PROFILES = (None, FAST_LOCAL)

# The two settings local sessions set together (session_conf keeps them coupled).
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
ADAPTIVE_EXECUTION = "spark.sql.adaptive.enabled"


def local_small_conf(master: str | None, profile: str | None = None) -> dict[str, str]:
    """Settings for one small machine (``master`` local[N] or local[*]; None is
    local[*]), which build_session applies to local masters (the jobs run
    locally, the tests' session): no UI, few Delta log-replay partitions, one
    shuffle partition per core and no adaptive query execution. Every stage
    after the scan is small (states, metric rows), so more tasks only add
    overhead (each task generates its projections' code, is serialized and
    scheduled).

    Adaptive query execution off: with one partition per core there is nothing
    for it to coalesce, and it plans each of a run's ~19 queries again after
    every shuffle stage (a job and a re-optimization per stage), CPU that a
    small machine takes from the tasks. A cluster keeps it:
    there it coalesces Spark's 200 default shuffle partitions to a few.

    With ``profile`` ``fast-local`` (opt-in, for one-machine benchmarks) the JVM
    (driver and executor in one) runs with LOCAL_JVM_OPTIONS (the parallel
    garbage collector, smaller JIT inlining limits) and, with clfeval's jar built,
    file: paths go through its local file system (LOCAL_FILE_SYSTEM_CONF). Both
    take effect when this process starts the JVM; a caller's own
    ``spark.driver.extraJavaOptions`` replaces the options (JVM options can
    conflict, e.g. two garbage collectors, so they are not merged)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown session profile {profile!r} (known: {FAST_LOCAL})")
    match = re.fullmatch(r"local\[(\d+)(,\d+)?\]", master or "")
    cores = int(match.group(1)) if match else (os.cpu_count() or 1)
    conf = {
        SHUFFLE_PARTITIONS: str(max(1, cores)),
        ADAPTIVE_EXECUTION: "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.ui.enabled": "false",
    }
    if profile == FAST_LOCAL:
        conf["spark.driver.extraJavaOptions"] = LOCAL_JVM_OPTIONS
        if _jar_has_file_system():
            conf.update(LOCAL_FILE_SYSTEM_CONF)
    return conf


def session_conf(
    master: str | None,
    local: bool,
    timezone: str,
    extra_conf: dict[str, str] | None,
    profile: str | None = None,
) -> dict[str, str]:
    """The settings ``build_session`` starts a session with: clfeval's, then the
    caller's ``extra_conf`` over them (a caller's ``spark.sql.shuffle.partitions``
    without ``spark.sql.adaptive.enabled`` leaves adaptive execution on), with
    clfeval's jar kept in the caller's own ``spark.jars`` and (local sessions,
    where file: paths use the jar's file system) ``spark.driver.extraClassPath``:
    a class path that lost the jar would leave Hadoop naming a class it cannot
    load, and the JVM would not start. The jar joins only when it was built for
    the installed pyspark's line (``make jar``); otherwise the scan runs in Spark
    SQL and the run says why."""
    extra_conf = extra_conf or {}
    small = local_small_conf(master, profile) if local else {}
    # Adaptive execution is off only with clfeval's one shuffle partition per core:
    # a caller who sets their own partition count (say Spark's 200) keeps it on,
    # so that it coalesces them, unless they also set it themselves.
    if SHUFFLE_PARTITIONS in extra_conf and ADAPTIVE_EXECUTION not in extra_conf:
        small.pop(ADAPTIVE_EXECUTION, None)
    conf = {
        **small,
        **DELTA_CONF,
        **CODEGEN_CONF,
        "spark.sql.session.timeZone": timezone,
        **extra_conf,
    }
    built_for = jvm.jar_spark_line()
    if AGGREGATORS_JAR.is_file() and built_for in (None, spark_line_of(pyspark_version())):
        jar = str(AGGREGATORS_JAR)
        # spark.jars reaches the driver and every executor (local or cluster).
        conf["spark.jars"] = _with_item(conf.get("spark.jars"), jar, ",")
        file_system = "spark.hadoop.fs.file.impl"
        if conf.get(file_system) == LOCAL_FILE_SYSTEM_CONF[file_system]:
            key = "spark.driver.extraClassPath"
            conf[key] = _with_item(conf.get(key), jar, os.pathsep)
    return conf


def _with_item(joined: str | None, item: str, separator: str) -> str:
    """A list setting (``joined`` by ``separator``) with ``item`` in it once, last
    unless it was there already."""
    items = [p for p in (joined or "").split(separator) if p]
    return separator.join(dict.fromkeys([*items, item]))


def build_session(
    app_name: str = "clfeval",
    master: str | None = None,
    timezone: str = "UTC",
    extra_conf: dict[str, str] | None = None,
    profile: str | None = None,
    quiet: bool = False,
) -> SparkSession:
    """A SparkSession with Delta enabled and the session time zone set.

    An already active session (a Databricks job or notebook, a test) is reused
    as it is: its jars and static settings were fixed when it started.
    ``profile`` (default: ``CLFEVAL_PROFILE``, else none): ``fast-local`` for
    one-machine benchmarks (see ``local_small_conf``).

    ``quiet`` (the jobs' default): the JVM this process starts writes its output
    (Ivy's dependency resolution, Spark's log, stage progress) to ``spark_log()``
    instead of the console, and Spark's progress bar is off; under spark-submit,
    where the JVM already runs, Spark's log level is raised to ERROR instead.
    """
    from delta import configure_spark_with_delta_pip

    active = SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", timezone)
        return active
    builder = SparkSession.builder.appName(app_name)
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not under_spark_submit:
        # Python workers must run the interpreter that has clfeval and its
        # dependencies installed (Spark's default is whatever `python3` is on
        # PATH). Under spark-submit the cluster's set-up decides (README).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or os.environ.get("CLFEVAL_SPARK_MASTER")
    if master:
        builder = builder.master(master)
    local = not under_spark_submit and (master is None or master.startswith("local"))
    profile = profile or os.environ.get("CLFEVAL_PROFILE") or None
    conf = session_conf(master, local, timezone, extra_conf, profile)
    # Spark's stage bars only where its output is wanted on the console.
    progress = (extra_conf or {}).get("spark.ui.showConsoleProgress", "false" if quiet else "true")
    conf["spark.ui.showConsoleProgress"] = progress
    for key, value in conf.items():
        builder = builder.config(key, value)
    # Delta's helper sets spark.jars.packages: the caller's packages (say Hadoop's
    # S3A connector, hadoop-aws) join Delta's instead of being replaced.
    packages = [p for p in conf.get("spark.jars.packages", "").split(",") if p]
    builder = configure_spark_with_delta_pip(builder, extra_packages=packages)
    if quiet and not under_spark_submit:
        with _output_to(spark_log()):
            spark = builder.getOrCreate()
    else:
        spark = builder.getOrCreate()
        if quiet:
            jvm.set_log_level(spark, "ERROR")
    spark.conf.set("spark.sql.session.timeZone", timezone)
    return spark


def spark_log() -> Path:
    """Where a quiet session's JVM writes its output (one file per process)."""
    folder = Path(os.environ.get("CLFEVAL_LOG_DIR") or tempfile.gettempdir())
    return folder / f"clfeval-spark-{os.getpid()}.log"


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at
    ``path`` while the block runs: a JVM started inside keeps writing there for
    its whole life, this process's own output goes back to the console."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (target, *saved):
            os.close(fd)


def cancel_jobs(spark: SparkSession) -> None:
    """Cancel the session's running Spark jobs (a run asked to stop)."""
    jvm.cancel_all_jobs(spark)


def connect_server_command(
    host: str, port: int, master: str = "local[2]", extra_conf: dict[str, str] | None = None
) -> list[str]:
    """The command that starts the installed pyspark's Spark Connect server with
    Delta (its jar and two settings) on ``host:port``: what the tests and the
    Connect benchmark run, and a starting point for a server of one's own."""
    import pyspark

    home = Path(pyspark.__file__).parent
    conf = {
        **DELTA_CONF,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        **(extra_conf or {}),
    }
    return [
        str(home / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        master,
        "--packages",
        DELTA_PACKAGE,
        *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")],
    ]


def pyspark_version() -> str:
    from importlib.metadata import version

    return version("pyspark")


def check_spark_version(spark: SparkSession) -> None:
    """Raise UnsupportedSparkError, naming the found and the supported lines, when
    the session's Spark is not one clfeval is tested on."""
    found = spark.version
    if spark_line_of(found) not in SUPPORTED_SPARK_LINES:
        raise UnsupportedSparkError(
            [
                f"this is Spark {found}; clfeval supports Spark "
                f"{', '.join(SUPPORTED_SPARK_LINES)} (each with its Delta line, see "
                "docs/deploy.md): run it on a supported runtime"
            ]
        )


# Session settings for the duration of one evaluation run (restored afterwards).
# - Delta's version checksum file (_delta_log/N.crc) is optional in the protocol;
#   writing it after each of a run's commits costs a state reconstruction, more
#   than writing the small output itself.
# - A run persists only states and derived rows (per group and bin, not per input
#   row), so compressing them in memory saves little memory and its per-value
#   statistics (dictionary candidates of every string key) cost CPU.
# - Below Int.MaxValue, Spark measures the Arrow batch it sends to Python after
#   every row; batches stay bounded by maxRecordsPerBatch (10,000 rows).
# - HotSpot never JIT-compiles a method of more than 8,000 bytes of bytecode
#   (HugeMethodLimit; DontCompileHugeMethods is on by default): it runs
#   interpreted. Spark fuses a stage into one generated method up to 65,535 bytes
#   unless told HotSpot's limit, and the multiclass input checks over a map of
#   20 classes come to ~13,000 bytes. At HUGE_METHOD_LIMIT Spark runs such a
#   stage operator by operator instead, in methods small enough to compile.
# - A partitioned write sorts each task's rows by the partition columns (one
#   window after another) unless it may keep a file open per window: a run's
#   writes hold a few windows per task (a day and its rollups in a nightly run),
#   and the multiclass histograms are a row per (group, class, true class, bin),
#   all sorted for nothing. With up to MAX_OPEN_OUTPUT_FILES files open (beyond
#   that the rest is sorted, as before) the sort is skipped.
#   Each open file buffers a row group: at Parquet's 128 MB, 8 files in each of
#   2 tasks pass the share of the heap Parquet's memory manager lets all writers
#   hold, and it logs a warning for every write. A run's files are a few MB per
#   window: OUTPUT_ROW_GROUP_BYTES is plenty for them.
HUGE_METHOD_LIMIT = 8000
MAX_OPEN_OUTPUT_FILES = 8
OUTPUT_ROW_GROUP_BYTES = 16 << 20
RUN_CONF = {
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.sql.execution.arrow.maxBytesPerBatch": str(2**31 - 1),
    "spark.sql.codegen.hugeMethodLimit": str(HUGE_METHOD_LIMIT),
    "spark.sql.maxConcurrentOutputFileWriters": str(MAX_OPEN_OUTPUT_FILES),
    # Session settings reach the Hadoop configuration of the run's writes.
    "parquet.block.size": str(OUTPUT_ROW_GROUP_BYTES),
}


@contextmanager
def run_settings(spark: SparkSession, conf: dict[str, str] | None = None) -> Iterator[None]:
    """Set ``conf`` (default RUN_CONF) on the session, then restore what was there."""
    conf = RUN_CONF if conf is None else conf
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
