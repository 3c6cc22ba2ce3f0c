"""What a central merge moves: the size of the stored daily states.

Reads a local ``score_histograms`` Delta table (no Spark: its ``_delta_log`` for
the live files, pyarrow for their rows) and prints, for the daily windows, the
bytes and rows per (model, version, day, slice value), the unit a merge reads
from each place (docs/multi-cloud.md).

    python benchmarks/state_size.py demo_output/metrics/score_histograms
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq


def live_files(table: Path) -> dict[str, dict]:
    """The table's current data files (path -> add action) from its JSON log."""
    files: dict[str, dict] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return files


def main(table: str) -> None:
    root = Path(table)
    daily = [a for a in live_files(root).values() if a["partitionValues"]["granularity"] == "day"]
    groups: Counter = Counter()
    slices: Counter = Counter()
    for add in daily:
        day = add["partitionValues"]["window_start"]
        columns = ["model_name", "model_version", "slice_key", "slice_value"]
        rows = pq.read_table(root / add["path"], columns=columns).to_pylist()
        for r in rows:
            key = (r["model_name"], r["model_version"], day, r["slice_key"], r["slice_value"])
            groups[key] += 1
            slices[r["slice_key"]] += 1
    size = sum(a["size"] for a in daily)
    days = len({a["partitionValues"]["window_start"] for a in daily})
    rows = sum(groups.values())
    overall = [n for k, n in groups.items() if k[3] == ""]
    print(f"daily windows: {days} days, {len(daily)} files, {size / 1e6:.2f} MB, {rows:,} rows")
    print(f"groups (model, version, day, slice value): {len(groups):,}")
    print(f"per group: {size / len(groups) / 1e3:.1f} kB, {rows / len(groups):.0f} rows on average")
    print(f"per (model, version, day), all slices: {size / days / 1e3 / _models(groups):.1f} kB")
    print(f"overall slice: {max(overall)} rows at most (non-empty bins)")
    print("rows per slice key:", dict(slices))


def _models(groups: Counter) -> int:
    return len({(k[0], k[1]) for k in groups})


if __name__ == "__main__":
    main(sys.argv[1])
