"""What every step of a run is given, and what a run returns."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from clfeval.config import Config
from clfeval.core.bins import BinLayout
from clfeval.core.windows import WindowRange
from clfeval.errors import RunInterrupted
from clfeval.io import tables
from clfeval.schema import EXCLUDED_BY_FILTER, NOT_BAD_REASONS
from clfeval.tasks import Task

Log = Callable[[str], None]


@dataclass
class StopRequest:
    """A signal asked the run to stop (``reason``: its name; ``exit_code``).

    Set by the job's signal handler, which also cancels the running Spark jobs
    until the run ``acknowledged`` it; the run then records itself as failed,
    naming the signal, at its next step (``Phases``) or when its Spark job ends
    cancelled."""

    reason: str | None = None
    exit_code: int = 1
    acknowledged: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise RunInterrupted when a stop was asked and not yet acknowledged."""
        if self.reason is not None and not self.acknowledged.is_set():
            raise RunInterrupted(self.reason, self.exit_code)


class Phases:
    """One console line per phase, with the time since the run started.

    ``live``: the console is a terminal, where a progress line is redrawn in
    place (``progress``) and ended before the next phase's line. Each phase first
    checks ``stop``: a run asked to stop goes no further."""

    def __init__(self, log: Log, live: bool = False, stop: StopRequest | None = None):
        self.log = log
        self.live = live
        self.stop = stop or StopRequest()
        self.started = time.monotonic()
        self._open_progress = False

    def _stamp(self, text: str) -> str:
        return f"[clfeval {time.monotonic() - self.started:7.1f}s] {text}"

    def __call__(self, text: str) -> None:
        self.stop.check()
        self._end_progress()
        self.log(self._stamp(text))

    def progress(self, text: str, final: bool = False, abandon: bool = False) -> None:
        """A progress line: redrawn in place on a terminal until ``final``; else a
        line of its own each time it is called. ``abandon`` ends an open line."""
        if abandon:
            self._end_progress()
            return
        if not self.live:
            self.log(self._stamp(text))
            return
        sys.stdout.write("\r" + self._stamp(text).ljust(79))
        sys.stdout.flush()
        self._open_progress = True
        if final:
            self._end_progress()

    def _end_progress(self) -> None:
        if self._open_progress:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._open_progress = False


@dataclass(frozen=True)
class RunContext:
    """The session, the validated config, its task and the console of one run."""

    spark: SparkSession
    config: Config
    task: Task
    phase: Phases

    @property
    def layout(self) -> BinLayout:
        return self.task.layout

    def output(self, table: str) -> tables.TableLocation:
        """Where output table ``table`` lives."""
        return tables.output_location(self.config, table)


@dataclass
class RunResult:
    """What a run did; the sequencer fills it in as the steps return."""

    run_id: str
    status: str
    mode: str = "range"
    rows_read: int = 0
    rows_evaluated: int = 0
    reject_counts: dict[str, int] = field(default_factory=dict)
    windows: list[WindowRange] = field(default_factory=list)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    summary: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    # Why the run's selection matched no input row (None when it matched some).
    empty_selection: str | None = None

    @property
    def rows_excluded(self) -> int:
        """Rows ``input.filter`` left out (counted, neither evaluated nor rejected)."""
        return self.reject_counts.get(EXCLUDED_BY_FILTER, 0)

    @property
    def rows_rejected(self) -> int:
        """Rows the filter kept that are not in the metrics: bad and unlabeled rows."""
        return sum(self.reject_counts.values()) - self.rows_excluded

    @property
    def rows_bad(self) -> int:
        """Rejected rows that count towards ``run.max_reject_fraction``."""
        return sum(self.reject_counts.values()) - sum(
            self.reject_counts.get(r, 0) for r in NOT_BAD_REASONS
        )
