"""Multilabel classification: a set of true labels and a score per label per row.

``task.labels`` names the L labels. The true labels are ``input.label_column``:
an array<string> of the row's labels (empty: none), or a map<string, number or
boolean> label -> 0/1 (a label missing from the map is 0). The scores are
``input.probabilities_column``: a map<string, double> keyed by label or an
array<double> in ``task.labels`` order; label l is predicted iff
``s_l >= threshold`` at each of ``metrics.thresholds`` (the same thresholds
for every label).

State per group (``core.multilabel.MultilabelState``, rows of
``aggregate.scan_multilabel_states``): per label the binary state of its score
(``class_label`` = the label, ``bin`` = the score's bin, as a binary task's),
and the example sums (``class_label`` NULL, ``true_rank`` = the statistic's
index in ``core.multilabel.EXAMPLE_STATISTICS``, ``bin`` = the edge index of
the threshold; ``EMPTY_LABEL_SET`` without a bin): at most L·bins + 6·T + 1
rows. Coverage error and label-ranking average precision are not derived:
they need each row's ranking of its L scores, which the state does not keep.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.core.binary import BinaryState
from clfeval.core.multilabel import evaluate_multilabel
from clfeval.spark import aggregate, derive, selection
from clfeval.spark.aggregate import JvmScan
from clfeval.spark.rejects import RejectCheck
from clfeval.tasks.base import Task

SCORE_VECTOR = selection.INTERNAL_PREFIX + "score_vector"
TRUTH_VECTOR = selection.INTERNAL_PREFIX + "truth_vector"
_NUMBERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)


def label_names(labels: tuple[str, ...]) -> Column:
    """The label list as an array<string> literal, in label order."""
    return F.array(*[F.lit(label) for label in labels])


def score_vector(column: Column, kind: T.DataType, labels: tuple[str, ...]) -> Column:
    """array<double> in label order (a map is read by label; a missing key gives NULL)."""
    if isinstance(kind, T.MapType):
        return F.array(*[F.try_element_at(column, F.lit(label)).cast("double") for label in labels])
    return column.cast("array<double>")


def truth_vector(column: Column, kind: T.DataType, labels: tuple[str, ...]) -> Column:
    """array<int> of 0/1 in label order: whether each label is a true label of the row."""
    if isinstance(kind, T.MapType):
        marks = [
            F.coalesce(F.try_element_at(column, F.lit(label)).cast("double") == 1.0, F.lit(False))
            for label in labels
        ]
    else:
        marks = [
            F.coalesce(F.array_contains(column, F.lit(label)), F.lit(False)) for label in labels
        ]
    return F.array(*[m.cast("int") for m in marks])


class MultilabelTask(Task):
    type_name = "multilabel"
    class_keys = aggregate.MULTILABEL_KEYS
    checks_label_column = True

    def __init__(self, config: Config):
        super().__init__(config)
        self.labels = config.task.labels
        self.thresholds = tuple(config.metrics.thresholds)

    def column_problems(self, fields: dict[str, T.DataType]) -> list[str | None]:
        """Labels: array<string>, or map<string, number or boolean>; scores:
        map<string, float or double> or array<float or double>."""
        i = self.config.input
        problems: list[str | None] = []
        kind = fields.get(i.label_column)
        if kind is None:
            problems.append(f"input.label_column: column {i.label_column!r} not found in the input")
        elif not (
            (isinstance(kind, T.ArrayType) and isinstance(kind.elementType, T.StringType))
            or (
                isinstance(kind, T.MapType)
                and isinstance(kind.keyType, T.StringType)
                and isinstance(kind.valueType, (*_NUMBERS, T.BooleanType))
            )
        ):
            problems.append(
                f"input.label_column: column {i.label_column!r} has type {kind.simpleString()}, "
                "expected array<string> (the true labels) or map<string,int> (label -> 0/1)"
            )
        kind = fields.get(i.probabilities_column)
        floats = (T.FloatType, T.DoubleType)
        if kind is None:
            problems.append(
                f"input.probabilities_column: column {i.probabilities_column!r} not found "
                "in the input"
            )
        elif not (
            (isinstance(kind, T.ArrayType) and isinstance(kind.elementType, floats))
            or (
                isinstance(kind, T.MapType)
                and isinstance(kind.keyType, T.StringType)
                and isinstance(kind.valueType, floats)
            )
        ):
            problems.append(
                f"input.probabilities_column: column {i.probabilities_column!r} has type "
                f"{kind.simpleString()}, expected map<string,double> (label -> score) or "
                "array<double> (in task.labels order)"
            )
        return problems

    def prepare(self, df: DataFrame) -> DataFrame:
        """``df`` with the scores in label order (``score_vector``), built once per
        row in its own projection, which the reject checks read."""
        i = self.config.input
        kind = df.schema[i.probabilities_column].dataType
        raw = F.col(i.probabilities_column)
        return df.withColumn(SCORE_VECTOR, score_vector(raw, kind, self.labels))

    def reject_checks(self, df: DataFrame) -> list[RejectCheck]:
        """The label set, then the scores. Set tests in closed form
        (``array_except``, ``array_compact``): no per-row lambda."""
        i = self.config.input
        names = label_names(self.labels)
        n_labels = F.lit(len(self.labels))
        label, label_kind = F.col(i.label_column), df.schema[i.label_column].dataType
        if isinstance(label_kind, T.MapType):
            indicators = F.map_values(label).cast("array<double>")
            checks = [
                RejectCheck("unknown_label", F.size(F.array_except(F.map_keys(label), names)) > 0),
                RejectCheck(
                    "invalid_label_indicator",
                    F.size(F.array_except(indicators, F.array(F.lit(0.0), F.lit(1.0)))) > 0,
                ),
            ]
        else:
            checks = [RejectCheck("unknown_label", F.size(F.array_except(label, names)) > 0)]
        raw, kind = F.col(i.probabilities_column), df.schema[i.probabilities_column].dataType
        if isinstance(kind, T.MapType):
            extra = F.size(F.array_except(F.map_keys(raw), names)) > 0
        else:
            extra = F.size(raw) > n_labels
        scores = F.col(SCORE_VECTOR)
        highest, lowest = F.array_max(scores), F.array_min(scores)
        infinity = F.lit(float("inf"))
        return [
            *checks,
            RejectCheck("null_score", raw.isNull()),
            RejectCheck("extra_label_score", extra),
            RejectCheck("missing_label_score", F.size(F.array_compact(scores)) < n_labels),
            # array_max orders NaN above every double, so it is NaN when any score is.
            RejectCheck("nan_score", F.isnan(highest)),
            RejectCheck("infinite_score", (highest == infinity) | (lowest == -infinity)),
            RejectCheck("score_out_of_range", (lowest < F.lit(0.0)) | (highest > F.lit(1.0))),
        ]

    def normalize(self, df: DataFrame) -> DataFrame:
        """Canonical columns: model_name, model_version, day, segments,
        reject_reason, truth (array<int> 0/1 in label order), scores
        (array<double> in label order), weight; NULL on rejected rows."""
        config = self.config
        i = config.input
        segments = [selection.segment_column_name(c) for c in config.finest_segments()]
        df = self.prepare(df)
        label_kind = df.schema[i.label_column].dataType
        tagged = df.select(
            *selection.key_columns(df, config),
            self.reject_reason(df).alias("reject_reason"),
            F.col(i.label_column).alias("raw_labels"),
            F.col(SCORE_VECTOR).alias("raw_scores"),
            selection.weight(config).alias("raw_weight"),
        )
        valid = F.col("reject_reason").isNull()
        truth = truth_vector(F.col("raw_labels"), label_kind, self.labels)
        return tagged.select(
            "model_name",
            "model_version",
            "day",
            *segments,
            "reject_reason",
            F.when(valid, truth).alias("truth"),
            F.when(valid, F.col("raw_scores")).alias("scores"),
            F.when(valid, F.col("raw_weight")).alias("weight"),
        )

    def state_grain(self) -> str:
        return f"{len(self.labels)} labels x {self.layout.n_bins} bins + example sums"

    def state_layout_id(self) -> str:
        """The layout's id, the task and a hash of its labels: example sums are
        over the whole label set, so states of other label sets are never added
        (and per-label rows never pass for a binary state of the same layout)."""
        digest = hashlib.sha256("\x1f".join(self.labels).encode()).hexdigest()[:12]
        return f"{self.layout.layout_id}-multilabel-{digest}"

    def jvm_fits(self, rows: DataFrame, jvm: JvmScan) -> str | None:
        return "multilabel states are summed by Spark SQL"

    def scan(self, rows: DataFrame, jvm: JvmScan | None) -> DataFrame:
        return aggregate.scan_multilabel_states(rows, self.config, self.layout, self.thresholds)

    def class_columns(self) -> list[Column]:
        """``class_label`` the label's name (NULL on example rows: ``element_at``
        of an array literal at a NULL index gave its last element on Spark 4.2),
        ``true_rank`` the statistic."""
        index = F.col("label_index")
        name = F.element_at(label_names(self.labels), index + 1)
        return [
            F.when(index.isNotNull(), name).alias("class_label"),
            F.lit(None).cast("string").alias("true_label"),
            F.lit(None).cast("boolean").alias("predicted"),
            F.col("statistic").cast("int").alias("true_rank"),
        ]

    def own_states(self) -> Column:
        """Per-label rows (a label of this task, no statistic) and example rows
        (no label, a statistic); never a multiclass row (true class or predicted)."""
        labels = [F.lit(label) for label in self.labels]
        per_label = F.col("class_label").isin(*labels) & F.col("true_rank").isNull()
        example = F.col("class_label").isNull() & F.col("true_rank").isNotNull()
        plain = F.col("true_label").isNull() & F.col("predicted").isNull()
        return plain & (per_label | example)

    def derive(self, states: DataFrame) -> DataFrame:
        m = self.config.metrics
        return derive.derive_multilabel_tables(
            states,
            self.layout,
            self.labels,
            self.thresholds,
            m.f_beta,
            m.confidence_level,
            self.config.threshold_policy(),
            m.calibration_bins,
            self.config.slices.min_slice_size,
            m.custom,
            self.config.operating_points(),
        )

    def summarize(self, states: DataFrame) -> list[dict]:
        """Hamming loss, subset accuracy, micro and macro F1 at the first
        operating threshold, micro ROC AUC (with its bounds) and macro ROC AUC
        per model version."""
        keys = ["class_label", "true_rank", "bin"]
        merged = (
            states.where(F.col("slice_key") == F.lit(""))
            .groupBy("model_name", "model_version", *keys)
            .agg(*[F.sum(c).alias(c) for c in BinaryState.FIELDS])
            .toPandas()
        )
        threshold = self.thresholds[0]
        out = []
        for (model, version), rows in sorted(merged.groupby(["model_name", "model_version"])):
            state = derive.multilabel_state_from_pandas(rows, self.labels, self.layout.n_bins)
            result = evaluate_multilabel(
                state, self.labels, self.layout, (threshold,), self.config.metrics.f_beta
            )
            values = {
                (m.metric.metric, m.metric.threshold): m.metric
                for m in result.metrics
                if m.class_label is None
            }
            auc = values[("roc_auc_micro", None)]
            out.append(
                {
                    "model": model,
                    "version": version,
                    "rows": state.n_rows,
                    "labels": len(self.labels),
                    "threshold": threshold,
                    "hamming_loss": values[("hamming_loss", threshold)].value,
                    "subset_accuracy": values[("subset_accuracy", threshold)].value,
                    "f1_micro": values[("f1_micro", threshold)].value,
                    "f1_macro": values[("f1_macro", threshold)].value,
                    "roc_auc_micro": auc.value,
                    "auc_lower": auc.bound_lower,
                    "auc_upper": auc.bound_upper,
                    "roc_auc_macro": values[("roc_auc_macro", None)].value,
                }
            )
        return out
