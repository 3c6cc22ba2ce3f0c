"""The pieces that make a run fast without changing its results: parallel writes
and per-run session settings."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pytest
from compare import COMPARED, log_actions
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from clfeval.config import load_config, parse_config
from clfeval.core.windows import WindowRange
from clfeval.io import tables
from clfeval.io.session import (
    FAST_LOCAL,
    HUGE_METHOD_LIMIT,
    LOCAL_FILE_SYSTEM_CONF,
    LOCAL_JVM_OPTIONS,
    MAX_OPEN_OUTPUT_FILES,
    RUN_CONF,
    local_small_conf,
    run_settings,
    session_conf,
)
from clfeval.pipeline import run_evaluation
from clfeval.run.commit import in_parallel
from clfeval.spark.demo_data import demo_multiclass_predictions
from clfeval.tasks import task_for

ROOT = Path(__file__).resolve().parents[1]


def test_in_parallel_returns_every_result_and_overlaps() -> None:
    started = threading.Barrier(3, timeout=5)  # fails unless all three run at once

    def action(value: int):
        def run() -> int:
            started.wait()
            return value * 10

        return run

    assert in_parallel({"a": action(1), "b": action(2), "c": action(3)}) == {
        "a": 10,
        "b": 20,
        "c": 30,
    }


def test_in_parallel_waits_for_every_action_before_raising() -> None:
    finished = []

    def slow() -> str:
        time.sleep(0.3)
        finished.append("slow")
        return "done"

    def failing() -> str:
        raise ValueError("metrics write failed")

    with pytest.raises(ValueError, match="metrics write failed"):
        in_parallel({"slow": slow, "failing": failing})
    # No write may outlive a failed attempt (the retry would race it).
    assert finished == ["slow"]


def test_run_settings_are_restored(spark) -> None:
    key = next(iter(RUN_CONF))
    spark.conf.set(key, "true")
    with run_settings(spark):
        assert spark.conf.get(key) == RUN_CONF[key]
    assert spark.conf.get(key) == "true"

    spark.conf.unset(key)
    unset = spark.conf.get(key, None)
    with pytest.raises(RuntimeError), run_settings(spark):
        assert spark.conf.get(key) == RUN_CONF[key]
        raise RuntimeError("a failed run")
    assert spark.conf.get(key, None) == unset


def test_windows_beyond_the_open_files_are_written_whole(spark, tmp_path) -> None:
    """A write of more windows per task than MAX_OPEN_OUTPUT_FILES (the rest of a
    task's rows go through Spark's sort) keeps every row and still writes one
    file per window (both model versions in it); a second write replaces exactly
    its window."""
    first = dt.date(2026, 1, 1)
    n_days = 3 * MAX_OPEN_OUTPUT_FILES + 1
    days = [first + dt.timedelta(days=d) for d in range(n_days)]
    rows = [
        ("m", version, "day", day, bin_, float(bin_ + d))
        for d, day in enumerate(days)
        for version in ("v1", "v2")
        for bin_ in range(5)
    ]
    schema = "model_name string, model_version string, granularity string, "
    schema += "window_start date, bin int, value double"
    loc = tables.TableLocation("t", path=str(tmp_path / "t"))
    # One shuffle partition: one task writes every window.
    one_task = {**RUN_CONF, "spark.sql.shuffle.partitions": "1"}
    with run_settings(spark, one_task):
        frame = spark.createDataFrame(rows, schema)
        tables.replace_windows(spark, frame, loc, [WindowRange("day", days[0], days[-1])], ())
    stored = tables.read_table(spark, loc)
    assert sorted(tuple(r) for r in stored.select(*frame.columns).collect()) == sorted(rows)
    files = [f for f in (tmp_path / "t").rglob("*.parquet")]
    assert len({f.parent for f in files}) == n_days
    assert len(files) == n_days

    later = [r for r in rows if r[3] == days[-1]]
    replaced = [(*r[:5], -1.0) for r in later]
    with run_settings(spark, one_task):
        last = [WindowRange("day", days[-1], days[-1])]
        tables.replace_windows(spark, spark.createDataFrame(replaced, schema), loc, last, ())
    kept = [r for r in rows if r[3] != days[-1]]
    stored = tables.read_table(spark, loc).select(*frame.columns).collect()
    assert sorted(tuple(r) for r in stored) == sorted(kept + replaced)


def _fused_method_sizes(spark, df) -> list[int]:
    """Bytecode size of the largest method of each whole-stage generated class of
    ``df``'s physical plan, compiled as Spark compiles it before running it."""
    compile_code = spark._jvm.org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator
    sizes, pending = [], [df._jdf.queryExecution().executedPlan()]
    while pending:
        node = pending.pop()
        if node.getClass().getSimpleName() == "WholeStageCodegenExec":
            code = node.doCodeGen()._2()
            sizes.append(compile_code.compile(code)._2().maxMethodCodeSize())
        children = node.children().iterator()
        while children.hasNext():
            pending.append(children.next())
    return sizes


