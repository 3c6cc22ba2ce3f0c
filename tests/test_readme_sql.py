"""Every SQL query of the README runs as written against a (small) demo output.

The demo is generated as `make demo` does (binary and multiclass tables, the
two demo configs writing into one output folder), only with fewer rows; the
queries' paths `demo_output/...` are pointed at the temporary folder.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from clfeval.config import load_config
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_multiclass_predictions, demo_predictions

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2026, 11, 1)


def readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="module")
def demo_output(spark, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readme") / "demo_output"
    binary = demo_predictions(spark, rows=16_000, days=5, start=START, positive_rate=0.1)
    tables.write_predictions(binary, str(out / "predictions"))
    multi = demo_multiclass_predictions(spark, rows=4_000, days=5, start=START)
    tables.write_predictions(multi, str(out / "predictions_multiclass"))
    for name, data in (
        ("demo.toml", "predictions"),
        ("demo_multiclass.toml", "predictions_multiclass"),
    ):
        config = load_config(
            ROOT / "conf" / name, [f"input.path={out / data}", f"output.path={out / 'metrics'}"]
        )
        run_evaluation(spark, config, log=lambda _: None)
    return out


def test_readme_has_the_documented_queries() -> None:
    assert len(readme_queries()) >= 5


@pytest.mark.parametrize("index", range(5))
def test_readme_query_runs_and_returns_rows(spark, demo_output, index) -> None:
    query = readme_queries()[index].replace("demo_output/", f"{demo_output}/").rstrip().rstrip(";")
    rows = spark.sql(query).toPandas()
    assert len(rows) > 0, query
    if "confusion_matrices" in query:
        assert len(rows) == 4 and rows.n_rows.sum() > 0
    if "curve = 'roc'" in query:
        assert rows.fpr.is_monotonic_increasing and rows.tpr.iloc[-1] == pytest.approx(1.0)
