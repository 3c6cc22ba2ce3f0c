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


@pytest.mark.parametrize("index", range(5))
def test_readme_query_runs_and_returns_rows(spark, demo_output, index) -> None:
    query = readme_queries()[index].replace("demo_output/", f"{demo_output}/").rstrip().rstrip(";")
    rows = spark.sql(query).toPandas()
    assert len(rows) > 0, query
    if "confusion_matrices" in query:
        assert len(rows) == 4 and rows.n_rows.sum() > 0
    if "curve = 'roc'" in query:
        assert rows.fpr.is_monotonic_increasing and rows.tpr.iloc[-1] == pytest.approx(1.0)
