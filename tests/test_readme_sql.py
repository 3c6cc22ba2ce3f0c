"""Every SQL query of the README runs as written against a (small) demo output.

The demo (fixture ``demo_output`` in conftest.py) is generated as `make demo`
does (binary and multiclass tables, the two demo configs writing into one
output folder), only with fewer rows; the queries' paths `demo_output/...` are
pointed at the temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]


def readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


def test_readme_has_the_documented_queries() -> None:
    assert len(readme_queries()) >= 5


@pytest.mark.parametrize("query", readme_queries(), ids=lambda q: " ".join(q.split())[:60])
def test_readme_query_runs_and_returns_rows(spark, demo_output, query) -> None:
    query = query.replace("demo_output/", f"{demo_output}/").rstrip().rstrip(";")
    rows = spark.sql(query).toPandas()
    assert len(rows) > 0, query
    if "confusion_matrices" in query:
        assert len(rows) == 4 and rows.n_rows.sum() > 0
    if "curve = 'roc'" in query:
        assert rows.fpr.is_monotonic_increasing and rows.tpr.iloc[-1] == pytest.approx(1.0)
    if "/runs`" in query:  # one row per run, its final state (the demo's two runs succeeded)
        assert rows.run_id.is_unique and list(rows.status) == ["succeeded"] * 2


def test_latest_views_hold_each_models_latest_day(spark, demo_output) -> None:
    from clfeval.config import load_config
    from clfeval.io import tables

    config = load_config(ROOT / "conf" / "demo.toml", [f"output.path={demo_output / 'metrics'}"])
    views = tables.create_latest_views(spark, config)
    assert views == ["latest_metrics", "latest_confusion_matrices", "latest_curves", "latest_runs"]
    runs = spark.table("latest_runs").toPandas()
    events = tables.read_table(spark, tables.output_location(config, "runs")).toPandas()
    assert len(events) == 2 * len(runs) and runs.run_id.is_unique
    assert set(runs.status) == {"succeeded"} and runs.ended_at.notna().all()
    latest = spark.table("latest_metrics").toPandas()
    every = tables.read_table(spark, tables.output_location(config, "metrics")).toPandas()
    days = every[every.granularity == "day"].groupby("model_name").window_start.max()
    assert set(latest.model_name) == set(days.index)
    for model, part in latest.groupby("model_name"):
        assert (part.window_start == days[model]).all() and (part.granularity == "day").all()
    expected = every[
        (every.granularity == "day") & (every.window_start == every.model_name.map(days))
    ]
    assert len(latest) == len(expected)
