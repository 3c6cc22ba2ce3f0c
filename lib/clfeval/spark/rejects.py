"""Reject reasons per row: each input row is counted in the metrics or under
exactly one reason (``schema.REJECT_REASONS``).

A task declares its checks as data, ``RejectCheck(reason, predicate)`` in the
order they are tested; ``first_reason`` turns the list into one CASE
expression, so each row is tagged with the first reason that applies (NULL for
rows that enter the metrics). The checks every task shares (filter, keys,
labels join, weight) are here; the label and score checks are the task's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from clfeval.config import Config
from clfeval.schema import (
    EXCLUDED_BY_FILTER,
    MAX_WEIGHT,
    MIN_WEIGHT,
    REJECT_REASONS,
    UNLABELED,
)
from clfeval.spark.selection import LABEL_CONFLICT, LABEL_FOUND


@dataclass(frozen=True)
class RejectCheck:
    """A row is rejected as ``reason`` (a name of ``schema.REJECT_REASONS``)
    when ``predicate`` is true and no earlier check applied."""

    reason: str
    predicate: Column

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"{self.reason!r} is not in schema.REJECT_REASONS")


def leading_checks(config: Config, day: Column) -> list[RejectCheck]:
    """The checks before the task's own: the row filter, the keys, the labels
    join and a NULL label. ``day`` is the row's event day (NULL exactly when its
    event time is), so a frame whose day comes from its date partition never
    decodes the event times."""
    i = config.input
    checks: list[RejectCheck] = []
    if i.filter is not None:
        # The filter's text goes to Spark's expression parser, never into a statement.
        checks.append(RejectCheck(EXCLUDED_BY_FILTER, ~F.coalesce(F.expr(i.filter), F.lit(False))))
    checks += [
        RejectCheck("null_model_name", F.col(i.model_name_column).isNull()),
        RejectCheck("null_model_version", F.col(i.model_version_column).isNull()),
        RejectCheck("null_event_time", day.isNull()),
    ]
    if config.labels.enabled:
        checks += [
            RejectCheck(UNLABELED, ~F.col(LABEL_FOUND)),
            RejectCheck("conflicting_labels", F.col(LABEL_CONFLICT)),
        ]
    # A non-NULL value never casts to a NULL string: test the column itself.
    checks.append(RejectCheck("null_label", F.col(i.label_column).isNull()))
    return checks


def weight_checks(config: Config) -> list[RejectCheck]:
    """The weight column's checks (none without a weight column)."""
    if config.input.weight_column is None:
        return []
    weight = F.col(config.input.weight_column).cast("double")
    return [
        RejectCheck("null_weight", weight.isNull()),
        RejectCheck("nan_weight", F.isnan(weight)),
        RejectCheck("infinite_weight", F.abs(weight) == F.lit(float("inf"))),
        RejectCheck("negative_weight", weight < F.lit(0.0)),
        RejectCheck(
            "weight_out_of_range",
            (weight > F.lit(MAX_WEIGHT)) | ((weight > F.lit(0.0)) & (weight < F.lit(MIN_WEIGHT))),
        ),
    ]


def first_reason(checks: Sequence[RejectCheck]) -> Column:
    """The name of the first check whose predicate holds, or NULL (one CASE)."""
    expr = F.when(checks[0].predicate, F.lit(checks[0].reason))
    for check in checks[1:]:
        expr = expr.when(check.predicate, F.lit(check.reason))
    return expr.otherwise(F.lit(None).cast("string"))
