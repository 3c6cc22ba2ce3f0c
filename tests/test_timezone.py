"""Days are calendar days in run.timezone, DST days included.

Rows every 10 minutes from 2026-10-31 00:00 to 2026-11-03 00:00 UTC. In
America/New_York, 2026-11-01 has 25 hours (clocks go back), so that day must
hold 25 hours of rows; with the default UTC every day holds 24. Daily row
counts, and AUC per day against scikit-learn, are checked for both settings.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from clfeval.config import parse_config
from clfeval.io import tables
from clfeval.pipeline import run_evaluation

pytestmark = pytest.mark.spark


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_days_follow_the_configured_time_zone(spark, tmp_path, zone) -> None:
    rng = np.random.default_rng(3)
    times = pd.date_range("2026-10-31", "2026-11-03", freq="10min", inclusive="left", tz="UTC")
    labels = rng.random(len(times)) < 0.3
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0.0, 1.0)
    raw = pd.DataFrame(
        {
            "model_name": "m",
            "model_version": "v1",
            "event_time": times.tz_convert(None).to_pydatetime(),
            "label": labels.astype(int),
            "score": scores,
        }
    )
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the rows are UTC instants
    df = spark.createDataFrame(raw).selectExpr(
        "model_name",
        "model_version",
        "to_utc_timestamp(event_time, 'UTC') AS event_time",
        "CAST(label AS INT) AS label",
        "score",
    )
    df.write.format("delta").save(str(tmp_path / "predictions"))
    config = parse_config(
        {
            "input": {"path": str(tmp_path / "predictions")},
            "output": {"path": str(tmp_path / "metrics")},
            "run": {"timezone": zone},
        }
    )
    try:
        run_evaluation(spark, config, log=lambda _: None)
    finally:  # the suite shares one session: give the next test UTC back
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    metrics = tables.read_table(spark, tables.output_location(config, "metrics")).toPandas()
    auc = metrics[(metrics.metric == "roc_auc") & (metrics.slice_key == "")]

    local_day = times.tz_convert(zone).date
    expected = raw.assign(day=local_day).groupby("day")
    assert sorted(auc.window_start) == sorted(expected.groups)
    for day, rows in expected:
        row = auc[auc.window_start == day].iloc[0]
        assert row.n_rows == len(rows)
        assert row.window_end == day + dt.timedelta(days=1)
        exact = roc_auc_score(rows.label, rows.score)
        assert row.bound_lower - 1e-12 <= exact <= row.bound_upper + 1e-12
    hours = {day: len(rows) / 6 for day, rows in expected}
    if zone == "America/New_York":
        assert hours[dt.date(2026, 11, 1)] == 25
    else:
        assert set(hours.values()) == {24}


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "America/New_York"])
def test_event_day_equals_to_date(spark, zone) -> None:
    """contract.event_day (integer arithmetic in UTC, to_date elsewhere) gives
    to_date's day for instants around midnight, before 1970, and at the ends
    of the timestamp range."""
    from pyspark.sql import functions as F

    from clfeval.spark import contract

    micros_per_day = 86_400_000_000
    first = -62_135_596_800_000_000 + micros_per_day  # 0001-01-02 00:00 UTC
    last = 253_402_300_799_999_999 - micros_per_day  # 9999-12-30 23:59:59.999999 UTC
    instants = [
        *[d * micros_per_day + delta for d in (-1, 0, 1, 20_000) for delta in (-1, 0, 1)],
        first,
        last,
        *np.random.default_rng(5).integers(first, last, 500).tolist(),
    ]
    config = parse_config(
        {
            "input": {"path": "/unused"},
            "task": {"positive_label": 1, "negative_labels": [0]},
            "output": {"path": "/unused"},
        }
    )
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        df = spark.createDataFrame([(m,) for m in instants], "m long").select(
            F.timestamp_micros("m").alias("event_time")
        )
        got = df.select(
            contract.event_day(df, config).alias("fast"), F.to_date("event_time").alias("slow")
        ).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert len(got) == len(instants)
    assert all(row.fast == row.slow for row in got), [r for r in got if r.fast != r.slow][:5]
