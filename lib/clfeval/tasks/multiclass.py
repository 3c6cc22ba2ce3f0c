"""Multiclass classification: a probability per class per row (K classes).

State per group (``core.multiclass.MulticlassState``, rows of
``aggregate.scan_multiclass_states``): per (class c, c is the predicted class,
bin of p_c) the one-vs-rest histograms and the top-label calibration state,
the K x K confusion counts and the true class's rank counts for top-k: at most
2·K·bins + 2·K² rows. ``task.one_vs_one`` adds the true class to the class
rows (Hand & Till's one-vs-one AUC): at most 2·K²·bins + 2·K² rows.
"""

from __future__ import annotations

import operator
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.core.binary import BinaryState
from clfeval.core.multiclass import evaluate_multiclass
from clfeval.spark import aggregate, contract, derive, selection
from clfeval.spark.aggregate import JvmScan
from clfeval.spark.rejects import RejectCheck
from clfeval.tasks.base import Task

PROBABILITY_VECTOR = selection.INTERNAL_PREFIX + "probability_vector"


def class_names(classes: tuple[str, ...]) -> Column:
    """The class list as an array<string> literal, in class order."""
    return F.array(*[F.lit(c) for c in classes])


def class_index(value: Column, classes: tuple[str, ...]) -> Column:
    """0-based position of ``value`` (as text) in the class list, -1 when unknown.

    ``array_position`` by name: Spark 3.5's Python function takes no Column as
    the value to look for."""
    return F.call_function("array_position", class_names(classes), value.cast("string")) - 1


def keys_in_class_order(column: Column, classes: tuple[str, ...]) -> Column:
    """Whether a map's keys are exactly the classes, in class order (as maps built
    from a per-class list usually are): then its values are the vector as they
    stand. One comparison of K keys, where looking every class up in the map
    compares up to K keys per class (K^2 a row)."""
    return F.map_keys(column) == class_names(classes)


def probability_vector(column: Column, kind: T.DataType, classes: tuple[str, ...]) -> Column:
    """array<double> in class order (a map is read by class name; missing keys give NULL)."""
    if isinstance(kind, T.MapType):
        by_name = F.array(*[F.try_element_at(column, F.lit(c)).cast("double") for c in classes])
        in_order = F.map_values(column).cast("array<double>")
        return F.when(keys_in_class_order(column, classes), in_order).otherwise(by_name)
    return column.cast("array<double>")


def _probabilities_type_ok(kind: T.DataType) -> bool:
    numeric = (T.FloatType, T.DoubleType)
    if isinstance(kind, T.MapType):
        return isinstance(kind.keyType, T.StringType) and isinstance(kind.valueType, numeric)
    return isinstance(kind, T.ArrayType) and isinstance(kind.elementType, numeric)


