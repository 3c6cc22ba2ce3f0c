"""Spark bucketing and the one-scan aggregation against numpy on the same rows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import jvm_scan_or_skip
from pyspark.sql import functions as F

from clfeval.config import parse_config
from clfeval.core.binary import BinaryState
from clfeval.core.slices import join_values
from clfeval.spark import aggregate
from clfeval.spark.demo_data import SPECIES, demo_multiclass_predictions
from clfeval.tasks import task_for

pytestmark = pytest.mark.spark


def make_config(**sections):
    raw = {
        "input": {"path": "unused", "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "bins": {"count": 300, "logit_min": -9.0, "logit_max": 9.0},
        "metrics": {"thresholds": [0.07, 0.5]},
        "slices": {"segment_columns": ["region", "device"], "crosses": [["region", "device"]]},
    }
    for k, v in sections.items():  # a None value removes the key
        merged = {**raw.get(k, {}), **v}
        raw[k] = {key: value for key, value in merged.items() if value is not None}
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


def jvm_scan(spark, layout) -> aggregate.JvmScan:
    return jvm_scan_or_skip(spark, layout)


@pytest.mark.parametrize("aggregation", ["sql", "jvm"])
def test_one_scan_histograms_equal_numpy_per_slice(spark, aggregation: str) -> None:
    config = make_config()
    layout = config.layout()
    jvm = jvm_scan(spark, layout) if aggregation == "jvm" else None
    pdf = random_predictions(np.random.default_rng(9), 4000)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    df = spark.createDataFrame(pdf)
    rows = task_for(config).normalize(df)
    states = aggregate.scan_states(rows, config, layout, jvm)
    task = task_for(config)
    hist = aggregate.rollup_slices(states, config, layout, task.class_keys, task.class_columns())
    got = hist.toPandas()
    assert set(got["layout_id"]) == {layout.layout_id}
    # One row per bin of each slice's group: the finest slice is the states as they
    # are (not summed again), which holds only while the scan's keys are unique.
    keys = ["model_name", "model_version", "window_start", "slice_key", "slice_value", "bin"]
    assert not got.duplicated(keys).any()
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


@pytest.mark.parametrize("aggregation", ["sql", "jvm"])
def test_loss_sums_keep_small_losses_to_the_last_bits(spark, aggregation: str) -> None:
    """Per-bin log-loss sums against numpy's log1p and log, row by row, to rtol
    1e-13 with no absolute slack: negatives' scores of 1e-12 to 1e-10, where
    log(1 - score) would lose the loss to the rounding of 1 - score (1e-6 to
    1e-4 relative, row by row; 3.2e-08 in these sums), and positives' of
    1 - 1e-12 to 1 - 1e-10."""
    config = make_config(input={"weight_column": None})
    layout = config.layout()
    rng = np.random.default_rng(17)
    n = 2000
    pdf = random_predictions(rng, n)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    pdf["model_name"] = "m1"
    pdf["label"] = np.arange(n) % 2
    small = 10.0 ** rng.uniform(-12, -10, n)
    pdf["score"] = np.where(pdf["label"] == 1, 1.0 - small, small)
    rows = task_for(config).normalize(spark.createDataFrame(pdf))
    jvm = jvm_scan(spark, layout) if aggregation == "jvm" else None
    states = aggregate.scan_states(rows, config, layout, jvm).toPandas()
    got = states.groupby("bin").loss_sum.sum()
    y, p = pdf["label"].to_numpy(), pdf["score"].to_numpy()
    loss = np.where(y == 1, -np.log(p), -np.log1p(-p))
    expected = pd.Series(loss).groupby(layout.bin_index(p)).sum()
    np.testing.assert_allclose(
        got.sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=1e-13, atol=0
    )


@pytest.mark.parametrize(
    ("layout_kind", "weighted", "max_groups"),
    [
        ("logit", True, None),
        ("uniform", True, None),
        ("logit", False, None),
        ("logit", True, 2),
    ],
)
def test_jvm_states_equal_sql_states(
    spark, layout_kind: str, weighted: bool, max_groups: int | None
) -> None:
    """The JVM scan against the SQL aggregation on the same rows: the same
    (group, reject reason, bin) keys, equal counts, sums to rtol 1e-12; scores
    on every edge, just below it, -0.0, 0, 1 and the smallest subnormal, plus
    rejected rows (NaN score, label 7) that must stay one NULL-bin row each.
    With 2 groups per task, every task emits its partial sums many times over
    and the exchange's sum must still give the same states."""
    config = make_config(
        bins={"layout": layout_kind},
        input={"weight_column": "weight" if weighted else None},
    )
    layout = config.layout()
    rng = np.random.default_rng(11)
    scores = np.concatenate(
        [
            layout.edges,
            np.nextafter(layout.edges, 0.0),
            rng.random(3000),
            # powers of two start the JVM scan's lookup buckets; near 1 a bucket
            # holds many edges
            2.0 ** -np.arange(1.0, 60.0),
            1.0 - 2.0 ** -np.arange(2.0, 54.0),
            [-0.0, 0.0, 1.0, 5e-324, np.nan],
        ]
    )
    pdf = random_predictions(rng, scores.size)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    pdf["score"] = scores
    pdf.loc[pdf.index[:5], "label"] = 7
    # The JVM scan hashes and compares key strings by 8-byte words: values that
    # differ only past the first word, exactly one or two words long, empty, NULL.
    devices = ["", "mobile", "abcdefgh", "abcdefgh1", "abcdefgh2", "abcdefghabcdefgh"]
    devices += ["abcdefghabcdefgX", "gerät-ü", None]
    pdf["device"] = rng.choice(np.array(devices, dtype=object), scores.size)
    rows = task_for(config).normalize(spark.createDataFrame(pdf))
    keys = [*aggregate.DAY_KEYS, "segment__region", "segment__device", "reject_reason", "bin"]
    sql = aggregate.scan_states(rows, config, layout).toPandas()
    scan = jvm_scan(spark, layout)
    if max_groups is not None:
        scan = dataclasses.replace(scan, max_groups=max_groups)
    jvm = aggregate.scan_states(rows, config, layout, scan).toPandas()
    # pandas' NaN may arrive in Spark as NULL: either reason is a rejected score.
    reasons = set(jvm.reject_reason.dropna())
    assert "unknown_label" in reasons and len(reasons & {"nan_score", "null_score"}) == 1
    assert jvm.loc[jvm.reject_reason.notna(), "bin"].isna().all()
    assert jvm.n_rows.sum() == scores.size
    # SQL's sum over a bin without negatives is NULL (rollup_slices reads it as 0).
    binned = sql.bin.notna()
    sql.loc[binned, "w_neg"] = sql.loc[binned, "w_neg"].fillna(0.0)
    sql = sql.sort_values(keys).reset_index(drop=True)
    jvm = jvm.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        jvm, sql, check_exact=False, rtol=1e-12, atol=1e-12, check_dtype=False
    )
    valid = pdf[pdf.label != 7].dropna(subset=["score"])
    counts = np.bincount(layout.bin_index(valid.score.to_numpy()), minlength=layout.n_bins)
    per_bin = jvm.dropna(subset=["bin"]).groupby("bin").n_rows.sum()
    np.testing.assert_array_equal(per_bin.reindex(range(layout.n_bins), fill_value=0), counts)


