"""Command-line front ends of the jobs (argument parsing, exit codes, console output)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator

from clfeval.errors import (
    EXIT_ALERT,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNEXPECTED,
    ClfevalError,
    ConfigError,
    EmptySelectionError,
    RunInterrupted,
)

EVALUATE_HELP = """\
Evaluate a classifier's predictions (a Delta table) and write Delta tables of
metrics under output.path (or output.catalog_schema). Binary models
(task.type = "binary": a score of the positive class) and multiclass models
(task.type = "multiclass": a probability per class in task.classes).

  score_histograms    mergeable daily per-bin states (model x version x slice x day)
  confusion_matrices  counts and weights at every operating threshold (K x K: multiclass)
  metrics             long format: metric, class_label, threshold, value, bounds, counts
  curves              ROC and PR points with their thresholds (per class: multiclass)
  runs                one row per run: status, input versions, rows read, rejects
  alerts              fired [[alerts]] rules with the values compared (when rules exist)
  metric_changes      each metric's change against the previous window (output.drift)
  quarantine          rejected input rows with their reason (output.quarantine)

Which days: with --start-date/--end-date, those days; with --full, every day;
otherwise (the nightly default) only the days whose predictions or labels
changed since the last successful run of the same config (Delta Change Data
Feed where the table records it, else the Delta transaction log), plus every
week/month/rolling window containing them. The first run processes
run.initial_lookback_days days (0: all). A rerun replaces exactly its own
windows; a killed run leaves every table at a committed state.

exit codes:
  0  success
  2  configuration or command-line error (every problem listed)
  3  input contract error: missing input, missing column, wrong type
  4  too many rejected rows (run.max_reject_fraction); nothing was written
  5  with --fail-on-alert: the run succeeded and at least one alert rule fired
  6  concurrent runs kept committing to the same windows (run.max_attempts)
  7  unsupported Spark version (supported: 3.5, 4.0, 4.2)
  8  output location not writable, not a Delta table, or unreadable
  9  with --fail-on-empty: the selection matched no input rows
  1  unexpected failure

The console shows clfeval's lines only; Spark's own output (dependency
resolution, logs) goes to a file named at the end (--verbose: to the console).
"""

EVALUATE_EPILOG = """\
examples:
  python jobs/evaluate.py --config conf/demo.toml              # changed days only
  python jobs/evaluate.py --config conf/demo.toml --full       # every day
  python jobs/evaluate.py --config conf/demo.toml --start-date 2026-11-01 --end-date 2026-11-07
  python jobs/evaluate.py --config conf/demo.toml --set metrics.thresholds='[0.1, 0.5]'
  python jobs/evaluate.py --config conf/demo.toml --json > result.json   # for orchestrators
  spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/evaluate.py --config ...
"""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class _Parser(argparse.ArgumentParser):
    """argparse that exits with the configuration-error code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"configuration error (1 problem): {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)


