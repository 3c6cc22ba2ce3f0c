"""The interactive HTML report, written by jobs/report.py and opened in headless Chromium.

Chromium is Debian's package (`make browser`), driven by Playwright for Python
through ``executable_path`` (no browser download). For the binary and the
multiclass demo model: the page loads with every request other than its own
file refused and recorded (none may be made), no console error and no page
error; every chart draws data (the items of its ``data_*`` marks in Vega's
scenegraph); changing the window, threshold or class selector changes what a
chart draws; the headline and slice-explorer tables are checked against the
metrics table read by Spark, and the drawn confusion-matrix counts against a
count of the predictions (a brute-force oracle). Full-page screenshots go to
``$CLFEVAL_ARTIFACTS`` (else the test's temporary folder).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

from clfeval.cli import report_main
from clfeval.errors import EXIT_CONFIG, EXIT_OK

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CLFEVAL_CHROMIUM", "/usr/bin/chromium")
MAX_BYTES = 5_000_000
REPORTS = {  # model -> (config, predictions folder of the demo output)
    "fraud_detector": ("demo.toml", "predictions"),
    "species_classifier": ("demo_multiclass.toml", "predictions_multiclass"),
}

# Items per data mark of every chart, from Vega's scenegraph (canvas or SVG alike).
COUNT_ITEMS = """() => {
  const out = {};
  for (const [id, view] of Object.entries(window.clfeval.views)) {
    const counts = {};
    const walk = (node) => {
      if (!node) return;
      if (node.marktype && node.name && node.name.startsWith("data_") && node.marktype !== "group")
        counts[node.name] = (counts[node.name] || 0) + (node.items || []).length;
      for (const item of node.items || []) walk(item);
    };
    walk(view.scenegraph().root);
    out[id] = counts;
  }
  return out;
}"""
# A fingerprint of what one chart draws: its data items' positions and texts.
DRAWN = """(id) => {
  const parts = [];
  const walk = (node) => {
    if (!node) return;
    if (node.name && node.name.startsWith("data_") && node.marktype !== "group")
      for (const i of node.items || []) parts.push([i.x, i.y, i.x2, i.y2, i.text].join(","));
    for (const item of node.items || []) walk(item);
  };
  walk(window.clfeval.views[id].scenegraph().root);
  return parts.join(";");
}"""
# The confusion-matrix cells as drawn: version, actual, predicted, count text.
DRAWN_CELLS = """() => {
  const out = [];
  const walk = (node) => {
    if (!node) return;
    if (node.name && node.name.startsWith("data_counts"))
      for (const i of node.items || [])
        out.push([i.datum.version, i.datum.actual_label, i.datum.predicted_label, i.text]);
    for (const item of node.items || []) walk(item);
  };
  walk(window.clfeval.views.confusion.scenegraph().root);
  return out;
}"""


def artifacts_dir(tmp_path_factory) -> Path:
    where = os.environ.get("CLFEVAL_ARTIFACTS")
    out = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def report_args(demo_output: Path, model: str) -> list[str]:
    config, predictions = REPORTS[model]
    return [
        "--config", str(ROOT / "conf" / config),
        "--set", f"output.path={demo_output / 'metrics'}",
        "--set", f"input.path={demo_output / predictions}",
        "--model", model,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reports(demo_output: Path, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    paths = {}
    for model in REPORTS:
        paths[model] = out / f"{model}.html"
        code = report_main([*report_args(demo_output, model), "--output", str(paths[model])])
        assert code == EXIT_OK
    return paths


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class OpenedReport:
    """One report open in a page: its console errors and refused requests."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

        def route(r) -> None:
            if r.request.url == path.as_uri():
                r.continue_()
            else:
                self.requests.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        started = time.perf_counter()
        self.page.goto(path.as_uri())
        self.page.wait_for_function("window.clfeval !== undefined")
        self.page.evaluate("window.clfeval.ready")
        self.seconds = time.perf_counter() - started

    def select(self, name: str, value: str) -> None:
        self.page.select_option(f"#sel-{name}", value)
        self.page.evaluate("window.clfeval.pending")

    def items(self) -> dict[str, dict[str, int]]:
        return self.page.evaluate(COUNT_ITEMS)

    def drawn(self, chart: str) -> str:
        return self.page.evaluate(DRAWN, chart)


@pytest.fixture(scope="module")
def opened(reports, browser, tmp_path_factory):
    pages = {model: OpenedReport(browser, path) for model, path in reports.items()}
    yield pages
    shots = artifacts_dir(tmp_path_factory)
    for model, report in pages.items():
        report.page.screenshot(path=str(shots / f"report-{model}-end.png"), full_page=True)
        report.page.close()


@pytest.mark.parametrize("model", list(REPORTS))
def test_report_is_one_small_file_that_opens_offline_without_errors(
    model: str, reports, opened, tmp_path_factory
) -> None:
    size = reports[model].stat().st_size
    assert size < MAX_BYTES, size
    report = opened[model]
    assert report.requests == []  # everything it needs is inside the file
    assert report.errors == []
    assert report.seconds < 2.0, report.seconds
    shots = artifacts_dir(tmp_path_factory)
    report.page.screenshot(path=str(shots / f"report-{model}.png"), full_page=True)


