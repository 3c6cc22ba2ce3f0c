"""Label coverage of windows: the share of predictions that have a label.

Per model version and window, ``label_coverage = (rows - unlabeled) / rows``
where ``rows`` counts the window's predictions that ``input.filter`` kept
(rows without model, version or event time belong to no window) and
``unlabeled`` those whose id had no row in the labels table. Rollup windows sum
the days' counts (never average the daily shares).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from clfeval.core.windows import WindowRange, window_end, window_starts


@dataclass(frozen=True)
class DailyCoverage:
    model_name: str
    model_version: str
    day: dt.date
    rows: int
    unlabeled: int


def coverage_rows(daily: list[DailyCoverage], ranges: list[WindowRange]) -> list[dict]:
    """``label_coverage`` metric rows (overall slice) for every window of ``ranges``."""
    by_day: dict[tuple[str, str], dict[dt.date, DailyCoverage]] = defaultdict(dict)
    for d in daily:
        by_day[(d.model_name, d.model_version)][d.day] = d
    out = []
    for r in ranges:
        for start in window_starts(r):
            end = window_end(r.granularity, start)
            for (model, version), days in sorted(by_day.items()):
                inside = [d for day, d in days.items() if start <= day < end]
                rows = sum(d.rows for d in inside)
                if rows == 0:
                    continue
                labeled = rows - sum(d.unlabeled for d in inside)
                out.append(
                    {
                        "model_name": model,
                        "model_version": version,
                        "slice_key": "",
                        "slice_value": "",
                        "granularity": r.granularity,
                        "window_start": start,
                        "window_end": end,
                        "metric": "label_coverage",
                        "value": labeled / rows,
                        "n_rows": rows,
                    }
                )
    return out