def test_jvm_scan_holds_each_key_once_per_task(spark) -> None:
    """In one task, every (group, reject reason) is one compact partial row: the
    JVM scan's key table finds a key it holds, whichever way it compares rows
    (whole-row words for the scan's own rows), for strings that differ only past
    their first 8-byte word, are exactly one or two words long, empty or NULL.
    Each row lists a bin once, ascending, and its counts add up to the group's
    rows; the merged states hold each (group, bin) once."""
    config = make_config()
    layout = config.layout()
    rng = np.random.default_rng(5)
    pdf = random_predictions(rng, 3000)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    devices = ["", "abcdefgh", "abcdefgh1", "abcdefghabcdefgh", "abcdefghabcdefgX", None]
    pdf["device"] = rng.choice(np.array(devices, dtype=object), len(pdf))
    pdf.loc[pdf.index[:40], "label"] = 7
    rows = task_for(config).normalize(spark.createDataFrame(pdf).coalesce(1))
    keys = [*aggregate.DAY_KEYS, "segment__region", "segment__device", "reject_reason"]
    scan = jvm_scan(spark, layout)
    partial = aggregate.jvm_partial_states(rows, config, scan).toPandas()
    assert partial.row_count.sum() == len(pdf)
    per_key = partial.groupby(keys, dropna=False).size()
    assert len(per_key) > 30 and (per_key == 1).all(), per_key[per_key > 1].head()
    for row in partial.itertuples():
        if row.bins is None:
            assert row.reject_reason is not None and row.counts is None
            continue
        bins = np.asarray(row.bins)
        assert (np.diff(bins) > 0).all() and bins.min() >= 0 and bins.max() < layout.n_bins
        counts = np.asarray(row.counts).reshape(-1, 2)
        assert counts[:, 0].sum() == row.row_count and (counts[:, 1] <= counts[:, 0]).all()
        assert len(row.sums) == 5 * len(bins)
    states = aggregate.scan_states(rows, config, layout, scan).toPandas()
    assert states.n_rows.sum() == len(pdf)
    per_bin = states.groupby([*keys, "bin"], dropna=False).size()
    assert len(per_bin) > 100 and (per_bin == 1).all(), per_bin[per_bin > 1].head()
    # Four tasks, each emitting its buffers every 3 groups: a group's partial rows
    # come from several tasks and flushes, and the merge must add them into one.
    spread = task_for(config).normalize(spark.createDataFrame(pdf).repartition(4))
    small = dataclasses.replace(scan, max_groups=3)
    merged = aggregate.scan_states(spread, config, layout, small).toPandas()
    assert len(aggregate.jvm_partial_states(spread, config, small).toPandas()) > 2 * len(per_key)
    order = [*keys, "bin"]
    pd.testing.assert_frame_equal(
        merged.sort_values(order, na_position="first").reset_index(drop=True),
        states.sort_values(order, na_position="first").reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,
        atol=0,
    )


