"""The Task interface: what a task type (binary, multiclass, ...) owns.

The pipeline asks the task and never branches on the task type. A task owns

* its input contract (``column_problems``) and normalization (``normalize``:
  the canonical columns its scan reads, every row tagged with the first reject
  reason that applies, its checks declared as ``RejectCheck`` data);
* the state its scan produces (``scan``; ``class_keys`` and ``class_columns``
  say how its state rows are told apart in ``score_histograms``) and which
  stored states are its own (``own_states``);
* the derive from states to the ``metrics``, ``confusion_matrices`` and
  ``curves`` rows (``derive``);
* the console summary (``summarize``).

The states of every task share ``schema.HISTOGRAM_SCHEMA``: sums per (key,
class columns, bin) that add up across days, partitions and runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clfeval.config import Config
from clfeval.spark import rejects, selection
from clfeval.spark.aggregate import JvmScan


class Task(ABC):
    """One task type, for one validated config."""

    #: ``task.type`` in the config.
    type_name: ClassVar[str]
    #: The scan's per-class key columns, next to the group keys and the bin.
    class_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether ``column_problems`` checks ``input.label_column`` itself (its
    #: labels are not one integer, boolean or string per row).
    checks_label_column: ClassVar[bool] = False

    def __init__(self, config: Config):
        self.config = config
        self.layout = config.layout()

    # -- input contract and normalization --------------------------------------

    @abstractmethod
    def column_problems(self, fields: dict[str, T.DataType]) -> list[str | None]:
        """Problems with the task's own columns (None entries are ignored)."""

    def prepare(self, df: DataFrame) -> DataFrame:
        """``df`` with the columns this task's reject checks read (default: as is)."""
        return df

    @abstractmethod
    def reject_checks(self, df: DataFrame) -> list[rejects.RejectCheck]:
        """The task's own checks of a prepared frame, after the shared leading
        checks and before the weight checks, in the order they are tested."""

    def reject_reason(self, df: DataFrame) -> Column:
        """The first reject reason of a prepared row, or NULL: every check in order."""
        checks = [
            *rejects.leading_checks(self.config, selection.event_day(df, self.config)),
            *self.reject_checks(df),
            *rejects.weight_checks(self.config),
        ]
        return rejects.first_reason(checks)

    @abstractmethod
    def normalize(self, df: DataFrame) -> DataFrame:
        """The canonical columns the scan reads: ``selection.key_columns``,
        ``reject_reason`` and the task's values (NULL on rejected rows)."""

    def rejected_rows(self, df: DataFrame, run_id: str) -> DataFrame:
        """The input's rejected rows, unchanged, with ``reject_reason`` and
        ``run_id`` (the quarantine table)."""
        prepared = self.prepare(df)
        internal = [c for c in prepared.columns if c.startswith(selection.INTERNAL_PREFIX)]
        return (
            prepared.withColumn("reject_reason", self.reject_reason(prepared))
            .where(F.col("reject_reason").isNotNull())
            .withColumn("run_id", F.lit(run_id))
            .drop(*internal)
        )

    # -- state -----------------------------------------------------------------

    @abstractmethod
    def state_grain(self) -> str:
        """What one group's state holds, in words (for the console)."""

    @abstractmethod
    def jvm_fits(self, rows: DataFrame, jvm: JvmScan) -> str | None:
        """Why clfeval's JVM scan cannot take ``rows`` (normalized), or None."""

    @abstractmethod
    def scan(self, rows: DataFrame, jvm: JvmScan | None) -> DataFrame:
        """The one aggregation of normalized rows into states at the finest grain
        (group keys, reject reason, ``class_keys``, bin, ``n_rows`` and the sums)."""

    def scan_description(self, rows: DataFrame, jvm: JvmScan | None, why_not: str = "") -> str:
        """The scan in one line: its grain and which engine runs it (``why_not``:
        why clfeval's JVM scan is not there)."""
        if jvm is None:
            how = f"Spark SQL ({why_not or 'JVM scan not found'})"
        else:
            misfit = self.jvm_fits(rows, jvm)
            how = "clfeval's JVM scan" if misfit is None else f"Spark SQL ({misfit})"
        return f"one aggregation to {self.state_grain()} per group ({how})"

    def state_layout_id(self) -> str:
        """``layout_id`` of this task's stored states: the bin layout's fingerprint,
        and where a task's state can take more than one shape, which one, so
        that states of different shapes are never added."""
        return self.layout.layout_id

    @abstractmethod
    def class_columns(self) -> list[Column]:
        """``class_label``, ``true_label``, ``predicted`` and ``true_rank`` of a
        state row, from the scan's ``class_keys``."""

    @abstractmethod
    def own_states(self) -> Column:
        """Which rows of ``score_histograms`` belong to this task's states."""

    # -- derive and summary ------------------------------------------------------

    def session_settings(self) -> dict[str, str]:
        """Spark settings this task's derive wants while a run lasts."""
        return {}

    @abstractmethod
    def derive(self, states: DataFrame) -> DataFrame:
        """Rows of the derived tables in one frame (``spark.derive.split_tables``)."""

    @abstractmethod
    def summarize(self, states: DataFrame) -> list[dict]:
        """Whole-window figures per model version, overall slice, for the console."""
