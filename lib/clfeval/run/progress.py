"""clfeval's own progress line for a long phase (the scan), in place of Spark's
stage bars: tasks done of total, read from Spark's status tracker.

On a terminal one line is redrawn in place; into a log file a line is written
at every further ~10% or every 30 s, so progress never interleaves with other
lines. A Spark Connect session has no status tracker here: only the final line.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from pyspark.sql import SparkSession

from clfeval import jvm
from clfeval.run.context import Phases

POLL_SECONDS = 0.25
LOG_EVERY_FRACTION = 0.1
LOG_EVERY_SECONDS = 30.0


class TaskProgress:
    """``with TaskProgress(spark, phase, "scanning input"):`` around the jobs of a phase."""

    def __init__(self, spark: SparkSession, phase: Phases, what: str):
        self.spark = spark
        self.phase = phase
        self.what = what
        self.done = 0
        self.total = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TaskProgress:
        if jvm.is_classic(self.spark):  # a status tracker to read
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if kind is None:
            tasks = f" ({self.total} of {self.total} tasks)" if self.total else ""
            self.phase.progress(f"{self.what}: done{tasks}", final=True)
        else:
            self.phase.progress("", final=True, abandon=True)

    def _counts(self) -> tuple[int, int]:
        return jvm.active_stage_tasks(self.spark) or (0, 0)

    def _watch(self) -> None:
        logged_fraction, logged_at = -1.0, time.monotonic()
        while not self._stop.wait(POLL_SECONDS):
            try:
                done, total = self._counts()
            except Exception:  # the tracker is best effort; the scan goes on without it
                return
            if total == 0:
                continue
            self.done, self.total = done, max(total, self.total)
            fraction = done / total
            text = f"{self.what}: {fraction:.0%} ({done} of {total} tasks)"
            if self.phase.live:
                self.phase.progress(text)
            elif (
                fraction - logged_fraction >= LOG_EVERY_FRACTION
                or time.monotonic() - logged_at >= LOG_EVERY_SECONDS
            ):
                self.phase.progress(text, final=True)
                logged_fraction, logged_at = fraction, time.monotonic()
