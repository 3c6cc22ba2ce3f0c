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
    """selection.event_day (integer arithmetic in UTC, to_date elsewhere) gives
    to_date's day for instants around midnight, before 1970, and at the ends
    of the timestamp range."""
    from pyspark.sql import functions as F

    from clfeval.spark import selection

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
            "output": {"path": "/unused_output"},
        }
    )
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        df = spark.createDataFrame([(m,) for m in instants], "m long").select(
            F.timestamp_micros("m").alias("event_time")
        )
        got = df.select(
            selection.event_day(df, config).alias("fast"), F.to_date("event_time").alias("slow")
        ).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert len(got) == len(instants)
    assert all(row.fast == row.slow for row in got), [r for r in got if r.fast != r.slow][:5]


def test_instants_on_day_dates_both_ends_in_the_zone() -> None:
    """core.windows.instants_on_day: a day's instants in UTC, in a zone east of UTC,
    on a day whose midnight a clock change skips, and naive wall-clock times."""
    from zoneinfo import ZoneInfo

    from clfeval.core.windows import instants_on_day

    utc = dt.UTC
    day = dt.date(2026, 1, 5)
    last = dt.datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=utc)
    assert instants_on_day(day, dt.datetime(2026, 1, 5, tzinfo=utc), last, "UTC")
    assert not instants_on_day(day, dt.datetime(2026, 1, 5, tzinfo=utc), last, "Europe/Berlin")
    assert not instants_on_day(
        day, dt.datetime(2026, 1, 4, 23, 59, 59, 999999, tzinfo=utc), last, "UTC"
    )
    # Berlin's 2026-01-05 is [2026-01-04 23:00, 2026-01-05 23:00) UTC.
    berlin_first = dt.datetime(2026, 1, 4, 23, tzinfo=utc)
    berlin_last = dt.datetime(2026, 1, 5, 22, 59, 59, 999999, tzinfo=utc)
    assert instants_on_day(day, berlin_first, berlin_last, "Europe/Berlin")
    assert not instants_on_day(
        day, berlin_first, berlin_last + dt.timedelta(microseconds=1), "Europe/Berlin"
    )
    # Sao Paulo skipped 2018-11-04 00:00-01:00: that day starts at 01:00 local.
    # (Arithmetic in UTC: Python adds to an aware time's wall clock.)
    first = dt.datetime(2018, 11, 4, 1, tzinfo=ZoneInfo("America/Sao_Paulo")).astimezone(utc)
    skipped = dt.date(2018, 11, 4)
    assert instants_on_day(skipped, first, first + dt.timedelta(hours=22), "America/Sao_Paulo")
    before = first - dt.timedelta(microseconds=1)
    assert not instants_on_day(skipped, before, first, "America/Sao_Paulo")
    # Naive times (TIMESTAMP_NTZ) by their wall clock; naive and aware never mix.
    naive_last = dt.datetime(2026, 1, 5, 23, 59, 59, 999999)
    assert instants_on_day(day, dt.datetime(2026, 1, 5), naive_last, None)
    assert not instants_on_day(day, dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 6), None)
    assert not instants_on_day(day, dt.datetime(2026, 1, 5), naive_last, "UTC")


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_date_partition_gives_event_days_only_where_file_statistics_prove_it(
    spark, tmp_path, zone
) -> None:
    """A table partitioned by the local date of its event times, except that the
    2026-11-02 partition also holds a row of 2026-11-03, and the 2026-11-03 one
    only a NULL event time. A run of 2026-11-01 alone (New York: 25 hours) takes
    its days from the partition: the scan reads no event time, and the day's
    last microsecond (recorded in Delta's statistics as its last millisecond)
    stays in the day. A run of the first two days reads the event times and
    leaves the stray row out (its day is outside); a full run counts it on its
    own day and rejects the NULL one."""
    from pyspark.sql import functions as F

    from clfeval.run.plan import partition_days
    from clfeval.spark import selection
    from clfeval.tasks import task_for

    rng = np.random.default_rng(11)
    local = pd.date_range("2026-11-01", "2026-11-03", freq="10min", inclusive="left", tz=zone)
    last_microsecond = pd.Timestamp("2026-11-01 23:59:59.999999", tz=zone)
    times = local.append(pd.DatetimeIndex([last_microsecond])).tz_convert("UTC")
    partition = times.tz_convert(zone).date
    stray = pd.Timestamp("2026-11-03 00:00", tz=zone).tz_convert("UTC")
    event_times = [*times.tz_convert(None).to_pydatetime(), stray.tz_convert(None), None]
    dates = [*partition, dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
    labels = rng.random(len(dates)) < 0.3
    raw = pd.DataFrame(
        {
            "model_name": "m",
            "model_version": "v1",
            "event_time": event_times,
            "date": dates,
            "label": labels.astype(int),
            "score": np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0.0, 1.0),
        }
    )
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the rows are UTC instants
    df = spark.createDataFrame(raw).select(
        "model_name",
        "model_version",
        F.col("event_time").cast("timestamp").alias("event_time"),
        F.col("date").cast("date").alias("date"),
        F.col("label").cast("int").alias("label"),
        "score",
    )
    path = str(tmp_path / "predictions")
    df.write.format("delta").partitionBy("date").save(path)
    config = parse_config(
        {
            "input": {"path": path, "date_partition_column": "date"},
            "output": {"path": str(tmp_path / "metrics")},
            "run": {"timezone": zone},
        }
    )
    first, second, third = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)
    logs: dict[str, list[str]] = {run: [] for run in ("one day", "two days", "all", "null")}
    try:
        spark.conf.set("spark.sql.session.timeZone", zone)
        frame = tables.read_table(spark, tables.input_location(config))
        proof = partition_days(
            spark,
            config,
            tables.input_location(config),
            tables.table_version(spark, tables.input_location(config)),
            frame,
            start=first,
            end=first,
        )
        rows = task_for(config).normalize(
            selection.select_range(
                selection.with_event_day(frame, config, True), config, first, first
            )
        )
        plan = rows._jdf.queryExecution().executedPlan().toString()
        one_day = run_evaluation(spark, config, first, first, log=logs["one day"].append)
        two_days = run_evaluation(spark, config, first, second, log=logs["two days"].append)
        metrics_path = tables.output_location(config, "metrics")
        after_two_days = tables.read_table(spark, metrics_path).toPandas()
        all_days = run_evaluation(spark, config, full=True, log=logs["all"].append)
        # The third day's file holds only the NULL time: its day is unknown, so
        # a run of that day reads no row (a full run rejects it, above).
        null_day = run_evaluation(spark, config, third, third, log=logs["null"].append)
    finally:  # the suite shares one session: give the next test UTC back
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert proof.holds, proof.reason
    read_schemas = plan.split("ReadSchema: ")[1:]
    assert read_schemas and all("event_time" not in s.split("\n")[0] for s in read_schemas), plan

    def said(run: str, text: str) -> bool:
        return any(text in line for line in logs[run])

    assert said("one day", "no event time decoded"), logs
    assert not any(said(run, "no event time decoded") for run in ("two days", "all", "null"))
    assert said("two days", "a file of 2026-11-02 holds event_time values of other days"), logs
    assert said("null", "a file of 2026-11-03 has NULL event_time values"), logs["null"]
    assert null_day.rows_read == 0
    assert one_day.reject_counts == two_days.reject_counts == {}
    assert all_days.reject_counts == {"null_event_time": 1}

    def daily_rows(metrics: pd.DataFrame) -> dict:
        counts = metrics[(metrics.metric == "roc_auc") & (metrics.slice_key == "")]
        return dict(zip(counts.window_start, counts.n_rows, strict=True))

    known = pd.DatetimeIndex([t for t in event_times if t is not None]).tz_localize("UTC")
    expected = pd.Series(known.tz_convert(zone).date).value_counts().to_dict()
    # Two days: the stray row's day (the third) is outside the range.
    assert daily_rows(after_two_days) == {d: expected[d] for d in (first, second)}
    metrics = tables.read_table(spark, metrics_path).toPandas()
    assert daily_rows(metrics) == expected
    assert expected[third] == 1 and expected[first] == 6 * (25 if zone != "UTC" else 24) + 1
