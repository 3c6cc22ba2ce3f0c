"""clfeval against the scan floor, Spark MLlib and scikit-learn, measured in one run.

Generates (once, cached by shape) a predictions Delta table of ``--rows`` rows:
``--versions`` model versions x ``--segments`` segment values x ``--days`` days,
~``--positive-rate`` positives, logit-normal scores. Then (1) and (2) in
``--reps`` rounds, each timing every one of them once in turn, so that they
share the machine's load of the moment; medians reported, and the ratio to the
floor also as the median of the rounds' ratios; (3) and (4) after them:

1. scan floor: a grouped count/sum over the same columns of the same table
   (and the same grouped by the date partition instead of the event time's
   day, which reads no event time, as clfeval's scan does not where Delta's
   file statistics put every file's event times on its partition's day);
2. clfeval: the full binary evaluation (every table written; slices overall
   and segment; default bins), and its input scan alone (no writes): how
   much of (2) grows with rows and how much is per-run work;
3. Spark MLlib ``BinaryClassificationEvaluator`` (areaUnderROC + areaUnderPR)
   per (version, slice, day) group: samples of (version, segment, day) groups
   and of (version, day) groups (the overall slice, every segment's rows) are
   timed and each median extrapolated to its groups (labelled as extrapolated);
4. scikit-learn ``roc_auc_score`` + ``average_precision_score`` per group on
   the same rows read with pyarrow/pandas (one machine).

Printed: the ratios (2)/(1), (3)/(2), (4)/(2), the largest |AUC clfeval -
AUC scikit-learn| and the widest AUC bound, and peak memory of the driver
(Python process and, in local mode, the JVM that hosts driver and executors)
sampled during (2), and the Java version they all ran on. Optional sweeps:
``--bins-sweep 100,1000,10000``, ``--slices-sweep`` and ``--multiclass-k
5,20,50``; ``--warmup N`` runs clfeval N times before timing it (default 1);
``--incremental`` times the nightly case: one more day appended, then an
incremental run (only the new day and its rollups) against a full recompute of
every day.

    make bench                                  # 20M rows, 3 repetitions
    .venv/bin/python benchmarks/bench.py --rows 2000000 --reps 3
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import average_precision_score, roc_auc_score

from clfeval.config import parse_config
from clfeval.io import tables
from clfeval.io.session import build_session
from clfeval.pipeline import run_evaluation
from clfeval.run.plan import partition_days
from clfeval.spark import aggregate, selection
from clfeval.spark.demo_data import demo_multiclass_predictions
from clfeval.tasks import task_for

START = dt.date(2026, 1, 5)
_STRIDE = 1_000_003


def bench_predictions(spark: SparkSession, args: argparse.Namespace):
    """One model, ``versions`` x ``segments`` x ``days``; positives logit ~ N(-0.5, 1.5)."""
    base = spark.range(0, args.rows, numPartitions=max(8, args.rows // 2_000_000))
    start_epoch = calendar.timegm(START.timetuple())
    seed = 17
    version = (F.rand(seed) * args.versions).cast("int")
    segment = (F.rand(seed + _STRIDE) * args.segments).cast("int")
    channel = (F.rand(seed + 2 * _STRIDE) * 4).cast("int")
    positive = F.rand(seed + 3 * _STRIDE) < F.lit(args.positive_rate)
    logit = F.when(positive, F.lit(-0.5) + 0.1 * version).otherwise(F.lit(-3.0))
    logit = logit + F.lit(1.5) * F.randn(seed + 4 * _STRIDE)
    event = F.timestamp_seconds(
        F.lit(start_epoch) + F.floor(F.rand(seed + 5 * _STRIDE) * args.days * 86400)
    )
    return base.select(
        F.lit("bench_model").alias("model_name"),
        F.concat(F.lit("v"), version.cast("string")).alias("model_version"),
        event.alias("event_time"),
        F.to_date(event).alias("date"),
        F.concat(F.lit("s"), segment.cast("string")).alias("segment"),
        F.concat(F.lit("c"), channel.cast("string")).alias("channel"),
        positive.cast("int").alias("label"),
        (1.0 / (1.0 + F.exp(-logit))).alias("score"),
    )


def ensure_table(spark: SparkSession, args: argparse.Namespace) -> str:
    shape = f"r{args.rows}_v{args.versions}_s{args.segments}_d{args.days}_p{args.positive_rate}"
    path = os.path.join(args.work, f"predictions_{shape}")
    if not tables.table_exists(spark, tables.TableLocation("input", path=path)):
        print(f"generating {args.rows:,} rows into {path} ...", flush=True)
        tables.write_predictions(bench_predictions(spark, args), path)
    return path


class PeakMemory:
    """Samples the resident set of this process, of its JVM child and of the
    JVM's Python workers (where the derive runs; the largest one) every 50 ms
    while entered; entered again, it keeps the peaks of every time."""

    def __init__(self) -> None:
        self.python = 0
        self.jvm = 0
        self.worker = 0
        self._jvm_pid = _jvm_child()

    @staticmethod
    def _rss(pid: int | str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return 0
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.python = max(self.python, self._rss("self"))
            if self._jvm_pid:
                self.jvm = max(self.jvm, self._rss(self._jvm_pid))
                for pid in _descendants(self._jvm_pid):
                    self.worker = max(self.worker, self._rss(pid))
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _parents() -> dict[int, int]:
    """Every process's parent."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def _descendants(pid: int) -> list[int]:
    parents = _parents()
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += frontier
    return found


