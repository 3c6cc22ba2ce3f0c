"""The monitoring notebook runs headless on a demo output; any cell error fails the test.

The notebook's own cells assert what its story rests on (v2 ahead of v1 on
ROC AUC and log loss, curves and a confusion matrix with rows, the five
classes of the multiclass model), so an empty or mixed-up table fails too.
The stored copy keeps its outputs (executed on `make demo`) and `make docs`
renders it to docs/monitoring.html; both are checked to be in step with the
notebook's cells.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "monitoring.ipynb"


def outputs(notebook, kind: str) -> list:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if kind in output.get("data", {}) or output.get("output_type") == kind
    ]


def test_monitoring_notebook_executes_and_tells_its_story(demo_output: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLFEVAL_DEMO_OUTPUT", str(demo_output))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    assert len(outputs(notebook, "image/png")) >= 4
    assert outputs(notebook, "error") == []
    story = " ".join(o["data"]["text/markdown"] for o in outputs(notebook, "text/markdown"))
    assert re.search(r"\*\*v2 wins\*\*: ROC AUC 0\.\d{4}", story), story
    assert "Weakest v2 slice: **" in story and "Hardest class for v2: **" in story


def test_stored_notebook_and_its_rendered_copy_are_executed() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("outputs") for c in code), "store the notebook executed (make docs)"
    assert outputs(notebook, "error") == []
    rendered = (ROOT / "docs" / "monitoring.html").read_text(encoding="utf-8")
    headings = [
        line.lstrip("# ").strip()
        for c in notebook.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    assert headings and all(h.split(",")[0] in rendered for h in headings), headings
    assert rendered.count("data:image/png;base64,") >= 4
