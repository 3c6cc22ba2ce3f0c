"""The input contract: column checks before the scan, reject reasons per row.

``check_contract`` looks only at the schema (no Spark job) and raises one
ContractError that lists every problem. ``normalize`` projects the input to the
canonical columns the scan needs and tags every row with the first reject
reason that applies (NULL for rows that enter the metrics), so that each row is
either counted in the metrics or counted under exactly one reason.
"""

from __future__ import annotations

import datetime as dt
import operator
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.core.slices import NULL_TOKEN
from clfeval.errors import ContractError

# Rows that ``input.filter`` leaves out: counted (nothing is lost) but not bad,
# so they do not count towards ``run.max_reject_fraction``.
EXCLUDED_BY_FILTER = "excluded_by_filter"
# With a [labels] table: predictions whose id has no label (yet). Counted, shown
# as label coverage, not bad: the next incremental run picks them up.
UNLABELED = "unlabeled"
NOT_BAD_REASONS = (EXCLUDED_BY_FILTER, UNLABELED)

# In the order they are tested: a row counts under the first reason that applies.
REJECT_REASONS = (
    EXCLUDED_BY_FILTER,
    "null_model_name",
    "null_model_version",
    "null_event_time",
    UNLABELED,  # only with a [labels] table
    "conflicting_labels",  # only with a [labels] table: one id, different labels
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

# Multiclass rows are checked for these instead of the *_score reasons.
MULTICLASS_REJECT_REASONS = (
    "null_probability",
    "bad_probability_length",
    "nan_probability",
    "infinite_probability",
    "probability_out_of_range",
    "probabilities_not_normalized",
    "null_predicted_class",
    "unknown_predicted_class",
)

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)
_LABEL_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.BooleanType, T.StringType)
_TIME_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)

SEGMENT_PREFIX = "segment__"


