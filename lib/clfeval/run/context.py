"""What every step of a run is given, and what a run returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from clfeval.config import Config
from clfeval.core.bins import BinLayout
from clfeval.core.windows import WindowRange
from clfeval.io import tables
from clfeval.schema import NOT_BAD_REASONS
from clfeval.tasks import Task

Log = Callable[[str], None]


class Phases:
    """One console line per phase, with the time since the run started."""

    def __init__(self, log: Log):
        self.log = log
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        self.log(f"[clfeval {time.monotonic() - self.started:7.1f}s] {text}")


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

    @property
    def rows_rejected(self) -> int:
        """Rows not in the metrics: bad rows, filtered-out rows and unlabeled rows."""
        return sum(self.reject_counts.values())

    @property
    def rows_bad(self) -> int:
        """Rejected rows that count towards ``run.max_reject_fraction``."""
        return self.rows_rejected - sum(self.reject_counts.get(r, 0) for r in NOT_BAD_REASONS)
