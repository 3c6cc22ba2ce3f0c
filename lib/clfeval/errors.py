"""Errors a user can act on, and the exit codes the jobs map them to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_CONTRACT = 3
EXIT_REJECT_LIMIT = 4
EXIT_ALERT = 5  # only with --fail-on-alert: the run succeeded and an alert rule fired


class RunInterrupted(BaseException):
    """A signal (SIGTERM from a scheduler's timeout, SIGINT) stopped the run; the
    run's row records it as failed, naming the signal."""

    def __init__(self, signal_name: str, exit_code: int):
        super().__init__(f"stopped by {signal_name}")
        self.exit_code = exit_code


class ClfevalError(Exception):
    """An error with a list of problems, reported together in one paragraph."""

    exit_code = EXIT_UNEXPECTED
    title = "clfeval error"

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(self.message())

    def message(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return f"{self.title} ({count} {noun}): " + "; ".join(self.problems)


class ConfigError(ClfevalError):
    """The configuration or command line is invalid; nothing was read or written."""

    exit_code = EXIT_CONFIG
    title = "configuration error"


class ContractError(ClfevalError):
    """The input table violates the input contract; nothing was scanned or written."""

    exit_code = EXIT_CONTRACT
    title = "input contract error"


class RejectLimitError(ClfevalError):
    """Too many rows were rejected; the run failed before writing any metrics."""

    exit_code = EXIT_REJECT_LIMIT
    title = "reject limit exceeded"


EXIT_CONFLICT = 6


class ConcurrentRunError(ClfevalError):
    """Concurrent runs kept committing to the same windows; this run gave up
    after run.max_attempts attempts. Tables hold committed states only."""

    exit_code = EXIT_CONFLICT
    title = "concurrent runs"


EXIT_ENVIRONMENT = 7


class UnsupportedSparkError(ClfevalError):
    """The session's Spark is not one of the supported lines."""

    exit_code = EXIT_ENVIRONMENT
    title = "unsupported Spark"


EXIT_OUTPUT = 8


class OutputError(ClfevalError):
    """An output location that cannot hold clfeval's tables: not writable, a
    folder that is not a Delta table, or a Delta table that cannot be read."""

    exit_code = EXIT_OUTPUT
    title = "output location"


EXIT_EMPTY = 9  # only with --fail-on-empty: the selection matched no input rows


class EmptySelectionError(ClfevalError):
    """With --fail-on-empty: the run's selection matched no input rows."""

    exit_code = EXIT_EMPTY
    title = "nothing to evaluate"
