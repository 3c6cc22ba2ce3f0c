"""Alert rules: the rule logic on hand-made points, then end to end with exit codes.

In the demo data version v1 of each model separates the classes worse than v2
(AUC about 0.94 against 0.97): a champion rule (baseline v2, max drop 0.01)
must fire for v1 on every day and never for v2, and a floor rule that every
version passes (AUC >= 0.5) must fire nowhere.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from clfeval.cli import evaluate_main
from clfeval.config import AlertRule, parse_config
from clfeval.core.alerts import MetricPoint, evaluate_rules
from clfeval.errors import EXIT_ALERT, EXIT_OK
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_predictions

D1, D2, D3 = dt.date(2026, 6, 1), dt.date(2026, 6, 2), dt.date(2026, 6, 3)


def point(version: str, day: dt.date, value: float, rows: int = 1000, slice_value: str = ""):
    return MetricPoint(
        "m", version, "" if not slice_value else "region", slice_value, "day", day,
        day + dt.timedelta(days=1), "roc_auc", "1", None, value, rows,
    )  # fmt: skip


def test_value_bounds_respect_min_rows() -> None:
    rule = AlertRule(name="floor", metric="roc_auc", min_value=0.8, min_rows=100)
    points = [point("v1", D1, 0.79), point("v1", D2, 0.81), point("v1", D3, 0.5, rows=10)]
    fired = evaluate_rules([rule], points, points)
    assert [(a["window_start"], a["condition"]) for a in fired] == [(D1, "min_value")]


def test_previous_window_and_relative_change() -> None:
    history = [point("v1", D1, 0.90), point("v1", D2, 0.80), point("v1", D3, 0.79)]
    absolute = AlertRule(name="drop", metric="roc_auc", max_drop=0.05)
    fired = evaluate_rules([absolute], history, history)
    assert [(a["window_start"], a["baseline_value"]) for a in fired] == [(D2, 0.90)]
    assert fired[0]["change"] == pytest.approx(-0.10)
    relative = AlertRule(name="rel", metric="roc_auc", max_drop=0.01, change="relative")
    fired = evaluate_rules([relative], history[2:], history)
    assert fired[0]["change"] == pytest.approx((0.79 - 0.80) / 0.80)


def test_champion_and_fixed_window_baselines() -> None:
    history = [point("v1", D1, 0.85), point("v2", D1, 0.90), point("v1", D2, 0.86)]
    champion = AlertRule(name="champ", metric="roc_auc", max_drop=0.02, baseline="champion:v2")
    fired = evaluate_rules([champion], history, history)
    assert [(a["model_version"], a["window_start"]) for a in fired] == [("v1", D1)]
    fixed = AlertRule(name="ref", metric="roc_auc", max_rise=0.005, baseline="window:2026-06-01")
    fired = evaluate_rules([fixed], history, history)
    assert [(a["model_version"], a["window_start"]) for a in fired] == [("v1", D2)]


RULES = [
    {
        "name": "v1_behind_champion",
        "metric": "roc_auc",
        "slice_key": "",
        "baseline": "champion:v2",
        "max_drop": 0.01,
    },
    {"name": "auc_floor", "metric": "roc_auc", "min_value": 0.5, "min_rows": 50},
]


@pytest.mark.spark
def test_degraded_version_fires_exactly_the_expected_rules(spark, tmp_path: Path) -> None:
    df = demo_predictions(spark, rows=16_000, days=3, start=D1, positive_rate=0.1, seed=9)
    tables.write_predictions(df, str(tmp_path / "predictions"))
    raw = {
        "input": {"path": str(tmp_path / "predictions"), "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "slices": {"segment_columns": ["device"]},
        "output": {
            "path": str(tmp_path / "metrics"),
            "drift": True,
            "drift_baseline": "champion:v2",
        },
        "alerts": RULES,
    }
    config = parse_config(raw)
    result = run_evaluation(spark, config, log=lambda _: None)
    metrics = tables.read_table(spark, tables.output_location(config, "metrics")).toPandas()
    auc = metrics[(metrics.metric == "roc_auc") & (metrics.slice_key == "")]
    wide = auc.pivot_table(index=["model_name", "window_start"], columns="model_version",
                           values="value")  # fmt: skip
    expected = {(m, "v1", d) for (m, d), row in wide.iterrows() if row.v1 - row.v2 < -0.01}
    assert len(expected) == 6  # both models, every day: v1 really is worse
    fired = {(a["model_name"], a["model_version"], a["window_start"]) for a in result.alerts}
    assert fired == expected
    assert {a["rule"] for a in result.alerts} == {"v1_behind_champion"}
    stored = tables.read_table(spark, tables.output_location(config, "alerts")).toPandas()
    assert len(stored) == len(result.alerts)
    assert (stored.baseline_value > stored.value).all()

    # drift rows: change against the previous day and against the champion
    changes = tables.read_table(spark, tables.output_location(config, "metric_changes"))
    changes = changes.toPandas()
    mine = changes[(changes.metric == "roc_auc") & (changes.slice_key == "")]
    assert len(mine) == len(auc)
    for row in mine.itertuples():
        champion = wide.loc[(row.model_name, row.window_start), "v2"]
        if row.model_version == "v1":
            assert row.change_vs_baseline == pytest.approx(row.value - champion, abs=1e-12)
        else:
            assert pd.isna(row.baseline_value)  # v2 is the champion itself: no self-compare
        days = wide.loc[row.model_name].index
        if row.window_start == min(days):
            assert pd.isna(row.previous_value)
        else:
            before = wide.loc[(row.model_name, row.window_start - dt.timedelta(days=1))]
            previous = before[row.model_version]
            assert row.change_vs_previous == pytest.approx(row.value - previous, abs=1e-12)

    toml = tmp_path / "alerts.toml"
    toml.write_text(
        f'[input]\npath = "{tmp_path / "predictions"}"\nweight_column = "weight"\n'
        "[task]\npositive_label = 1\nnegative_labels = [0]\n"
        f'[output]\npath = "{tmp_path / "cli"}"\n'
        '[[alerts]]\nname = "champ"\nmetric = "roc_auc"\nslice_key = ""\n'
        'baseline = "champion:v2"\nmax_drop = 0.01\n'
    )
    assert evaluate_main(["--config", str(toml), "--fail-on-alert"]) == EXIT_ALERT
    assert evaluate_main(["--config", str(toml)]) == EXIT_OK
    healthy = tmp_path / "healthy.toml"
    healthy.write_text(
        toml.read_text().split("[[alerts]]")[0]
        + '[[alerts]]\nname = "floor"\nmetric = "roc_auc"\nmin_value = 0.5\n'
    )
    assert evaluate_main(["--config", str(healthy), "--fail-on-alert"]) == EXIT_OK
