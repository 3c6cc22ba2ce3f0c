"""Crash safety and concurrent runs.

Kill: a committed output (an incremental run over three days) is copied; a
fourth day is appended to the predictions; the evaluation job is started as
its own process group (Python driver + local-mode JVM) and killed with SIGKILL
when its console reaches a given phase (optionally a moment later, inside the
write). After each kill every output table must be readable at a committed
version, tables the killed run had not reached keep their previous version and
content, no key appears twice, and the killed run is not 'succeeded'. The rerun
(the same incremental command) must give tables equal to a clean run.

Concurrency: two runs in one driver at the same time (threads: separate Delta
transactions racing on the same tables), on disjoint and on overlapping date
ranges, into empty outputs; both must succeed and the tables must equal one
serial run over all the days (the clean run of the kill tests). Each run sums
its rollups from its own days in memory and the days stored when it read, and
the week windows span both runs' days, so one of the two repeats its window
phase (a lost commit race, or rollups summed without the other run's days;
attempts are printed). Again without rollups, on overlapping ranges.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from compare import COMPARED, assert_same_tables, output_frame
from pyspark.sql import functions as F

from clfeval.config import load_config
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.schema import HISTOGRAM_KEYS, KEY_COLUMNS
from clfeval.spark.demo_data import demo_predictions

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2026, 5, 1)  # a Friday: the four days span two ISO weeks
OUTPUT_TABLES = (*COMPARED, "runs")
# The key of a row: no two rows of a table may share it.
KEYS = {
    "score_histograms": list(dict.fromkeys([*KEY_COLUMNS, *HISTOGRAM_KEYS])),
    "metrics": [*KEY_COLUMNS, "metric", "class_label", "threshold"],
}

# (console phase that triggers the kill, seconds to wait after it). The suite
# runs four points; CLFEVAL_ALL_KILL_POINTS=1 adds the other two. All four
# tables are written in parallel (one phase line), after the rollups are summed.
WRITE_PHASE = "writing score_histograms, metrics, confusion_matrices, curves"
KILL_POINTS = [
    ("rolling up", 0.5),
    (WRITE_PHASE, 0.0),
    (WRITE_PHASE, 2.0),
]
if os.environ.get("CLFEVAL_ALL_KILL_POINTS") == "1":
    KILL_POINTS += [("scanning input", 0.0), (WRITE_PHASE, 0.5), (WRITE_PHASE, 1.0)]


ROLLUPS = '["day", "week", "rolling_2"]'


def write_config(
    folder: Path, predictions: Path, output: Path, granularities: str = ROLLUPS
) -> Path:
    text = f"""
[input]
path = "{predictions}"
weight_column = "weight"
date_partition_column = "date"

[task]
positive_label = 1
negative_labels = [0]

[metrics]
thresholds = [0.1, 0.5]

[slices]
segment_columns = ["device"]