def segment_column_name(column: str) -> str:
    """Name of the string copy of a segment column in the normalized rows.

    Values are escaped (``escaped_segment``) only after the scan's aggregation,
    on one row per group instead of on every input row.
    """
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
    if config.is_multiclass:
        _check_multiclass_columns(fields, config, problems)
    else:
        need("score_column", i.score_column, (T.FloatType, T.DoubleType), "float or double")
    need("weight_column", i.weight_column, _NUMERIC, "a numeric type")
    need("date_partition_column", i.date_partition_column, (T.DateType,), "date")
    label_type = fields.get(i.label_column)
    if not config.is_multiclass and isinstance(
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


_INTEGER = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def _check_multiclass_columns(fields: dict, config: Config, problems: list[str]) -> None:
    """Probability vector: map<string, number> keyed by class or array<number> in class order."""
    i = config.input
    column = i.probabilities_column
    kind = fields.get(column)
    if kind is None:
        problems.append(f"input.probabilities_column: column {column!r} not found in the input")
    elif not (
        (
            isinstance(kind, T.MapType)
            and isinstance(kind.keyType, T.StringType)
            and isinstance(kind.valueType, T.FloatType | T.DoubleType)
        )
        or (
            isinstance(kind, T.ArrayType)
            and isinstance(kind.elementType, T.FloatType | T.DoubleType)
        )
    ):
        problems.append(
            f"input.probabilities_column: column {column!r} has type {kind.simpleString()}, "
            "expected map<string,double> or array<double>"
        )
    for key, name in (
        ("label_column", i.label_column),
        ("predicted_class_column", i.predicted_class_column),
    ):
        kind = fields.get(name) if name else None
        if isinstance(kind, _INTEGER):
            for text in config.class_texts():
                if not text.lstrip("-").isdigit():
                    problems.append(
                        f"task.classes: class {text!r} cannot occur in integer column "
                        f"{name!r} (input.{key})"
                    )
                    break
        elif name and name in fields and not isinstance(kind, T.StringType):
            problems.append(
                f"input.{key}: column {name!r} has type {kind.simpleString()}, "
                "expected string or integer"
            )
    if i.predicted_class_column and i.predicted_class_column not in fields:
        problems.append(
            f"input.predicted_class_column: column {i.predicted_class_column!r} "
            "not found in the input"
        )


def class_names(classes: tuple[str, ...]) -> Column:
    """The class list as an array<string> literal, in class order."""
    return F.array(*[F.lit(c) for c in classes])


def class_index(value: Column, classes: tuple[str, ...]) -> Column:
    """0-based position of ``value`` (as text) in the class list, -1 when unknown."""
    return F.array_position(class_names(classes), value.cast("string")) - 1


def keys_in_class_order(column: Column, classes: tuple[str, ...]) -> Column:
    """Whether a map's keys are exactly the classes, in class order (as maps built
    from a per-class list usually are): then its values are the vector as they
    stand. One comparison of K keys, where looking every class up in the map
    compares up to K keys per class (K^2 a row: at K = 50, half of the input
    checks' time)."""
    return F.map_keys(column) == class_names(classes)


def probability_vector(column: Column, kind: T.DataType, classes: tuple[str, ...]) -> Column:
    """array<double> in class order (a map is read by class name; missing keys give NULL)."""
    if isinstance(kind, T.MapType):
        by_name = F.array(*[F.try_element_at(column, F.lit(c)).cast("double") for c in classes])
        in_order = F.map_values(column).cast("array<double>")
        return F.when(keys_in_class_order(column, classes), in_order).otherwise(by_name)
    return column.cast("array<double>")


def with_probability_vector(df: DataFrame, config: Config) -> DataFrame:
    """``df`` with ``PROBABILITY_VECTOR``: the probabilities as array<double> in
    class order (``probability_vector``), which the multiclass reject checks read.

    Built once per row in its own projection: written inline in each check, Spark
    built the vector again for every element read (it does not share one value
    between the branches of a chain of conditions)."""
    kind = df.schema[config.input.probabilities_column].dataType
    raw = F.col(config.input.probabilities_column)
    return df.withColumn(PROBABILITY_VECTOR, probability_vector(raw, kind, config.class_texts()))


def _probability_checks(config: Config, kind: T.DataType) -> list[tuple[str, Column]]:
    """The probability vector's reject checks, in order, over ``PROBABILITY_VECTOR``
    (``with_probability_vector``). In closed form over the K elements rather than
    with lambda functions (``exists``, ``aggregate``): Spark runs lambdas
    interpreted, row by row, and five of them took ~7 us a row (15 of the 17 s
    of a 2M-row, 5-class scan), where these compile with the rest of the scan."""
    classes = config.class_texts()
    raw = F.col(config.input.probabilities_column)
    if isinstance(kind, T.MapType):
        # size K and every class a key <=> exactly the classes (map keys are unique)
        has_keys = reduce(operator.and_, [F.map_contains_key(raw, F.lit(c)) for c in classes])
        wrong_length = F.when(keys_in_class_order(raw, classes), F.lit(False)).otherwise(
            (F.size(raw) != F.lit(len(classes))) | ~has_keys
        )
    else:
        wrong_length = F.size(raw) != F.lit(len(classes))
    probs = F.col(PROBABILITY_VECTOR)
    elements = [F.try_element_at(probs, F.lit(i + 1)) for i in range(len(classes))]
    total = reduce(operator.add, elements)
    # array_max skips NULLs and orders NaN above every double (so it is NaN when
    # any element is); NULLs and NaNs are reported before the range.
    highest, lowest = F.array_max(probs), F.array_min(probs)
    infinity = F.lit(float("inf"))
    tolerance = F.lit(config.task.probability_tolerance)
    checks = [
        ("null_probability", raw.isNull()),
        ("bad_probability_length", wrong_length),
        ("null_probability", reduce(operator.or_, [e.isNull() for e in elements])),
        ("nan_probability", F.isnan(highest)),
        ("infinite_probability", (highest == infinity) | (lowest == -infinity)),
        ("probability_out_of_range", (lowest < F.lit(0.0)) | (highest > F.lit(1.0))),
        ("probabilities_not_normalized", F.abs(total - F.lit(1.0)) > tolerance),
    ]
    predicted = config.input.predicted_class_column
    if predicted is not None:
        checks += [
            ("null_predicted_class", F.col(predicted).isNull()),
            ("unknown_predicted_class", class_index(F.col(predicted), classes) < F.lit(0)),
        ]
    return checks


def check_filter(df: DataFrame, config: Config) -> None:
    """``input.filter`` must parse as one boolean expression over existing columns.

    The text is handed to Spark's expression parser (``F.expr``), never pasted
    into a statement; a parse or analysis error names the key and the problem.
    """
    text = config.input.filter
    if text is None:
        return
    try:
        kind = df.select(F.expr(text).alias("keep")).schema["keep"].dataType
    except Exception as exc:  # ParseException / AnalysisException: report, do not run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ContractError([f"input.filter: {text!r} is not valid here: {first}"]) from None
    if not isinstance(kind, T.BooleanType):
        raise ContractError(
            [f"input.filter: {text!r} has type {kind.simpleString()}, expected boolean"]
        )


def escaped_segment(column: Column) -> Column:
    """Spark twin of ``core.slices.escape_value``: ``\\`` -> ``\\\\``, ``,`` -> ``\\,``."""
    text = column.cast("string")
    text = F.regexp_replace(text, r"\\", r"\\\\")
    text = F.regexp_replace(text, ",", r"\\,")
    return F.when(column.isNull(), F.lit(NULL_TOKEN)).otherwise(text)


_INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def binary_labels(config: Config, label_type: T.DataType | None) -> tuple[Column, list[Column]]:
    """The label column and the literals of (positive, *negatives) to compare it with.

    Labels are compared as their text (``label_text``: 1 matches an integer 1 and
    a string "1"). When the column is an integer type and every configured label
    is an integer, the comparison is made on the integers themselves, which is
    the same test (an integer's text is its decimal form) without turning every
    row into a string.
    """
    column = F.col(config.input.label_column)
    values = (config.task.positive_label, *config.task.negative_labels)
    if isinstance(label_type, _INTEGER_TYPES) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return column, [F.lit(v) for v in values]
    texts = (config.positive_label_text(), *config.negative_label_texts())
    return column.cast("string"), [F.lit(t) for t in texts]


def reject_reason(
    config: Config,
    probabilities_type: T.DataType | None = None,
    label_type: T.DataType | None = None,
    day: Column | None = None,
) -> Column:
    """The first reject reason that applies to a row, or NULL.

    ``probabilities_type`` (the input's type of the probabilities column) is
    needed for multiclass tasks, whose checks also read the column that
    ``with_probability_vector`` adds; ``label_type`` (the label column's) lets a
    binary task compare integer labels without a cast (``binary_labels``);
    ``day`` (the row's ``event_day``, NULL exactly when its event time is) lets a
    frame whose event day comes from its date partition skip the event times.
    """
    i = config.input
    checks: list[tuple[str, Column]] = []
    if i.filter is not None:
        checks.append((EXCLUDED_BY_FILTER, ~F.coalesce(F.expr(i.filter), F.lit(False))))
    checks += [
        ("null_model_name", F.col(i.model_name_column).isNull()),
        ("null_model_version", F.col(i.model_version_column).isNull()),
        ("null_event_time", (F.col(i.event_time_column) if day is None else day).isNull()),
    ]
    if config.labels.enabled:
        checks += [
            (UNLABELED, ~F.col(LABEL_FOUND)),
            ("conflicting_labels", F.col(LABEL_CONFLICT)),
        ]
    checks += [
        # A non-NULL value never casts to a NULL string: test the column itself.
        ("null_label", F.col(i.label_column).isNull()),
    ]
    if config.is_multiclass:
        assert probabilities_type is not None
        label_as_text = F.col(i.label_column).cast("string")
        checks.append(
            ("unknown_label", class_index(label_as_text, config.class_texts()) < F.lit(0))
        )
        checks += _probability_checks(config, probabilities_type)
    else:
        score = F.col(i.score_column).cast("double")
        label, known = binary_labels(config, label_type)
        if config.task.negative_labels:
            checks.append(("unknown_label", ~label.isin(*known)))
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
    day = event_day(df, config)
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


_MICROS_PER_DAY = 86_400_000_000
_UTC_NAMES = ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00")


def with_event_day(df: DataFrame, config: Config, from_partition: bool) -> DataFrame:
    """``df`` with its rows' event day as a column, which ``event_day`` (and so
    every selection, check and key below) then reads: the day of the event time
    or, with ``from_partition``, the date partition's value. Only where Delta's
    file statistics prove them equal (``pipeline.partition_days``): the scan
    then never decodes the event times."""
    i = config.input
    if from_partition and i.date_partition_column is not None:
        day = F.col(i.date_partition_column)
    else:
        day = event_day(df, config)
    return df.withColumn(EVENT_DAY, day)


def event_day(df: DataFrame, config: Config) -> Column:
    """The event day in the session time zone (run.timezone): ``to_date(event_time)``,
    or the column ``with_event_day`` added.

    For a TIMESTAMP column in UTC the same day is floor(microseconds since the
    epoch / microseconds per day) in integer arithmetic (the largest multiple of
    a day not above the instant, divided exactly), which skips to_date's per-row
    time-zone conversion: ~10% of the scan's CPU at 20M rows, measured.
    """
    if EVENT_DAY in df.columns:
        return F.col(EVENT_DAY)
    column = F.col(config.input.event_time_column)
    kind = df.schema[config.input.event_time_column].dataType
    zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
    if not (isinstance(kind, T.TimestampType) and zone in _UTC_NAMES):
        return F.to_date(column)
    micros = F.unix_micros(column)
    day_start = micros - F.pmod(micros, F.lit(_MICROS_PER_DAY))
    days = F.call_function("div", day_start, F.lit(_MICROS_PER_DAY))
    return F.date_from_unix_date(days.cast("int"))


def _key_columns(df: DataFrame, config: Config) -> list[Column]:
    """model_name, model_version, day and the string copy of every segment column."""
    i = config.input
    return [
        F.col(i.model_name_column).alias("model_name"),
        F.col(i.model_version_column).alias("model_version"),
        event_day(df, config).alias("day"),
        *[F.col(c).cast("string").alias(segment_column_name(c)) for c in config.finest_segments()],
    ]


def _weight(config: Config) -> Column:
    column = config.input.weight_column
    return F.lit(1.0) if column is None else F.col(column).cast("double")


def normalize(df: DataFrame, config: Config) -> DataFrame:
    """Canonical columns: model_name, model_version, day, segments, reject_reason, y, score, weight.

    ``y``, ``score`` and ``weight`` are NULL on rejected rows so that the sums of
    the scan only ever see valid values.
    """
    i = config.input
    weight = _weight(config)
    segments = [segment_column_name(c) for c in config.finest_segments()]
    label_type = df.schema[i.label_column].dataType
    label, (positive, *_) = binary_labels(config, label_type)
    # Two projections so that the reject CASE is evaluated once per row and reused.
    tagged = df.select(
        *_key_columns(df, config),
        reject_reason(config, label_type=label_type, day=event_day(df, config)).alias(
            "reject_reason"
        ),
        (label == positive).cast("int").alias("is_positive"),
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


def normalize_multiclass(df: DataFrame, config: Config) -> DataFrame:
    """Canonical multiclass columns: model_name, model_version, day, segments,
    reject_reason, y (true class index), probs (array<double> in class order),
    pred (predicted class index: the input's column, else the first argmax), weight.
    """
    i = config.input
    classes = config.class_texts()
    kind = df.schema[i.probabilities_column].dataType
    weight = _weight(config)
    segments = [segment_column_name(c) for c in config.finest_segments()]
    df = with_probability_vector(df, config)
    tagged = df.select(
        *_key_columns(df, config),
        reject_reason(config, kind, day=event_day(df, config)).alias("reject_reason"),
        class_index(F.col(i.label_column), classes).alias("raw_y"),
        F.col(PROBABILITY_VECTOR).alias("raw_probs"),
        (
            class_index(F.col(i.predicted_class_column), classes)
            if i.predicted_class_column
            else F.lit(None).cast("int")
        ).alias("raw_pred"),
        weight.alias("raw_weight"),
    )
    valid = F.col("reject_reason").isNull()
    argmax = F.array_position(F.col("raw_probs"), F.array_max(F.col("raw_probs"))) - 1
    return tagged.select(
        "model_name",
        "model_version",
        "day",
        *segments,
        "reject_reason",
        F.when(valid, F.col("raw_y")).cast("int").alias("y"),
        F.when(valid, F.col("raw_probs")).alias("probs"),
        F.when(valid, F.coalesce(F.col("raw_pred"), argmax)).cast("int").alias("pred"),
        F.when(valid, F.col("raw_weight")).alias("weight"),
    )


def rejected_rows(df: DataFrame, config: Config, run_id: str) -> DataFrame:
    """The input's rejected rows, unchanged, with ``reject_reason`` and ``run_id`` (quarantine)."""
    kind = df.schema[config.input.probabilities_column].dataType if config.is_multiclass else None
    label_type = df.schema[config.input.label_column].dataType
    if config.is_multiclass:
        df = with_probability_vector(df, config)
    tagged = df.withColumn(
        "reject_reason", reject_reason(config, kind, label_type, event_day(df, config))
    )
    internal = [c for c in df.columns if c.startswith(INTERNAL_PREFIX)]
    return (
        tagged.where(F.col("reject_reason").isNotNull())
        .withColumn("run_id", F.lit(run_id))
        .drop(*internal)
    )


INTERNAL_PREFIX = "_clfeval_"
PROBABILITY_VECTOR = INTERNAL_PREFIX + "probability_vector"
LABEL_FOUND = INTERNAL_PREFIX + "label_found"
EVENT_DAY = INTERNAL_PREFIX + "event_day"
LABEL_CONFLICT = INTERNAL_PREFIX + "label_conflict"
_LABEL_ID = INTERNAL_PREFIX + "label_id"
_INTEGER_OR_STRING = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.StringType)


def check_labels_contract(predictions: T.StructType, labels: T.StructType, config: Config) -> None:
    """The id column in both tables (same kind: integer or string) and the label column."""
    problems: list[str] = []
    kinds = []
    for key, schema, column in (
        ("input.id_column", predictions, config.input.id_column),
        ("labels.id_column", labels, config.labels.id_column),
    ):
        fields = {f.name: f.dataType for f in schema.fields}
        kind = fields.get(column or "")
        if kind is None:
            problems.append(f"{key}: column {column!r} not found")
        elif not isinstance(kind, _INTEGER_OR_STRING):
            problems.append(
                f"{key}: column {column!r} has type {kind.simpleString()}, "
                "expected an integer or string"
            )
        else:
            kinds.append(isinstance(kind, T.StringType))
    if len(kinds) == 2 and kinds[0] != kinds[1]:
        problems.append(
            "input.id_column / labels.id_column: one is a string and the other an integer"
        )
    label_kind = {f.name: f.dataType for f in labels.fields}.get(config.labels.label_column)
    if label_kind is None:
        problems.append(
            f"labels.label_column: column {config.labels.label_column!r} not found "
            "in the labels table"
        )
    elif not isinstance(label_kind, _LABEL_TYPES):
        problems.append(
            f"labels.label_column: column {config.labels.label_column!r} has type "
            f"{label_kind.simpleString()}, expected integer, boolean or string"
        )
    if problems:
        raise ContractError(problems)


def join_labels(predictions: DataFrame, labels: DataFrame, config: Config) -> DataFrame:
    """Predictions with their label from the labels table (left join on the id).

    The label lands in ``input.label_column`` (replacing a column of that name);
    ``LABEL_FOUND`` is false for ids without a label row (reject reason
    ``unlabeled``) and ``LABEL_CONFLICT`` true for ids whose label rows disagree
    (``conflicting_labels``). Labels are reduced to one row per id first, so a
    prediction is never duplicated by the join.
    """
    i, lab = config.input, config.labels
    assert i.id_column is not None
    label = F.col(lab.label_column)
    per_id = labels.groupBy(F.col(lab.id_column).alias(_LABEL_ID)).agg(
        F.min(label).alias("_clfeval_label_min"), F.max(label).alias("_clfeval_label_max")
    )
    base = predictions.drop(i.label_column)
    joined = base.join(per_id, base[i.id_column] == per_id[_LABEL_ID], "left")
    low, high = F.col("_clfeval_label_min"), F.col("_clfeval_label_max")
    return joined.select(
        *[base[c] for c in base.columns],
        F.when(low == high, low).alias(i.label_column),
        F.col(_LABEL_ID).isNotNull().alias(LABEL_FOUND),
        F.coalesce(low != high, F.lit(False)).alias(LABEL_CONFLICT),
    )


def select_days(df: DataFrame, config: Config, days: list[dt.date]) -> DataFrame:
    """Rows whose event day (session time zone) is one of ``days`` (incremental runs)."""
    i = config.input
    wanted = [F.lit(d) for d in sorted(days)]
    df = df.where(event_day(df, config).isin(*wanted))
    if i.date_partition_column is not None:
        df = df.where(F.col(i.date_partition_column).isin(*wanted))
    if i.models:
        df = df.where(F.col(i.model_name_column).isin(*[F.lit(m) for m in i.models]))
    return df


def predictions_of_labels(predictions: DataFrame, labels: DataFrame, config: Config) -> DataFrame:
    """The predictions whose id occurs among ``labels`` rows (semi join on the id)."""
    assert config.input.id_column is not None
    ids = labels.select(F.col(config.labels.id_column).alias(_LABEL_ID)).distinct()
    return predictions.join(ids, predictions[config.input.id_column] == ids[_LABEL_ID], "left_semi")


def event_days(df: DataFrame, config: Config) -> set[dt.date]:
    """The distinct event days of ``df`` (of the configured models); only days reach
    the driver."""
    i = config.input
    if i.models:
        df = df.where(F.col(i.model_name_column).isin(*[F.lit(m) for m in i.models]))
    day = event_day(df, config).alias("day")
    return {r["day"] for r in df.select(day).distinct().collect() if r["day"] is not None}
