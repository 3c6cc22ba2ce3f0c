"""Derive metrics, confusion matrices and curves from stored histograms.

The math is ``core.binary`` and ``core.multiclass``; this module only runs it
where the states are, in Python workers: a binary group's bins are collected
into one row (a list of per-bin sums) and ``mapInArrow`` hands batches of such
rows to the workers; a multiclass group's rows go through
``groupBy(keys).applyInArrow``. Curves come back as one row per curve with its
points as arrays, exploded into rows when they are written. Nothing
proportional to input rows ever reaches the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from clfeval.core.binary import (
    BinaryEvaluation,
    BinaryState,
    Curve,
    OperatingPoints,
    ThresholdPolicy,
    evaluate,
)
from clfeval.core.bins import BinLayout
from clfeval.core.expressions import CustomMetric
from clfeval.core.multiclass import (
    MulticlassEvaluation,
    MulticlassState,
    PairHistograms,
    evaluate_multiclass,
)
from clfeval.core.multilabel import (
    EMPTY_LABEL_SET,
    MultilabelEvaluation,
    MultilabelState,
    evaluate_multilabel,
)
from clfeval.schema import (
    BELOW_MIN_SLICE_SIZE,
    CONFUSION_SCHEMA,
    DERIVED_TABLES,
    KEY_COLUMNS,
    KEY_FIELDS,
    METRICS_SCHEMA,
    TABLE_SCHEMAS,
)

# While a binary run derives: groups per Arrow batch (``groups_per_arrow_batch``).
ARROW_RECORDS_PER_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


def state_from_rows(rows: pd.DataFrame | pa.Table, n_bins: int) -> BinaryState:
    """One group's histogram rows (any order, any subset of bins; a pandas frame
    or an Arrow table) as a dense state."""
    state = BinaryState.empty(n_bins)
    bins = np.asarray(rows["bin"], dtype=np.int64)
    for name in BinaryState.FIELDS:
        np.add.at(getattr(state, name), bins, np.asarray(rows[name]))
    return state


Columns = dict[str, Sequence[Any]]


def _rows_to_columns(rows: list[dict]) -> Columns:
    names = {name for row in rows for name in row}
    return {name: [row.get(name) for row in rows] for name in names}


def _part_length(columns: Columns) -> int:
    return max((len(v) for v in columns.values()), default=0)


def metric_rows(result: BinaryEvaluation, state: BinaryState, class_label: str) -> list[dict]:
    counts = {
        "n_rows": state.n_rows,
        "n_positive": int(state.n_pos.sum()),
        "n_negative": int(state.n_neg.sum()),
        "weight_total": state.total_weight,
    }
    return [
        {
            "metric": m.metric,
            "class_label": class_label,
            "threshold": m.threshold,
            "value": m.value,
            "ci_lower": m.ci_lower,
            "ci_upper": m.ci_upper,
            "bound_lower": m.bound_lower,
            "bound_upper": m.bound_upper,
            "numerator": m.numerator,
            "denominator": m.denominator,
            **counts,
        }
        for m in result.metrics
    ]


def confusion_rows(result: BinaryEvaluation, positive: str, negative: str) -> list[dict]:
    rows = []
    for c in result.confusions:
        cells = (
            (positive, positive, c.n_tp, c.tp),
            (negative, positive, c.n_fp, c.fp),
            (negative, negative, c.n_tn, c.tn),
            (positive, negative, c.n_fn, c.fn),
        )
        for actual, predicted, n, w in cells:
            rows.append(
                {
                    "threshold": c.threshold,
                    "actual_label": actual,
                    "predicted_label": predicted,
                    "n_rows": n,
                    "weight": w,
                }
            )
    return rows


def curve_columns(curves: Iterable[tuple[str | None, Curve]]) -> Columns:
    """Columns of compact ``curves`` rows: one row per curve, its points as three
    arrays (``point_threshold``, ``point_x``, ``point_y``, in drawing order);
    ``expand_curves`` makes them one row per point after the write's shuffle.
    The curves are most of a group's output: carried as arrays they cross from
    Python to the JVM, the cache and the shuffle as a few rows, not thousands."""
    parts = [(label, c) for label, c in curves if len(c.x)]
    return {
        "curve": [c.name for _, c in parts],
        "class_label": [label for label, _ in parts],
        "point_threshold": [np.asarray(c.thresholds, dtype=float) for _, c in parts],
        "point_x": [np.asarray(c.x, dtype=float) for _, c in parts],
        "point_y": [np.asarray(c.y, dtype=float) for _, c in parts],
    }


def expand_curves(compact: DataFrame) -> DataFrame:
    """Rows of CURVES_SCHEMA, one per curve point, from compact curve rows
    (``curve_columns``); ``point`` counts from 0 in drawing order."""
    exploded = compact.select(
        *KEY_COLUMNS,
        "curve",
        "class_label",
        "point_threshold",
        "point_y",
        F.posexplode("point_x").alias("point", "x"),
    )
    index = F.col("point") + F.lit(1)
    return exploded.select(
        *KEY_COLUMNS,
        "curve",
        "class_label",
        F.col("point").cast("int").alias("point"),
        F.element_at("point_threshold", index).alias("threshold"),
        "x",
        F.element_at("point_y", index).alias("y"),
    )


_POINT_ARRAYS = ("point_threshold", "point_x", "point_y")

# The compact curve columns (``curve_columns``) of the combined frame, in place of
# CURVES_SCHEMA's per-point columns.
_COMPACT_CURVE_FIELDS = (
    T.StructField("curve", T.StringType()),
    T.StructField("class_label", T.StringType()),
    *[T.StructField(n, T.ArrayType(T.DoubleType())) for n in _POINT_ARRAYS],
)


def _combined_schema() -> T.StructType:
    """Keys, ``output_table``, then every column of the metrics and confusion
    tables (shared names agree) and the compact curve columns."""
    fields: dict[str, T.StructField] = {}
    for schema in (METRICS_SCHEMA, CONFUSION_SCHEMA):
        for f in schema.fields[len(KEY_FIELDS) :]:
            fields.setdefault(f.name, f)
    for f in _COMPACT_CURVE_FIELDS:
        fields.setdefault(f.name, f)
    return T.StructType(
        [*KEY_FIELDS, T.StructField("output_table", T.StringType()), *fields.values()]
    )


COMBINED_SCHEMA = _combined_schema()


_COMBINED_ARROW = to_arrow_schema(COMBINED_SCHEMA)
_FLOAT_COLUMNS = frozenset(
    f.name for f in COMBINED_SCHEMA.fields if isinstance(f.dataType, T.DoubleType)
)


_SUPPRESSED = ("value", "ci_lower", "ci_upper", "bound_lower", "bound_upper")


def suppress_small_slice(metrics: list[dict], min_size: int) -> None:
    """A slice below ``slices.min_slice_size`` rows keeps its counts (confusion
    matrices, n_rows) but its metric values are NULL, its curves dropped (by the
    caller), and a ``below_min_slice_size`` metric row (value = the minimum) flags it."""
    for row in metrics:
        for name in (*_SUPPRESSED, "numerator", "denominator"):
            row[name] = None
    flag = {**metrics[0], "metric": BELOW_MIN_SLICE_SIZE, "class_label": None, "threshold": None}
    metrics.append({**flag, "value": float(min_size)})


def _double_lists(arrays: Sequence[np.ndarray]) -> pa.Array:
    """A list<double> Arrow array of ``arrays`` (NaN becomes NULL)."""
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else np.empty(0)
    values = pa.array(flat, type=pa.float64(), from_pandas=True)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _combined_table(
    key: tuple,
    metrics: list[dict],
    confusions: list[dict],
    curves: Columns,
    n_rows: int,
    min_size: int,
) -> pa.Table:
    """One group's rows of the three tables as one Arrow table of COMBINED_SCHEMA,
    assembled column by column (per-row objects cost more than the evaluation
    itself); ``key`` is the group's key as Arrow scalars. Constant columns (the
    key, ``output_table``, a table's columns the other tables lack) are built in
    Arrow: from a Python list they took as long as the group's evaluation. NaN in
    a float column becomes NULL, as a pandas NaN did."""
    keys = dict(zip(KEY_COLUMNS, key, strict=True))
    if keys["slice_key"].as_py() != "" and n_rows < min_size and metrics:
        suppress_small_slice(metrics, min_size)
        curves = {}
    parts = {
        "metrics": _rows_to_columns(metrics),
        "confusion_matrices": _rows_to_columns(confusions),
        "curves": curves,
    }
    lengths = {name: _part_length(columns) for name, columns in parts.items()}
    total = sum(lengths.values())
    arrays = []
    for field in _COMBINED_ARROW:
        name = field.name
        if name in keys:
            arrays.append(pa.repeat(keys[name].cast(field.type), total))
            continue
        pieces = []
        for table, columns in parts.items():
            if name == "output_table":
                pieces.append(pa.repeat(pa.scalar(table, field.type), lengths[table]))
            elif name in _POINT_ARRAYS and name in columns:
                pieces.append(_double_lists(columns[name]))
            elif name in columns:
                kind = float if name in _FLOAT_COLUMNS else object
                values = np.asarray(columns[name], dtype=kind)
                pieces.append(pa.array(values, type=field.type, from_pandas=True))
            else:
                pieces.append(pa.nulls(lengths[table], field.type))
        arrays.append(pa.concat_arrays(pieces))
    return pa.Table.from_arrays(arrays, schema=_COMBINED_ARROW)


def split_tables(combined: DataFrame) -> dict[str, DataFrame]:
    """The three output tables from the combined frame of ``derive_tables``:
    metrics and confusion_matrices as their rows, curves still compact (one row
    per curve; ``WRITE_EXPANSIONS`` makes them rows of CURVES_SCHEMA)."""
    compact = {"curves": [*KEY_COLUMNS, *[f.name for f in _COMPACT_CURVE_FIELDS]]}
    return {
        name: combined.where(F.col("output_table") == F.lit(name)).select(
            *compact.get(name, [f.name for f in schema.fields])
        )
        for name, schema in ((n, TABLE_SCHEMAS[n]) for n in DERIVED_TABLES)
    }


# What turns a table of ``split_tables`` into its stored rows: applied by the
# write after its shuffle, so the shuffle moves one row per curve, not per point.
WRITE_EXPANSIONS = {"curves": expand_curves}


# Bytes of one bin in a derive's input (``bin`` and the seven state sums).
_BYTES_PER_BIN = 8 * (1 + len(BinaryState.FIELDS))
# What one Arrow batch of the binary derive's input may hold, its groups' bins together.
DERIVE_BATCH_BYTES = 32 << 20


def groups_per_arrow_batch(n_bins: int) -> int:
    """Groups per Arrow batch of the binary derive's input (one row per group, its
    bins as a list): what keeps a batch near DERIVE_BATCH_BYTES (~540 groups of
    1,000 bins, 52 of 10,000). For ``spark.sql.execution.arrow.maxRecordsPerBatch``
    while a run derives (``pipeline``); Spark's own byte limit would measure
    every row it adds."""
    return max(1, DERIVE_BATCH_BYTES // (_BYTES_PER_BIN * n_bins))


def _group_rows(batch: pa.RecordBatch) -> Iterator[tuple[tuple, Columns]]:
    """(key as Arrow scalars, bin columns as numpy arrays) of each group of a
    batch of ``derive_tables``' compact input (column ``bins``: a list of
    structs of ``bin`` and the state sums)."""
    bins = batch.column("bins")
    offsets = bins.offsets.to_numpy()
    offsets = offsets - offsets[0]  # flatten() starts at the batch's first element
    flat = bins.flatten()
    columns = {
        name: flat.field(name).to_numpy(zero_copy_only=False)
        for name in ("bin", *BinaryState.FIELDS)
    }
    keys = [batch.column(k) for k in KEY_COLUMNS]
    for i in range(batch.num_rows):
        lo, hi = offsets[i], offsets[i + 1]
        yield tuple(c[i] for c in keys), {name: v[lo:hi] for name, v in columns.items()}


def derive_tables(
    histograms: DataFrame,
    layout: BinLayout,
    thresholds: Iterable[float],
    beta: float,
    positive_label: str,
    negative_label: str,
    confidence: float = 0.95,
    policy: ThresholdPolicy | None = None,
    calibration_bins: int = 10,
    min_slice_size: int = 0,
    custom: tuple[CustomMetric, ...] = (),
    partial_fprs: tuple[float, ...] = (),
    extra_curves: tuple[str, ...] = (),
    points: OperatingPoints | None = None,
) -> DataFrame:
    """Rows of ``metrics``, ``confusion_matrices`` and (compact) ``curves`` in one
    frame (see ``split_tables``); ``custom``: the config's custom metrics,
    ``partial_fprs``: the FPR limits of partial ROC AUC; ``extra_curves``: the
    optional curves (``core.binary.EXTRA_CURVES``); ``points``: fixed operating
    points (budgets, constrained rates).

    Each group is evaluated once: its histogram rows are collected into one row
    (its bins as a list) where they are summed by key, and ``mapInArrow`` hands
    whole batches of such rows to Python, which evaluates them group by group.
    Persist the result and take the tables apart with ``split_tables``.
    """
    thresholds = tuple(thresholds)
    policy = policy or ThresholdPolicy()

    def evaluate_group(key: tuple, rows: Columns) -> pa.Table:
        state = state_from_rows(rows, layout.n_bins)
        result = evaluate(
            state,
            layout,
            thresholds,
            beta,
            confidence,
            policy,
            calibration_bins,
            custom,
            partial_fprs,
            extra_curves,
            points,
        )
        return _combined_table(
            key,
            metric_rows(result, state, positive_label),
            confusion_rows(result, positive_label, negative_label),
            curve_columns((positive_label, c) for c in result.curves),
            state.n_rows,
            min_slice_size,
        )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            groups = [evaluate_group(key, rows) for key, rows in _group_rows(batch)]
            if groups:
                yield from pa.concat_tables(groups).combine_chunks().to_batches()

    # Only the columns the evaluation reads travel to Python (the bin edges, layout
    # id and multiclass columns stay behind). One row per group in batches, instead
    # of groupBy().applyInArrow's Arrow stream per group, and compact curves: less
    # work per group in the executors and the Python workers.
    bins = F.struct(*[F.col(c) for c in ("bin", *BinaryState.FIELDS)])
    compact = histograms.groupBy(*KEY_COLUMNS).agg(F.collect_list(bins).alias("bins"))
    return compact.mapInArrow(run, schema=COMBINED_SCHEMA)


def _per_group(histograms: DataFrame, run: Callable[[tuple, pa.Table], pa.Table]) -> DataFrame:
    """``run(key, rows)`` on each (model, version, slice, window) group's state
    rows, next to the data: its rows of the three tables (``COMBINED_SCHEMA``)."""
    grouped = histograms.groupBy(*KEY_COLUMNS)
    if hasattr(grouped, "applyInArrow"):
        return grouped.applyInArrow(run, schema=COMBINED_SCHEMA)

    # Spark 3.5 has no applyInArrow: the same function through pandas.
    def run_pandas(key: tuple, frame: pd.DataFrame) -> pd.DataFrame:
        scalars = tuple(pa.scalar(v) for v in key)
        return run(scalars, pa.Table.from_pandas(frame, preserve_index=False)).to_pandas()

    return grouped.applyInPandas(run_pandas, schema=COMBINED_SCHEMA)


def multiclass_state_from_pandas(
    pdf: pd.DataFrame, classes: tuple[str, ...], n_bins: int, one_vs_one: bool = False
) -> MulticlassState:
    """One group's multiclass state rows (``aggregate.scan_multiclass_states``,
    with class names) as a ``MulticlassState``: rows with a bin are class items
    (one-vs-rest histograms; where predicted, the top-label state; with a true
    class, the one-vs-one split), rows without a bin the confusion matrix (a
    class) or the true class's rank counts (a rank)."""
    state = MulticlassState.empty(len(classes), n_bins, one_vs_one)
    index = {name: k for k, name in enumerate(classes)}
    pdf = pdf.fillna({name: 0.0 for name in BinaryState.FIELDS[2:]})
    binned = pdf["bin"].notna().to_numpy()
    items, counts = pdf[binned], pdf[~binned]
    c = items["class_label"].map(index).to_numpy(dtype=np.int64)
    b = items["bin"].to_numpy(dtype=np.int64)
    for name, column in zip(MulticlassState.OVR_FIELDS, BinaryState.FIELDS, strict=True):
        np.add.at(getattr(state, name), (c, b), items[column].to_numpy())
    predicted = (items["predicted"] == True).to_numpy(dtype=bool)  # noqa: E712 (NULL: False)
    top = items[predicted].assign(loss_sum=0.0, sq_err_sum=0.0)
    state.top_label = state_from_rows(top, n_bins)
    if one_vs_one:
        t = items["true_label"].map(index).to_numpy(dtype=np.int64)
        n = (items["n_pos"] + items["n_neg"]).to_numpy(dtype=np.int64)
        w = (items["w_pos"] + items["w_neg"]).to_numpy()
        state.pairs = PairHistograms(c, t, b, n, w)
    ranked = counts["true_rank"].notna().to_numpy()
    t = counts["true_label"].map(index).to_numpy(dtype=np.int64)
    n, w = counts["n_pos"].to_numpy(dtype=np.int64), counts["w_pos"].to_numpy()
    j = counts["class_label"][~ranked].map(index).to_numpy(dtype=np.int64)
    np.add.at(state.confusion_n, (t[~ranked], j), n[~ranked])
    np.add.at(state.confusion_w, (t[~ranked], j), w[~ranked])
    r = counts["true_rank"][ranked].to_numpy(dtype=np.int64)
    np.add.at(state.rank_n, (t[ranked], r), n[ranked])
    np.add.at(state.rank_w, (t[ranked], r), w[ranked])
    return state