@pytest.mark.parametrize("model", list(REPORTS))
def test_every_chart_draws_data(model: str, opened) -> None:
    report = opened[model]
    # The month window holds every demo day, so every chart has rows there.
    report.select("granularity", "month")
    items = report.items()
    expected = {
        "roc": ["data_curve_marks", "data_points_marks"],
        "pr": ["data_curve_marks", "data_points_marks"],
        "confusion": ["data_cells_marks", "data_counts_marks"],
        "calibration": ["data_reliability_marks"],
        "distribution": ["data_bars_marks"],
        "rejected": ["data_rejected_marks"],
        "trend-day": ["data_band_marks", "data_line_marks"],
        "trend-week": ["data_line_marks"],
        "trend-month": ["data_line_marks"],
    }
    for chart, marks in expected.items():
        for mark in marks:
            assert items[chart].get(mark, 0) > 0, (chart, mark, items[chart])
    assert report.errors == []


def test_binary_selectors_redraw_the_charts(opened) -> None:
    report = opened["fraud_detector"]
    report.select("granularity", "day")
    before = {c: report.drawn(c) for c in ("roc", "confusion", "distribution")}
    report.select("window", "2026-11-02")
    after = {c: report.drawn(c) for c in ("roc", "confusion", "distribution")}
    assert all(before[c] != after[c] for c in before), "a window change redraws every chart"
    confusion = report.drawn("confusion")
    report.select("threshold", "0.5")
    assert report.drawn("confusion") != confusion
    trend = report.drawn("trend-day")
    report.select("metric", "log_loss")
    assert report.drawn("trend-day") != trend
    assert report.errors == []


def test_multiclass_draws_per_class_curves_and_a_k_by_k_matrix(opened) -> None:
    report = opened["species_classifier"]
    report.select("granularity", "month")
    classes = ["cat", "dog", "bird", "fish", "horse"]
    cells = report.page.evaluate(DRAWN_CELLS)
    versions = {c[0] for c in cells}
    assert len(cells) == len(versions) * len(classes) ** 2  # K x K per version
    drawn_classes = report.page.evaluate(
        """() => [...new Set(window.clfeval.views.roc.data('curves')
              .filter(d => d.granularity === 'month' && d.curve === 'roc')
              .map(d => d.class_label))].sort()"""
    )
    assert drawn_classes == sorted(classes)
    calibration = report.drawn("calibration")
    distribution = report.drawn("distribution")
    report.select("cls", "fish")
    assert report.drawn("calibration") != calibration
    assert report.drawn("distribution") != distribution
    per_class = report.page.locator("#per-class-table tbody tr")
    assert per_class.count() == len(classes) * len(versions)
    assert report.errors == []


def test_tables_show_the_metrics_table(opened, spark, demo_output: Path) -> None:
    """The headline's ROC AUC cells and the slice explorer's row counts are the
    metrics table's values (read here by Spark, to the 4 decimals shown)."""
    from pyspark.sql import functions as F

    report = opened["fraud_detector"]
    report.select("granularity", "week")
    window = report.page.eval_on_selector("#sel-window", "e => e.value")
    metrics = spark.read.format("delta").load(str(demo_output / "metrics" / "metrics"))
    rows = (
        metrics.where(
            (F.col("model_name") == "fraud_detector") & (F.col("metric") == "roc_auc")
            & (F.col("granularity") == "week")
            & (F.col("window_start") == F.lit(dt.date.fromisoformat(window)))
        )
        .select("model_version", "slice_key", "slice_value", "value", "n_rows")
        .collect()
    )  # fmt: skip
    overall = {r.model_version: r.value for r in rows if r.slice_key == ""}
    headline = report.page.locator("#headline-table tbody tr").first.inner_text()
    shown = [float(x) for x in re.findall(r"(?<![\[\d.])(\d\.\d{4})(?! *[\],])", headline)]
    for version in ("v1", "v2"):
        assert any(abs(x - overall[version]) <= 5e-5 for x in shown), (version, headline)
    explorer = report.page.locator("#slices-table tbody tr").all_inner_texts()
    by_slice = {(r.model_version, r.slice_key, r.slice_value): r.n_rows for r in rows}
    assert len(explorer) == len(by_slice)
    for line in explorer:
        version, slice_label, count = line.split("\t")[:3]
        key, _, value = slice_label.partition(" = ")
        key, value = ("", "") if slice_label == "overall" else (key, value)
        assert int(count.replace(",", "")) == by_slice[(version, key, value)], line
    # Sorting: a click on "rows" orders the explorer by it.
    report.page.click("#slices-table th[data-col='rows']")
    counts = [
        int(t.split("\t")[2].replace(",", ""))
        for t in report.page.locator("#slices-table tbody tr").all_inner_texts()
    ]
    assert counts == sorted(counts)


