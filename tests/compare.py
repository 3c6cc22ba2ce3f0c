"""Comparing two clfeval output folders table by table (incremental, fault tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clfeval.io import tables

COMPARED = ("score_histograms", "metrics", "confusion_matrices", "curves")


def output_frame(spark, config, name: str) -> pd.DataFrame:
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
