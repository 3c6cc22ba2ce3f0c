"""Command-line front ends of the jobs (argument parsing, exit codes, console output)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Callable

from clfeval.errors import (
    EXIT_ALERT,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNEXPECTED,
    ClfevalError,
    ConfigError,
)

EVALUATE_HELP = """\
Evaluate a binary classifier's predictions (a Delta table) and write Delta
tables of metrics under output.path (or output.catalog_schema):

  score_histograms    mergeable daily per-bin states (model x version x slice x day)
  confusion_matrices  counts and weights at every operating threshold
  metrics             long format: metric, class_label, threshold, value, bounds, counts
  curves              ROC and PR points with their thresholds
  runs                one row per run: status, input version, rows read, rejects
  alerts              fired [[alerts]] rules with the values compared (when rules exist)

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
  1  unexpected failure
"""

EVALUATE_EPILOG = """\
examples:
  python jobs/evaluate.py --config conf/demo.toml              # changed days only
  python jobs/evaluate.py --config conf/demo.toml --full       # every day
  python jobs/evaluate.py --config conf/demo.toml --start-date 2026-11-01 --end-date 2026-11-07
  python jobs/evaluate.py --config conf/demo.toml --set metrics.thresholds='[0.1, 0.5]'
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


def print_summary(result) -> None:
    print()
    print(f"run {result.run_id}: {result.status}")
    print(f"mode: {result.mode}")
    for w in result.windows:
        print(f"windows: {w.granularity:<12} {w.first} .. {w.last}")
    print(
        f"rows read {result.rows_read:,}, evaluated {result.rows_evaluated:,}, "
        f"rejected {result.rows_rejected:,}"
    )
    for reason, n in sorted(result.reject_counts.items()):
        print(f"  rejected: {reason:<30} {n:,}")
    if result.summary:
        print()
        columns = list(result.summary[0])
        print(format_table(result.summary, columns))
    if result.alerts:
        print()
        print(f"{len(result.alerts)} alert(s) fired:")
        columns = ["rule", "model_version", "slice_key", "slice_value", "window_start"]
        columns += ["metric", "value", "condition", "limit", "baseline_value"]
        print(format_table(result.alerts[:20], columns))
    print()


def run_guarded(job: Callable[[], int]) -> int:
    """Run a job body; its errors become one message on stderr and the exit code."""
    try:
        return job()
    except ClfevalError as exc:
        print(exc.message(), file=sys.stderr)
        return exc.exit_code
    except Exception:
        traceback.print_exc()
        print("clfeval: unexpected failure (see the traceback above)", file=sys.stderr)
        return EXIT_UNEXPECTED


def evaluate_main(argv: list[str] | None = None) -> int:
    args = evaluate_parser().parse_args(argv)

    def job() -> int:
        from clfeval.config import load_config

        config = load_config(args.config, args.set)
        if args.start_date and args.end_date and args.start_date > args.end_date:
            raise ConfigError(
                [f"--start-date {args.start_date} is after --end-date {args.end_date}"]
            )
        from clfeval.io.session import build_session
        from clfeval.pipeline import run_evaluation

        spark = build_session("clfeval-evaluate", master=args.master, timezone=config.run.timezone)
        result = run_evaluation(spark, config, args.start_date, args.end_date, full=args.full)
        print_summary(result)
        if args.fail_on_alert and result.alerts:
            return EXIT_ALERT
        return EXIT_OK

    return run_guarded(job)


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
    args = p.parse_args(argv)
    from clfeval.io.session import build_session
    from clfeval.io.tables import write_predictions
    from clfeval.spark.demo_data import demo_multiclass_predictions, demo_predictions

    spark = build_session("clfeval-demo-data", master=args.master)
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
    return EXIT_OK


def report_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="report.py",
        description="Write one self-contained HTML report of a model from the output tables "
        "(headline metrics with intervals, ROC/PR curves with operating points, confusion "
        "matrix, trends, worst slices, alerts). Plots are embedded; no network at view time.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the evaluation's TOML config")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--version", help="one model version (default: all versions)")
    p.add_argument("--output", required=True, metavar="FILE.html", help="where to write")
    p.add_argument(
        "--day",
        type=_date,
        help="day of the headline metrics, curves and confusion matrix (default: the latest)",
    )
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--master", help="Spark master (default: local[*])")
    args = p.parse_args(argv)

    def job() -> int:
        import pandas as pd
        from pyspark.sql import functions as F

        from clfeval.config import MODEL_NAME, load_config
        from clfeval.io import tables
        from clfeval.io.session import build_session
        from clfeval.report import ReportData, render

        config = load_config(args.config, args.set)
        for flag, value in (("--model", args.model), ("--version", args.version)):
            if value is not None and not MODEL_NAME.match(value):
                raise ConfigError([f"{flag} {value!r}: letters, digits and _ . : - only"])
        spark = build_session("clfeval-report", master=args.master, timezone=config.run.timezone)
        frames = {}
        for name in ("metrics", "curves", "confusion_matrices", "alerts"):
            loc = tables.output_location(config, name)
            if not tables.table_exists(spark, loc):
                frames[name] = pd.DataFrame()
                continue
            df = tables.read_table(spark, loc).where(F.col("model_name") == F.lit(args.model))
            if args.version:
                df = df.where(F.col("model_version") == F.lit(args.version))
            frames[name] = df.toPandas()
        if frames["metrics"].empty:
            raise ConfigError(
                [f"--model {args.model!r}: no rows in {tables.output_location(config, 'metrics')}"]
            )
        data = ReportData(
            args.model,
            args.version,
            frames["metrics"],
            frames["curves"],
            frames["confusion_matrices"],
            frames["alerts"],
        )
        days = set(frames["metrics"].window_start)
        if args.day is not None and args.day not in days:
            raise ConfigError([f"--day {args.day}: no metrics of {args.model!r} on that day"])
        text = render(data, list(config.metrics.thresholds), day=args.day)
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"[clfeval] wrote {args.output} ({len(text) / 1024:.0f} KiB)")
        return EXIT_OK

    return run_guarded(job)


def views_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="views.py",
        description="Create views latest_metrics, latest_confusion_matrices and latest_curves: "
        "each model's rows of its latest daily window. In output.catalog_schema when set "
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
        return EXIT_OK

    return run_guarded(job)