def _multiclass_rows(
    result: MulticlassEvaluation, state: MulticlassState, classes: tuple[str, ...]
) -> tuple[list[dict], list[dict]]:
    """Rows of ``metrics`` and ``confusion_matrices`` of one multiclass group."""
    support = state.confusion_n.sum(axis=1)
    total = state.n_rows

    def counts(label: str | None) -> dict:
        if label is None:
            return {"n_rows": total, "n_positive": None, "n_negative": None}
        k = classes.index(label)
        return {
            "n_rows": total,
            "n_positive": int(support[k]),
            "n_negative": int(total - support[k]),
        }

    metrics = [
        {
            "metric": m.metric.metric,
            "class_label": m.class_label,
            "threshold": None,
            "value": m.metric.value,
            "ci_lower": m.metric.ci_lower,
            "ci_upper": m.metric.ci_upper,
            "bound_lower": m.metric.bound_lower,
            "bound_upper": m.metric.bound_upper,
            "numerator": m.metric.numerator,
            "denominator": m.metric.denominator,
            **counts(m.class_label),
            "weight_total": state.total_weight,
        }
        for m in result.metrics
    ]
    confusion = [
        {
            "threshold": None,
            "actual_label": actual,
            "predicted_label": predicted,
            "n_rows": int(result.confusion_n[i, j]),
            "weight": float(result.confusion_w[i, j]),
        }
        for i, actual in enumerate(classes)
        for j, predicted in enumerate(classes)
    ]
    return metrics, confusion