def test_run_settings_keep_fused_stages_within_what_hotspot_compiles(spark) -> None:
    """The input checks of a 20-class model (map probabilities) fuse into a method
    larger than HotSpot ever JIT-compiles (8,000 bytes; such a method runs
    interpreted, ~7x slower here); under a run's settings Spark runs every stage
    whose largest method is that large operator by operator instead."""
    classes = tuple(f"c{i}" for i in range(20))
    rows = demo_multiclass_predictions(spark, rows=40, days=1, classes=classes, partitions=1)
    config = parse_config(
        {
            "input": {"path": "unused"},
            "task": {"type": "multiclass", "classes": list(classes)},
            "output": {"path": "unused_output"},
        }
    )
    checked = task_for(config).normalize(rows).groupBy("reject_reason").count()
    sizes = _fused_method_sizes(spark, checked)
    assert max(sizes) > HUGE_METHOD_LIMIT
    with run_settings(spark):
        fused_up_to = int(spark.conf.get("spark.sql.codegen.hugeMethodLimit"))
        counts = {r["reject_reason"]: r["count"] for r in checked.collect()}
    run_fused = [size for size in sizes if size <= fused_up_to]
    assert all(size <= HUGE_METHOD_LIMIT for size in run_fused), (sizes, fused_up_to)
    assert sum(counts.values()) == 40


def test_default_sessions_get_no_jvm_options_or_file_system(spark) -> None:
    """A user's session gets neither JVM flags nor a replaced file system: the
    suite's JVM runs HotSpot's default collector (G1) and Hadoop's own local file
    system, read back from the JVM."""
    conf = local_small_conf("local[2]")
    assert "spark.driver.extraJavaOptions" not in conf
    assert not set(LOCAL_FILE_SYSTEM_CONF) & set(conf)
    beans = spark._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert {bean.getName() for bean in beans} != {"PS Scavenge", "PS MarkSweep"}
    hadoop = spark._jsc.hadoopConfiguration()
    local = spark._jvm.org.apache.hadoop.fs.FileSystem.getLocal(hadoop)
    assert local.getClass().getName().startswith("org.apache.hadoop."), local.getClass()


def test_the_fast_local_profile_is_opt_in_and_names_its_jit_limits() -> None:
    """The benchmark profile sets the parallel collector and JIT inlining limits
    below HotSpot's defaults (InlineSmallCode 2500, FreqInlineSize 325); an
    unknown profile is refused."""
    conf = local_small_conf("local[2]", FAST_LOCAL)
    options = conf["spark.driver.extraJavaOptions"].split()
    assert options == LOCAL_JVM_OPTIONS.split() and "-XX:+UseParallelGC" in options
    defaults = {"InlineSmallCode": 2500, "FreqInlineSize": 325}
    for name, default in defaults.items():
        value = next(int(o.split("=")[1]) for o in options if o.startswith(f"-XX:{name}="))
        assert value < default, name
    with pytest.raises(ValueError, match="profile"):
        local_small_conf("local[2]", "turbo")


def test_local_sessions_use_one_shuffle_partition_per_core(spark) -> None:
    """The suite's local[2] session runs its small post-scan stages as 2 tasks
    (local_small_conf); local[*] follows the machine's cores."""
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert local_small_conf("local[3]")["spark.sql.shuffle.partitions"] == "3"
    assert local_small_conf("local[3,2]")["spark.sql.shuffle.partitions"] == "3"
    cores = os.cpu_count() or 1
    assert local_small_conf(None)["spark.sql.shuffle.partitions"] == str(cores)


def test_local_sessions_run_without_adaptive_execution(spark) -> None:
    """The suite's local session plans each query once (local_small_conf); a
    cluster session keeps Spark's adaptive execution, which coalesces its 200
    default shuffle partitions."""
    assert spark.conf.get("spark.sql.adaptive.enabled") == "false"
    scan = spark.range(10).groupBy((F.col("id") % 2).alias("k")).count()
    assert "AdaptiveSparkPlan" not in scan._jdf.queryExecution().executedPlan().toString()
    cluster = session_conf("spark://127.0.0.1:7077", False, "UTC", None)
    assert "spark.sql.adaptive.enabled" not in cluster


