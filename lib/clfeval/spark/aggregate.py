"""The one scan: normalized rows -> per-bin states at the finest grain -> slices.

Shape of the computation (DESIGN.md §3):

1. ``scan_states``: one aggregation over the input rows, grouped by
   (model, version, day, every segment column any slice uses, reject reason, bin)
   (clfeval's JVM scan when its jar is on the classpath, else Spark SQL).
   Rejected rows land in groups with a NULL bin and only a row count.
2. ``rollup_slices``: the small result of (1) is summed up to every configured
   slice (overall, each segment, each cross). Sums of counts are exact, so this
   equals a per-slice scan without reading the input again; unlike grouping
   sets it does not copy every input row once per slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval import jvm
from clfeval.config import Config
from clfeval.core.binary import LOG_LOSS_EPS
from clfeval.core.bins import BinLayout
from clfeval.core.multilabel import EMPTY_LABEL_SET, EXAMPLE_STATISTICS
from clfeval.core.windows import WindowRange, rolling_days
from clfeval.schema import HISTOGRAM_KEYS, KEY_COLUMNS, METRICS_SCHEMA, STATE_SUMS
from clfeval.spark.selection import escaped_segment, segment_column_name

# Clip before the logit so that 0 and 1 give finite values; the bin correction
# against the exact edges below makes the clipping invisible in the result.
_SMALLEST = 1e-300
_BELOW_ONE = 1.0 - 2.0**-53

DAY_KEYS = ("model_name", "model_version", "day")


def exact_floats_text(values) -> str:
    """``values`` as comma-separated ``repr`` texts: Python and Java both parse
    them back to exactly the same doubles (both round correctly)."""
    return ",".join(repr(float(x)) for x in values)


def double_array(values) -> Column:
    """An array<double> literal of ``values`` built from one string literal.

    Spark folds the split and the cast into one array literal before running
    (no per-row work), and the plan is built with one call into the JVM instead
    of one per element (~1,000 bins x 2 arrays took ~0.9 s of driver time per
    run).
    """
    return F.split(F.lit(exact_floats_text(values)), ",").cast("array<double>")


def bin_index_column(score: Column, layout: BinLayout) -> Column:
    """Spark twin of ``BinLayout.bin_index`` for scores in [0, 1]: ``#{E <= s} - 1``.

    ``#{grid <= s}`` is guessed arithmetically from the grid coordinate of ``s``
    and corrected by one comparison on each side against the exact grid edges
    (float rounding can only move the guess by one); the extra edges (0, 1 and
    off-grid thresholds) are then counted with one comparison each.
    """
    grid = [float(x) for x in layout.grid_edges]
    n_grid = len(grid)
    if layout.transform == "logit":
        clipped = F.least(F.greatest(score, F.lit(_SMALLEST)), F.lit(_BELOW_ONE))
        # One logarithm per row (the scan's hottest expression); the edge
        # comparisons below absorb its last-bit difference from log(c) - log1p(-c).
        coordinate = F.log(clipped / (F.lit(1.0) - clipped))
    else:
        coordinate = score
    raw = F.floor((coordinate - F.lit(layout.grid_start)) / F.lit(layout.grid_step)) + F.lit(1)
    guess = F.least(F.greatest(raw.cast("int"), F.lit(0)), F.lit(n_grid))
    edges = double_array(grid)
    too_high = (guess > 0) & (F.try_element_at(edges, guess) > score)
    too_low = (guess < n_grid) & (F.try_element_at(edges, guess + 1) <= score)
    grid_count = guess - too_high.cast("int") + too_low.cast("int")
    extras = [(score >= F.lit(float(x))).cast("int") for x in layout.extra_edges]
    return reduce(lambda a, b: a + b, extras, grid_count) - F.lit(1)


# Per-bin buffers one task may hold before it emits their partial sums: 7 sums
# of 8 bytes per bin and group. 64 MiB is ~1,200 groups of 1,000 bins.
JVM_BUFFER_BYTES = 64 << 20


@dataclass(frozen=True)
class JvmScan:
    """clfeval's JVM scans (``jvm/``, built into ``clfeval/jars/clfeval-aggregators.jar``)
    for one layout: ``scanner`` is the binary scan's JVM class, ``multiclass`` the
    multiclass scan's; ``max_groups`` the groups a binary task holds before it emits
    them, ``max_items`` the multiclass items (see ``jvm_scan``)."""

    scanner: Any
    edges_text: str
    max_groups: int
    multiclass: Any
    max_items: int


def jvm_scan(spark: SparkSession, layout: BinLayout) -> tuple[JvmScan | None, str]:
    """clfeval's JVM scan for ``layout``, or None and why not (no jar on the
    classpath, a jar built for another Spark line, a Spark Connect session): the
    scan then runs as Spark SQL's hash aggregation, same results, slower.
    """
    classes, why_not = jvm.scan_classes(spark)
    if classes is None:
        return None, why_not
    max_groups = max(1, JVM_BUFFER_BYTES // (7 * 8 * layout.n_bins))
    scan = JvmScan(
        classes.binary,
        exact_floats_text(layout.edges),
        max_groups,
        classes.multiclass,
        # 48 bytes per hash slot (key, count, four sums), at most 4 slots per item held.
        max(1, JVM_BUFFER_BYTES // (48 * 4)),
    )
    return scan, ""


# Key types the JVM scan hashes and compares itself (strings with the default,
# byte-wise collation, and dates).
_JVM_KEY_TYPES = (T.StringType(), T.DateType())


def _scan_keys(config: Config) -> list[str]:
    """The scan's group keys: DAY_KEYS, the segment columns, the reject reason."""
    segments = [segment_column_name(c) for c in config.finest_segments()]
    return [*DAY_KEYS, *segments, "reject_reason"]


