"""The input contract, checked on the schema before any scan.

``check_contract`` looks only at the schema (no Spark job) and raises one
ContractError that lists every problem: the columns every task needs here,
the task's own columns from ``Task.column_problems``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.errors import ContractError

NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)
INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
LABEL_TYPES = (*INTEGER_TYPES, T.BooleanType, T.StringType)
_TIME_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)
_INTEGER_OR_STRING = (*INTEGER_TYPES, T.StringType)

Fields = dict[str, T.DataType]


def column_problem(
    fields: Fields, key: str, column: str | None, types: tuple, what: str
) -> str | None:
    """The problem with config key ``input.<key>`` naming ``column``: missing
    (with the columns that exist) or of another type than ``types``; None if fine."""
    if column is None:
        return None
    if column not in fields:
        return f"input.{key}: column {column!r} not found in the input (columns: {_names(fields)})"
    if not isinstance(fields[column], types):
        return (
            f"input.{key}: column {column!r} has type {fields[column].simpleString()}, "
            f"expected {what}"
        )
    return None


def _names(fields: Fields) -> str:
    shown = list(fields)[:30]
    more = f", ... ({len(fields)} in all)" if len(fields) > len(shown) else ""
    return ", ".join(shown) + more


def check_contract(
    schema: T.StructType,
    config: Config,
    task_problems: list[str],
    task_checks_label: bool = False,
) -> None:
    """Raise ContractError listing every missing column and wrong type: the
    columns of every task, then ``task_problems`` (``Task.column_problems``;
    ``task_checks_label``: the task checks the label column itself)."""
    fields = {f.name: f.dataType for f in schema.fields}
    i = config.input
    problems = [
        column_problem(fields, "model_name_column", i.model_name_column, (T.StringType,), "string"),
        column_problem(
            fields, "model_version_column", i.model_version_column, (T.StringType,), "string"
        ),
        column_problem(
            fields, "event_time_column", i.event_time_column, _TIME_TYPES, "timestamp or date"
        ),
    ]
    if not task_checks_label:
        problems.append(
            column_problem(
                fields, "label_column", i.label_column, LABEL_TYPES, "integer, boolean or string"
            )
        )
    problems += task_problems
    problems += [
        column_problem(fields, "weight_column", i.weight_column, NUMERIC_TYPES, "a numeric type"),
        column_problem(
            fields, "date_partition_column", i.date_partition_column, (T.DateType,), "date"
        ),
    ]
    for column in config.finest_segments():
        if column not in fields:
            problems.append(f"slices: segment column {column!r} not found in the input")
    found = [p for p in problems if p is not None]
    if found:
        raise ContractError(found)


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
    elif not isinstance(label_kind, LABEL_TYPES):
        problems.append(
            f"labels.label_column: column {config.labels.label_column!r} has type "
            f"{label_kind.simpleString()}, expected integer, boolean or string"
        )
    if problems:
        raise ContractError(problems)
