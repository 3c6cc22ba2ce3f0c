"""Comparing two clfeval output folders table by table (incremental, fault tests),
and reading what a Delta table's log says about its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from clfeval.io import tables

COMPARED = ("score_histograms", "metrics", "confusion_matrices", "curves")


def output_frame(spark, config, name: str) -> pd.DataFrame:
    if name == "runs":  # each run's current state (the table is a log of run events)
        df = tables.read_runs(spark, config).toPandas()
    else:
        df = tables.read_table(spark, tables.output_location(config, name)).toPandas()
    scalar = [
        c
        for c in df.columns
        if not df[c].map(lambda v: isinstance(v, list | dict | np.ndarray)).any()
    ]
    return df.sort_values(scalar).reset_index(drop=True)


def assert_same_tables(spark, config_a, config_b) -> None:
    """Every compared table of two outputs: same rows; floats to rtol 1e-9 (sums of
    weights may be added in another order), everything else exactly."""
    for name in COMPARED:
        a, b = output_frame(spark, config_a, name), output_frame(spark, config_b, name)
        assert len(a) == len(b), name
        pd.testing.assert_frame_equal(a, b[a.columns], check_exact=False, rtol=1e-9, atol=1e-12)


def log_actions(table: str | Path, kind: str, after_version: int = -1) -> list[dict]:
    """The ``kind`` actions ("add", "remove", ...) of every commit after
    ``after_version`` in a path table's ``_delta_log`` JSON, oldest first."""
    found = []
    for commit in sorted(Path(table, "_delta_log").glob("*.json")):
        if int(commit.stem) <= after_version:
            continue
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if kind in action:
                found.append(action[kind])
    return found