def test_own_shuffle_partitions_keep_adaptive_execution() -> None:
    """Adaptive execution is off only with clfeval's one partition per core: a
    local caller who sets many shuffle partitions keeps it on (it coalesces
    them), unless the caller also sets it."""
    adaptive = "spark.sql.adaptive.enabled"
    many = {"spark.sql.shuffle.partitions": "200"}
    conf = session_conf("local[2]", True, "UTC", many)
    assert conf["spark.sql.shuffle.partitions"] == "200"
    assert adaptive not in conf
    both = session_conf("local[2]", True, "UTC", {**many, adaptive: "false"})
    assert both[adaptive] == "false"
    assert session_conf("local[2]", True, "UTC", None)[adaptive] == "false"
    other = session_conf("local[2]", True, "UTC", {"spark.ui.enabled": "true"})
    assert other[adaptive] == "false"


def test_table_version_and_id_from_the_log_equal_delta_history(spark, tmp_path) -> None:
    """The driver-side log read through the JVM adapter (no Spark job) and the log
    files read with Spark's public readers (what a Spark Connect session uses)
    give what Delta's public API gives; the adapter's path is the one taken with
    the pinned Delta (a Delta upgrade that moves it fails here instead of silently
    running the slower fallback)."""
    from clfeval import jvm
    from clfeval.io import delta_info

    loc = tables.TableLocation("t", path=str(tmp_path / "t"))
    assert tables.table_version(spark, loc) is None
    assert delta_info._listed_version(spark, loc.path) is None
    (tmp_path / "plain").mkdir()
    spark.range(3).write.parquet(str(tmp_path / "plain" / "data"))
    plain = tables.TableLocation("plain", path=str(tmp_path / "plain"))
    assert tables.table_version(spark, plain) is None
    for n in range(3):
        spark.range(n + 1).write.format("delta").mode("append").save(loc.path)
        assert jvm.delta_snapshot(spark, loc.path) is not None
        table = DeltaTable.forPath(spark, loc.path)
        history = table.history(1).first()["version"]
        detail = table.detail().first()
        assert tables.table_version(spark, loc) == history == n
        assert delta_info._listed_version(spark, loc.path) == n
        assert tables.table_id(spark, loc) == detail["id"]
        assert delta_info._detail_from_log(spark, loc.path).table_id == detail["id"]
    spark.sql(
        "ALTER TABLE delta.`" + loc.path + "` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    for found in (
        delta_info.detail(spark, delta_info.TableRef(path=loc.path)),
        delta_info._detail_from_log(spark, loc.path),
    ):
        assert found.properties.get("delta.enableChangeDataFeed") == "true"


def test_table_id_from_a_checkpoint_when_the_commits_lack_metadata(spark, tmp_path) -> None:
    """After log cleanup the newest commit files may hold no metaData action: the
    id comes from the newest checkpoint, as Delta's own reader takes it."""
    from clfeval.io import delta_info

    path = str(tmp_path / "t")
    for n in range(3):
        spark.range(n + 1).write.format("delta").mode("append").save(path)
    spark.sql("ALTER TABLE delta.`" + path + "` SET TBLPROPERTIES (delta.checkpointInterval = 2)")
    for _ in range(3):
        spark.range(1).write.format("delta").mode("append").save(path)
    log = tmp_path / "t" / "_delta_log"
    checkpoints = sorted(log.glob("*.checkpoint*.parquet"))
    assert checkpoints, sorted(p.name for p in log.iterdir())
    newest = int(checkpoints[-1].name[:20])
    for commit in log.glob("*.json"):
        if int(commit.stem) < newest:
            commit.unlink()  # what log cleanup does, keeping the checkpoint
    expected = DeltaTable.forPath(spark, path).detail().first()["id"]
    assert delta_info._detail_from_log(spark, path).table_id == expected


def demo_config(demo_output: Path, out: Path):
    """The demo config on the suite's demo predictions, writing to ``out``."""
    predictions = demo_output / "predictions"
    return load_config(
        ROOT / "conf" / "demo.toml", [f"input.path={predictions}", f"output.path={out}"]
    )


