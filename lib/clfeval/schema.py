"""The output-table contract: key columns, every table's schema, metric names
and the reject-reason catalog.

Every windowed output table starts with the key columns ``KEY_COLUMNS`` and is
partitioned by ``PARTITION_COLUMNS``; ``slice_key`` '' and ``slice_value`` ''
are the overall slice, a cross is 'region,device' / 'EU,mobile'. The README's
table reference is checked against ``TABLE_SCHEMAS`` by a test, so this module
is the one place a column is added.

``spark/`` builds rows of these schemas, ``io/`` writes them; neither declares
a schema of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

KEY_COLUMNS = (
    "model_name",
    "model_version",
    "slice_key",
    "slice_value",
    "granularity",
    "window_start",
    "window_end",
)
PARTITION_COLUMNS = ("granularity", "window_start")

KEY_FIELDS = (
    T.StructField("model_name", T.StringType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("slice_key", T.StringType()),
    T.StructField("slice_value", T.StringType()),
    T.StructField("granularity", T.StringType()),
    T.StructField("window_start", T.DateType()),
    T.StructField("window_end", T.DateType()),
)


def keyed_schema(*fields: tuple[str, T.DataType]) -> T.StructType:
    """The key columns followed by ``fields`` (name, type)."""
    return T.StructType([*KEY_FIELDS, *[T.StructField(n, t) for n, t in fields]])


# The mergeable state: sums per bin that add up across days, partitions, runs and
# places, as long as ``layout_id`` (the bin edges) is the same.
STATE_SUMS = ("n_pos", "n_neg", "w_pos", "w_neg", "loss_sum", "sq_err_sum", "score_sum")

HISTOGRAM_SCHEMA = keyed_schema(
    ("class_label", T.StringType()),
    ("true_label", T.StringType()),
    ("predicted", T.BooleanType()),
    ("true_rank", T.IntegerType()),
    ("bin", T.IntegerType()),
    ("bin_lower", T.DoubleType()),
    ("bin_upper", T.DoubleType()),
    ("n_pos", T.LongType()),
    ("n_neg", T.LongType()),
    ("w_pos", T.DoubleType()),
    ("w_neg", T.DoubleType()),
    ("loss_sum", T.DoubleType()),
    ("sq_err_sum", T.DoubleType()),
    ("score_sum", T.DoubleType()),
    ("layout_id", T.StringType()),
)

# The columns that identify one state row apart from its window: rows with equal
# values (and window) are summed by a rollup.
HISTOGRAM_KEYS = (
    "model_name",
    "model_version",
    "slice_key",
    "slice_value",
    "class_label",
    "true_label",
    "predicted",
    "true_rank",
    "bin",
    "bin_lower",
    "bin_upper",
    "layout_id",
)

METRICS_SCHEMA = keyed_schema(
    ("metric", T.StringType()),
    ("class_label", T.StringType()),
    ("threshold", T.DoubleType()),
    ("value", T.DoubleType()),
    ("ci_lower", T.DoubleType()),
    ("ci_upper", T.DoubleType()),
    ("bound_lower", T.DoubleType()),
    ("bound_upper", T.DoubleType()),
    ("numerator", T.DoubleType()),
    ("denominator", T.DoubleType()),
    ("n_rows", T.LongType()),
    ("n_positive", T.LongType()),
    ("n_negative", T.LongType()),
    ("weight_total", T.DoubleType()),
    ("days_covered", T.IntegerType()),
)

CONFUSION_SCHEMA = keyed_schema(
    ("threshold", T.DoubleType()),
    ("actual_label", T.StringType()),
    ("predicted_label", T.StringType()),
    ("n_rows", T.LongType()),
    ("weight", T.DoubleType()),
)

CURVES_SCHEMA = keyed_schema(
    ("curve", T.StringType()),
    ("class_label", T.StringType()),
    ("point", T.IntegerType()),
    ("threshold", T.DoubleType()),
    ("x", T.DoubleType()),
    ("y", T.DoubleType()),
)

# One metric series: everything that identifies a metric row but its window.
METRIC_SERIES = (
    "model_name",
    "model_version",
    "slice_key",
    "slice_value",
    "granularity",
    "metric",
    "class_label",
    "threshold",
)

METRIC_CHANGES_SCHEMA = keyed_schema(
    ("metric", T.StringType()),
    ("class_label", T.StringType()),
    ("threshold", T.DoubleType()),
    ("value", T.DoubleType()),
    ("n_rows", T.LongType()),
    ("previous_window_start", T.DateType()),
    ("previous_value", T.DoubleType()),
    ("change_vs_previous", T.DoubleType()),
    ("baseline", T.StringType()),
    ("baseline_value", T.DoubleType()),
    ("change_vs_baseline", T.DoubleType()),
)

ALERTS_SCHEMA = T.StructType(
    [
        T.StructField("rule", T.StringType()),
        *KEY_FIELDS,
        T.StructField("metric", T.StringType()),
        T.StructField("class_label", T.StringType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("n_rows", T.LongType()),
        T.StructField("condition", T.StringType()),
        T.StructField("limit", T.DoubleType()),
        T.StructField("baseline", T.StringType()),
        T.StructField("baseline_value", T.DoubleType()),
        T.StructField("change", T.DoubleType()),
    ]
)

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("ended_at", T.TimestampType()),
        T.StructField("status", T.StringType()),
        T.StructField("config_hash", T.StringType()),
        T.StructField("code_version", T.StringType()),
        T.StructField("input", T.StringType()),
        T.StructField("input_version", T.LongType()),
        T.StructField("start_date", T.DateType()),
        T.StructField("end_date", T.DateType()),
        T.StructField("rows_read", T.LongType()),
        T.StructField("rows_evaluated", T.LongType()),
        T.StructField("rows_rejected", T.LongType()),
        T.StructField("reject_counts", T.MapType(T.StringType(), T.LongType())),
        T.StructField("tables_written", T.ArrayType(T.StringType())),
        T.StructField("output_versions", T.MapType(T.StringType(), T.LongType())),
        T.StructField("message", T.StringType()),
        # range (--start-date/--end-date), full (--full), initial (incremental with
        # no earlier run: run.initial_lookback_days) or incremental.
        T.StructField("mode", T.StringType()),
        T.StructField("input_versions", T.MapType(T.StringType(), T.LongType())),
        # Delta table id per input: a table dropped and recreated at the same place
        # restarts its versions, so versions only compare under the same id.
        T.StructField("input_table_ids", T.MapType(T.StringType(), T.StringType())),
        T.StructField(
            "windows",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("granularity", T.StringType()),
                        T.StructField("first_start", T.DateType()),
                        T.StructField("last_start", T.DateType()),
                    ]
                )
            ),
        ),
        T.StructField("attempts", T.IntegerType()),
        T.StructField("results_hash", T.StringType()),  # Config.results_fingerprint()
        # Where the run's driver ran: a later run marks a 'running' row whose
        # process is gone (same host) or that is older than run.stale_after_hours
        # as 'abandoned'.
        T.StructField("host", T.StringType()),
        T.StructField("pid", T.IntegerType()),
        # Config.state_settings() as JSON: a merge adds the stored states of
        # places whose settings agree (docs/multi-cloud.md).
        T.StructField("state_settings", T.StringType()),
    ]
)

# Every table a run may write, with its schema. ``quarantine`` holds the input's
# own columns plus ``reject_reason`` and ``run_id``, so it has no fixed schema.
TABLE_SCHEMAS: dict[str, T.StructType] = {
    "score_histograms": HISTOGRAM_SCHEMA,
    "metrics": METRICS_SCHEMA,
    "confusion_matrices": CONFUSION_SCHEMA,
    "curves": CURVES_SCHEMA,
    "runs": RUNS_SCHEMA,
    "alerts": ALERTS_SCHEMA,
    "metric_changes": METRIC_CHANGES_SCHEMA,
}
# The tables every run writes (the others follow configuration).
OUTPUT_TABLES = ("score_histograms", "confusion_matrices", "metrics", "curves", "runs")
# The tables derived from the states, in one pass per group.
DERIVED_TABLES = ("metrics", "confusion_matrices", "curves")

# Metric rows a run adds besides the task's own metrics (``class_label`` holds
# the reject reason for ``rejected_rows``).
REJECTED_ROWS = "rejected_rows"
LABEL_COVERAGE = "label_coverage"
BELOW_MIN_SLICE_SIZE = "below_min_slice_size"


@dataclass(frozen=True)
class RejectReason:
    """Why an input row is not in the metrics. ``counts_toward_limit``: whether
    it is a bad row for ``run.max_reject_fraction`` (rows left out by the filter
    or waiting for their label are counted, but are not bad)."""

    name: str
    meaning: str
    counts_toward_limit: bool = True


def _catalog(*reasons: RejectReason) -> dict[str, RejectReason]:
    return {r.name: r for r in reasons}


# Every reject reason any task uses. A task lists its checks in the order they
# are tested (a row counts under the first that applies), by these names.
REJECT_REASONS = _catalog(
    RejectReason("excluded_by_filter", "left out by input.filter", counts_toward_limit=False),
    RejectReason("null_model_name", "model name is NULL"),
    RejectReason("null_model_version", "model version is NULL"),
    RejectReason("null_event_time", "event time is NULL"),
    RejectReason(
        "unlabeled", "no row in the [labels] table for its id (yet)", counts_toward_limit=False
    ),
    RejectReason("conflicting_labels", "the [labels] table holds different labels for its id"),
    RejectReason("null_label", "label is NULL"),
    RejectReason("unknown_label", "label is not one of the configured labels or classes"),
    RejectReason("null_score", "score is NULL"),
    RejectReason("nan_score", "score is NaN"),
    RejectReason("infinite_score", "score is infinite"),
    RejectReason("score_out_of_range", "score is outside [0, 1]"),
    RejectReason("null_probability", "the probabilities or one of them is NULL"),
    RejectReason("bad_probability_length", "not one probability per configured class"),
    RejectReason("nan_probability", "a probability is NaN"),
    RejectReason("infinite_probability", "a probability is infinite"),
    RejectReason("probability_out_of_range", "a probability is outside [0, 1]"),
    RejectReason(
        "probabilities_not_normalized",
        "the probabilities do not sum to 1 within task.probability_tolerance",
    ),
    RejectReason(
        "missing_label_score",
        "multilabel: a label of task.labels has no score (a missing map key, a short array "
        "or a NULL element)",
    ),
    RejectReason(
        "extra_label_score",
        "multilabel: a score for a label not in task.labels (a map key, or an array longer "
        "than task.labels)",
    ),
    RejectReason(
        "invalid_label_indicator", "multilabel: a value of the label map is not 0 or 1 (or NULL)"
    ),
    RejectReason("null_predicted_class", "predicted class is NULL"),
    RejectReason("unknown_predicted_class", "predicted class is not a configured class"),
    RejectReason("null_weight", "weight is NULL"),
    RejectReason("nan_weight", "weight is NaN"),
    RejectReason("infinite_weight", "weight is infinite"),
    RejectReason("negative_weight", "weight is negative"),
    RejectReason(
        "weight_out_of_range",
        "weight is not 0 and outside [1e-100, 1e100] (sums of such weights over- or underflow)",
    ),
)
# Nonzero weights outside [MIN_WEIGHT, MAX_WEIGHT] are rejected (weight_out_of_range).
MIN_WEIGHT = 1e-100
MAX_WEIGHT = 1e100
EXCLUDED_BY_FILTER = "excluded_by_filter"
UNLABELED = "unlabeled"
NOT_BAD_REASONS = tuple(r.name for r in REJECT_REASONS.values() if not r.counts_toward_limit)