def evaluate_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="evaluate.py",
        description=EVALUATE_HELP,
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="TOML config (see conf/demo.toml)")
    p.add_argument(
        "--start-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="first event day to evaluate (default: the earliest in the input)",
    )
    p.add_argument(
        "--end-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="last event day to evaluate, inclusive (default: the latest)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="evaluate every day in the input (default without dates: only the days whose "
        "predictions or labels changed since the last successful run)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value; the value is TOML (repeatable)",
    )
    p.add_argument("--master", help="Spark master when run with python (default: local[*])")
    p.add_argument(
        "--fail-on-alert",
        action="store_true",
        help="exit with code 5 when an alert rule fired (tables are written either way)",
    )
    p.add_argument(
        "--fail-on-empty",
        action="store_true",
        help="exit with code 9 when the selection (dates, input.models) matched no input row "
        "(default: a warning, exit 0)",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--verbose", action="store_true", help="Spark's own output on the console too"
    )
    shown.add_argument("--quiet", action="store_true", help="print only the final tally")
    shown.add_argument(
        "--json",
        action="store_true",
        help="print only the run's result as one JSON object (for orchestrators)",
    )
    return p


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain fixed-width table for the console."""

    def cell(v: object) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


SHOWN_ALERTS = 5


def print_summary(result) -> None:
    """Whole-window figures per model version, the rejects and fired alerts."""
    if result.summary:
        print()
        columns = list(result.summary[0])
        print(format_table(result.summary, columns))
    if result.reject_counts:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(result.reject_counts.items()))
        print(f"rejected rows: {reasons}")
    if result.alerts:
        print(f"{len(result.alerts)} alert(s) fired (table alerts), the first:")
        columns = ["rule", "model_version", "slice_key", "slice_value", "window_start"]
        columns += ["metric", "value", "condition", "limit"]
        print(format_table(result.alerts[:SHOWN_ALERTS], columns))


def tally(result, output: str, log: str | None) -> list[str]:
    """The run in two or three lines: what it did and where the tables went."""
    windows = "; ".join(f"{w.granularity} {w.first}..{w.last}" for w in result.windows)
    lines = [
        f"run {result.run_id} {result.status} ({result.mode}): {result.rows_read:,} rows read, "
        f"{result.rows_evaluated:,} evaluated, {result.rows_rejected:,} rejected"
        + (f"; windows {windows}" if windows else ""),
    ]
    if log:
        lines.append(f"Spark's log: {log}")
    written = ", ".join(sorted(result.output_versions)) or "none"
    lines.append(f"tables written to {output}: {written}")
    return lines


def result_json(result, output: str) -> str:
    """The run's result for orchestrators (one JSON object)."""
    import json

    return json.dumps(
        {
            "run_id": result.run_id,
            "status": result.status,
            "mode": result.mode,
            "rows_read": result.rows_read,
            "rows_evaluated": result.rows_evaluated,
            "rows_rejected": result.rows_rejected,
            "reject_counts": result.reject_counts,
            "windows": [
                {"granularity": w.granularity, "first": str(w.first), "last": str(w.last)}
                for w in result.windows
            ],
            "output": output,
            "output_versions": result.output_versions,
            "alerts": len(result.alerts),
            "empty_selection": result.empty_selection,
            "summary": result.summary,
        },
        default=str,
    )


