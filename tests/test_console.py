"""What a user sees: the job's console with default flags and with --verbose (a
process of its own, as a scheduler starts it), and one clear message with its
exit code for each class of failure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clfeval.cli import evaluate_main
from clfeval.errors import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_CONTRACT,
    EXIT_EMPTY,
    EXIT_OK,
    EXIT_OUTPUT,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.spark

SPARK_LINES = re.compile(r"\[Stage \d+|:: resolving dependencies|Ivy Default Cache|WARN |INFO ")
JAVA_TRACE = re.compile(r"^\s+at [\w$.]+\(|Py4JJavaError|java\.lang\.", re.M)


def job(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "jobs" / "evaluate.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def demo_args(demo_output: Path, out: Path) -> list[str]:
    return [
        "--config",
        str(ROOT / "conf" / "demo.toml"),
        "--set",
        f"input.path={demo_output / 'predictions'}",
        "--set",
        f"output.path={out}",
    ]


def test_default_console_is_quiet_and_ends_with_the_tables_location(demo_output, tmp_path):
    out = tmp_path / "metrics"
    done = job(*demo_args(demo_output, out), "--full")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    lines = done.stdout.rstrip("\n").splitlines()
    assert len(lines) <= 25, done.stdout
    assert not SPARK_LINES.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert not done.stderr.strip(), done.stderr
    assert any(re.search(r"scanning input: (done|\d+%)", line) for line in lines), lines
    assert lines[-1].startswith(f"tables written to {out}: "), lines[-1]
    assert "metrics" in lines[-1] and "score_histograms" in lines[-1]
    log = next(line for line in lines if line.startswith("Spark's log: "))
    assert Path(log.removeprefix("Spark's log: ")).stat().st_size > 0
    # The summary names the operating threshold it shows.
    assert "threshold" in done.stdout


def test_verbose_console_shows_sparks_own_lines(demo_output, tmp_path):
    done = job(*demo_args(demo_output, tmp_path / "metrics"), "--full", "--verbose")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert SPARK_LINES.search(done.stdout + done.stderr), done.stdout[-2000:]


def test_quiet_prints_the_tally_and_json_the_result(spark, demo_output, tmp_path, capsys):
    args = demo_args(demo_output, tmp_path / "metrics")
    assert evaluate_main([*args, "--full", "--quiet"]) == EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert 2 <= len(lines) <= 3 and lines[0].startswith("run ") and "succeeded" in lines[0]
    assert evaluate_main([*args, "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded" and result["output"] == str(tmp_path / "metrics")
    assert result["mode"] == "incremental" and result["rows_read"] == 0


def _garbage_table(path: Path) -> None:
    (path / "_delta_log").mkdir(parents=True)
    (path / "_delta_log" / "00000000000000000000.json").write_text("{not json\n")


FAILURES = {
    # name: (extra args, how the output folder is prepared, exit code, words in the message)
    "malformed --set": (
        ["--set", 'output.path="/data/metrics'],
        None,
        EXIT_CONFIG,
        ["--set", "output.path", "not valid TOML"],
    ),
    "--full with dates": (["--full", "--start-date", "2026-11-01"], None, EXIT_CONFIG, ["--full"]),
    "missing column": (
        ["--set", "input.score_column=probability"],
        None,
        EXIT_CONTRACT,
        ["input.score_column", "'probability'", "columns: "],
    ),
    "output under a file": (
        [],
        None,  # output.path below a regular file (set up in the test)
        EXIT_OUTPUT,
        ["output.path", "which is a file"],
    ),
    "output table not a Delta table": (
        [],
        lambda out: (out / "metrics").mkdir(parents=True) or (out / "metrics" / "x.csv").touch(),
        EXIT_OUTPUT,
        ["metrics", "not a Delta table"],
    ),
    "corrupted output table": (
        [],
        lambda out: _garbage_table(out / "curves"),
        EXIT_OUTPUT,
        ["curves", "cannot be read"],
    ),
    "empty date range": (
        ["--start-date", "2020-01-01", "--end-date", "2020-01-02"],
        None,
        EXIT_OK,
        ["no input rows for days 2020-01-01 to 2020-01-02", "the input holds days"],
    ),
    "empty date range, --fail-on-empty": (
        ["--start-date", "2020-01-01", "--end-date", "2020-01-02", "--fail-on-empty"],
        None,
        EXIT_EMPTY,
        ["no input rows for days 2020-01-01 to 2020-01-02"],
    ),
    "misspelt model, --fail-on-empty": (
        ["--set", 'input.models=["fraud_detectr"]', "--full", "--fail-on-empty"],
        None,
        EXIT_EMPTY,
        ["models fraud_detectr", "fraud_detector"],
    ),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_each_failure_is_one_message_with_its_exit_code(
    spark, demo_output, tmp_path, capsys, name
) -> None:
    extra, prepare, code, words = FAILURES[name]
    out = tmp_path / "out" / "metrics"
    if name == "output under a file":
        out.parent.mkdir(parents=True)
        (out.parent / "f").write_text("a file")
        out = out.parent / "f" / "metrics"
    elif prepare is not None:
        prepare(out)
    args = [*demo_args(demo_output, out), *extra]
    assert evaluate_main(args) == code
    captured = capsys.readouterr()
    text = captured.err if code not in (EXIT_OK,) else captured.out
    for word in words:
        assert word in text, (word, text)
    assert not JAVA_TRACE.search(captured.err), captured.err
    if code not in (EXIT_OK, EXIT_EMPTY):
        assert len(captured.err.strip().splitlines()) <= 3, captured.err


def test_a_lost_commit_race_is_one_message_with_its_exit_code(
    spark, demo_output, tmp_path, capsys, monkeypatch
) -> None:
    """Exit 6 (conflict): a run of 2026-11-03 reads the stored days and sums its
    week; before it commits, another run commits 2026-11-04 of the same week (a
    real run, started from the write below). With ``run.max_attempts=1`` the
    first run may not redo its windows: one message naming the setting."""
    from clfeval.io import tables

    out = tmp_path / "out"
    args = demo_args(demo_output, out)
    assert evaluate_main([*args, "--start-date", "2026-11-02", "--end-date", "2026-11-02"]) == 0
    original = tables.replace_windows
    interleaved: list[int] = []

    def commit_the_next_day_first(spark_, df, loc, ranges, models, **more):
        if loc.name == "score_histograms" and not interleaved:
            interleaved.append(-1)  # the run below writes through here too
            day = ["--start-date", "2026-11-04", "--end-date", "2026-11-04"]
            interleaved[0] = evaluate_main([*args, *day])
        return original(spark_, df, loc, ranges, models, **more)

    monkeypatch.setattr(tables, "replace_windows", commit_the_next_day_first)
    capsys.readouterr()
    day = ["--start-date", "2026-11-03", "--end-date", "2026-11-03"]
    assert evaluate_main([*args, *day, "--set", "run.max_attempts=1"]) == EXIT_CONFLICT
    assert interleaved == [EXIT_OK]
    err = capsys.readouterr().err
    assert "run.max_attempts" in err and "rerun later" in err, err
    assert not JAVA_TRACE.search(err) and len(err.strip().splitlines()) <= 3, err


def test_output_inside_the_input_is_refused(demo_output, tmp_path, capsys) -> None:
    copy = tmp_path / "predictions"
    shutil.copytree(demo_output / "predictions", copy)
    args = demo_args(demo_output, tmp_path)
    args[args.index(f"input.path={demo_output / 'predictions'}")] = f"input.path={copy}"
    args[-1] = f"output.path={copy / 'metrics'}"
    assert evaluate_main(args) == EXIT_CONFIG
    assert "output.path" in capsys.readouterr().err
    assert sorted(p.name for p in copy.iterdir() if p.name == "metrics") == []
