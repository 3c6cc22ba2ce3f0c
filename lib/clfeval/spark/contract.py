"""The input contract: column checks before the scan, reject reasons per row.

``check_contract`` looks only at the schema (no Spark job) and raises one
ContractError that lists every problem. ``normalize`` projects the input to the
canonical columns the scan needs and tags every row with the first reject
reason that applies (NULL for rows that enter the metrics), so that each row is
either counted in the metrics or counted under exactly one reason.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.core.slices import NULL_TOKEN
from clfeval.errors import ContractError

# In the order they are tested: a row counts under the first reason that applies.
REJECT_REASONS = (
    "null_model_name",
    "null_model_version",
    "null_event_time",
    "null_label",
    "unknown_label",
    "null_score",
    "nan_score",
    "infinite_score",
    "score_out_of_range",
    "null_weight",
    "nan_weight",
    "infinite_weight",
    "negative_weight",
)

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)
_LABEL_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.BooleanType, T.StringType)
_TIME_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)

SEGMENT_PREFIX = "segment__"


def segment_column_name(column: str) -> str:
    """Name of the escaped-string copy of a segment column in the normalized rows."""
    return SEGMENT_PREFIX + column


def check_contract(schema: T.StructType, config: Config) -> None:
    """Raise ContractError listing every missing column and wrong type."""
    fields = {f.name: f.dataType for f in schema.fields}
    problems: list[str] = []
    i = config.input

    def need(key: str, column: str | None, types: tuple, what: str) -> None:
        if column is None:
            return
        if column not in fields:
            problems.append(f"input.{key}: column {column!r} not found in the input")
        elif not isinstance(fields[column], types):
            problems.append(
                f"input.{key}: column {column!r} has type {fields[column].simpleString()}, "
                f"expected {what}"
            )

    need("model_name_column", i.model_name_column, (T.StringType,), "string")
    need("model_version_column", i.model_version_column, (T.StringType,), "string")
    need("event_time_column", i.event_time_column, _TIME_TYPES, "timestamp or date")
    need("label_column", i.label_column, _LABEL_TYPES, "integer, boolean or string")
    need("score_column", i.score_column, (T.FloatType, T.DoubleType), "float or double")
    need("weight_column", i.weight_column, _NUMERIC, "a numeric type")
    need("date_partition_column", i.date_partition_column, (T.DateType,), "date")
    label_type = fields.get(i.label_column)
    if isinstance(
        label_type, T.BooleanType | T.ByteType | T.ShortType | T.IntegerType | T.LongType
    ):
        labels = [config.task.positive_label, *config.task.negative_labels]
        for label in labels:
            ok = (
                isinstance(label, bool)
                if isinstance(label_type, T.BooleanType)
                else (isinstance(label, int) and not isinstance(label, bool))
            )
            if not ok:
                problems.append(
                    f"task: label {label!r} cannot occur in label column {i.label_column!r} "
                    f"of type {label_type.simpleString()}"
                )
    for column in config.finest_segments():
        if column not in fields:
            problems.append(f"slices: segment column {column!r} not found in the input")
    if problems:
        raise ContractError(problems)


def escaped_segment(column: Column) -> Column:
    """Spark twin of ``core.slices.escape_value``: ``\\`` -> ``\\\\``, ``,`` -> ``\\,``."""
    text = column.cast("string")
    text = F.regexp_replace(text, r"\\", r"\\\\")
    text = F.regexp_replace(text, ",", r"\\,")
    return F.when(column.isNull(), F.lit(NULL_TOKEN)).otherwise(text)


def reject_reason(config: Config) -> Column:
    """The first reject reason that applies to a row, or NULL."""
    i = config.input
    label = F.col(i.label_column).cast("string")
    score = F.col(i.score_column).cast("double")
    known = [config.positive_label_text(), *config.negative_label_texts()]
    checks: list[tuple[str, Column]] = [
        ("null_model_name", F.col(i.model_name_column).isNull()),
        ("null_model_version", F.col(i.model_version_column).isNull()),
        ("null_event_time", F.col(i.event_time_column).isNull()),
        ("null_label", label.isNull()),
    ]
    if config.task.negative_labels:
        checks.append(("unknown_label", ~label.isin(*[F.lit(k) for k in known])))
    checks += [
        ("null_score", score.isNull()),
        ("nan_score", F.isnan(score)),
        ("infinite_score", F.abs(score) == F.lit(float("inf"))),
        ("score_out_of_range", (score < F.lit(0.0)) | (score > F.lit(1.0))),
    ]
    if i.weight_column is not None:
        weight = F.col(i.weight_column).cast("double")
        checks += [
            ("null_weight", weight.isNull()),
            ("nan_weight", F.isnan(weight)),
            ("infinite_weight", F.abs(weight) == F.lit(float("inf"))),
            ("negative_weight", weight < F.lit(0.0)),
        ]
    expr = F.when(checks[0][1], F.lit(checks[0][0]))
    for name, cond in checks[1:]:
        expr = expr.when(cond, F.lit(name))
    return expr.otherwise(F.lit(None).cast("string"))


def select_range(
    df: DataFrame, config: Config, start: dt.date | None, end: dt.date | None
) -> DataFrame:
    """Rows whose event day (in the session time zone) lies in [start, end]."""
    i = config.input
    day = F.to_date(F.col(i.event_time_column))
    if start is not None:
        df = df.where(day >= F.lit(start))
        if i.date_partition_column is not None:
            df = df.where(F.col(i.date_partition_column) >= F.lit(start))
    if end is not None:
        df = df.where(day <= F.lit(end))
        if i.date_partition_column is not None:
            df = df.where(F.col(i.date_partition_column) <= F.lit(end))
    if i.models:
        df = df.where(F.col(i.model_name_column).isin(*[F.lit(m) for m in i.models]))
    return df


def normalize(df: DataFrame, config: Config) -> DataFrame:
    """Canonical columns: model_name, model_version, day, segments, reject_reason, y, score, weight.

    ``y``, ``score`` and ``weight`` are NULL on rejected rows so that the sums of
    the scan only ever see valid values.
    """
    i = config.input
    weight = F.lit(1.0) if i.weight_column is None else F.col(i.weight_column).cast("double")
    segments = [segment_column_name(c) for c in config.finest_segments()]
    # Two projections so that the reject CASE is evaluated once per row and reused.
    tagged = df.select(
        F.col(i.model_name_column).alias("model_name"),
        F.col(i.model_version_column).alias("model_version"),
        F.to_date(F.col(i.event_time_column)).alias("day"),
        *[
            escaped_segment(F.col(c)).alias(segment_column_name(c))
            for c in config.finest_segments()
        ],
        reject_reason(config).alias("reject_reason"),
        (F.col(i.label_column).cast("string") == F.lit(config.positive_label_text()))
        .cast("int")
        .alias("is_positive"),
        F.col(i.score_column).cast("double").alias("raw_score"),
        weight.alias("raw_weight"),
    )
    valid = F.col("reject_reason").isNull()
    return tagged.select(
        "model_name",
        "model_version",
        "day",
        *segments,
        "reject_reason",
        F.when(valid, F.col("is_positive")).alias("y"),
        F.when(valid, F.col("raw_score")).alias("score"),
        F.when(valid, F.col("raw_weight")).alias("weight"),
    )