[output]
path = "{output}"
granularities = {granularities}
"""
    path = folder / f"{output.name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def committed(spark, tmp_path_factory):
    """Predictions of 3 days evaluated (the committed state), then a 4th day appended."""
    tmp = tmp_path_factory.mktemp("faults")
    predictions = tmp / "predictions"
    rows = demo_predictions(spark, rows=6_000, days=4, start=START, positive_rate=0.15, seed=11)
    tables.write_predictions(
        rows.where(F.col("date") < F.lit(START + dt.timedelta(days=3))), str(predictions)
    )
    before = load_config(write_config(tmp, predictions, tmp / "before"))
    run_evaluation(spark, before, log=lambda _: None)
    rows.where(F.col("date") == F.lit(START + dt.timedelta(days=3))).write.format("delta").mode(
        "append"
    ).save(str(predictions))
    clean = load_config(write_config(tmp, predictions, tmp / "clean"))
    shutil.copytree(tmp / "before", tmp / "clean")
    run_evaluation(spark, clean, log=lambda _: None)
    return tmp, predictions, before, clean


def versions(spark, config) -> dict[str, int | None]:
    return {
        t: tables.table_version(spark, tables.output_location(config, t)) for t in OUTPUT_TABLES
    }


def kill_job_at(config_path: Path, phase: str, delay: float) -> list[str]:
    """Start jobs/evaluate.py in its own process group; SIGKILL the whole group
    (driver and JVM) once its console shows ``phase`` (plus ``delay`` seconds)."""
    job = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "jobs" / "evaluate.py"),
            "--config",
            str(config_path),
            "--master",
            "local[2]",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    seen = []
    assert job.stdout is not None
    for line in job.stdout:
        seen.append(line.rstrip())
        if phase in line:
            time.sleep(delay)
            break
    alive = job.poll() is None
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert alive, f"the job ended before the kill at {phase!r}: {seen}"
    return seen


@pytest.mark.parametrize(("phase", "delay"), KILL_POINTS)
def test_sigkill_then_rerun_equals_clean_run(spark, committed, phase, delay) -> None:
    tmp, predictions, _, clean = committed
    name = "killed_" + re.sub(r"\W+", "_", f"{phase} {delay}")
    output = tmp / name
    shutil.copytree(tmp / "before", output)
    config_path = write_config(tmp, predictions, output)
    config = load_config(config_path)
    previous = versions(spark, config)
    previous_content = {t: output_frame(spark, config, t) for t in COMPARED}

    kill_job_at(config_path, phase, delay)

    after_kill = versions(spark, config)
    for table in OUTPUT_TABLES:
        frame = output_frame(spark, config, table)  # readable at a committed version
        if after_kill[table] == previous[table] and table in COMPARED:
            pd.testing.assert_frame_equal(frame, previous_content[table])
        if table in KEYS:
            keys = [k for k in KEYS[table] if k in frame.columns]
            assert not frame.duplicated(keys).any(), (table, "duplicated rows")
    runs = output_frame(spark, config, "runs")
    assert (runs.status == "succeeded").sum() == 1  # only the committed run

    rerun = run_evaluation(spark, config, log=lambda _: None)
    assert rerun.status == "succeeded" and rerun.mode == "incremental"
    assert [(w.first, w.last) for w in rerun.windows if w.granularity == "day"] == [
        (START + dt.timedelta(days=3), START + dt.timedelta(days=3))
    ]
    assert_same_tables(spark, config, clean)


def run_together(spark, jobs: list[tuple]) -> list:
    """Start every (config, start, end) run in its own thread at once."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(n: int, config, start, end) -> None:
        barrier.wait()
        try:
            results[n] = run_evaluation(spark, config, start, end, log=lambda _: None)
        except BaseException as exc:  # reported by the assertion below
            results[n] = exc

    threads = [threading.Thread(target=work, args=(n, *job)) for n, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize(
    "ranges",
    [
        pytest.param([(0, 1), (2, 3)], id="disjoint"),
        pytest.param([(0, 2), (1, 3)], id="overlapping"),
    ],
)
def test_concurrent_runs_equal_a_serial_run(spark, committed, ranges) -> None:
    tmp, predictions, _, clean = committed
    output = tmp / f"concurrent_{ranges[0][1]}_{ranges[1][0]}"
    config = load_config(write_config(tmp, predictions, output))
    day = [START + dt.timedelta(days=k) for k in range(4)]
    results = run_together(spark, [(config, day[a], day[b]) for a, b in ranges])
    for r in results:
        assert not isinstance(r, BaseException), repr(r)
        assert r.status == "succeeded"
    print(f"window-phase attempts of the two runs: {[r.attempts for r in results]}")
    assert_same_tables(spark, config, clean)  # one serial (incremental) run over the 4 days


def test_concurrent_day_only_runs_equal_a_serial_run(spark, committed) -> None:
    """Day-only runs (no rollups: nothing read back from score_histograms at
    all) over overlapping days leave the tables of one serial run."""
    tmp, predictions, _, _ = committed
    day = [START + dt.timedelta(days=k) for k in range(4)]
    serial = load_config(write_config(tmp, predictions, tmp / "days_serial", '["day"]'))
    run_evaluation(spark, serial, day[0], day[3], log=lambda _: None)
    config = load_config(write_config(tmp, predictions, tmp / "days_concurrent", '["day"]'))
    results = run_together(spark, [(config, day[0], day[2]), (config, day[1], day[3])])
    for r in results:
        assert not isinstance(r, BaseException), repr(r)
        assert r.status == "succeeded"
        assert r.output_versions["score_histograms"] is not None
    assert_same_tables(spark, config, serial)


def test_a_day_committed_between_read_and_write_reaches_the_rollups(
    spark, committed, monkeypatch
) -> None:
    """A run over day 2 reads score_histograms (days 0-1 stored) and sums its
    rollups; before it commits, another run commits day 3. The first run's
    rollups lack day 3 (the rolling window of days 2-3 is not even due for it),
    so it must notice and redo its window phase from the stored days: the tables
    then equal one serial run over the four days."""
    tmp, predictions, _, clean = committed
    day = [START + dt.timedelta(days=k) for k in range(4)]
    config = load_config(write_config(tmp, predictions, tmp / "interleaved"))
    run_evaluation(spark, config, day[0], day[1], log=lambda _: None)
    histograms = tables.output_location(config, "score_histograms")
    original = tables.replace_windows
    interleaved: list = []

    def commit_day_3_first(spark_, df, loc, ranges, models, **more):
        if loc == histograms and not interleaved:
            interleaved.append(None)  # the run below writes through here too
            interleaved[0] = run_evaluation(spark, config, day[3], day[3], log=lambda _: None)
        return original(spark_, df, loc, ranges, models, **more)

    monkeypatch.setattr(tables, "replace_windows", commit_day_3_first)
    result = run_evaluation(spark, config, day[2], day[2], log=lambda _: None)
    assert [r.status for r in interleaved] == ["succeeded"]
    assert result.status == "succeeded" and result.attempts >= 2
    assert_same_tables(spark, config, clean)


# More pairs for a longer soak: CLFEVAL_TEST_PAIRS=10.
CONCURRENT_PAIRS = int(os.environ.get("CLFEVAL_TEST_PAIRS", "2"))


def test_concurrent_job_processes_on_overlapping_ranges_all_succeed(spark, committed) -> None:
    """Pairs of job processes (each its own driver and JVM, as a scheduler starts
    them) evaluate overlapping day ranges into the same output at once: every
    process exits 0, and each pair's tables equal a serial run's."""
    tmp, predictions, _, clean = committed
    statuses = []
    for pair in range(CONCURRENT_PAIRS):
        output = tmp / f"pair_{pair}"
        shutil.copytree(tmp / "before", output)
        config_path = write_config(tmp, predictions, output)
        day = [(START + dt.timedelta(days=k)).isoformat() for k in range(4)]
        jobs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "jobs" / "evaluate.py"),
                    "--config",
                    str(config_path),
                    "--master",
                    "local[1]",
                    "--start-date",
                    first,
                    "--end-date",
                    last,
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for first, last in ((day[0], day[2]), (day[1], day[3]))
        ]
        for job in jobs:
            out, err = job.communicate(timeout=600)
            assert job.returncode == 0, (pair, err[-3000:])
            statuses.append(json.loads(out.strip().splitlines()[-1])["status"])
        assert_same_tables(spark, load_config(config_path), clean)
    assert statuses == ["succeeded"] * (2 * CONCURRENT_PAIRS)