class MulticlassTask(Task):
    type_name = "multiclass"
    class_keys = ("class_index", "true_index", "predicted", "true_rank")

    def __init__(self, config: Config):
        super().__init__(config)
        self.classes = config.class_texts()
        self.one_vs_one = config.task.one_vs_one

    def column_problems(self, fields: dict[str, T.DataType]) -> list[str | None]:
        """Probability vector: map<string, number> keyed by class or
        array<number> in class order; label and predicted class string or integer."""
        i = self.config.input
        problems: list[str | None] = []
        column = i.probabilities_column
        kind = fields.get(column)
        if kind is None:
            problems.append(f"input.probabilities_column: column {column!r} not found in the input")
        elif not _probabilities_type_ok(kind):
            problems.append(
                f"input.probabilities_column: column {column!r} has type {kind.simpleString()}, "
                "expected map<string,double> or array<double>"
            )
        for key, name in (
            ("label_column", i.label_column),
            ("predicted_class_column", i.predicted_class_column),
        ):
            kind = fields.get(name) if name else None
            if isinstance(kind, contract.INTEGER_TYPES):
                for text in self.classes:
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
        return problems

    def prepare(self, df: DataFrame) -> DataFrame:
        """``df`` with ``PROBABILITY_VECTOR``: the probabilities as array<double> in
        class order (``probability_vector``), which the reject checks read.

        Built once per row in its own projection: written inline in each check,
        Spark built the vector again for every element read (it does not share
        one value between the branches of a chain of conditions)."""
        kind = df.schema[self.config.input.probabilities_column].dataType
        raw = F.col(self.config.input.probabilities_column)
        return df.withColumn(PROBABILITY_VECTOR, probability_vector(raw, kind, self.classes))

    def reject_checks(self, df: DataFrame) -> list[RejectCheck]:
        """Label, then the probability vector, then the predicted class. In closed
        form over the K elements rather than with lambda functions (``exists``,
        ``aggregate``): Spark runs lambdas interpreted, row by row, where these
        compile with the rest of the scan."""
        i = self.config.input
        classes = self.classes
        kind = df.schema[i.probabilities_column].dataType
        raw = F.col(i.probabilities_column)
        if isinstance(kind, T.MapType):
            # size K and every class a key <=> exactly the classes (map keys are unique)
            has_keys = reduce(operator.and_, [F.map_contains_key(raw, c) for c in classes])
            wrong_length = F.when(keys_in_class_order(raw, classes), F.lit(False)).otherwise(
                (F.size(raw) != F.lit(len(classes))) | ~has_keys
            )
        else:
            wrong_length = F.size(raw) != F.lit(len(classes))
        probs = F.col(PROBABILITY_VECTOR)
        elements = [F.try_element_at(probs, F.lit(k + 1)) for k in range(len(classes))]
        total = reduce(operator.add, elements)
        # array_max skips NULLs and orders NaN above every double (so it is NaN when
        # any element is); NULLs and NaNs are reported before the range.
        highest, lowest = F.array_max(probs), F.array_min(probs)
        infinity = F.lit(float("inf"))
        tolerance = F.lit(self.config.task.probability_tolerance)
        label_as_text = F.col(i.label_column).cast("string")
        checks = [
            RejectCheck("unknown_label", class_index(label_as_text, classes) < F.lit(0)),
            RejectCheck("null_probability", raw.isNull()),
            RejectCheck("bad_probability_length", wrong_length),
            RejectCheck("null_probability", reduce(operator.or_, [e.isNull() for e in elements])),
            RejectCheck("nan_probability", F.isnan(highest)),
            RejectCheck("infinite_probability", (highest == infinity) | (lowest == -infinity)),
            RejectCheck("probability_out_of_range", (lowest < F.lit(0.0)) | (highest > F.lit(1.0))),
            RejectCheck("probabilities_not_normalized", F.abs(total - F.lit(1.0)) > tolerance),
        ]
        predicted = i.predicted_class_column
        if predicted is not None:
            checks += [
                RejectCheck("null_predicted_class", F.col(predicted).isNull()),
                RejectCheck(
                    "unknown_predicted_class", class_index(F.col(predicted), classes) < F.lit(0)
                ),
            ]
        return checks

    def normalize(self, df: DataFrame) -> DataFrame:
        """Canonical columns: model_name, model_version, day, segments,
        reject_reason, y (true class index), probs (array<double> in class order),
        pred (predicted class index: the input's column, else the first argmax), weight.
        """
        config = self.config
        i = config.input
        segments = [selection.segment_column_name(c) for c in config.finest_segments()]
        df = self.prepare(df)
        tagged = df.select(
            *selection.key_columns(df, config),
            self.reject_reason(df).alias("reject_reason"),
            class_index(F.col(i.label_column), self.classes).alias("raw_y"),
            F.col(PROBABILITY_VECTOR).alias("raw_probs"),
            (
                class_index(F.col(i.predicted_class_column), self.classes)
                if i.predicted_class_column
                else F.lit(None).cast("int")
            ).alias("raw_pred"),
            selection.weight(config).alias("raw_weight"),
        )
        valid = F.col("reject_reason").isNull()
        probs = F.col("raw_probs")
        argmax = F.call_function("array_position", probs, F.array_max(probs)) - 1
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

    def state_grain(self) -> str:
        split = " x true class" if self.one_vs_one else ""
        return f"{len(self.classes)} classes{split} x {self.layout.n_bins} bins"

    def state_layout_id(self) -> str:
        """The layout's id and the state's shape: one-vs-rest only, or with the
        one-vs-one split (states of the two shapes are never added)."""
        return f"{self.layout.layout_id}-{'ovo' if self.one_vs_one else 'ovr'}"

    def jvm_fits(self, rows: DataFrame, jvm: JvmScan) -> str | None:
        fits = aggregate.multiclass_accelerator_fits
        if fits(rows, self.config, self.layout, jvm, self.one_vs_one):
            return None
        return "collated key columns or too many classes x bins"

    def scan(self, rows: DataFrame, jvm: JvmScan | None) -> DataFrame:
        return aggregate.scan_multiclass_states(
            rows, self.config, self.layout, jvm, self.one_vs_one
        )

    def class_columns(self) -> list[Column]:
        names = class_names(self.classes)

        def name_of(index: str) -> Column:
            # NULL for a NULL index, said outright: Spark 4.2's element_at of an
            # array literal at a NULL position gives the last element.
            return F.when(F.col(index).isNotNull(), F.element_at(names, F.col(index) + 1))

        return [
            name_of("class_index").alias("class_label"),
            name_of("true_index").alias("true_label"),
            F.col("predicted"),
            F.col("true_rank").cast("int").alias("true_rank"),
        ]

    def own_states(self) -> Column:
        """Rows of one of the three kinds, every class among this task's classes
        (a binary state has a class and nothing else)."""
        classes = [F.lit(c) for c in self.classes]

        def known(column: str) -> Column:
            return F.col(column).isNull() | F.col(column).isin(*classes)

        kind = F.col("predicted").isNotNull() | F.col("true_rank").isNotNull()
        return kind & known("class_label") & known("true_label")

    def derive(self, states: DataFrame) -> DataFrame:
        m = self.config.metrics
        return derive.derive_multiclass_tables(
            states,
            self.layout,
            self.classes,
            self.config.task.top_k,
            m.confidence_level,
            m.calibration_bins,
            self.config.slices.min_slice_size,
            m.custom,
            self.one_vs_one,
        )

    def summarize(self, states: DataFrame) -> list[dict]:
        """Accuracy, macro F1, one-vs-rest macro AUC (with its bounds), one-vs-one
        AUC (where kept) and log loss per model version."""
        keys = ["class_label", "true_label", "predicted", "true_rank", "bin"]
        merged = (
            states.where(F.col("slice_key") == F.lit(""))
            .groupBy("model_name", "model_version", *keys)
            .agg(*[F.sum(c).alias(c) for c in BinaryState.FIELDS])
            .toPandas()
        )
        out = []
        for (model, version), rows in sorted(merged.groupby(["model_name", "model_version"])):
            state = derive.multiclass_state_from_pandas(
                rows, self.classes, self.layout.n_bins, self.one_vs_one
            )
            result = evaluate_multiclass(state, self.classes, self.layout, self.config.task.top_k)
            values = {m.metric.metric: m.metric for m in result.metrics if m.class_label is None}
            auc = values["roc_auc_ovr_macro"]
            figures = {
                "model": model,
                "version": version,
                "rows": state.n_rows,
                "classes": len(self.classes),
                "accuracy": values["accuracy"].value,
                "f1_macro": values["f1_macro"].value,
                "roc_auc_ovr_macro": auc.value,
                "auc_lower": auc.bound_lower,
                "auc_upper": auc.bound_upper,
            }
            if self.one_vs_one:
                figures["roc_auc_ovo_macro"] = values["roc_auc_ovo_macro"].value
            out.append({**figures, "log_loss": values["log_loss"].value})
        return out
