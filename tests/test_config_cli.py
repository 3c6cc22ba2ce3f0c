"""Config validation and the job's command line (no Spark session needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clfeval.config import load_config, parse_config
from clfeval.errors import EXIT_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_is_valid_and_thresholds_are_edges() -> None:
    config = load_config(ROOT / "conf" / "demo.toml")
    layout = config.layout()
    for t in config.metrics.thresholds:
        assert layout.edges[layout.edge_index(t)] == t
    assert layout.n_bins <= 1000
    assert config.slices_to_compute() == [(), ("region",), ("device",), ("region", "device")]


def test_all_problems_reported_at_once_with_key_paths() -> None:
    raw = {
        "input": {"path": "x", "scor_column": "s", "label_column": "a b"},
        "metrics": {"thresholds": [0.5, 1.5], "f_beta": "two"},
        "runn": {},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    text = str(info.value)
    assert "input.scor_column: unknown key (did you mean 'score_column'?)" in text
    assert "runn: unknown section (did you mean 'run'?)" in text
    assert "metrics.f_beta: expected a number" in text


def test_semantic_problems_name_the_key() -> None:
    raw = {
        "input": {"path": "x", "label_column": "a b", "models": ["ok", "x' OR '1'='1"]},
        "metrics": {"thresholds": [0.5, 1.5]},
        "run": {"timezone": "Mars/Olympus"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    problems = info.value.problems
    assert any(p.startswith("input.label_column:") for p in problems)
    assert any(p.startswith("input.models[1]:") for p in problems)
    assert any(p.startswith("metrics.thresholds[1]:") for p in problems)
    assert any(p.startswith("run.timezone:") for p in problems)


def test_set_overrides_parse_toml_values(tmp_path: Path) -> None:
    config = load_config(
        ROOT / "conf" / "demo.toml",
        ["metrics.thresholds=[0.2, 0.4]", "output.path=/tmp/out", "bins.count=500"],
    )
    assert config.metrics.thresholds == (0.2, 0.4)
    assert config.output.path == "/tmp/out"
    assert config.bins.count == 500


def run_job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_explains_tables_and_exit_codes() -> None:
    done = run_job("--help")
    assert done.returncode == 0
    for word in ("--start-date", "--set", "exit codes", "score_histograms", "replaces"):
        assert word in done.stdout


def test_config_error_exit_code_and_one_paragraph(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\npath = "x"\nweight_colum = "w"\n[metrics]\nthresholds = [2.0]\n')
    done = run_job("--config", str(bad))
    assert done.returncode == EXIT_CONFIG
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("configuration error (2 problems):")
    assert "weight_colum" in message and "thresholds[0]" in message


def test_bad_date_is_a_config_error() -> None:
    done = run_job("--config", str(ROOT / "conf" / "demo.toml"), "--start-date", "2026-13-01")
    assert done.returncode == EXIT_CONFIG
    assert "2026-13-01" in done.stderr


def test_installed_entry_point_is_the_same_job() -> None:
    """The wheel's console script (Databricks wheel task, Airflow) runs the same CLI."""
    script = Path(sys.executable).parent / "clfeval-evaluate"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stdout == run_job("--help").stdout


def test_catalog_names_are_checked() -> None:
    ok = parse_config({"input": {"table": "main.ml.preds"}, "output": {"catalog_schema": "main.x"}})
    assert ok.output.catalog_schema == "main.x"
    with pytest.raises(ConfigError) as info:
        parse_config({"input": {"table": "a.b.c.d"}, "output": {"catalog_schema": "a.b.c"}})
    problems = info.value.problems
    assert any(p.startswith("input.table:") for p in problems)
    assert any(p.startswith("output.catalog_schema:") for p in problems)


def test_labels_and_run_settings_are_validated() -> None:
    raw = {
        "input": {"path": "x"},
        "labels": {"path": "y", "table": "a.b", "id_column": "id; DROP", "label_colum": "z"},
        "run": {"initial_lookback_days": -1, "max_attempts": 0},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    problems = info.value.problems
    assert "labels.label_colum: unknown key (did you mean 'label_column'?)" in problems
    assert "labels: set at most one of labels.path or labels.table" in problems
    assert any(p.startswith("labels.id_column: 'id; DROP' is not a plain column") for p in problems)
    assert any(p.startswith("input.id_column: needed with a [labels] table") for p in problems)
    assert any(p.startswith("run.initial_lookback_days: -1") for p in problems)
    assert any(p.startswith("run.max_attempts: 0") for p in problems)


def test_first_incremental_run_looks_back_the_configured_days() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from clfeval.run.plan import initial_plan

    config = parse_config({"input": {"path": "x"}, "run": {"initial_lookback_days": 3}})
    plan = initial_plan(config, "no earlier run")
    today = dt.datetime.now(ZoneInfo("UTC")).date()
    assert (plan.mode, plan.start, plan.end, plan.days) == (
        "initial",
        today - dt.timedelta(days=2),
        None,
        None,
    )
    everything = initial_plan(parse_config({"input": {"path": "x"}}), "no earlier run")
    assert (everything.start, everything.end) == (None, None)


def test_labels_contract_names_columns_and_types() -> None:
    from pyspark.sql import types as T

    from clfeval.errors import ContractError
    from clfeval.spark.contract import check_labels_contract

    config = parse_config({"input": {"path": "x", "id_column": "id"}, "labels": {"path": "y"}})
    predictions = T.StructType([T.StructField("id", T.LongType())])
    labels = T.StructType(
        [T.StructField("id", T.StringType()), T.StructField("label", T.DoubleType())]
    )
    with pytest.raises(ContractError) as info:
        check_labels_contract(predictions, labels, config)
    assert info.value.problems == [
        "input.id_column / labels.id_column: one is a string and the other an integer",
        "labels.label_column: column 'label' has type double, expected integer, boolean or string",
    ]
    with pytest.raises(ContractError) as info:
        check_labels_contract(predictions, T.StructType([]), config)
    assert info.value.problems == [
        "labels.id_column: column 'id' not found",
        "labels.label_column: column 'label' not found in the labels table",
    ]
    good = T.StructType(
        [T.StructField("id", T.IntegerType()), T.StructField("label", T.IntegerType())]
    )
    check_labels_contract(predictions, good, config)  # no error
