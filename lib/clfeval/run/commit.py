"""The commit protocol: the run's row in ``runs``, retries of commits that lost
a race with a concurrent run, and the checks that a run's reads are not stale.

Every table write is one Delta commit. A write that loses a race with a
concurrent run (Delta's conflict exceptions, or ``score_histograms`` changed
between this run's read and its writes: ``StaleReadError``) is repeated, at
most ``run.max_attempts`` times, after a jittered, growing pause.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from pyspark.sql import functions as F

from clfeval import __version__
from clfeval.errors import ConcurrentRunError
from clfeval.io import tables
from clfeval.run.context import RunContext, RunResult
from clfeval.run.plan import DayPlan, Source
from clfeval.run.states import ALL_DAYS, same_histograms

T = TypeVar("T")


class StaleReadError(Exception):
    """Another run committed to score_histograms between this run's read and write."""


# Pauses between attempts: exponential with full jitter (uniform in [0, cap]),
# the cap doubling from BACKOFF_FIRST_SECONDS up to BACKOFF_MAX_SECONDS, so that
# runs that collided once spread out instead of colliding again in step.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


def backoff_seconds(attempt: int) -> float:
    """The pause after failed attempt ``attempt`` (1-based)."""
    cap = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1))
    return random.uniform(0.1 * cap, cap)


def retrying(ctx: RunContext, what: str, action: Callable[[], T]) -> T:
    """Run ``action``; when its Delta commit loses a race with a concurrent run
    (or reads states another run replaced meanwhile), wait a jittered pause
    (``backoff_seconds``) and run it again, at most ``run.max_attempts`` times."""
    attempts = ctx.config.run.max_attempts
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not (isinstance(exc, StaleReadError) or tables.is_concurrent_modification(exc)):
                raise
            if attempt == attempts:
                raise ConcurrentRunError(
                    [
                        f"{what}: other runs committed to the same tables {attempts} times "
                        "(run.max_attempts); every table holds a committed state, rerun later"
                    ]
                ) from exc
            pause = backoff_seconds(attempt)
            ctx.phase(f"{what}: a concurrent run committed first; retrying in {pause:.1f}s")
            time.sleep(pause)
    raise AssertionError("unreachable")


def in_parallel(actions: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent actions (Delta commits to different tables, a summary) on
    threads: most of a small table's write is driver-side latency (log listing,
    commit), which overlaps. Waits for every action before raising the first
    error, so no write outlives a failed attempt."""
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        futures = {name: pool.submit(action) for name, action in actions.items()}
    # Leaving the pool waited for every action; result() re-raises an action's error.
    return {name: future.result() for name, future in futures.items()}


def no_other_daily_commit(ctx: RunContext, read_version: int | None, written: int | None) -> bool:
    """Whether the daily states stored just before this run's commit ``written``
    are those it read at ``read_version`` (its rollups summed them): no commit
    in between, or only ones that left the daily states as they were (identical
    rewrites by a concurrent run are harmless)."""
    assert written is not None
    if read_version is None:
        return written == 0
    return written == read_version + 1 or same_histograms(
        ctx, [ALL_DAYS], read_version, written - 1
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned(ctx: RunContext) -> list[str]:
    """Mark as 'abandoned' (append a final row) every run still 'running' whose
    driver is gone: its process is not alive on this host, or it started more
    than ``run.stale_after_hours`` ago. Returns their run ids."""
    runs = tables.read_runs(ctx.spark, ctx.config)
    if runs is None or "host" not in runs.columns:
        return []
    here, now = socket.gethostname(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    limit = dt.timedelta(hours=ctx.config.run.stale_after_hours)
    marked = []
    for row in runs.where(F.col("status") == F.lit("running")).collect():
        record = row.asDict()
        dead = (
            record["host"] == here
            and record["pid"] is not None
            and (record["pid"] != os.getpid() and not _process_alive(record["pid"]))
        )
        old = record["started_at"] is not None and now - record["started_at"] > limit
        if not (dead or old):
            continue
        why = "its process is gone" if dead else f"started over {limit} ago"
        fields = {"status": "abandoned", "message": f"abandoned: {why} (found by {here})"}
        retrying(
            ctx,
            "marking an abandoned run",
            lambda record=record, fields=fields: tables.finish_run(
                ctx.spark, ctx.config, record, fields
            ),
        )
        marked.append(record["run_id"])
    return marked


class RunRecord:
    """The run's row in ``runs``: appended as 'running' on a background thread
    while the input is scanned (reading writes nothing), then set to
    'succeeded' or 'failed' with what the run did."""

    def __init__(
        self,
        ctx: RunContext,
        sources: dict[str, Source],
        plan: DayPlan,
        start: dt.date | None,
        end: dt.date | None,
        input_name: str | None = None,
    ):
        """``input_name``: what ``runs.input`` names (default: the predictions table)."""
        self.ctx = ctx
        self.run_id = uuid.uuid4().hex
        config = ctx.config
        self.input_versions = {name: s.version for name, s in sources.items()}
        self.row = {
            "run_id": self.run_id,
            "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "status": "running",
            "config_hash": config.fingerprint(),
            "results_hash": config.results_fingerprint(),
            "code_version": __version__,
            "input": input_name or str(sources["predictions"].loc),
            "input_version": None if input_name else sources["predictions"].version,
            "input_versions": self.input_versions,
            "input_table_ids": {name: s.table_id for name, s in sources.items()},
            "mode": plan.mode,
            "start_date": start,
            "end_date": end,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state_settings": json.dumps(config.state_settings(), sort_keys=True, default=str),
        }
        self._started: Future | None = None

    def start(self, pool: ThreadPoolExecutor) -> None:
        """Append the 'running' row on ``pool``; ``wait_started`` waits for it."""
        self._started = pool.submit(
            retrying,
            self.ctx,
            "recording the run",
            lambda: tables.start_run(self.ctx.spark, self.ctx.config, self.row),
        )

    def wait_started(self) -> None:
        """Wait for the 'running' row (re-raises its error)."""
        assert self._started is not None
        self._started.result()

    def start_failed(self) -> bool:
        """Whether appending the 'running' row failed (then no row to finish)."""
        assert self._started is not None
        return self._started.exception() is not None

    def finish(self, result: RunResult, message: str | None = None) -> None:
        """Set the row's final fields from ``result`` (and the failure ``message``)."""
        fields = {
            "status": result.status,
            "rows_read": result.rows_read,
            "rows_evaluated": result.rows_evaluated,
            "rows_rejected": result.rows_rejected,
            "reject_counts": result.reject_counts,
            "tables_written": sorted(result.output_versions),
            "output_versions": result.output_versions,
            "windows": [
                {"granularity": w.granularity, "first_start": w.first, "last_start": w.last}
                for w in result.windows
            ],
            "attempts": result.attempts,
        }
        if message is not None:
            fields["message"] = message[:4000]
        what = "recording the failure" if result.status == "failed" else "recording the run"
        self.wait_started()
        retrying(
            self.ctx,
            what,
            lambda: tables.finish_run(self.ctx.spark, self.ctx.config, self.row, fields),
        )
