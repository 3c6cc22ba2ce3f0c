"""Alert rules over metric values (pure Python).

A rule selects metric rows (metric, optional threshold and class label, a
slice key or ``*`` for every slice, a granularity, at least ``min_rows`` rows)
and fires for a row when

* ``value < min_value`` or ``value > max_value`` (value bounds), or
* against a baseline value of the same metric row key, the change
  ``value − base`` (``change = "absolute"``) or ``(value − base) / |base|``
  (``"relative"``) falls below ``−max_drop`` or rises above ``max_rise``.

Baselines: ``previous_window`` (the latest earlier window of the same model
version, slice and granularity), ``window:YYYY-MM-DD`` (a fixed reference
window) or ``champion:<version>`` (another version of the same model on the
same window). A row without a baseline value is not compared (no alert).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AlertRule:
    """One ``[[alerts]]`` rule; see conf/demo.toml for the meaning of each key."""

    name: str = ""
    metric: str = ""
    threshold: float | None = None
    class_label: str | None = None
    slice_key: str = "*"
    min_rows: int = 0
    min_value: float | None = None
    max_value: float | None = None
    baseline: str = "previous_window"
    max_drop: float | None = None
    max_rise: float | None = None
    change: str = "absolute"
    granularity: str = "day"


@dataclass(frozen=True)
class MetricPoint:
    model_name: str
    model_version: str
    slice_key: str
    slice_value: str
    granularity: str
    window_start: dt.date
    window_end: dt.date
    metric: str
    class_label: str | None
    threshold: float | None
    value: float | None
    n_rows: int | None

    def series_key(self) -> tuple:
        """Everything but the window: the points one line of a trend chart joins."""
        return (
            self.model_name,
            self.model_version,
            self.slice_key,
            self.slice_value,
            self.granularity,
            self.metric,
            self.class_label,
            None if self.threshold is None else round(self.threshold, 12),
        )


def _selected(rule: AlertRule, p: MetricPoint) -> bool:
    return (
        p.metric == rule.metric
        and p.granularity == rule.granularity
        and (rule.slice_key == "*" or p.slice_key == rule.slice_key)
        and (rule.class_label is None or p.class_label == rule.class_label)
        and (
            rule.threshold is None
            or (p.threshold is not None and math.isclose(p.threshold, rule.threshold))
        )
        and p.value is not None
        and not math.isnan(p.value)
        and (p.n_rows or 0) >= rule.min_rows
    )


def _baseline(rule: AlertRule, p: MetricPoint, history: dict) -> float | None:
    kind, _, arg = rule.baseline.partition(":")
    if kind == "previous_window":
        earlier = [q for q in history.get(p.series_key(), []) if q.window_start < p.window_start]
        return max(earlier, key=lambda q: q.window_start).value if earlier else None
    if kind == "window":
        day = dt.date.fromisoformat(arg)
        same = [q for q in history.get(p.series_key(), []) if q.window_start == day]
        return same[0].value if same else None
    if arg == p.model_version:  # the champion is not compared with itself
        return None
    key = (p.model_name, arg, *p.series_key()[2:])
    same = [q for q in history.get(key, []) if q.window_start == p.window_start]
    return same[0].value if same else None


def evaluate_rules(
    rules: Iterable[AlertRule], current: Iterable[MetricPoint], history: Iterable[MetricPoint]
) -> list[dict]:
    """Fired alerts for the ``current`` rows; ``history`` holds every row baselines may use."""
    by_series: dict[tuple, list[MetricPoint]] = {}
    for q in history:
        if q.value is not None and not math.isnan(q.value):
            by_series.setdefault(q.series_key(), []).append(q)
    fired = []
    current = list(current)
    for rule in rules:
        for p in current:
            if not _selected(rule, p):
                continue
            checks: list[tuple[str, float, float | None, float | None]] = []
            if rule.min_value is not None and p.value < rule.min_value:
                checks.append(("min_value", rule.min_value, None, None))
            if rule.max_value is not None and p.value > rule.max_value:
                checks.append(("max_value", rule.max_value, None, None))
            if rule.max_drop is not None or rule.max_rise is not None:
                base = _baseline(rule, p, by_series)
                if base is not None:
                    change = p.value - base
                    if rule.change == "relative":
                        change = change / abs(base) if base != 0 else math.inf
                    if rule.max_drop is not None and change < -rule.max_drop:
                        checks.append(("max_drop", rule.max_drop, base, change))
                    if rule.max_rise is not None and change > rule.max_rise:
                        checks.append(("max_rise", rule.max_rise, base, change))
            for condition, limit, base, change in checks:
                fired.append(
                    {
                        "rule": rule.name,
                        "model_name": p.model_name,
                        "model_version": p.model_version,
                        "slice_key": p.slice_key,
                        "slice_value": p.slice_value,
                        "granularity": p.granularity,
                        "window_start": p.window_start,
                        "window_end": p.window_end,
                        "metric": p.metric,
                        "class_label": p.class_label,
                        "threshold": p.threshold,
                        "value": p.value,
                        "n_rows": p.n_rows,
                        "condition": condition,
                        "limit": limit,
                        "baseline": rule.baseline if base is not None else None,
                        "baseline_value": base,
                        "change": change,
                    }
                )
    return fired