def run_guarded(job: Callable[[], int], verbose: bool = False) -> int:
    """Run a job body; its errors become one message on stderr and the exit code.

    An unexpected failure prints its first line and where its whole traceback
    went (a file; on the console too with ``verbose``)."""
    try:
        return job()
    except ClfevalError as exc:
        print(exc.message(), file=sys.stderr)
        return exc.exit_code
    except RunInterrupted as exc:
        print(f"clfeval: {exc}; the run is recorded as failed", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        import tempfile

        text = traceback.format_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        with tempfile.NamedTemporaryFile(
            "w", prefix="clfeval-failure-", suffix=".txt", delete=False
        ) as out:
            out.write(text)
        if verbose:
            print(text, file=sys.stderr)
        print(
            f"clfeval: unexpected failure: {type(exc).__name__}: {first} "
            f"(the whole traceback is in {out.name})",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED


@contextlib.contextmanager
def signals_stop_the_run(spark, stop) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT ask the run to stop (``stop``, a
    ``run.context.StopRequest``): a thread cancels its Spark jobs until the run
    acknowledges, the run records 'failed' naming the signal and raises
    RunInterrupted (exit code 128 + signal). Nothing is raised inside a call
    into Spark, which would leave its connection unusable for the recording."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from clfeval.io.session import cancel_jobs

    def cancel_until_acknowledged() -> None:
        deadline = time.monotonic() + CANCEL_SECONDS
        while not stop.acknowledged.wait(0.5) and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                cancel_jobs(spark)

    def handler(signum: int, _frame: object) -> None:
        if stop.reason is None:
            stop.reason, stop.exit_code = signal.Signals(signum).name, 128 + signum
            threading.Thread(target=cancel_until_acknowledged, daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# How long a stop request cancels the run's Spark jobs before it gives up.
CANCEL_SECONDS = 120


def evaluate_main(argv: list[str] | None = None) -> int:
    args = evaluate_parser().parse_args(argv)

    def job() -> int:
        from clfeval.config import load_config

        config = load_config(args.config, args.set)
        if args.start_date and args.end_date and args.start_date > args.end_date:
            raise ConfigError(
                [f"--start-date {args.start_date} is after --end-date {args.end_date}"]
            )
        if args.full and (args.start_date or args.end_date):
            raise ConfigError(
                ["--full evaluates every day: give it without --start-date/--end-date"]
            )
        from clfeval.io.session import build_session, spark_log
        from clfeval.pipeline import run_evaluation

        quiet = not args.verbose
        spark = build_session(
            "clfeval-evaluate", master=args.master, timezone=config.run.timezone, quiet=quiet
        )
        log_file = str(spark_log()) if quiet and spark_log().exists() else None
        from clfeval.run.context import StopRequest

        phases = not (args.quiet or args.json)
        stop = StopRequest()
        with signals_stop_the_run(spark, stop):
            result = run_evaluation(
                spark,
                config,
                args.start_date,
                args.end_date,
                full=args.full,
                log=print if phases else (lambda _: None),
                live=phases and sys.stdout.isatty(),
                stop=stop,
            )
        output = config.output.catalog_schema or config.output.path
        if args.json:
            print(result_json(result, output))
        else:
            if phases:
                print_summary(result)
            print("\n".join(tally(result, output, log_file)))
        if args.fail_on_empty and result.empty_selection:
            raise EmptySelectionError([result.empty_selection])
        if args.fail_on_alert and result.alerts:
            return EXIT_ALERT
        return EXIT_OK

    return run_guarded(job, verbose=args.verbose)


def generate_demo_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="generate_demo.py",
        description="Write a demo predictions Delta table (partitioned by date): 2 models x "
        "2 versions, segments region (5) and device (3), ~2%% positives with scores near 0, "
        "a weight column and a small share of bad rows.",
    )
    p.add_argument("--output", required=True, help="folder of the Delta table to (over)write")
    p.add_argument("--rows", type=int, default=1_000_000, help="number of rows (default 1M)")
    p.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    p.add_argument("--start-date", type=_date, default=dt.date(2026, 11, 1))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--master", help="Spark master (default: local[*])")
    p.add_argument(
        "--multiclass-output",
        help="also write a 5-class demo table (species_classifier v1/v2, probabilities as "
        "map<string,double>, string labels) here, with a fifth of --rows rows",
    )
    p.add_argument(
        "--multilabel-output",
        help="also write a 6-label demo table (content_tagger v1/v2, tags as array<string>, "
        "tag_scores as map<string,double>) here, with a tenth of --rows rows",
    )
    args = p.parse_args(argv)
    from clfeval.io.session import build_session
    from clfeval.io.tables import write_predictions
    from clfeval.spark.demo_data import (
        demo_multiclass_predictions,
        demo_multilabel_predictions,
        demo_predictions,
    )

    spark = build_session("clfeval-demo-data", master=args.master, quiet=True)
    df = demo_predictions(
        spark, rows=args.rows, days=args.days, start=args.start_date, seed=args.seed
    )
    print(f"[clfeval] writing {args.rows:,} demo predictions to {args.output}")
    write_predictions(df, args.output)
    print(f"[clfeval] wrote {args.output}")
    if args.multiclass_output:
        rows = max(args.rows // 5, 1)
        df = demo_multiclass_predictions(
            spark, rows=rows, days=args.days, start=args.start_date, seed=args.seed + 4
        )
        print(f"[clfeval] writing {rows:,} multiclass demo predictions to {args.multiclass_output}")
        write_predictions(df, args.multiclass_output)
        print(f"[clfeval] wrote {args.multiclass_output}")
    if args.multilabel_output:
        rows = max(args.rows // 10, 1)
        df = demo_multilabel_predictions(
            spark, rows=rows, days=args.days, start=args.start_date, seed=args.seed + 16
        )
        print(f"[clfeval] writing {rows:,} multilabel demo predictions to {args.multilabel_output}")
        write_predictions(df, args.multilabel_output)
        print(f"[clfeval] wrote {args.multilabel_output}")
    return EXIT_OK


def report_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="report.py",
        description="Write one self-contained interactive HTML report of a model from the "
        "output tables: headline metrics per version with intervals and changes, trends with "
        "alerts, a slice explorer, ROC/PR with operating points, confusion matrices, "
        "calibration, score distributions, rejected rows, provenance. Only the selected rows "
        "are read (filtered in Spark); the page needs no network.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the evaluation's TOML config")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument(
        "--version", action="append", default=[], help="a model version (repeat; default: all)"
    )
    p.add_argument(
        "--granularity",
        action="append",
        default=[],
        help="day, week, month or rolling_N (repeat; default: every one in the tables)",
    )
    p.add_argument("--since", type=_date, help="first window start shown (default: the first)")
    p.add_argument("--until", type=_date, help="last window start shown (default: the last)")
    p.add_argument(
        "--slice-key",
        action="append",
        default=None,
        help="slice key of the slice explorer, e.g. region or region,device (repeat; "
        "default: every one; '' for the overall slice only)",
    )
    p.add_argument("--champion", help="version the others are compared with (default: "
                   "output.drift_baseline's champion, else the first version)")  # fmt: skip
    p.add_argument("--output", required=True, metavar="FILE.html", help="where to write")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--master", help="Spark master (default: local[*])")
    args = p.parse_args(argv)

    def job() -> int:
        from clfeval.config import MODEL_NAME, load_config
        from clfeval.io.session import build_session
        from clfeval.report import ReportSelection, load_report_data, render

        config = load_config(args.config, args.set)
        named = [("--model", args.model), ("--champion", args.champion)]
        named += [("--version", v) for v in args.version]
        named += [("--granularity", g) for g in args.granularity]
        for flag, value in named:
            if value is not None and not MODEL_NAME.match(value):
                raise ConfigError([f"{flag} {value!r}: letters, digits and _ . : - only"])
        if args.since and args.until and args.since > args.until:
            raise ConfigError([f"--since {args.since} is after --until {args.until}"])
        slice_keys = None
        if args.slice_key is not None:
            slice_keys = tuple(k for k in args.slice_key if k)
        selection = ReportSelection(
            model=args.model,
            versions=tuple(args.version),
            granularities=tuple(args.granularity),
            since=args.since,
            until=args.until,
            slice_keys=slice_keys,
        )
        spark = build_session("clfeval-report", master=args.master, timezone=config.run.timezone)
        data = load_report_data(spark, config, selection, champion=args.champion)
        text = render(data)
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"[clfeval] wrote {args.output} ({len(text.encode()) / 1024:.0f} KiB)")
        return EXIT_OK

    return run_guarded(job)


def views_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="views.py",
        description="Create views latest_metrics, latest_confusion_matrices and latest_curves "
        "(each model's rows of its latest daily window) and latest_runs (each run's current "
        "state, its latest row in runs). In output.catalog_schema when set "
        "(next to the tables), else in the session's current database (persistent with a "
        "Hive or Unity Catalog metastore).",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the evaluation's TOML config")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--master", help="Spark master (default: local[*])")
    args = p.parse_args(argv)

    def job() -> int:
        from clfeval.config import load_config
        from clfeval.io import tables
        from clfeval.io.session import build_session

        config = load_config(args.config, args.set)
        spark = build_session("clfeval-views", master=args.master, timezone=config.run.timezone)
        for view in tables.create_latest_views(spark, config):
            print(f"[clfeval] created view {view}")
        if config.output.catalog_schema is None and not tables.views_persist(spark):
            print(
                "[clfeval] the session has no persistent catalog "
                "(spark.sql.catalogImplementation=in-memory): the views last as long as it does; "
                "set output.catalog_schema for views in your catalog"
            )
        return EXIT_OK

    return run_guarded(job)


MERGE_HELP = """\
Merge the stored daily states (score_histograms) of clfeval runs in several
places (clouds, regions: the [[sources]] of the config) into central tables:
the same metrics, confusion matrices, curves, rollups, drift and alerts as one
run over all their predictions, with `source` as a slice column. Only states
cross between places, never a prediction (docs/multi-cloud.md).

Which days: as evaluate.py; without dates, the days whose stored states changed
in any source since the last successful merge of the same config.

exit codes: as evaluate.py; 3 also for a source that is missing or unreadable
(without --allow-missing-sources), listed twice, written by a newer clfeval, or
whose task, labels, bins, thresholds or slices differ from the config's.
"""

MERGE_EPILOG = """\
examples:
  python jobs/merge.py --config conf/merge.toml
  python jobs/merge.py --config conf/merge.toml --allow-missing-sources
  python jobs/merge.py --config conf/merge.toml \\
      --conf spark.jars.packages=org.apache.hadoop:hadoop-aws:3.5.0
"""


def merge_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="merge.py",
        description=MERGE_HELP,
        epilog=MERGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE", help="TOML with [[sources]]")
    p.add_argument("--start-date", type=_date, metavar="YYYY-MM-DD", help="first day to merge")
    p.add_argument("--end-date", type=_date, metavar="YYYY-MM-DD", help="last day, inclusive")
    p.add_argument("--full", action="store_true", help="merge every day the sources hold")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--master", help="Spark master when run with python (default: local[*])")
    p.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting of the session this job starts when run with python "
        "(object-store connectors and credentials; under spark-submit use its --conf)",
    )
    p.add_argument(
        "--allow-missing-sources",
        action="store_true",
        help="merge the sources that can be read and record the others in the run's row "
        "(default: fail naming them)",
    )
    p.add_argument("--fail-on-alert", action="store_true", help="exit 5 when an alert fired")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--verbose", action="store_true", help="Spark's own output too")
    shown.add_argument("--quiet", action="store_true", help="print only the final tally")
    shown.add_argument("--json", action="store_true", help="print only the result as JSON")
    return p


def merge_main(argv: list[str] | None = None) -> int:
    args = merge_parser().parse_args(argv)

    def job() -> int:
        from clfeval.config import load_config

        config = load_config(args.config, args.set)
        problems = [f"--conf {item!r}: expected KEY=VALUE" for item in args.conf if "=" not in item]
        if not config.sources:
            problems.append(f"--config {args.config}: a merge needs [[sources]]")
        if args.full and (args.start_date or args.end_date):
            problems.append("--full merges every day: give it without --start-date/--end-date")
        if problems:
            raise ConfigError(problems)
        from clfeval.io.session import build_session, spark_log
        from clfeval.pipeline import run_merge
        from clfeval.run.context import StopRequest

        quiet = not args.verbose
        spark = build_session(
            "clfeval-merge",
            master=args.master,
            timezone=config.run.timezone,
            extra_conf=dict(item.split("=", 1) for item in args.conf),
            quiet=quiet,
        )
        log_file = str(spark_log()) if quiet and spark_log().exists() else None
        phases = not (args.quiet or args.json)
        stop = StopRequest()
        with signals_stop_the_run(spark, stop):
            result = run_merge(
                spark,
                config,
                args.start_date,
                args.end_date,
                full=args.full,
                log=print if phases else (lambda _: None),
                live=phases and sys.stdout.isatty(),
                stop=stop,
                allow_missing=args.allow_missing_sources,
            )
        output = config.output.catalog_schema or config.output.path
        if args.json:
            print(result_json(result, output))
        else:
            if phases:
                print_summary(result)
            print("\n".join(tally(result, output, log_file)))
        if args.fail_on_alert and result.alerts:
            return EXIT_ALERT
        return EXIT_OK

    return run_guarded(job, verbose=args.verbose)
