"""A realistic, seeded predictions table for demos, tests and benchmarks.

Scores are logit-normal: negatives around logit -5 (score ~0.007), positives
around logit -1.5, so that scores crowd near 0 as they do for imbalanced
models; version ``v2`` of each model separates the classes better, and a small
share of rows is bad on purpose (null/NaN/out-of-range score, null label) so
that reject counting shows.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

MODELS = (
    ("fraud_detector", "v1"),
    ("fraud_detector", "v2"),
    ("churn_model", "v1"),
    ("churn_model", "v2"),
)
REGIONS = ("EU", "NA", "APAC", "LATAM", "MEA")
DEVICES = ("mobile", "desktop", "tablet")


# Spark seeds rand() per partition with seed + partition index, so seeds of
# different columns must be far apart or the columns come out correlated.
_SEED_STRIDE = 1_000_003


def _pick(values: tuple[str, ...], u: Column, weights: tuple[float, ...]) -> Column:
    """values[i] with probability weights[i], from a uniform draw u."""
    total = sum(weights)
    expr, cumulative = None, 0.0
    for value, weight in zip(values[:-1], weights[:-1], strict=True):
        cumulative += weight / total
        expr = (
            F.when(u < cumulative, F.lit(value))
            if expr is None
            else expr.when(u < cumulative, F.lit(value))
        )
    return expr.otherwise(F.lit(values[-1]))


def demo_predictions(
    spark: SparkSession,
    rows: int = 1_000_000,
    days: int = 14,
    start: dt.date = dt.date(2026, 11, 1),
    positive_rate: float = 0.02,
    bad_row_rate: float = 0.003,
    seed: int = 7,
    partitions: int = 8,
) -> DataFrame:
    """The demo predictions: one row per id, columns as in conf/demo.toml."""
    base = spark.range(0, rows, numPartitions=partitions)
    model_index = (F.col("id") % len(MODELS)).cast("int")
    names = F.array(*[F.lit(m) for m, _ in MODELS])
    versions = F.array(*[F.lit(v) for _, v in MODELS])
    start_epoch = calendar.timegm(start.timetuple())  # midnight UTC
    df = base.select(
        F.col("id"),
        F.element_at(names, model_index + 1).alias("model_name"),
        F.element_at(versions, model_index + 1).alias("model_version"),
        F.timestamp_seconds(F.lit(start_epoch) + F.floor(F.rand(seed) * days * 86400)).alias(
            "event_time"
        ),
        _pick(REGIONS, F.rand(seed + 1 * _SEED_STRIDE), (0.35, 0.3, 0.2, 0.1, 0.05)).alias(
            "region"
        ),
        _pick(DEVICES, F.rand(seed + 2 * _SEED_STRIDE), (0.6, 0.3, 0.1)).alias("device"),
        F.rand(seed + 3 * _SEED_STRIDE).alias("u_label"),
        F.randn(seed + 4 * _SEED_STRIDE).alias("noise"),
        F.rand(seed + 5 * _SEED_STRIDE).alias("u_bad"),
        F.randn(seed + 6 * _SEED_STRIDE).alias("u_weight"),
    )
    better = F.col("model_version") == F.lit("v2")
    mobile_harder = F.when(F.col("device") == F.lit("mobile"), F.lit(0.4)).otherwise(F.lit(0.0))
    is_positive = F.col("u_label") < F.lit(positive_rate)
    mean_logit = F.when(
        is_positive, F.when(better, -1.0).otherwise(-1.6) - mobile_harder
    ).otherwise(F.lit(-5.0) + mobile_harder)
    score = 1.0 / (1.0 + F.exp(-(mean_logit + F.lit(1.3) * F.col("noise"))))
    b = F.col("u_bad") / F.lit(bad_row_rate)  # uniform on [0, 1) for bad rows
    bad = F.col("u_bad") < F.lit(bad_row_rate)
    score = (
        F.when(bad & (b < 0.3), F.lit(None).cast("double"))
        .when(bad & (b < 0.45), F.lit(float("nan")))
        .when(bad & (b < 0.55), F.lit(1.25))
        .when(bad & (b < 0.6), F.lit(-0.01))
        .otherwise(score)
    )
    label = F.when(bad & (b >= 0.6), F.lit(None).cast("int")).otherwise(is_positive.cast("int"))
    return df.select(
        "id",
        "model_name",
        "model_version",
        "event_time",
        F.to_date("event_time").alias("date"),
        "region",
        "device",
        label.alias("label"),
        score.alias("score"),
        F.round(F.exp(F.lit(0.4) * F.col("u_weight")), 3).alias("weight"),
    )


SPECIES = ("cat", "dog", "bird", "fish", "horse")
MULTICLASS_MODELS = (("species_classifier", "v1"), ("species_classifier", "v2"))


def demo_multiclass_predictions(
    spark: SparkSession,
    rows: int = 200_000,
    days: int = 14,
    start: dt.date = dt.date(2026, 11, 1),
    classes: tuple[str, ...] = SPECIES,
    bad_row_rate: float = 0.003,
    seed: int = 11,
    partitions: int = 8,
) -> DataFrame:
    """Multiclass demo predictions: ``probabilities`` map<string,double> keyed by class,
    string ``label``; classes have unequal prevalence, v2 separates them better,
    and a few rows are bad (missing class key, unnormalized vector, unknown or
    null label).
    """
    K = len(classes)
    base = spark.range(0, rows, numPartitions=partitions)
    model_index = (F.col("id") % len(MULTICLASS_MODELS)).cast("int")
    versions = F.array(*[F.lit(v) for _, v in MULTICLASS_MODELS])
    start_epoch = calendar.timegm(start.timetuple())
    prevalence = tuple(1.0 / (k + 1) for k in range(K))  # Zipf-like: class 0 commonest
    df = base.select(
        F.col("id"),
        F.lit(MULTICLASS_MODELS[0][0]).alias("model_name"),
        F.element_at(versions, model_index + 1).alias("model_version"),
        F.timestamp_seconds(F.lit(start_epoch) + F.floor(F.rand(seed) * days * 86400)).alias(
            "event_time"
        ),
        _pick(REGIONS, F.rand(seed + 1 * _SEED_STRIDE), (0.35, 0.3, 0.2, 0.1, 0.05)).alias(
            "region"
        ),
        _pick(classes, F.rand(seed + 2 * _SEED_STRIDE), prevalence).alias("true_class"),
        F.rand(seed + 3 * _SEED_STRIDE).alias("u_bad"),
        *[F.randn(seed + (10 + k) * _SEED_STRIDE).alias(f"noise_{k}") for k in range(K)],
    )
    # One projection after another, each reading the previous one's column K
    # times (so Spark keeps them apart): written as one expression, each of the
    # K probabilities would hold its own copy of the K-term sum (K² terms, more
    # than Spark's planner handles at K = 200).
    boost = F.when(F.col("model_version") == F.lit("v2"), F.lit(2.2)).otherwise(F.lit(1.5))
    exps = [
        F.exp(F.col(f"noise_{k}") + F.when(F.col("true_class") == F.lit(c), boost).otherwise(0.0))
        for k, c in enumerate(classes)
    ]
    df = df.withColumn("exps", F.array(*exps))
    elements = [F.element_at("exps", k + 1) for k in range(K)]
    df = df.withColumn("total", reduce(lambda a, b: a + b, elements))
    b = F.col("u_bad") / F.lit(bad_row_rate)
    bad = F.col("u_bad") < F.lit(bad_row_rate)
    scale = F.when(bad & (b < 0.25), F.lit(1.2)).otherwise(F.lit(1.0))  # not normalized
    df = df.withColumn("probs", F.array(*[e / F.col("total") * scale for e in elements]))
    names = F.array(*[F.lit(c) for c in classes])
    full = F.map_from_arrays(names, F.col("probs"))
    # the last class missing
    missing_key = F.map_from_arrays(F.slice(names, 1, K - 1), F.slice(F.col("probs"), 1, K - 1))
    probabilities = F.when(bad & (b >= 0.25) & (b < 0.5), missing_key).otherwise(full)
    label = (
        F.when(bad & (b >= 0.5) & (b < 0.75), F.lit("zebra"))
        .when(bad & (b >= 0.75), F.lit(None).cast("string"))
        .otherwise(F.col("true_class"))
    )
    return df.select(
        "id",
        "model_name",
        "model_version",
        "event_time",
        F.to_date("event_time").alias("date"),
        "region",
        label.alias("label"),
        probabilities.alias("probabilities"),
    )


TAGS = ("sports", "politics", "tech", "health", "travel", "finance")
MULTILABEL_MODELS = (("content_tagger", "v1"), ("content_tagger", "v2"))


def demo_multilabel_predictions(
    spark: SparkSession,
    rows: int = 100_000,
    days: int = 14,
    start: dt.date = dt.date(2026, 11, 1),
    labels: tuple[str, ...] = TAGS,
    bad_row_rate: float = 0.003,
    seed: int = 23,
    partitions: int = 8,
) -> DataFrame:
    """Multilabel demo predictions: ``tags`` array<string> (the true labels; ~15%
    of rows have none), ``tag_scores`` map<string,double> keyed by label; labels
    have unequal prevalence, v2 separates them better, and a few rows are bad
    (unknown tag, missing score key, NaN score, NULL tags).
    """
    base = spark.range(0, rows, numPartitions=partitions)
    model_index = (F.col("id") % len(MULTILABEL_MODELS)).cast("int")
    versions = F.array(*[F.lit(v) for _, v in MULTILABEL_MODELS])
    start_epoch = calendar.timegm(start.timetuple())
    prevalence = [0.45 / (k + 1) for k in range(len(labels))]
    df = base.select(
        F.col("id"),
        F.lit(MULTILABEL_MODELS[0][0]).alias("model_name"),
        F.element_at(versions, model_index + 1).alias("model_version"),
        F.timestamp_seconds(F.lit(start_epoch) + F.floor(F.rand(seed) * days * 86400)).alias(
            "event_time"
        ),
        _pick(REGIONS, F.rand(seed + 1 * _SEED_STRIDE), (0.35, 0.3, 0.2, 0.1, 0.05)).alias(
            "region"
        ),
        F.rand(seed + 2 * _SEED_STRIDE).alias("u_bad"),
        *[
            (F.rand(seed + (10 + k) * _SEED_STRIDE) < F.lit(p)).alias(f"has_{k}")
            for k, p in enumerate(prevalence)
        ],
        *[F.randn(seed + (40 + k) * _SEED_STRIDE).alias(f"noise_{k}") for k in range(len(labels))],
    )
    boost = F.when(F.col("model_version") == F.lit("v2"), F.lit(3.0)).otherwise(F.lit(2.0))
    scores = [
        F.lit(1.0)
        / (
            F.lit(1.0)
            + F.exp(F.lit(2.0) - F.col(f"noise_{k}") - F.col(f"has_{k}").cast("int") * boost)
        )
        for k in range(len(labels))
    ]
    b = F.col("u_bad") / F.lit(bad_row_rate)
    bad = F.col("u_bad") < F.lit(bad_row_rate)
    pairs = [item for k, c in enumerate(labels) for item in (F.lit(c), scores[k])]
    nan_first = [F.lit(labels[0]), F.lit(float("nan")), *pairs[2:]]
    tag_scores = (
        F.when(bad & (b < 0.25), F.create_map(*pairs[:-2]))  # last label's score missing
        .when(bad & (b >= 0.25) & (b < 0.5), F.create_map(*nan_first))
        .otherwise(F.create_map(*pairs))
    )
    true_tags = F.filter(
        F.array(*[F.when(F.col(f"has_{k}"), F.lit(c)) for k, c in enumerate(labels)]),
        lambda t: t.isNotNull(),
    )
    tags = (
        F.when(bad & (b >= 0.5) & (b < 0.75), F.array_union(true_tags, F.array(F.lit("weather"))))
        .when(bad & (b >= 0.75), F.lit(None).cast("array<string>"))
        .otherwise(true_tags)
    )
    return df.select(
        "id",
        "model_name",
        "model_version",
        "event_time",
        F.to_date("event_time").alias("date"),
        "region",
        tags.alias("tags"),
        tag_scores.alias("tag_scores"),
    )