def test_integer_labels_compare_like_their_text(spark) -> None:
    """An integer label column is compared as integers when every configured label
    is an integer (no cast per row); the reasons and y must equal those of the same
    labels compared as text (string column, or labels configured as strings)."""
    labels = [1, 0, 7, None, -1, 1, 0]
    pdf = pd.DataFrame(
        {
            "model_name": "m",
            "model_version": "v",
            "event_time": pd.Timestamp("2026-03-01"),
            "region": "EU",
            "device": "mobile",
            "label": pd.array(labels, dtype="Int64"),
            "score": 0.5,
            "weight": 1.0,
        }
    )
    frame = spark.createDataFrame(pdf)
    variants = {
        "int": (frame.withColumn("label", F.col("label").cast("int")), make_config()),
        "bigint": (frame, make_config()),
        "string": (frame.withColumn("label", F.col("label").cast("string")), make_config()),
        "text config": (
            frame.withColumn("label", F.col("label").cast("int")),
            make_config(task={"positive_label": "1", "negative_labels": ["0"]}),
        ),
    }
    expected = [(None, 1), (None, 0), ("unknown_label", None), ("null_label", None)]
    expected += [("unknown_label", None), (None, 1), (None, 0)]
    for name, (df, config) in variants.items():
        got = task_for(config).normalize(df).select("reject_reason", "y").collect()
        assert [(r.reject_reason, r.y) for r in got] == expected, name


def test_collated_keys_fall_back_to_spark_sql_grouping(spark) -> None:
    """A model column with a case-insensitive collation groups "M1" with "m1" in
    Spark SQL; the JVM scan compares bytes, so it must not take such keys: the
    states equal the SQL aggregation's (one group for both spellings)."""
    config = make_config()
    layout = config.layout()
    pdf = random_predictions(np.random.default_rng(4), 400)
    pdf["event_time"] = pdf["event_time"].dt.tz_localize(None)
    pdf["model_name"] = np.where(np.arange(len(pdf)) % 2 == 0, "m1", "M1")
    frame = spark.createDataFrame(pdf)
    collated = frame.withColumn("model_name", F.collate(F.col("model_name"), "UTF8_LCASE"))
    scan = jvm_scan(spark, layout)
    plain = task_for(config).normalize(frame)
    rows = task_for(config).normalize(collated)
    assert aggregate.jvm_groups_by(plain, config)
    assert not aggregate.jvm_groups_by(rows, config)
    keys = [*aggregate.DAY_KEYS, "segment__region", "segment__device", "reject_reason", "bin"]
    got = aggregate.scan_states(rows, config, layout, scan).toPandas()
    sql = aggregate.scan_states(rows, config, layout).toPandas()
    # Each group shows one of its spellings, any one: compare them lowercased.
    for frame in (got, sql):
        frame["model_name"] = frame.model_name.str.lower()
    assert not got.duplicated(subset=keys).any()  # one group for "m1" and "M1"
    pd.testing.assert_frame_equal(
        got.sort_values(keys).reset_index(drop=True), sql.sort_values(keys).reset_index(drop=True)
    )


