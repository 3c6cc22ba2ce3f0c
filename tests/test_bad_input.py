"""Bad rows, hostile values and row filters: every row accounted for, nothing run as SQL.

A small hand-built table has one or more rows per reject reason. Per window
(model, version, day) the rows read must equal the evaluated rows plus the
rejected rows, exactly, in ``runs`` and in the ``rejected_rows`` metric rows.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from clfeval.config import parse_config
from clfeval.errors import ConfigError, ContractError, RejectLimitError
from clfeval.io import tables
from clfeval.pipeline import run_evaluation
from clfeval.schema import OUTPUT_TABLES
from clfeval.tasks import task_for
from clfeval.tasks.multiclass import PROBABILITY_VECTOR

pytestmark = pytest.mark.spark

DAY = dt.datetime(2026, 5, 4, 12, 0)
HOSTILE = "x' OR '1'='1"
SCHEMA = T.StructType(
    [
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("segment", T.StringType()),
        T.StructField("label", T.IntegerType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("weight", T.DoubleType()),
    ]
)

# (expected reason or None, row); valid rows alternate labels so metrics exist.
CASES = [
    (None, ("m", "v1", DAY, "a", 1, 0.9, 1.0)),
    (None, ("m", "v1", DAY, "a", 0, 0.2, 1.0)),
    (None, ("m", "v1", DAY, HOSTILE, 1, 0.7, 2.0)),  # a hostile value is just a value
    (None, ("m", HOSTILE, DAY, "b", 0, 0.4, 1.0)),
    (None, ("m", HOSTILE, DAY, "b", 1, 0.6, 1.0)),
    (None, ("m", "v1", DAY + dt.timedelta(days=1), "a`;--", 0, 0.1, 1.0)),
    (None, ("m", "v1", DAY + dt.timedelta(days=1), "a", 1, 0.8, 1.0)),
    ("null_model_name", (None, "v1", DAY, "a", 1, 0.5, 1.0)),
    ("null_model_version", ("m", None, DAY, "a", 1, 0.5, 1.0)),
    ("null_event_time", ("m", "v1", None, "a", 1, 0.5, 1.0)),
    ("null_label", ("m", "v1", DAY, "a", None, 0.5, 1.0)),
    ("unknown_label", ("m", "v1", DAY, "a", 7, 0.5, 1.0)),
    ("null_score", ("m", "v1", DAY, "a", 1, None, 1.0)),
    ("nan_score", ("m", "v1", DAY, "a", 1, math.nan, 1.0)),
    ("infinite_score", ("m", "v1", DAY, "a", 1, math.inf, 1.0)),
    ("infinite_score", ("m", "v1", DAY, "a", 0, -math.inf, 1.0)),
    ("score_out_of_range", ("m", "v1", DAY, "a", 1, 1.5, 1.0)),
    ("score_out_of_range", ("m", "v1", DAY, "a", 0, -0.1, 1.0)),
    ("null_weight", ("m", "v1", DAY, "a", 1, 0.5, None)),
    ("nan_weight", ("m", "v1", DAY, "a", 1, 0.5, math.nan)),
    ("infinite_weight", ("m", "v1", DAY, "a", 1, 0.5, math.inf)),
    ("negative_weight", ("m", "v1", DAY, "a", 1, 0.5, -1.0)),
]


def config_for(tmp: str, **sections: dict):
    raw = {
        "input": {"path": f"{tmp}/predictions", "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "slices": {"segment_columns": ["segment"]},
        "output": {"path": f"{tmp}/metrics", "quarantine": True},
        "run": {"max_reject_fraction": 1.0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_config(raw)


@pytest.fixture(scope="module")
def bad(spark, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("bad"))
    df = spark.createDataFrame([row for _, row in CASES], SCHEMA)
    df.write.format("delta").save(f"{tmp}/predictions")
    config = config_for(tmp)
    result = run_evaluation(spark, config, log=lambda _: None)
    return tmp, config, result


def read(spark, config, name: str) -> pd.DataFrame:
    return tables.read_table(spark, tables.output_location(config, name)).toPandas()


def test_every_reason_counted_exactly(bad) -> None:
    _, _, result = bad
    expected: dict[str, int] = {}
    for reason, _ in CASES:
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    assert result.reject_counts == expected
    assert result.rows_read == len(CASES)
    assert result.rows_evaluated == sum(reason is None for reason, _ in CASES)


def test_rows_read_equal_counted_plus_rejected_per_window(spark, bad) -> None:
    _, config, _ = bad
    metrics = read(spark, config, "metrics")
    overall = metrics[(metrics.slice_key == "") & (metrics.metric == "roc_auc")]
    rejected = metrics[metrics.metric == "rejected_rows"]
    raw = pd.DataFrame([row for _, row in CASES], columns=[f.name for f in SCHEMA.fields])
    raw = raw.dropna(subset=["model_name", "model_version", "event_time"])
    raw["day"] = raw.event_time.dt.date
    for (version, day), part in raw.groupby(["model_version", "day"]):
        evaluated = overall[(overall.model_version == version) & (overall.window_start == day)]
        rejects = rejected[(rejected.model_version == version) & (rejected.window_start == day)]
        counted = int(evaluated.n_rows.sum()) + int(rejects.n_rows.sum())
        assert counted == len(part), (version, day)


def test_hostile_values_are_stored_as_plain_values(spark, bad) -> None:
    _, config, _ = bad
    metrics = read(spark, config, "metrics")
    assert HOSTILE in set(metrics.model_version)
    assert HOSTILE in set(metrics.slice_value)
    assert "a`;--" in set(metrics.slice_value)


def test_quarantine_keeps_rejected_rows_with_reason(spark, bad) -> None:
    _, config, result = bad
    quarantine = read(spark, config, "quarantine")
    assert len(quarantine) == result.rows_rejected
    assert set(quarantine.run_id) == {result.run_id}
    assert quarantine.reject_reason.value_counts().to_dict() == result.reject_counts


def test_row_filter_counts_excluded_rows(spark, bad) -> None:
    tmp, _, _ = bad
    config = config_for(tmp, input={"filter": "segment = 'a'"}, output={"path": f"{tmp}/f"})
    result = run_evaluation(spark, config, log=lambda _: None)
    excluded = sum(1 for reason, row in CASES if reason is None and row[3] != "a")
    assert result.reject_counts["excluded_by_filter"] == excluded == result.rows_excluded
    assert result.rows_read == len(CASES)
    # Left-out rows are not "rejected": the three counts add up to the rows read.
    assert result.rows_rejected == sum(result.reject_counts.values()) - excluded
    assert result.rows_evaluated + result.rows_rejected + excluded == result.rows_read


@pytest.mark.parametrize(
    "text",
    ["no_such_column > 1", "segment", HOSTILE, "1=1) OR (1=1", "score > (SELECT 1)", "a; b"],
)
def test_bad_row_filter_is_rejected_before_writing(spark, bad, text) -> None:
    tmp, _, _ = bad
    with pytest.raises((ContractError, ConfigError)) as info:
        config = config_for(tmp, input={"filter": text}, output={"path": f"{tmp}/never"})
        run_evaluation(spark, config, log=lambda _: None)
    assert "input.filter" in str(info.value)
    assert not tables.table_exists(spark, tables.TableLocation("metrics", path=f"{tmp}/never"))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("input", "models", [HOSTILE]),
        ("input", "models", ["m; DROP TABLE x"]),
        ("input", "label_column", "label`; --"),
        ("input", "table", "a.b; DROP TABLE c"),
        ("output", "table_prefix", "x' OR '1'='1"),
        ("output", "catalog_schema", "main.x\nDROP"),
        ("slices", "segment_columns", ["segment) OR (1=1"]),
    ],
)
def test_hostile_config_values_are_config_errors(tmp_path, section, key, value) -> None:
    raw = {
        "input": {"path": str(tmp_path)},
        "output": {"path": str(tmp_path)},
        section: {key: value},
    }
    if section == "input" and key == "table":
        raw["input"] = {"table": value}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert f"{section}.{key}" in str(info.value)


def test_long_tail_of_segment_values_goes_to_other(spark, bad) -> None:
    tmp, _, _ = bad
    config = config_for(
        tmp, slices={"max_values": 1, "min_slice_size": 3}, output={"path": f"{tmp}/capped"}
    )
    run_evaluation(spark, config, log=lambda _: None)
    metrics = read(spark, config, "metrics")
    segment = metrics[(metrics.slice_key == "segment") & (metrics.metric == "roc_auc")]
    overall = metrics[(metrics.slice_key == "") & (metrics.metric == "roc_auc")]
    # 'a' is the most frequent value; every other value is in the explicit __other__ slice
    assert set(segment.slice_value) == {"a", "__other__"}
    for (version, day), part in segment.groupby(["model_version", "window_start"]):
        total = overall[(overall.model_version == version) & (overall.window_start == day)]
        assert part.n_rows.sum() == total.n_rows.sum()


def test_small_slices_keep_counts_but_no_metric_values(spark, bad) -> None:
    tmp, _, _ = bad
    config = config_for(tmp, slices={"min_slice_size": 3}, output={"path": f"{tmp}/small"})
    run_evaluation(spark, config, log=lambda _: None)
    metrics = read(spark, config, "metrics")
    flagged = metrics[metrics.metric == "below_min_slice_size"]
    assert len(flagged) > 0 and (flagged.value == 3).all() and (flagged.n_rows < 3).all()
    assert (flagged.slice_key != "").all()
    for row in flagged.itertuples():
        same = metrics[
            (metrics.model_version == row.model_version)
            & (metrics.slice_value == row.slice_value)
            & (metrics.window_start == row.window_start)
            & (metrics.metric != "below_min_slice_size")
        ]
        assert same.value.isna().all() and (same.n_rows == row.n_rows).all()
    big = metrics[(metrics.n_rows >= 3) & (metrics.metric == "roc_auc")]
    assert big.value.notna().any()
    confusion = read(spark, config, "confusion_matrices")
    assert set(flagged.slice_value) <= set(confusion.slice_value)  # counts are kept


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    picks=st.lists(st.integers(0, len(CASES) - 1), min_size=1, max_size=30),
    limit=st.sampled_from([0.0, 0.3, 1.0]),
    use_weight=st.booleans(),
    use_filter=st.booleans(),
)
def test_property_rows_accounted_or_nothing_written(
    spark, tmp_path_factory, picks, limit, use_weight, use_filter
) -> None:
    """Random bad rows and options: the run either accounts for every row or fails
    before writing (output tables' Delta versions unchanged)."""
    tmp = str(tmp_path_factory.mktemp("prop"))
    rows = [CASES[i][1] for i in picks]
    spark.createDataFrame(rows, SCHEMA).write.format("delta").save(f"{tmp}/predictions")
    sections = {"run": {"max_reject_fraction": limit}, "output": {"quarantine": False}}
    if not use_weight:
        sections["input"] = {"weight_column": None}
    if use_filter:
        sections.setdefault("input", {})["filter"] = "segment <> 'b'"
    raw = {
        "input": {"path": f"{tmp}/predictions", "weight_column": "weight"},
        "task": {"positive_label": 1, "negative_labels": [0]},
        "slices": {"segment_columns": ["segment"]},
        "output": {"path": f"{tmp}/metrics"},
    }
    for name, values in sections.items():
        raw[name] = {k: v for k, v in {**raw.get(name, {}), **values}.items() if v is not None}
    config = parse_config(raw)
    # an earlier successful run, so that "unchanged" is about existing tables
    first = parse_config({**raw, "run": {"max_reject_fraction": 1.0}})
    run_evaluation(spark, first, log=lambda _: None)
    names = [n for n in OUTPUT_TABLES if n != "runs"]
    before = {n: tables.table_version(spark, tables.output_location(config, n)) for n in names}
    try:
        # full: the first run already evaluated these rows, and an incremental run
        # would find nothing changed
        result = run_evaluation(spark, config, log=lambda _: None, full=True)
    except RejectLimitError:
        after = {n: tables.table_version(spark, tables.output_location(config, n)) for n in names}
        assert after == before
        return
    assert result.rows_read == len(rows)
    # every row in the metrics, rejected, or left out by input.filter (counted)
    segment = SCHEMA.fieldNames().index("segment")
    excluded = sum(1 for i in picks if use_filter and CASES[i][1][segment] == "b")
    assert result.rows_excluded == excluded
    assert result.rows_evaluated + result.rows_rejected + result.rows_excluded == len(rows)


@pytest.mark.parametrize("kind", ["map", "array"])
def test_each_multiclass_probability_reason(spark, kind: str) -> None:
    """Every probability check of a 3-class task, one defect per row, for a map
    (by class name) and an array (in class order) column: the first reason that
    applies, in the documented order, and NULL for good rows (ties, 0 and 1 and
    a sum within the tolerance are good)."""

    classes = ["a", "b", "c"]
    inf, nan = math.inf, math.nan
    cases = [
        ([0.2, 0.3, 0.5], None),
        ([1 / 3, 1 / 3, 1 / 3], None),
        ([0.0, 1.0, 0.0], None),
        ([0.2, 0.3, 0.5 + 5e-4], None),
        (None, "null_probability"),
        ([0.5, 0.5], "bad_probability_length"),
        ([0.2, None, 0.8], "null_probability"),
        ([0.2, nan, 0.8], "nan_probability"),
        ([nan, None, 0.8], "null_probability"),
        ([0.2, inf, 0.8], "infinite_probability"),
        ([-inf, 0.2, 0.8], "infinite_probability"),
        ([-0.1, 0.3, 0.8], "probability_out_of_range"),
        ([0.1, 0.3, 1.5], "probability_out_of_range"),
        ([0.2, 0.3, 0.4], "probabilities_not_normalized"),
    ]
    if kind == "map":
        values: list = [
            None if p is None else dict(zip(classes, p, strict=False)) for p, _ in cases
        ]
        # a map with the right size but a wrong key
        values.append({"a": 0.2, "b": 0.3, "x": 0.5})
        column_type = T.MapType(T.StringType(), T.DoubleType())
    else:
        values = [p for p, _ in cases]
        column_type = T.ArrayType(T.DoubleType())
    expected = [reason for _, reason in cases] + (
        ["bad_probability_length"] if kind == "map" else []
    )
    # the model, version and event time columns of the binary cases' SCHEMA
    schema = T.StructType(
        [
            *SCHEMA.fields[:3],
            T.StructField("label", T.StringType()),
            T.StructField("probabilities", column_type),
        ]
    )
    frame = spark.createDataFrame([("m", "v1", DAY, "a", v) for v in values], schema)
    config = parse_config(
        {
            "input": {"path": "unused"},
            "task": {"type": "multiclass", "classes": classes},
        }
    )
    rows = task_for(config).normalize(frame)
    got = [r.reject_reason for r in rows.select("reject_reason").collect()]
    assert got == expected


def test_map_probabilities_in_any_key_order_are_read_alike(spark) -> None:
    """A map whose keys are the classes in class order is read by its values as
    they stand, any other map class by class: in every key order the same reject
    reason and the same probability vector (in class order), and the key checks
    still catch a missing, an extra and a wrong key."""
    from pyspark.sql import functions as F

    classes = ["a", "b", "c"]
    nan = math.nan
    cases = [  # probabilities in class order, the reason expected
        ([0.2, 0.3, 0.5], None),
        ([0.2, 0.3, 0.4], "probabilities_not_normalized"),
        ([0.2, nan, 0.8], "nan_probability"),
        ([-0.1, 0.3, 0.8], "probability_out_of_range"),
        ([0.2, None, 0.8], "null_probability"),
    ]
    orders = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]]
    rows, expected = [], []  # (row, keys, values); (reason, vector in class order)
    for probs, reason in cases:
        for order in orders:
            rows.append((len(rows), [classes[i] for i in order], [probs[i] for i in order]))
            expected.append((reason, probs))
    for keys in (["a", "b"], ["a", "b", "c", "d"], ["a", "b", "x"]):
        rows.append((len(rows), keys, [1 / len(keys)] * len(keys)))
        expected.append(("bad_probability_length", None))
    schema = T.StructType(
        [
            T.StructField("case", T.IntegerType()),
            T.StructField("keys", T.ArrayType(T.StringType())),
            T.StructField("values", T.ArrayType(T.DoubleType())),
        ]
    )
    maps = spark.createDataFrame(rows, schema).select(
        "case",
        F.lit("m").alias("model_name"),
        F.lit("v1").alias("model_version"),
        F.lit(DAY).alias("event_time"),
        F.lit("a").alias("label"),
        F.map_from_arrays("keys", "values").alias("probabilities"),
    )
    config = parse_config(
        {"input": {"path": "unused"}, "task": {"type": "multiclass", "classes": classes}}
    )
    task = task_for(config)
    prepared = task.prepare(maps)
    read = prepared.select(
        "case",
        task.reject_reason(prepared).alias("reason"),
        F.col(PROBABILITY_VECTOR).alias("vector"),
    )
    got = sorted(read.collect(), key=lambda r: r.case)
    assert [r.reason for r in got] == [reason for reason, _ in expected]
    for row, (_, probs) in zip(got, expected, strict=True):
        if probs is not None:
            np.testing.assert_array_equal(np.array(row.vector, float), np.array(probs, float))