def _jvm_child() -> int | None:
    me = os.getpid()
    for pid, parent in _parents().items():
        try:
            if parent == me and b"java" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def jit_seconds(spark: SparkSession) -> float:
    """CPU seconds the JVM's JIT compiler threads have spent so far (in local mode
    driver and executors share that JVM). On 2 cores this competes with the run."""
    bean = spark._jvm.java.lang.management.ManagementFactory.getCompilationMXBean()
    return bean.getTotalCompilationTime() / 1000


def jvm_description(spark: SparkSession) -> str:
    """The Java runtime every contender ran on (one JVM in local mode)."""
    system = spark._jvm.java.lang.System
    return f"Java {system.getProperty('java.version')} ({system.getProperty('java.home')})"


def timed(
    fn: Callable[[], object],
    reps: int,
    label: str,
    spark: SparkSession | None = None,
    jit: list[float] | None = None,
) -> list[float]:
    """Wall seconds of ``reps`` calls; with ``spark`` and ``jit``, the JIT
    compiler's seconds during each call are appended to ``jit``."""
    measure_jit = spark is not None and jit is not None
    times = []
    for k in range(reps):
        compiled = jit_seconds(spark) if measure_jit else 0.0
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        line = f"  {label} rep {k + 1}: {times[-1]:.1f} s"
        if measure_jit:
            jit.append(jit_seconds(spark) - compiled)
            line += f" (JIT compiler {jit[-1]:.1f} s)"
        print(line, flush=True)
    return times