def derive_multiclass_tables(
    histograms: DataFrame,
    layout: BinLayout,
    classes: tuple[str, ...],
    top_k: tuple[int, ...],
    confidence: float = 0.95,
    calibration_bins: int = 10,
    min_slice_size: int = 0,
    custom: tuple[CustomMetric, ...] = (),
    one_vs_one: bool = False,
) -> DataFrame:
    """Multiclass rows of the three tables in one frame (see ``derive_tables``)."""

    def run(key: tuple, table: pa.Table) -> pa.Table:
        rows = table.to_pandas()
        state = multiclass_state_from_pandas(rows, classes, layout.n_bins, one_vs_one)
        result = evaluate_multiclass(
            state, classes, layout, top_k, confidence, calibration_bins, custom
        )
        metrics, confusions = _multiclass_rows(result, state, classes)
        curves = curve_columns(result.curves)
        return _combined_table(key, metrics, confusions, curves, state.n_rows, min_slice_size)

    return _per_group(histograms, run)


def multilabel_state_from_pandas(
    pdf: pd.DataFrame, labels: tuple[str, ...], n_bins: int
) -> MultilabelState:
    """One group's multilabel state rows (``aggregate.scan_multilabel_states``,
    with label names) as a ``MultilabelState``: rows with a label are the
    per-label histograms, rows without one (``true_rank`` = the statistic) the
    example sums at the threshold whose edge index is ``bin`` (none for
    ``EMPTY_LABEL_SET``)."""
    state = MultilabelState.empty(len(labels), n_bins)
    index = {name: k for k, name in enumerate(labels)}
    pdf = pdf.fillna({name: 0.0 for name in BinaryState.FIELDS[2:]})
    per_label = pdf["class_label"].notna().to_numpy()
    items, examples = pdf[per_label], pdf[~per_label]
    k = items["class_label"].map(index).to_numpy(dtype=np.int64)
    b = items["bin"].to_numpy(dtype=np.int64)
    for name in BinaryState.FIELDS:
        np.add.at(state.labels[name], (k, b), items[name].to_numpy())
    for row in examples.itertuples(index=False):
        statistic = int(row.true_rank)
        edge = -1 if statistic == EMPTY_LABEL_SET else int(row.bin)
        state.add_example(edge, statistic, [row.n_pos, row.n_neg, row.w_pos, row.w_neg])
    return state


