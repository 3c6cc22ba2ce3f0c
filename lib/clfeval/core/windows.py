"""Time windows of the output tables (pure date arithmetic).

Granularities: ``day`` (computed by the scan); ``week`` (ISO weeks, Monday to
Sunday), ``month`` (calendar months) and ``rolling_N`` (the N days ending on
each day, that day included) are rollups: sums of stored daily states. A
window is ``[window_start, window_end)``; rolling windows are named by their
start, and ``window_end`` is the day after the last day.

When a run (re)computes days ``[first_day, last_day]``, every rollup window
that contains one of them must be recomputed: ``affected`` gives those
windows (by their starts) and the days they need.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class WindowRange:
    """Windows of one granularity whose ``window_start`` lies in [first, last]."""

    granularity: str
    first: dt.date
    last: dt.date


@dataclass(frozen=True)
class Affected:
    windows: WindowRange
    source_first: dt.date  # daily states needed: [source_first, source_last]
    source_last: dt.date


def rolling_days(granularity: str) -> int | None:
    """N of ``rolling_N``, else None."""
    return int(granularity.split("_", 1)[1]) if granularity.startswith("rolling_") else None


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def affected(
    granularity: str, first_day: dt.date, last_day: dt.date, latest_day: dt.date
) -> Affected | None:
    """Rollup windows containing a day of [first_day, last_day].

    ``latest_day`` is the last day with stored daily states: rolling windows
    ending after it are not written yet (they appear when that day is run), so
    the set of rolling windows depends on the stored days only, never on which
    days a run was asked for (an incremental run and a full run agree).
    """
    if granularity == "week":
        first, last = week_start(first_day), week_start(last_day)
        return Affected(WindowRange(granularity, first, last), first, last + 6 * ONE_DAY)
    if granularity == "month":
        first, last = month_start(first_day), month_start(last_day)
        return Affected(WindowRange(granularity, first, last), first, next_month(last) - ONE_DAY)
    n = rolling_days(granularity)
    if n is None:
        raise ValueError(f"{granularity!r} is not a rollup granularity")
    last_end = min(last_day + (n - 1) * ONE_DAY, latest_day)
    span = (n - 1) * ONE_DAY
    return Affected(
        WindowRange(granularity, first_day - span, last_end - span), first_day - span, last_end
    )


def day_ranges(days: list[dt.date] | set[dt.date]) -> list[WindowRange]:
    """Days as the fewest ``day`` ranges of consecutive days, in order."""
    out: list[WindowRange] = []
    for day in sorted(set(days)):
        if out and out[-1].last + ONE_DAY == day:
            out[-1] = WindowRange("day", out[-1].first, day)
        else:
            out.append(WindowRange("day", day, day))
    return out


def merge_ranges(ranges: list[WindowRange]) -> list[WindowRange]:
    """Overlapping ranges of the same granularity merged (each window once)."""
    out: list[WindowRange] = []
    for r in sorted(ranges, key=lambda r: (r.granularity, r.first)):
        if out and out[-1].granularity == r.granularity and r.first <= out[-1].last:
            out[-1] = WindowRange(r.granularity, out[-1].first, max(out[-1].last, r.last))
        else:
            out.append(r)
    return out


def window_starts(r: WindowRange) -> list[dt.date]:
    """Every window start of ``r`` (weeks on Mondays, months on the 1st, days)."""
    out = []
    day = r.first
    while day <= r.last:
        out.append(day)
        if r.granularity == "week":
            day += 7 * ONE_DAY
        elif r.granularity == "month":
            day = next_month(day)
        else:
            day += ONE_DAY
    return out


def window_end(granularity: str, start: dt.date) -> dt.date:
    """``window_end`` (exclusive) of the window starting on ``start``."""
    if granularity == "day":
        return start + ONE_DAY
    if granularity == "week":
        return start + 7 * ONE_DAY
    if granularity == "month":
        return next_month(start)
    n = rolling_days(granularity)
    if n is None:
        raise ValueError(f"unknown granularity {granularity!r}")
    return start + n * ONE_DAY


def instants_on_day(
    day: dt.date, earliest: dt.datetime, latest: dt.datetime, timezone: str | None
) -> bool:
    """Whether every time in [earliest, latest] has the date ``day``.

    Aware times (TIMESTAMP) are dated in ``timezone``, as Spark's ``to_date``
    dates them in the session time zone: day d holds the instants from the first
    one whose local date is d up to, not including, the first one whose local
    date is d + 1 (a local midnight that a clock change skips starts its day at
    the change). Both ends are also dated directly, so a clock that went back
    across midnight cannot pass. Naive times (TIMESTAMP_NTZ, ``timezone`` None)
    are dated by their own wall clock.
    """
    if (earliest.tzinfo is None) != (timezone is None) or latest.tzinfo != earliest.tzinfo:
        return False
    if timezone is None:
        start = dt.datetime.combine(day, dt.time())
        return start <= earliest <= latest < start + ONE_DAY
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    # fold=0 on a skipped midnight gives the instant of the change, whose local
    # time is the first one of the day.
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + ONE_DAY, dt.time(), tzinfo=zone)
    return (
        start <= earliest <= latest < end
        and earliest.astimezone(zone).date() == day
        and latest.astimezone(zone).date() == day
    )