def test_confusion_counts_match_a_count_of_the_predictions(opened, spark, demo_output) -> None:
    """Brute force: rows of fraud_detector in the month window with a valid label
    and score, counted by (label, score >= 0.1), against the drawn cells."""
    from pyspark.sql import functions as F

    report = opened["fraud_detector"]
    report.select("granularity", "month")
    report.select("threshold", "0.1")
    drawn = {(v, a, p): int(n.replace(",", "")) for v, a, p, n in report.page.evaluate(DRAWN_CELLS)}
    p = spark.read.format("delta").load(str(demo_output / "predictions"))
    valid = (
        (F.col("model_name") == "fraud_detector") & F.col("label").isin(0, 1)
        & F.col("score").isNotNull() & ~F.isnan("score") & F.col("score").between(0, 1)
        & F.col("weight").isNotNull() & ~F.isnan("weight") & (F.col("weight") >= 0)
    )  # fmt: skip
    counted = (
        p.where(valid)
        .groupBy("model_version", F.col("label").cast("string").alias("actual"),
                 F.when(F.col("score") >= 0.1, "1").otherwise("0").alias("predicted"))
        .count()
        .collect()
    )  # fmt: skip
    expected = {(r.model_version, r.actual, r.predicted): r["count"] for r in counted}
    assert drawn == expected


def test_spark_reads_only_the_selection(spark, demo_output: Path) -> None:
    from clfeval.config import load_config
    from clfeval.report import ReportSelection, load_report_data

    config = load_config(ROOT / "conf" / "demo.toml", [f"output.path={demo_output / 'metrics'}"])
    since = dt.date(2026, 11, 2)
    selection = ReportSelection(
        model="fraud_detector", versions=("v2",), granularities=("day",), since=since,
        until=dt.date(2026, 11, 3), slice_keys=("region",),
    )  # fmt: skip
    data = load_report_data(spark, config, selection)
    for frame in (data.metrics, data.curves, data.confusion, data.distribution):
        assert not frame.empty
        assert set(frame.model_version) == {"v2"}
        assert set(frame.granularity) == {"day"}
        assert set(frame.window_start) == {since, dt.date(2026, 11, 3)}
    assert set(data.metrics.slice_key) == {"", "region"}
    assert set(data.curves.curve) <= {"roc", "pr", "calibration", "calibration_top_label"}
    assert set(data.metrics.threshold.dropna()) <= {0.05, 0.1, 0.5} | set(
        data.metrics[data.metrics.metric.str.startswith("recommended_")].threshold
    )


def test_bad_selections_are_clear_errors(demo_output: Path, tmp_path: Path, capsys) -> None:
    args = [*report_args(demo_output, "fraud_detector"), "--output", str(tmp_path / "x.html")]
    unknown = [a if a != "fraud_detector" else "no_such_model" for a in args]
    assert report_main(unknown) == EXIT_CONFIG
    assert "'no_such_model'" in capsys.readouterr().err
    assert report_main([*args, "--version", "v9"]) == EXIT_CONFIG
    assert "--version 'v9'" in capsys.readouterr().err
    injected = [a if a != "fraud_detector" else "x' OR '1'='1" for a in args]
    assert report_main(injected) == EXIT_CONFIG
    assert report_main([*args, "--since", "2027-01-01"]) == EXIT_CONFIG
    assert "windows from 2027-01-01" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


ALERT_RULE = """
[[alerts]]
name = "auc_floor"
metric = "roc_auc"
slice_key = ""
min_value = 0.99
"""


def test_fired_alerts_are_marked_on_the_trends(
    spark, demo_output: Path, browser, tmp_path_factory
) -> None:
    """A real run with an alert rule that fires (ROC AUC below 0.99) on one model
    and daily windows; the report marks every fired alert on the daily trend and
    lists it."""
    from clfeval.config import load_config
    from clfeval.pipeline import run_evaluation

    out = tmp_path_factory.mktemp("alerted")
    config_file = out / "alerts.toml"
    config_file.write_text((ROOT / "conf" / "demo.toml").read_text() + ALERT_RULE)
    sets = [
        f"input.path={demo_output / 'predictions'}",
        f"output.path={out / 'metrics'}",
        'input.models=["fraud_detector"]',
        'output.granularities=["day"]',
        "slices.segment_columns=[]",
        "slices.crosses=[]",
    ]
    run_evaluation(spark, load_config(config_file, sets), log=lambda _: None)
    fired = spark.read.format("delta").load(str(out / "metrics" / "alerts")).count()
    assert fired > 0
    page = out / "alerted.html"
    args = ["--config", str(config_file), "--model", "fraud_detector", "--output", str(page)]
    assert report_main([*args, *[x for s in sets for x in ("--set", s)]]) == EXIT_OK
    report = OpenedReport(browser, page)
    assert report.items()["trend-day"]["data_alerts_marks"] == fired  # v1 and v2, every day
    assert report.page.locator("#alerts-table tbody tr").count() == fired
    assert report.errors == [] and report.requests == []
    shots = artifacts_dir(tmp_path_factory)
    report.page.locator("#sec-trends").screenshot(path=str(shots / "report-alerts-trend.png"))
    report.page.close()
