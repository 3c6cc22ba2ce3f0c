"""The monitoring notebook runs headless on a demo output; any cell error fails the test.

The notebook's own cells assert that every plot has data (curves with points,
a non-empty confusion matrix, reliability bins), so an empty table fails too.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]


def test_monitoring_notebook_executes(demo_output: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLFEVAL_DEMO_OUTPUT", str(demo_output))
    notebook = nbformat.read(ROOT / "notebooks" / "monitoring.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 4
    assert os.environ["CLFEVAL_DEMO_OUTPUT"] == str(demo_output)