def _multilabel_rows(
    result: MultilabelEvaluation, state: MultilabelState, labels: tuple[str, ...]
) -> tuple[list[dict], list[dict]]:
    """Rows of ``metrics`` and ``confusion_matrices`` of one multilabel group: a
    label's rows count its positives and negatives; a label's confusion matrix
    is ``label`` against ``not_<label>``."""
    total = state.n_rows
    support = {label: int(state.labels["n_pos"][k].sum()) for k, label in enumerate(labels)}

    def counts(label: str | None) -> dict:
        if label is None:
            return {"n_rows": total, "n_positive": None, "n_negative": None}
        return {"n_rows": total, "n_positive": support[label], "n_negative": total - support[label]}

    metrics = [
        {
            "metric": m.metric.metric,
            "class_label": m.class_label,
            "threshold": m.metric.threshold,
            "value": m.metric.value,
            "ci_lower": m.metric.ci_lower,
            "ci_upper": m.metric.ci_upper,
            "bound_lower": m.metric.bound_lower,
            "bound_upper": m.metric.bound_upper,
            "numerator": m.metric.numerator,
            "denominator": m.metric.denominator,
            **counts(m.class_label),
            "weight_total": state.total_weight,
        }
        for m in result.metrics
    ]
    confusion = []
    for label, c in result.confusions:
        confusion += [*confusion_rows(BinaryEvaluation([], [c], []), label, f"not_{label}")]
    return metrics, confusion


def derive_multilabel_tables(
    histograms: DataFrame,
    layout: BinLayout,
    labels: tuple[str, ...],
    thresholds: tuple[float, ...],
    beta: float,
    confidence: float = 0.95,
    policy: ThresholdPolicy | None = None,
    calibration_bins: int = 10,
    min_slice_size: int = 0,
    custom: tuple[CustomMetric, ...] = (),
    points: OperatingPoints | None = None,
) -> DataFrame:
    """Multilabel rows of the three tables in one frame (see ``derive_tables``):
    per label, micro, macro/weighted and example-based (``core.multilabel``)."""

    def run(key: tuple, table: pa.Table) -> pa.Table:
        state = multilabel_state_from_pandas(table.to_pandas(), labels, layout.n_bins)
        result = evaluate_multilabel(
            state,
            labels,
            layout,
            thresholds,
            beta,
            confidence,
            policy,
            calibration_bins,
            custom,
            points,
        )
        metrics, confusions = _multilabel_rows(result, state, labels)
        curves = curve_columns(result.curves)
        return _combined_table(key, metrics, confusions, curves, state.n_rows, min_slice_size)

    return _per_group(histograms, run)