def jvm_groups_by(rows: DataFrame, config: Config) -> bool:
    """Whether the JVM scan can group ``rows`` (normalized) itself: every key a
    plain string or a date. A string column with another collation groups by
    its collation key, which Spark SQL's grouping knows and the JVM scan does not."""
    return all(rows.schema[k].dataType in _JVM_KEY_TYPES for k in _scan_keys(config))


def _run_scan(method: Any, rows: DataFrame, config: Config, scan: JvmScan) -> DataFrame:
    """``method`` of the JVM scan's class (``scan`` or ``states``) on ``rows``
    (normalized): its input is the scan keys, then score (double), y (int) and
    weight (double)."""
    keys = _scan_keys(config)
    weighted = config.input.weight_column is not None
    weight = F.col("weight") if weighted else F.lit(1.0)
    # normalize leaves score NULL on rejected rows: the JVM scan only counts those.
    inputs = rows.select(
        *keys,
        F.col("score").cast("double").alias("score"),
        F.col("y").cast("int").alias("y"),
        weight.cast("double").alias("weight"),
    )
    return jvm.call_on_frame(
        method, inputs, len(keys), scan.edges_text, LOG_LOSS_EPS, scan.max_groups
    )


def jvm_partial_states(rows: DataFrame, config: Config, scan: JvmScan) -> DataFrame:
    """The JVM scan's compact partial states of ``rows`` (normalized): per input
    partition, one pass over the rows into a dense per-bin buffer per (group,
    reject reason), emitted as one row per group: the scan keys, row_count, and
    bins (its non-empty bins), counts (n_rows and n_pos per listed bin,
    interleaved) and sums (loss_sum, sq_err_sum, score_sum, w_pos, w_neg per
    listed bin, interleaved); the arrays NULL for a group without scored rows.
    What ``_scan_states_accelerated`` merges; here for tests of the scan's own step."""
    return _run_scan(scan.scanner.scan, rows, config, scan)


def _scan_states_accelerated(rows: DataFrame, config: Config, scan: JvmScan) -> DataFrame:
    """``scan_states`` through the JVM scan: its compact partial states (see
    ``jvm_partial_states``), hash-partitioned by group (the only exchange, a row
    per group and task) and merged per group into a row per (group, bin)."""
    merged = _run_scan(scan.scanner.states, rows, config, scan)
    keys = _scan_keys(config)
    return merged.select(
        *keys,
        "bin",
        "n_rows",
        "n_pos",
        F.when(F.col("bin").isNotNull(), F.col("n_rows") - F.col("n_pos")).alias("n_neg"),
        *[F.col(c) for c in STATE_SUMS[2:]],
    )