def test_outputs_wait_for_the_run_record(spark, demo_output, tmp_path) -> None:
    """The run's row is committed beside the scan; when that commit fails, the run
    fails before writing any output table (nothing written without a run record)."""
    config = demo_config(demo_output, tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "runs").write_text("a file where the runs table would go")
    with pytest.raises(Exception, match="runs"):
        run_evaluation(spark, config, log=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["runs"]


def test_a_second_run_reuses_the_generated_classes(spark, demo_output, tmp_path) -> None:
    """Spark's generated-code cache holds a whole run's classes (CODEGEN_CONF):
    rerunning the same evaluation in the same session compiles few new ones
    (demo config, measured: ~180 classes in a first run, 4 in the second; ~180
    again with Spark's default of 100 entries)."""
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
    counts = []
    for n in range(2):
        config = demo_config(demo_output, tmp_path / f"out{n}")
        before = compilations.METRIC_COMPILATION_TIME().getCount()
        run_evaluation(spark, config, log=lambda _: None)
        counts.append(compilations.METRIC_COMPILATION_TIME().getCount() - before)
    assert counts[1] <= 20, counts  # the run's own few (run id, dates), not all


def _file_statistics(table: Path) -> list[dict]:
    """The per-file statistics of every file added in the table's Delta log."""
    return [json.loads(add["stats"]) for add in log_actions(table, "add")]


def test_output_tables_keep_statistics_of_the_model_columns_only(spark, demo_output) -> None:
    """Windowed output tables are created with OUTPUT_TABLE_PROPERTIES: their files
    carry min/max of model_name and model_version (what a reader skips files by) and
    no other column's; the runs table keeps Delta's default statistics (finish_run
    finds the run's row by run_id)."""
    out = demo_output / "metrics"
    for name in COMPARED:  # the windowed tables
        table = out / name
        detail = DeltaTable.forPath(spark, str(table)).detail().first()
        assert tables.OUTPUT_TABLE_PROPERTIES.items() <= detail["properties"].items(), name
        statistics = _file_statistics(table)
        assert statistics, name
        for stats in statistics:
            assert stats["numRecords"] > 0
            assert set(stats["minValues"]) == {"model_name", "model_version"}, (name, stats)
    runs = _file_statistics(out / "runs")
    assert runs and all("run_id" in stats["minValues"] for stats in runs)


def _running_record(run_id: str) -> dict:
    return {
        "run_id": run_id,
        "started_at": dt.datetime(2026, 11, 30, 12, 0, 0),
        "status": "running",
        "config_hash": "c0ffee",
        "code_version": "test",
        "input": "/data/predictions",
        "input_version": 7,
        "input_versions": {"predictions": 7, "labels": 2},
        "input_table_ids": {"predictions": "id-p", "labels": "id-l"},
        "mode": "range",
        "start_date": dt.date(2026, 11, 1),
        "end_date": dt.date(2026, 11, 5),
    }


FINAL_FIELDS = {
    "status": "succeeded",
    "rows_read": 1000,
    "rows_evaluated": 990,
    "rows_rejected": 10,
    "reject_counts": {"null_score": 10},
    "tables_written": ["metrics", "score_histograms"],
    "output_versions": {"metrics": 3, "score_histograms": 4},
    "windows": [
        {
            "granularity": "day",
            "first_start": dt.date(2026, 11, 1),
            "last_start": dt.date(2026, 11, 5),
        }
    ],
    "attempts": 2,
}


def test_a_run_records_its_start_and_end_as_two_appended_rows(spark, demo_output, tmp_path) -> None:
    """The runs table is appended to only: a run adds its 'running' row, then its
    final row; no commit removes a file, and the run's current state is the final row."""
    config = demo_config(demo_output, tmp_path / "out")
    result = run_evaluation(spark, config, log=lambda _: None)
    runs = tmp_path / "out" / "runs"
    assert log_actions(runs, "remove") == []
    events = spark.read.format("delta").load(str(runs)).orderBy("ended_at").collect()
    assert [(r["status"], r["ended_at"] is None) for r in events] == [
        ("running", True),
        ("succeeded", False),
    ]
    current = tables.read_runs(spark, config).collect()
    assert [(r["run_id"], r["status"], r["rows_read"]) for r in current] == [
        (result.run_id, "succeeded", result.rows_read)
    ]


def test_finishing_one_run_leaves_the_other_runs_rows(spark, demo_output, tmp_path) -> None:
    """Two running rows, one finished: the other keeps its row and fields; the
    finished row has every field of the finish and the start's others."""
    config = demo_config(demo_output, tmp_path / "out")
    a, b = "a" * 32, "b" * 32
    for run_id in (a, b):
        tables.start_run(spark, config, _running_record(run_id))
    tables.finish_run(spark, config, _running_record(a), FINAL_FIELDS)
    rows = {
        r["run_id"]: r.asDict(recursive=True) for r in tables.read_runs(spark, config).collect()
    }
    assert set(rows) == {a, b}
    assert rows[b]["status"] == "running" and rows[b]["ended_at"] is None
    done = rows[a]
    assert done["ended_at"] is not None
    for key, value in FINAL_FIELDS.items():
        assert done[key] == value, key
    assert done["input_versions"]["labels"] == 2 and done["mode"] == "range"


def test_a_repeated_run_generates_no_new_code(spark, demo_output, tmp_path) -> None:
    """Spark inlines literal numbers and timestamps into the code it generates, so
    a plan holding per-run values (a run's start time, row counts) is compiled
    anew each run; a warm session's second run of a config (to a new output)
    compiles no class of its own (CodegenMetrics counts every compilation)."""
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME
    run_evaluation(spark, demo_config(demo_output, tmp_path / "first"), log=lambda _: None)
    before = compilations().getCount()
    run_evaluation(spark, demo_config(demo_output, tmp_path / "second"), log=lambda _: None)
    assert compilations().getCount() == before