@pytest.mark.parametrize(
    ("weighted", "max_items", "one_vs_one"),
    [(True, None, False), (False, None, True), (True, 5, False), (True, 5, True)],
)
def test_jvm_multiclass_states_equal_sql_states(
    spark, weighted: bool, max_items: int | None, one_vs_one: bool
) -> None:
    """The JVM multiclass scan against the SQL aggregation that explodes each row
    into K + 2 items, on the same rows: the same (group, reject reason, class, true
    class, predicted, true rank, bin) keys, equal counts, sums to rtol 1e-12,
    NULL where SQL's sums are NULL. The rows include rejected ones (every reason
    of the demo data: at least three), ties (all classes equally likely: rank counts only
    classes strictly above the true one), probabilities 0 and 1 (first and last
    bin) and, with 5 items per task over three tasks, a group's partial sums
    emitted many times over by each task, which the merge must add into one.
    Each compact partial row lists an item once, K + 2 items per valid row. And
    the state is small: at most 2·K·bins + 2·K² rows per group (times K for the
    class rows with ``one_vs_one``)."""
    config = parse_config(
        {
            "input": {"path": "unused", "weight_column": "weight" if weighted else None},
            "task": {"type": "multiclass", "classes": list(SPECIES)},
            "bins": {"count": 200},
            "slices": {"segment_columns": ["region"]},
        }
    )
    layout = config.layout()
    demo = demo_multiclass_predictions(spark, rows=3000, days=2, bad_row_rate=0.05)
    row = F.monotonically_increasing_id()
    uniform = F.create_map(*[x for c in SPECIES for x in (F.lit(c), F.lit(1.0 / len(SPECIES)))])
    certain = F.create_map(
        *[x for k, c in enumerate(SPECIES) for x in (F.lit(c), F.lit(1.0 if k == 0 else 0.0))]
    )
    frame = demo.withColumn(
        "probabilities",
        F.when(row % 17 == 0, uniform)
        .when(row % 19 == 0, certain)
        .otherwise(F.col("probabilities")),
    ).withColumn("weight", F.rand(5) * 2 + 0.1)
    rows = task_for(config).normalize(frame)
    scan = jvm_scan(spark, layout)
    assert aggregate.multiclass_accelerator_fits(rows, config, layout, scan, one_vs_one)
    if max_items is not None:
        scan = dataclasses.replace(scan, max_items=max_items)
        rows = rows.repartition(3)
    group_keys = [*aggregate.DAY_KEYS, "segment__region", "reject_reason"]
    keys = [*group_keys, *aggregate.MULTICLASS_KEYS, "bin"]
    partial = aggregate.jvm_partial_multiclass_states(rows, config, scan, one_vs_one).toPandas()
    assert partial.row_count.sum() == 3000
    K = len(SPECIES)
    for row in partial.itertuples():
        if row.items is None:
            assert row.reject_reason is not None and row.counts is None and row.sums is None
            continue
        assert row.reject_reason is None and len(set(row.items)) == len(row.items)
        assert sum(row.counts) == (K + 2) * row.row_count
        assert len(row.counts) == 2 * len(row.items) and len(row.sums) == 5 * len(row.items)
    per_group = partial.groupby(group_keys, dropna=False).size()
    if max_items is not None:
        assert (per_group > 2).any(), per_group.max()
    sql = aggregate.scan_multiclass_states(rows, config, layout, None, one_vs_one).toPandas()
    jvm = aggregate.scan_multiclass_states(rows, config, layout, scan, one_vs_one).toPandas()
    assert list(jvm.columns) == list(sql.columns)
    reasons = set(jvm.reject_reason.dropna())
    assert len(reasons) >= 3, reasons
    assert (jvm.true_rank > 0).any() and (jvm.true_rank == 0).any()
    assert jvm.n_rows.sum() == 3000
    assert jvm.true_index.notna().any()
    assert jvm[jvm.bin.notna()].true_index.notna().all() == one_vs_one
    valid = jvm[jvm.reject_reason.isna()]
    per_group = valid.groupby(group_keys, dropna=False).size()
    class_rows = 2 * K * layout.n_bins * (K if one_vs_one else 1)
    assert per_group.max() <= class_rows + 2 * K * K
    sql = sql.sort_values(keys).reset_index(drop=True)
    jvm = jvm.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        jvm, sql, check_exact=False, rtol=1e-12, atol=1e-12, check_dtype=False
    )