def scan_states(
    rows: DataFrame, config: Config, layout: BinLayout, jvm: JvmScan | None = None
) -> DataFrame:
    """The single aggregation over normalized rows (see ``contract.normalize``).

    Output columns: DAY_KEYS, segment columns, reject_reason, bin, n_rows and
    STATE_SUMS. For rejected rows ``bin`` and the sums are NULL.

    With ``jvm`` (from ``jvm_scan``) the rows are summed by clfeval's JVM scan,
    keyed by group with the bins inside its buffer; without (or for key types
    it does not group by), by Spark SQL's hash aggregation keyed by (group, bin)
    with ``bin_index_column``. Both give the same states (float sums up to their
    order of addition).

    The per-row work is kept to what the state needs: a valid row has y in
    {0, 1}, so n_pos = sum(y) and n_neg = n_rows - n_pos are computed per group
    after the aggregation, and without a weight column w_pos = n_pos and
    w_neg = n_neg (no weighted sums at all). Each group holds either valid rows
    (reject_reason NULL, bin set) or rejected rows of one reason.
    """
    if jvm is not None and jvm_groups_by(rows, config):
        return _scan_states_accelerated(rows, config, jvm)
    weighted = config.input.weight_column is not None
    group = [*DAY_KEYS, *[segment_column_name(c) for c in config.finest_segments()]]
    valid = F.col("reject_reason").isNull()
    y = F.col("y")
    p = F.col("score")
    w = F.col("weight")
    clipped = F.least(F.greatest(p, F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    # -log of the probability given to the true class (log1p keeps 1 - p exact);
    # NULL on rejected rows (y NULL), whose clipped score would not be NULL.
    loss = F.when(y == F.lit(1), -F.log(clipped)).when(y == F.lit(0), -F.log1p(-clipped))
    error = y - p
    sums = [
        F.count(F.lit(1)).alias("n_rows"),
        F.sum(y).cast("long").alias("n_pos"),
        F.sum((w * loss) if weighted else loss).alias("loss_sum"),
        F.sum((w * error * error) if weighted else error * error).alias("sq_err_sum"),
        F.sum((w * p) if weighted else p).alias("score_sum"),
    ]
    if weighted:
        sums += [F.sum(w * y).alias("w_pos"), F.sum(F.when(y == F.lit(0), w)).alias("w_neg")]
    binned = rows.withColumn("bin", F.when(valid, bin_index_column(p, layout)))
    counted = binned.groupBy(*group, "reject_reason", "bin").agg(*sums)
    n_neg = F.when(F.col("bin").isNotNull(), F.col("n_rows") - F.col("n_pos"))
    counted = counted.withColumn("n_neg", n_neg)
    if not weighted:
        counted = counted.withColumn("w_pos", F.col("n_pos").cast("double")).withColumn(
            "w_neg", F.col("n_neg").cast("double")
        )
    return counted.select(*group, "reject_reason", "bin", "n_rows", *STATE_SUMS)


MULTICLASS_KEYS = ("class_index", "true_index", "predicted", "true_rank")


def multiclass_accelerator_fits(
    rows: DataFrame, config: Config, layout: BinLayout, jvm: JvmScan, one_vs_one: bool = False
) -> bool:
    """Whether the JVM multiclass scan can take ``rows`` (normalized): keys it
    groups by itself (see ``jvm_groups_by``) and item keys that fit its packed
    key (K x 2 x bins + 2 x K^2, times K with ``one_vs_one``: K = 1,000 and
    10,000 bins do)."""
    k = len(config.class_texts())
    fits = jvm.multiclass.fits(k, len(layout.edges), one_vs_one)
    return jvm_groups_by(rows, config) and bool(fits)


def _run_multiclass_scan(
    method: Any, rows: DataFrame, config: Config, scan: JvmScan, one_vs_one: bool
) -> DataFrame:
    """``method`` of the JVM multiclass scan's class (``scan`` or ``states``) on
    ``rows`` (normalized): its input is the scan keys, then y (int), probs
    (array<double>), pred (int) and weight (double)."""
    keys = _scan_keys(config)
    inputs = rows.select(
        *keys,
        F.col("y").cast("int").alias("y"),
        F.col("probs").cast("array<double>").alias("probs"),
        F.col("pred").cast("int").alias("pred"),
        F.col("weight").cast("double").alias("weight"),
    )
    return jvm.call_on_frame(
        method,
        inputs,
        len(keys),
        len(config.class_texts()),
        scan.edges_text,
        LOG_LOSS_EPS,
        scan.max_items,
        one_vs_one,
    )


def jvm_partial_multiclass_states(
    rows: DataFrame, config: Config, scan: JvmScan, one_vs_one: bool = False
) -> DataFrame:
    """The JVM multiclass scan's compact partial states of ``rows`` (normalized):
    per input partition, each valid row's K + 2 items summed into a hash table
    keyed by (group, item), emitted as one row per group: the scan keys,
    row_count, and items (packed item keys), counts (positives and negatives per
    item, interleaved) and sums (positive and negative weight, loss, squared
    error and score per item, interleaved); the arrays NULL for a group without
    valid rows.
    What ``_scan_multiclass_states_accelerated`` merges; here for tests of the scan's own step."""
    return _run_multiclass_scan(scan.multiclass.scan, rows, config, scan, one_vs_one)


def _scan_multiclass_states_accelerated(
    rows: DataFrame, config: Config, scan: JvmScan, one_vs_one: bool = False
) -> DataFrame:
    """``scan_multiclass_states`` through the JVM scan: its compact partial states
    (see ``jvm_partial_multiclass_states``), hash-partitioned by group (the only
    exchange, a row per group and task) and merged per group into a row per
    (group, item). No row is exploded into K rows."""
    return _run_multiclass_scan(scan.multiclass.states, rows, config, scan, one_vs_one)


def scan_multiclass_states(
    rows: DataFrame,
    config: Config,
    layout: BinLayout,
    jvm: JvmScan | None = None,
    one_vs_one: bool = False,
) -> DataFrame:
    """The single aggregation for a K-class model (rows from ``MulticlassTask.normalize``).

    Every valid row adds K + 2 items to its group (``core.multiclass.MulticlassState``):

    * one per class c, keyed (c, c is the predicted class, bin of ``p_c``): the
      one-vs-rest histograms (``n_pos``/``w_pos``/``loss_sum`` where c is the true
      class, ``n_neg``/``w_neg`` where not; ``sq_err_sum`` and ``score_sum`` of
      all), and, on the rows where c is predicted, the top-label state; with
      ``one_vs_one`` also keyed by the true class (Hand & Till's split);
    * one keyed (predicted class, true class, predicted = true, no bin): the
      confusion matrix (``n_pos``, ``w_pos``), and ``n_rows``, each row once;
    * one keyed (true class, rank of the true class, no bin): top-k.

    So a group holds at most 2·K·B + 2·K² state rows (2·K²·B + 2·K² with
    ``one_vs_one``). A rejected row is one item with NULL keys and sums and
    ``n_rows`` 1.

    With ``jvm`` (from ``jvm_scan``; where ``multiclass_accelerator_fits``) the items are
    summed by clfeval's JVM scan without exploding rows; same states (float sums
    up to their order of addition).
    """
    if jvm is not None and multiclass_accelerator_fits(rows, config, layout, jvm, one_vs_one):
        return _scan_multiclass_states_accelerated(rows, config, jvm, one_vs_one)
    valid = F.col("reject_reason").isNull()
    probs, y, pred = F.col("probs"), F.col("y"), F.col("pred")
    p_true = F.element_at(probs, y + F.lit(1))
    no_int, no_bool = F.lit(None).cast("int"), F.lit(None).cast("boolean")
    no_double = F.lit(None).cast("double")

    def item(c: Column, t: Column, predicted: Column, rank: Column, p: Column) -> Column:
        return F.struct(
            c.alias("c"), t.alias("t"), predicted.alias("pred"), rank.alias("rank"), p.alias("p")
        )

    histogram = F.transform(
        probs,
        lambda p, i: item(i, y if one_vs_one else no_int, i == pred, no_int, p),
    )
    rank = F.size(F.filter(probs, lambda x: x > p_true))
    counts = F.array(
        item(pred, y, F.lit(True), no_int, no_double),
        item(no_int, y, no_bool, rank, no_double),
    )
    rejected = F.array(item(no_int, no_int, no_bool, no_int, no_double))
    segments = [segment_column_name(c) for c in config.finest_segments()]
    exploded = rows.select(
        *DAY_KEYS,
        *segments,
        "reject_reason",
        "y",
        "weight",
        F.explode(F.when(valid, F.concat(histogram, counts)).otherwise(rejected)).alias("item"),
    )
    c, p = F.col("item.c"), F.col("item.p")
    keyed = exploded.select(
        *DAY_KEYS,
        *segments,
        "reject_reason",
        c.alias("class_index"),
        F.col("item.t").alias("true_index"),
        F.col("item.pred").alias("predicted"),
        F.col("item.rank").alias("true_rank"),
        bin_index_column(p, layout).alias("bin"),
        # histogram items: whether c is the true class; count items are all "positive"
        F.when(valid, F.when(p.isNull(), F.lit(True)).otherwise(c == y)).alias("is_pos"),
        p.alias("p"),
        F.col("weight").alias("w"),
    )
    pos, w = F.col("is_pos"), F.col("w")
    in_histogram = F.col("p").isNotNull()
    # one item per valid row counts it: its confusion item
    counts_row = F.coalesce(
        F.col("predicted") & F.col("bin").isNull() & F.col("true_index").isNotNull(), F.lit(False)
    )
    clipped = F.least(F.greatest(F.col("p"), F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    return keyed.groupBy(*DAY_KEYS, *segments, "reject_reason", *MULTICLASS_KEYS, "bin").agg(
        F.sum(F.when(valid, counts_row.cast("int")).otherwise(1)).cast("long").alias("n_rows"),
        F.sum(pos.cast("int")).cast("long").alias("n_pos"),
        F.sum((~pos).cast("int")).cast("long").alias("n_neg"),
        F.sum(F.when(pos, w)).alias("w_pos"),
        F.sum(F.when(~pos, w)).alias("w_neg"),
        F.sum(F.when(in_histogram & pos, w * -F.log(clipped))).alias("loss_sum"),
        F.sum(w * (F.col("p") - pos.cast("double")) ** 2).alias("sq_err_sum"),
        F.sum(w * F.col("p")).alias("score_sum"),
    )


def reject_counts(states: DataFrame) -> DataFrame:
    """Rows per (model, version, day, reason), from the scan's result."""
    return (
        states.groupBy(*DAY_KEYS, "reject_reason")
        .agg(F.sum("n_rows").alias("n_rows"))
        .withColumn("reject_reason", F.coalesce(F.col("reject_reason"), F.lit("")))
    )


OTHER_VALUE = "__other__"


def cap_segment_values(valid: DataFrame, config: Config) -> DataFrame:
    """Keep the ``slices.max_values`` most frequent values of each segment column
    (by rows in this run's scan; ties by value) and merge the rest into
    ``__other__``: nothing is cut, the long tail is one explicit slice.

    Only the top values per column reach the driver (at most max_values each).
    """
    cap = config.slices.max_values
    if cap <= 0:
        return valid
    rows = F.col("n_pos") + F.col("n_neg")
    for column in config.finest_segments():
        name = segment_column_name(column)
        top = (
            valid.groupBy(name)
            .agg(F.sum(rows).alias("rows"))
            .orderBy(F.desc("rows"), F.asc_nulls_first(name))
            .limit(cap)
            .collect()
        )
        values = [r[name] for r in top if r[name] is not None]
        keep = F.col(name).isin(*[F.lit(v) for v in values])
        if any(r[name] is None for r in top):
            keep = keep | F.col(name).isNull()
        valid = valid.withColumn(
            name, F.when(F.coalesce(keep, F.lit(False)), F.col(name)).otherwise(F.lit(OTHER_VALUE))
        )
    return valid


def rollup_slices(
    states: DataFrame,
    config: Config,
    layout: BinLayout,
    class_keys: tuple[str, ...],
    class_columns: list[Column],
    layout_id: str | None = None,
) -> DataFrame:
    """Daily histograms for every slice, with the key columns of the output tables.

    ``class_keys`` are the task's per-class key columns of the scan's states and
    ``class_columns`` turn them into ``class_label``, ``true_label``,
    ``predicted`` and ``true_rank`` (``Task.class_keys``, ``Task.class_columns``);
    ``layout_id`` is written with them (``Task.state_layout_id``; default the layout's).
    """
    valid = cap_segment_values(states.where(F.col("reject_reason").isNull()), config)
    # The scan's states hold one row per (day keys, finest segments, class keys,
    # bin): the slice of every finest segment column is those rows as they are,
    # unless capping merged values into __other__. Summing it anyway would be a
    # shuffle of nearly every state row for nothing.
    unsummed = set(config.finest_segments()) if config.slices.max_values <= 0 else None
    sums = {s: F.coalesce(F.col(s), F.lit(0)) for s in STATE_SUMS}
    per_slice = []
    for columns in config.slices_to_compute():
        seg = [segment_column_name(c) for c in columns]
        if set(columns) == unsummed:
            summed = valid.select(
                *DAY_KEYS, *seg, *class_keys, "bin", *[v.alias(s) for s, v in sums.items()]
            )
        else:
            summed = valid.groupBy(*DAY_KEYS, *seg, *class_keys, "bin").agg(
                *[F.sum(v).alias(s) for s, v in sums.items()]
            )
        value = F.concat_ws(",", *[escaped_segment(F.col(c)) for c in seg]) if seg else F.lit("")
        per_slice.append(
            summed.select(
                *DAY_KEYS,
                F.lit(",".join(columns)).alias("slice_key"),
                value.alias("slice_value"),
                *class_keys,
                "bin",
                *STATE_SUMS,
            )
        )
    union = reduce(DataFrame.unionByName, per_slice)
    lower = double_array(layout.lower)
    upper = double_array(layout.upper)
    return union.select(
        "model_name",
        "model_version",
        "slice_key",
        "slice_value",
        F.lit("day").alias("granularity"),
        F.col("day").alias("window_start"),
        F.date_add(F.col("day"), 1).alias("window_end"),
        *class_columns,
        F.col("bin").cast("int").alias("bin"),
        F.element_at(lower, F.col("bin") + 1).alias("bin_lower"),
        F.element_at(upper, F.col("bin") + 1).alias("bin_upper"),
        F.col("n_pos").cast("long").alias("n_pos"),
        F.col("n_neg").cast("long").alias("n_neg"),
        *[F.col(s).cast("double").alias(s) for s in STATE_SUMS[2:]],
        F.lit(layout_id or layout.layout_id).alias("layout_id"),
    )


def _assign_rollups(daily: DataFrame, windows: WindowRange) -> DataFrame:
    """``daily`` with each day's rollup window of ``windows.granularity``
    (``rollup_start``, ``rollup_end``): its week (Monday start), its month, or
    each of the N rolling windows that contain it; only windows whose start lies
    in ``windows`` are kept."""
    day = F.col("window_start")
    g = windows.granularity
    n = rolling_days(g)
    if g == "week":
        start = F.date_sub(day, (F.dayofweek(day) + F.lit(5)) % F.lit(7))
        end = F.date_add(start, 7)
    elif g == "month":
        start = F.trunc(day, "month")
        end = F.add_months(start, 1)
    elif n is not None:
        daily = daily.withColumn("offset", F.explode(F.sequence(F.lit(0), F.lit(n - 1))))
        start = F.date_sub(day, F.col("offset"))
        end = F.date_add(start, n)
    else:
        raise ValueError(f"{g!r} is not a rollup granularity")
    assigned = daily.withColumn("rollup_start", start).withColumn("rollup_end", end)
    return assigned.where(
        (F.col("rollup_start") >= F.lit(windows.first))
        & (F.col("rollup_start") <= F.lit(windows.last))
    )


def rollup_windows(daily: DataFrame, windows: WindowRange) -> DataFrame:
    """Histograms of rollup windows as sums of stored daily histograms (no rescan).

    ``daily`` holds the stored ``granularity = 'day'`` rows the windows need;
    each day is assigned to its week (Monday start), its month, or to each of
    the N rolling windows that contain it; only windows whose start lies in
    ``windows`` are kept. Sums of counts are exact, so a rollup equals a scan
    of the whole window.
    """
    summed = (
        _assign_rollups(daily, windows)
        .groupBy(*HISTOGRAM_KEYS, "rollup_start", "rollup_end")
        .agg(*[F.sum(c).alias(c) for c in STATE_SUMS])
    )
    return summed.select(
        *_rollup_window(windows),
        F.col("rollup_end").alias("window_end"),
        *HISTOGRAM_KEYS[4:11],
        F.col("n_pos").cast("long").alias("n_pos"),
        F.col("n_neg").cast("long").alias("n_neg"),
        *[F.col(s).cast("double").alias(s) for s in STATE_SUMS[2:]],
        "layout_id",
    )


# What identifies a window of one series: the metrics' join keys for days_covered.
SERIES_WINDOW = KEY_COLUMNS[:6]


def _rollup_window(windows: WindowRange) -> list:
    """The SERIES_WINDOW columns of rows keyed by ``rollup_start``."""
    return [
        "model_name",
        "model_version",
        "slice_key",
        "slice_value",
        F.lit(windows.granularity).alias("granularity"),
        F.col("rollup_start").alias("window_start"),
    ]


def rollup_days_covered(daily: DataFrame, windows: WindowRange) -> DataFrame:
    """Per series (model, version, slice) and rollup window of ``windows``: how
    many of the window's days have stored states (``days_covered``). A window
    covers fewer days than it spans (``window_end - window_start``) while its
    days are still to come, or where a day was never evaluated or had no rows
    of the series."""
    covered = (
        _assign_rollups(daily, windows)
        .groupBy("model_name", "model_version", "slice_key", "slice_value", "rollup_start")
        .agg(F.countDistinct("window_start").cast("int").alias("days_covered"))
    )
    return covered.select(*_rollup_window(windows), "days_covered")


def with_days_covered(metrics: DataFrame, covered: DataFrame | None) -> DataFrame:
    """``metrics`` with ``days_covered``: 1 for a daily window, the rollup's count
    from ``covered`` (``rollup_days_covered``) for the others; columns in the
    table's order."""
    daily = F.when(F.col("granularity") == F.lit("day"), F.lit(1))
    metrics = metrics.drop("days_covered")
    if covered is not None:
        # Small (a row per series and window): broadcast, no shuffle of the metrics.
        metrics = metrics.join(F.broadcast(covered), list(SERIES_WINDOW), "left")
        daily = F.coalesce(F.col("days_covered"), daily)
    return metrics.withColumn("days_covered", daily.cast("int")).select(
        *[f.name for f in METRICS_SCHEMA.fields]
    )


def same_states(a: DataFrame, b: DataFrame, rtol: float = 1e-9) -> bool:
    """Whether two sets of stored histogram rows hold the same states: the same
    keys and windows, equal counts, float sums equal to ``rtol`` (a sum of the
    same days added in another order may differ in its last bits).

    Used to tell a concurrent run's identical rewrite from a real change; only
    the first difference found reaches the driver.
    """
    keys = [*HISTOGRAM_KEYS, "granularity", "window_start", "window_end"]
    left = a.select(*keys, *[F.col(c).alias(f"a_{c}") for c in STATE_SUMS])
    right = b.select(*keys, *[F.col(c).alias(f"b_{c}") for c in STATE_SUMS])
    on = [left[k].eqNullSafe(right[k]) for k in keys]
    joined = left.join(right, on, "full_outer")
    differs = left["model_name"].isNull() | right["model_name"].isNull()
    for c in STATE_SUMS:
        x, y = F.col(f"a_{c}"), F.col(f"b_{c}")
        scale = F.greatest(F.abs(x), F.abs(y), F.lit(1e-300))
        differs = differs | ~x.eqNullSafe(y) & (F.abs(x - y) > F.lit(rtol) * scale)
    return joined.where(differs).limit(1).count() == 0


MULTILABEL_KEYS = ("label_index", "statistic")


def _example_values(n_both: Column, n_predicted: Column, n_true: Column) -> list[Column]:
    """Spark twin of ``core.multilabel.example_values``: the per-row values of
    ``EXAMPLE_STATISTICS`` from |P ∩ T|, |P| and |T| (0 where a set in the
    denominator is empty, as scikit-learn's ``zero_division=0``)."""
    i, p, t = (c.cast("double") for c in (n_both, n_predicted, n_true))
    zero = F.lit(0.0)

    def share(num: Column, den: Column) -> Column:
        return F.when(den > zero, num / den).otherwise(zero)

    return [
        ((i == p) & (i == t)).cast("double"),
        share(i, p + t - i),
        share(i, p),
        share(i, t),
        share(F.lit(2.0) * i, p + t),
        (p == zero).cast("double"),
    ]


def _predicted_counts(truth: Column, scores: Column, tau: Column) -> tuple[Column, Column]:
    """|P ∩ T| and |P| of a row at threshold ``tau`` (P = labels scored >= tau)."""
    hits = F.zip_with(truth, scores, lambda y, s: (y == F.lit(1)) & (s >= tau))
    return F.size(F.filter(hits, lambda h: h)), F.size(F.filter(scores, lambda s: s >= tau))


def scan_multilabel_states(
    rows: DataFrame, config: Config, layout: BinLayout, thresholds: tuple[float, ...]
) -> DataFrame:
    """The single aggregation for an L-label model (rows from
    ``MultilabelTask.normalize``: ``truth`` array<int> of 0/1 and ``scores``
    array<double>, both in label order), by Spark SQL (no JVM scan).

    Every valid row adds to its group (``core.multilabel.MultilabelState``):

    * one item per label l, keyed (l, bin of ``s_l``): the binary state of the
      label (``n_pos``/``w_pos``/``loss_sum`` where l is a true label,
      ``n_neg``/``w_neg`` where not; ``sq_err_sum``, ``score_sum``);
    * one item per operating threshold τ and example statistic, keyed
      (statistic, edge index of τ as ``bin``): value v in [0, 1] computed per
      row from |P ∩ T|, |P| and |T| at τ before the explode; ``n_pos`` rows
      with v > 0, ``n_neg`` rows with v = 0, ``w_pos`` Σ w·v, ``w_neg`` Σ w·(1 − v);
    * one item ``[|T| = 0]`` keyed (``EMPTY_LABEL_SET``, no bin), which also
      counts the row in ``n_rows``.

    A rejected row is one item with NULL keys and sums and ``n_rows`` 1.
    """
    valid = F.col("reject_reason").isNull()
    truth, scores = F.col("truth"), F.col("scores")
    no_int, no_double = F.lit(None).cast("int"), F.lit(None).cast("double")

    def item(label: Column, statistic: Column, edge: Column, v: Column, p: Column) -> Column:
        return F.struct(
            label.alias("l"), statistic.alias("s"), edge.alias("e"), v.alias("v"), p.alias("p")
        )

    per_label = F.transform(
        scores,
        lambda s, k: item(k, no_int, no_int, F.element_at(truth, k + F.lit(1)).cast("double"), s),
    )
    n_true = F.size(F.array_remove(truth, 0))
    examples = []
    for t in thresholds:
        edge = F.lit(layout.edge_index(t))
        n_both, n_predicted = _predicted_counts(truth, scores, F.lit(float(t)))
        values = _example_values(n_both, n_predicted, n_true)
        examples += [
            item(no_int, F.lit(statistic), edge, value, no_double)
            for statistic, value in zip(range(len(EXAMPLE_STATISTICS)), values, strict=True)
        ]
    empty = item(no_int, F.lit(EMPTY_LABEL_SET), no_int, (n_true == 0).cast("double"), no_double)
    rejected = F.array(item(no_int, no_int, no_int, no_double, no_double))
    segments = [segment_column_name(c) for c in config.finest_segments()]
    exploded = rows.select(
        *DAY_KEYS,
        *segments,
        "reject_reason",
        "weight",
        F.explode(
            F.when(valid, F.concat(per_label, F.array(*examples, empty))).otherwise(rejected)
        ).alias("item"),
    )
    p = F.col("item.p")
    keyed = exploded.select(
        *DAY_KEYS,
        *segments,
        "reject_reason",
        F.col("item.l").alias("label_index"),
        F.col("item.s").alias("statistic"),
        F.when(p.isNotNull(), bin_index_column(p, layout)).otherwise(F.col("item.e")).alias("bin"),
        F.col("item.v").alias("v"),
        p.alias("p"),
        F.col("weight").alias("w"),
    )
    v, w, p = F.col("v"), F.col("w"), F.col("p")
    clipped = F.least(F.greatest(p, F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    loss = F.when(v == F.lit(1.0), -F.log(clipped)).otherwise(-F.log1p(-clipped))
    counts_row = F.coalesce(F.col("statistic") == F.lit(EMPTY_LABEL_SET), F.lit(False))
    return keyed.groupBy(*DAY_KEYS, *segments, "reject_reason", *MULTILABEL_KEYS, "bin").agg(
        F.sum(F.when(valid, counts_row.cast("int")).otherwise(1)).cast("long").alias("n_rows"),
        F.sum((v > F.lit(0.0)).cast("int")).cast("long").alias("n_pos"),
        F.sum((v == F.lit(0.0)).cast("int")).cast("long").alias("n_neg"),
        F.sum(w * v).alias("w_pos"),
        F.sum(w * (F.lit(1.0) - v)).alias("w_neg"),
        F.sum(F.when(p.isNotNull(), w * loss)).alias("loss_sum"),
        F.sum(w * (v - p) ** 2).alias("sq_err_sum"),
        F.sum(w * p).alias("score_sum"),
    )
