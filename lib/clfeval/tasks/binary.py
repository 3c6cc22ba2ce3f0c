"""Binary classification: a score of the positive class per row.

State per (group, bin of the score): positives and negatives (counts and
weights) and the sums for log loss, Brier score and calibration
(``core.binary.BinaryState``). Predicted positive iff ``score >= threshold``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.core.binary import BinaryState, evaluate
from clfeval.spark import aggregate, contract, derive, selection
from clfeval.spark.aggregate import JvmScan
from clfeval.spark.rejects import RejectCheck
from clfeval.tasks.base import Task


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
    if isinstance(label_type, contract.INTEGER_TYPES) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return column, [F.lit(v) for v in values]
    texts = (config.positive_label_text(), *config.negative_label_texts())
    return column.cast("string"), [F.lit(t) for t in texts]


class BinaryTask(Task):
    type_name = "binary"

    @property
    def negative_label(self) -> str:
        """The name of the negative class in confusion matrices: the one negative
        label, or ``not_<positive>``."""
        negatives = self.config.negative_label_texts()
        if len(negatives) == 1:
            return negatives[0]
        return f"not_{self.config.positive_label_text()}"

    def column_problems(self, fields: dict[str, T.DataType]) -> list[str | None]:
        i = self.config.input
        problems = [
            contract.column_problem(
                fields,
                "score_column",
                i.score_column,
                (T.FloatType, T.DoubleType),
                "float or double",
            )
        ]
        label_type = fields.get(i.label_column)
        if isinstance(label_type, (T.BooleanType, *contract.INTEGER_TYPES)):
            task = self.config.task
            for label in [task.positive_label, *task.negative_labels]:
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
        return problems

    def reject_checks(self, df: DataFrame) -> list[RejectCheck]:
        score = F.col(self.config.input.score_column).cast("double")
        label, known = binary_labels(
            self.config, df.schema[self.config.input.label_column].dataType
        )
        checks = []
        if self.config.task.negative_labels:
            checks.append(RejectCheck("unknown_label", ~label.isin(*known)))
        return [
            *checks,
            RejectCheck("null_score", score.isNull()),
            RejectCheck("nan_score", F.isnan(score)),
            RejectCheck("infinite_score", F.abs(score) == F.lit(float("inf"))),
            RejectCheck("score_out_of_range", (score < F.lit(0.0)) | (score > F.lit(1.0))),
        ]

    def normalize(self, df: DataFrame) -> DataFrame:
        """Canonical columns: model_name, model_version, day, segments,
        reject_reason, y, score, weight.

        ``y``, ``score`` and ``weight`` are NULL on rejected rows so that the sums
        of the scan only ever see valid values.
        """
        config = self.config
        segments = [selection.segment_column_name(c) for c in config.finest_segments()]
        label_type = df.schema[config.input.label_column].dataType
        label, (positive, *_) = binary_labels(config, label_type)
        # Two projections so that the reject CASE is evaluated once per row and reused.
        tagged = df.select(
            *selection.key_columns(df, config),
            self.reject_reason(df).alias("reject_reason"),
            (label == positive).cast("int").alias("is_positive"),
            F.col(config.input.score_column).cast("double").alias("raw_score"),
            selection.weight(config).alias("raw_weight"),
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

    def state_grain(self) -> str:
        return f"{self.layout.n_bins} score bins"

    def jvm_fits(self, rows: DataFrame, jvm: JvmScan) -> str | None:
        return None if aggregate.jvm_groups_by(rows, self.config) else "collated key columns"

    def scan(self, rows: DataFrame, jvm: JvmScan | None) -> DataFrame:
        return aggregate.scan_states(rows, self.config, self.layout, jvm)

    def class_columns(self) -> list[Column]:
        return [
            F.lit(self.config.positive_label_text()).alias("class_label"),
            F.lit(None).cast("string").alias("true_label"),
            F.lit(None).cast("boolean").alias("predicted"),
            F.lit(None).cast("int").alias("true_rank"),
        ]

    def own_states(self) -> Column:
        return F.col("true_label").isNull()

    def session_settings(self) -> dict[str, str]:
        groups = derive.groups_per_arrow_batch(self.layout.n_bins)
        return {derive.ARROW_RECORDS_PER_BATCH: str(groups)}

    def derive(self, states: DataFrame) -> DataFrame:
        m = self.config.metrics
        return derive.derive_tables(
            states,
            self.layout,
            m.thresholds,
            m.f_beta,
            self.config.positive_label_text(),
            self.negative_label,
            m.confidence_level,
            self.config.threshold_policy(),
            m.calibration_bins,
            self.config.slices.min_slice_size,
            m.custom,
            m.partial_auc_max_fpr,
            m.extra_curves,
            self.config.operating_points(),
        )

    def summarize(self, states: DataFrame) -> list[dict]:
        """ROC AUC (with its bounds), average precision, log loss, and precision
        and recall at the first operating threshold, per model version."""
        merged = (
            states.where(F.col("slice_key") == F.lit(""))
            .groupBy("model_name", "model_version", "bin")
            .agg(*[F.sum(c).alias(c) for c in BinaryState.FIELDS])
            .toPandas()
        )
        threshold = self.config.metrics.thresholds[0]
        out = []
        for (model, version), rows in sorted(merged.groupby(["model_name", "model_version"])):
            state = derive.state_from_rows(rows, self.layout.n_bins)
            evaluation = evaluate(state, self.layout, (threshold,), self.config.metrics.f_beta)
            values = {(m.metric, m.threshold): m for m in evaluation.metrics}
            auc = values[("roc_auc", None)]
            out.append(
                {
                    "model": model,
                    "version": version,
                    "rows": state.n_rows,
                    "positives": int(state.n_pos.sum()),
                    "roc_auc": auc.value,
                    "auc_lower": auc.bound_lower,
                    "auc_upper": auc.bound_upper,
                    "average_precision": values[("average_precision", None)].value,
                    "log_loss": values[("log_loss", None)].value,
                    "threshold": threshold,
                    "precision": values[("precision", threshold)].value,
                    "recall": values[("recall", threshold)].value,
                }
            )
        return out