def interleaved(contenders: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Wall seconds of ``reps`` rounds, each calling every contender once in
    order: the machine's load drifts over minutes, so contenders timed side by
    side in a round share it, and a ratio of two taken round by round (see
    ``paired_ratios``) is steadier than the ratio of medians of separate blocks."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for k in range(reps):
        line = []
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            line.append(f"{name} {times[name][-1]:.1f} s")
        print(f"  round {k + 1}: " + ", ".join(line), flush=True)
    return times


def paired_ratios(numerator: list[float], denominator: list[float]) -> str:
    """Median of round-by-round ratios, and each round's, for the summary."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(ratios):.2f} (rounds {each})"


def scan_floor(spark: SparkSession, path: str, by_partition: bool = False) -> None:
    """Every column the evaluation reads (model name and version, segment, event
    time, label, score), grouped by model, version, segment and day; with
    ``by_partition`` the day is the date partition's and no event time is read."""
    df = spark.read.format("delta").load(path)
    day = F.col("date") if by_partition else F.to_date("event_time")
    df.groupBy("model_name", "model_version", "segment", day).agg(
        F.count(F.lit(1)), F.sum("label"), F.sum("score")
    ).collect()


def clfeval_scan(spark: SparkSession, config) -> None:
    """clfeval's input scan alone, as a run does it (event days from the date
    partition where Delta's file statistics prove them, contract checks, one
    aggregation to per-bin states, the reject counts collected), nothing
    written: the part of (2) that grows with rows."""
    layout = config.layout()
    jvm, _ = aggregate.jvm_scan(spark, layout)
    loc = tables.input_location(config)
    frame = tables.read_table(spark, loc)
    days = partition_days(spark, config, loc, tables.table_version(spark, loc), frame)
    rows = task_for(config).normalize(selection.with_event_day(frame, config, days.holds))
    aggregate.reject_counts(aggregate.scan_states(rows, config, layout, jvm)).collect()


def clfeval_config(path: str, out: str, **sections: dict):
    raw = {
        "input": {"path": path, "date_partition_column": "date"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "slices": {"segment_columns": ["segment"]},
        "output": {"path": out},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_config(raw)


def run_clfeval(spark: SparkSession, config) -> None:
    shutil.rmtree(config.output.path, ignore_errors=True)
    run_evaluation(spark, config, log=lambda _: None)


def mllib_per_group(
    spark: SparkSession, path: str, args: argparse.Namespace, overall: bool = False
) -> float:
    """Median seconds for areaUnderROC + areaUnderPR of one group: a (version,
    segment, day) group, or with ``overall`` a (version, day) group of every
    segment (the overall slice clfeval also evaluates, ~``segments`` times the rows)."""
    df = spark.read.format("delta").load(path).withColumn("label", F.col("label").cast("double"))
    roc = BinaryClassificationEvaluator(rawPredictionCol="score", metricName="areaUnderROC")
    pr = BinaryClassificationEvaluator(rawPredictionCol="score", metricName="areaUnderPR")
    rng = np.random.default_rng(1)
    times = []
    for _ in range(args.mllib_groups):
        day = START + dt.timedelta(days=int(rng.integers(args.days)))
        version = f"v{rng.integers(args.versions)}"
        # Drawn for overall groups too, so both samples see the same days and versions.
        segment = f"s{rng.integers(args.segments)}"
        group = (F.col("date") == F.lit(day)) & (F.col("model_version") == F.lit(version))
        if not overall:
            group = group & (F.col("segment") == F.lit(segment))
        rows = df.where(group)
        t0 = time.perf_counter()
        roc.evaluate(rows)
        pr.evaluate(rows)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sklearn_all_groups(spark: SparkSession, path: str) -> tuple[float, float, dict]:
    """(seconds to read with pyarrow, seconds for all groups, {group: AUC})."""
    files = spark.read.format("delta").load(path).inputFiles()
    t0 = time.perf_counter()
    frame = pq.ParquetDataset([f.removeprefix("file:") for f in files], partitioning=None).read(
        columns=["model_version", "segment", "event_time", "label", "score"]
    )
    # self_destruct frees the Arrow buffers as columns convert; the day stays a
    # datetime64 column (Python date objects for 100M rows did not fit in memory)
    pdf = frame.to_pandas(split_blocks=True, self_destruct=True)
    del frame
    pdf["day"] = pdf.event_time.dt.floor("D")
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    aucs = {}
    for keys, columns in (
        (("model_version", "day"), ""),
        (("model_version", "segment", "day"), "segment"),
    ):
        for key, part in pdf.groupby(list(keys)):
            y, p = part.label.to_numpy(), part.score.to_numpy()
            if 0 < y.sum() < len(y):
                *names, day = key
                aucs[(columns, *names, day.date())] = roc_auc_score(y, p)
                average_precision_score(y, p)
    return read, time.perf_counter() - t0, aucs


def auc_difference(spark: SparkSession, config, exact: dict) -> tuple[float, float, int]:
    metrics = (
        tables.read_table(spark, tables.output_location(config, "metrics"))
        .where(F.col("metric") == "roc_auc")
        .select(
            "model_version",
            "slice_key",
            "slice_value",
            "window_start",
            "value",
            "bound_lower",
            "bound_upper",
        )
        .toPandas()
    )
    worst = widest = 0.0
    outside = 0
    for row in metrics.itertuples():
        key = (
            (row.slice_key, row.model_version, row.window_start)
            if row.slice_key == ""
            else (row.slice_key, row.model_version, row.slice_value, row.window_start)
        )
        if key in exact:
            worst = max(worst, abs(row.value - exact[key]))
            widest = max(widest, row.bound_upper - row.bound_lower)
            outside += not row.bound_lower - 1e-12 <= exact[key] <= row.bound_upper + 1e-12
    return worst, widest, outside


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--segments", type=int, default=10)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--positive-rate", type=float, default=0.1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="clfeval runs before the timed ones (default and least 1: the first run of a fresh\n"
        "JVM). The JVM's JIT keeps compiling Spark's and Delta's code for about ten\n"
        "runs; a long-lived session (a notebook, a scheduler running many configs)\n"
        "is closer to --warmup 8",
    )
    p.add_argument(
        "--mllib-groups", type=int, default=5, help="groups of each kind timed for MLlib"
    )
    p.add_argument("--skip-baselines", action="store_true", help="only floor and clfeval")
    p.add_argument("--bins-sweep", default="", help="e.g. 100,1000,10000")
    p.add_argument("--slices-sweep", action="store_true")
    p.add_argument("--multiclass-k", default="", help="e.g. 5,20,50")
    p.add_argument("--multiclass-rows", type=int, default=1_000_000)
    p.add_argument("--incremental", action="store_true", help="incremental vs full run")
    p.add_argument("--work", default="/tmp/clfeval_bench")
    p.add_argument("--master", default="local[*]")
    p.add_argument(
        "--driver-memory",
        help="spark.driver.memory (local mode: driver and executors share it; default Spark's 1g)",
    )
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    # No progress bars: the benchmark prints a line per repetition, and the
    # bars' carriage returns garble its output when it is saved to a file.
    spark = build_session(
        "clfeval-bench",
        master=args.master,
        extra_conf={
            "spark.ui.showConsoleProgress": "false",
            **({"spark.driver.memory": args.driver_memory} if args.driver_memory else {}),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    path = ensure_table(spark, args)
    out = os.path.join(args.work, "out")
    config = clfeval_config(path, out)
    groups = args.versions * args.days * (1 + args.segments)
    print(f"table {path}: {args.rows:,} rows, {groups} (version, slice, day) groups")

    # warm-up: JIT, generated classes, Delta log cache, Python workers
    cold_jit: list[float] = []
    warmup = timed(
        lambda: run_clfeval(spark, config), max(1, args.warmup), "clfeval warm-up", spark, cold_jit
    )
    cold = warmup[0]
    jit: list[float] = []
    memory = PeakMemory()

    def clfeval_timed() -> None:
        compiled = jit_seconds(spark)
        with memory:
            run_clfeval(spark, config)
        jit.append(jit_seconds(spark) - compiled)

    rounds = interleaved(
        {
            "floor": lambda: scan_floor(spark, path),
            "floor by partition": lambda: scan_floor(spark, path, by_partition=True),
            "clfeval": clfeval_timed,
            "clfeval scan alone": lambda: clfeval_scan(spark, config),
        },
        args.reps,
    )
    floor, floor_by_partition = rounds["floor"], rounds["floor by partition"]
    ours, scan = rounds["clfeval"], rounds["clfeval scan alone"]
    lines = [
        f"rows {args.rows:,}; groups {groups}; {os.cpu_count()} cores; medians of {args.reps}; "
        f"{jvm_description(spark)}",
        f"(1) scan floor        {median(floor):8.1f} s",
        f"    the same by date partition {median(floor_by_partition):.1f} s (no event time read: "
        f"(2)/this = {median(ours) / median(floor_by_partition):.2f})",
        f"(2) clfeval           {median(ours):8.1f} s   "
        f"(2)/(1) = {median(ours) / median(floor):.2f}; round by round "
        f"{paired_ratios(ours, floor)}",
        f"    its scan alone    {median(scan):8.1f} s   "
        f"scan/(1) = {median(scan) / median(floor):.2f}; round by round "
        f"{paired_ratios(scan, floor)}; the other "
        f"{median(ours) - median(scan):.1f} s do not grow with rows (derive, Delta commits, "
        "the run's record)",
        f"    (first run in a fresh JVM, not in the medians: {cold:.1f} s; "
        f"{len(warmup)} warm-up run(s) before the timed ones)",
        f"    JIT compiler CPU per run: median {median(jit):.1f} s "
        f"(reps {', '.join(f'{j:.1f}' for j in jit)}; first run {cold_jit[0]:.1f} s)",
        f"    peak memory during (2): python driver {memory.python / 2**20:.0f} MiB, "
        f"JVM (driver+executors, local mode) {memory.jvm / 2**20:.0f} MiB",
    ]
    if not args.skip_baselines:
        # The same groups clfeval evaluates, each stratum timed on its own sample:
        # an overall (version, day) group holds every segment's rows.
        per_segment_group = mllib_per_group(spark, path, args)
        per_overall_group = mllib_per_group(spark, path, args, overall=True)
        segment_groups = args.versions * args.days * args.segments
        overall_groups = args.versions * args.days
        mllib_total = per_segment_group * segment_groups + per_overall_group * overall_groups
        lines.append(
            f"(3) MLlib             {mllib_total:8.1f} s   EXTRAPOLATED (medians of "
            f"{args.mllib_groups}): {per_segment_group:.2f} s x {segment_groups} (version, "
            f"segment, day) groups + {per_overall_group:.2f} s x {overall_groups} (version, day) "
            f"groups; (3)/(2) = {mllib_total / median(ours):.1f}"
        )
        read, compute, exact = sklearn_all_groups(spark, path)
        lines.append(
            f"(4) scikit-learn      {read + compute:8.1f} s   (read {read:.1f} s + {compute:.1f} s "
            f"for {len(exact)} groups); (4)/(2) = {(read + compute) / median(ours):.2f}"
        )
        worst, widest, outside = auc_difference(spark, config, exact)
        lines.append(
            f"AUC: largest |clfeval - scikit-learn| {worst:.2e}; widest bound {widest:.2e}; "
            f"exact outside bound: {outside}"
        )
    for count in [int(x) for x in args.bins_sweep.split(",") if x]:
        swept = clfeval_config(path, out, bins={"count": count})
        t = timed(lambda c=swept: run_clfeval(spark, c), args.reps, f"clfeval bins={count}")
        lines.append(
            f"bins {swept.layout().n_bins:6d}: {median(t):.1f} s, "
            f"{median(t) / median(floor):.2f} x floor"
        )
    if args.slices_sweep:
        shapes = {
            "overall only": {"segment_columns": []},
            "overall + segment": {"segment_columns": ["segment"]},
            "overall + segment + channel + cross": {
                "segment_columns": ["segment", "channel"],
                "crosses": [["segment", "channel"]],
            },
        }
        for name, slices in shapes.items():
            swept = clfeval_config(path, out, slices=slices)
            t = timed(lambda c=swept: run_clfeval(spark, c), args.reps, f"clfeval {name}")
            lines.append(
                f"slices {name:<36}: {median(t):.1f} s, {median(t) / median(floor):.2f} x floor"
            )
    for k in [int(x) for x in args.multiclass_k.split(",") if x]:
        lines.append(multiclass_point(spark, args, k))
    if args.incremental:
        lines.append(incremental_point(spark, args, path))
    print()
    print("\n".join(lines))


def incremental_point(spark: SparkSession, args: argparse.Namespace, path: str) -> str:
    """Per rep: append one more day (rows/days rows) to a copy of the table, then
    time the incremental run (new day + its week/rolling windows) and a full run,
    in alternating order."""
    copy = os.path.join(args.work, "incremental_predictions")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    out = os.path.join(args.work, "incremental_out")
    shutil.rmtree(out, ignore_errors=True)
    granularities = {"granularities": ["day", "week", "rolling_7"]}
    config = clfeval_config(copy, out, output=granularities)
    full = clfeval_config(copy, os.path.join(args.work, "full_out"), output=granularities)
    run_evaluation(spark, config, log=lambda _: None)  # the first (initial) run
    one_day = bench_predictions(spark, argparse.Namespace(**{**vars(args), "days": 1}))
    one_day = one_day.limit(args.rows // args.days)
    incremental, recompute = [], []
    for k in range(args.reps):
        shift = args.days + k
        shifted = one_day.withColumn(
            "event_time", F.timestamp_seconds(F.unix_timestamp("event_time") + F.lit(shift * 86400))
        ).withColumn("date", F.date_add("date", shift))
        shifted.write.format("delta").mode("append").save(copy)
        # The second run after an append finds the new input version's log and
        # files already read (~1 s faster at 2M rows), so the order alternates.
        runs = [
            (incremental, lambda: run_evaluation(spark, config, log=lambda _: None)),
            (recompute, lambda: run_clfeval(spark, full)),
        ]
        for times, run in runs if k % 2 == 0 else runs[::-1]:
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        first = "incremental" if k % 2 == 0 else "full"
        print(
            f"  incremental rep {k + 1}: {incremental[-1]:.1f} s, full {recompute[-1]:.1f} s "
            f"({first} first)"
        )
    return (
        f"incremental (1 new day of {args.days}+k, granularities day/week/rolling_7): "
        f"{median(incremental):.1f} s vs full recompute {median(recompute):.1f} s "
        f"({median(recompute) / median(incremental):.1f}x less time)"
    )


def multiclass_point(spark: SparkSession, args: argparse.Namespace, k: int) -> str:
    classes = tuple(f"c{i}" for i in range(k))
    path = os.path.join(args.work, f"multiclass_k{k}_r{args.multiclass_rows}")
    if not tables.table_exists(spark, tables.TableLocation("input", path=path)):
        print(f"generating {args.multiclass_rows:,} rows with {k} classes ...", flush=True)
        df = demo_multiclass_predictions(
            spark, rows=args.multiclass_rows, days=args.days, start=START, classes=classes
        )
        tables.write_predictions(df, path)
    out = os.path.join(args.work, f"out_k{k}")
    config = parse_config(
        {
            "input": {"path": path, "date_partition_column": "date"},
            "task": {"type": "multiclass", "classes": list(classes), "top_k": [2]},
            "slices": {"segment_columns": ["region"]},
            "output": {"path": out},
            "run": {"max_reject_fraction": 0.05},
        }
    )

    def floor() -> None:
        df = spark.read.format("delta").load(path)
        df.groupBy("model_version", "region", F.to_date("event_time")).agg(
            F.count(F.lit(1)), F.sum(F.size("probabilities"))
        ).collect()

    t_floor = timed(floor, args.reps, f"multiclass K={k} floor")
    memory = PeakMemory()

    def run() -> None:
        with memory:
            run_clfeval(spark, config)

    run_clfeval(spark, config)  # warm-up: this K's generated code, the output tables
    t = timed(run, args.reps, f"multiclass K={k} clfeval")
    hist = tables.read_table(spark, tables.output_location(config, "score_histograms"))
    per_group = hist.groupBy("model_version", "slice_key", "slice_value", "window_start").count()
    sizes = [r["count"] for r in per_group.collect()]
    overall = (
        hist.where(F.col("slice_key") == "")
        .groupBy("model_version", "window_start")
        .count()
        .collect()
    )
    return (
        f"multiclass K={k:3d}: {median(t):.1f} s ({median(t) / median(t_floor):.2f} x its floor "
        f"{median(t_floor):.1f} s); state rows per group: median {statistics.median(sizes):.0f}, "
        f"max {max(sizes)} (overall slice median "
        f"{statistics.median(r['count'] for r in overall):.0f}; 2*K*bins = "
        f"{2 * k * config.layout().n_bins:,}); peak memory: Python worker "
        f"{memory.worker / 2**20:.0f} MiB, JVM {memory.jvm / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
