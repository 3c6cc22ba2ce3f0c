"""Spark bucketing and the one-scan aggregation against numpy on the same rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from clfeval.config import parse_config
from clfeval.core.binary import BinaryState
from clfeval.core.slices import join_values
from clfeval.spark import aggregate, contract

pytestmark = pytest.mark.spark


def make_config(**sections):
    raw = {
        "input": {"path": "unused", "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "bins": {"count": 300, "logit_min": -9.0, "logit_max": 9.0},
        "metrics": {"thresholds": [0.07, 0.5]},
        "slices": {"segment_columns": ["region", "device"], "crosses": [["region", "device"]]},
    }
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return parse_config(raw)


@pytest.mark.parametrize("layout_kind", ["logit", "uniform"])
def test_spark_bin_index_equals_numpy(spark, layout_kind: str) -> None:
    config = make_config(bins={"layout": layout_kind})
    layout = config.layout()
    rng = np.random.default_rng(5)
    scores = np.concatenate(
        [
            layout.edges,  # exactly on every edge
            np.nextafter(layout.edges, 0.0),  # just below every edge
            rng.random(5000),
            1 / (1 + np.exp(-rng.normal(-6, 3, 5000))),
            [0.0, 1.0, 5e-324, 1e-300, 1 - 2**-53],
        ]
    )
    df = spark.createDataFrame(pd.DataFrame({"score": scores}))
    got = np.array(
        df.select(aggregate.bin_index_column(F.col("score"), layout).alias("b")).toPandas()["b"]
    )
    np.testing.assert_array_equal(got, layout.bin_index(scores))


def random_predictions(rng: np.random.Generator, n: int) -> pd.DataFrame:
    y = (rng.random(n) < 0.1).astype(int)
    z = np.where(y == 1, rng.normal(-1, 1.5, n), rng.normal(-4, 1.5, n))
    return pd.DataFrame(
        {
            "model_name": rng.choice(["m1", "m2"], n),
            "model_version": "v1",
            "event_time": pd.Timestamp("2026-03-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 3 * 86400, n), unit="s"),
            "region": rng.choice(["EU", "NA", "a,b", "x\\y"], n),
            "device": rng.choice(["mobile", "desktop"], n),
            "label": y,
            "score": 1 / (1 + np.exp(-z)),
            "weight": rng.uniform(0.2, 2.0, n),
        }
    )


def test_one_scan_histograms_equal_numpy_per_slice(spark) -> None:
    config = make_config()
    layout = config.layout()
    pdf = random_predictions(np.random.default_rng(9), 4000)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    df = spark.createDataFrame(pdf)
    rows = contract.normalize(df, config)
    hist = aggregate.rollup_slices(aggregate.scan_states(rows, config, layout), config, layout)
    got = hist.toPandas()
    assert set(got["layout_id"]) == {layout.layout_id}
    pdf["day"] = pdf["event_time"].dt.date
    for columns in config.slices_to_compute():
        for key, part in pdf.groupby(["model_name", "day", *columns]):
            key = key if isinstance(key, tuple) else (key,)
            model, day, values = key[0], key[1], list(key[2:])
            sel = got[
                (got.model_name == model)
                & (got.window_start == day)
                & (got.slice_key == ",".join(columns))
                & (got.slice_value == join_values(values))
            ]
            assert (sel.window_end == day + dt.timedelta(days=1)).all()
            expected = BinaryState.from_scores(
                layout, part.label.to_numpy(), part.score.to_numpy(), part.weight.to_numpy()
            )
            for name in BinaryState.FIELDS:
                dense = np.zeros(layout.n_bins)
                np.add.at(dense, sel["bin"].to_numpy(), sel[name].to_numpy())
                np.testing.assert_allclose(dense, getattr(expected, name), rtol=1e-9, atol=1e-9)
