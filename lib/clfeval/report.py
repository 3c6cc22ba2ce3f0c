"""A self-contained HTML report of one model from the output tables.

Reads only the small output tables (metrics, curves, confusion_matrices,
alerts), never the predictions. Plots are rendered with matplotlib to PNG and
embedded as base64 ``data:`` URIs, so the file needs no network when viewed.

Sections: headline metrics with confidence intervals (overall slice, latest
window), ROC and PR curves with the operating thresholds marked, confusion
matrix heatmap, daily trends of ROC AUC / average precision / log loss, worst
slices, and fired alerts.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

HEADLINE = ("roc_auc", "average_precision", "log_loss", "brier_score", "accuracy", "f1", "mcc")


@dataclass
class ReportData:
    """The rows of one model (and version) a report needs, as pandas frames."""

    model: str
    version: str | None
    metrics: pd.DataFrame
    curves: pd.DataFrame
    confusion: pd.DataFrame
    alerts: pd.DataFrame


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(fig, alt: str) -> str:
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>none</p>"
    return frame.to_html(
        index=False, float_format=lambda x: f"{x:.4f}", border=0, classes="t", na_rep=""
    )


def _latest_day(data: ReportData) -> dt.date:
    days = data.metrics[data.metrics.granularity == "day"].window_start
    return max(days)


def _headline(data: ReportData, day: dt.date, threshold: float | None) -> pd.DataFrame:
    m = data.metrics
    rows = m[(m.slice_key == "") & (m.granularity == "day") & (m.window_start == day)]
    rows = rows[rows.metric.isin(HEADLINE)]
    rows = rows[rows.threshold.isna() | (rows.threshold == threshold)]
    return rows[
        ["model_version", "metric", "threshold", "value", "ci_lower", "ci_upper", "n_rows"]
    ].sort_values(["model_version", "metric"])


def _curves_figure(data: ReportData, day: dt.date, thresholds: list[float]):
    c = data.curves
    c = c[(c.slice_key == "") & (c.granularity == "day") & (c.window_start == day)]
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for version, part in c.groupby("model_version"):
        roc = part[part.curve == "roc"].sort_values("point")
        pr = part[part.curve == "pr"].sort_values("point")
        line = roc_ax.plot(roc.x, roc.y, label=f"{version}")[0]
        pr_ax.plot(pr.x, pr.y, label=f"{version}", color=line.get_color())
        for t in thresholds:  # operating points: the curve point at that threshold
            if len(roc):
                at = roc.iloc[int(np.argmin(np.abs(roc.threshold.to_numpy() - t)))]
                roc_ax.plot(at.x, at.y, "o", color=line.get_color())
                roc_ax.annotate(f"{t:g}", (at.x, at.y), textcoords="offset points", xytext=(4, -10))
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {day}")
    pr_ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, {day}")
    roc_ax.legend()
    return fig


def _confusion_figure(data: ReportData, day: dt.date, threshold: float | None):
    c = data.confusion
    c = c[(c.slice_key == "") & (c.granularity == "day") & (c.window_start == day)]
    if threshold is not None:
        c = c[c.threshold == threshold]
    versions = sorted(c.model_version.unique())
    fig, axes = plt.subplots(1, max(len(versions), 1), figsize=(4 * max(len(versions), 1), 4))
    for ax, version in zip(np.atleast_1d(axes), versions, strict=False):
        matrix = c[c.model_version == version].pivot_table(
            index="actual_label", columns="predicted_label", values="n_rows", aggfunc="sum"
        )
        ax.imshow(matrix.to_numpy(), cmap="Blues")
        ax.set_xticks(range(len(matrix.columns)), matrix.columns)
        ax.set_yticks(range(len(matrix.index)), matrix.index)
        ax.set(xlabel="predicted", ylabel="actual", title=f"{version}")
        for (i, j), n in np.ndenumerate(matrix.to_numpy()):
            ax.text(j, i, f"{int(n):,}", ha="center", va="center")
    return fig


def _trend_figure(data: ReportData):
    m = data.metrics
    m = m[(m.slice_key == "") & (m.granularity == "day") & m.threshold.isna()]
    names = [n for n in ("roc_auc", "average_precision", "log_loss") if n in set(m.metric)]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        for version, part in m[m.metric == name].groupby("model_version"):
            part = part.sort_values("window_start")
            ax.plot(part.window_start, part.value, marker="o", label=version)
            if part.ci_lower.notna().any():
                ax.fill_between(part.window_start, part.ci_lower, part.ci_upper, alpha=0.15)
        ax.set_title(name)
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    return fig


def _worst_slices(data: ReportData, min_rows: int = 100) -> pd.DataFrame:
    m = data.metrics
    m = m[(m.metric == "roc_auc") & (m.granularity == "day") & (m.slice_key != "")]
    m = m[(m.n_rows >= min_rows) & m.value.notna()]
    worst = (
        m.groupby(["model_version", "slice_key", "slice_value"])
        .agg(mean_auc=("value", "mean"), worst_day_auc=("value", "min"), rows=("n_rows", "sum"))
        .reset_index()
        .sort_values("mean_auc")
    )
    return worst.head(10)


def render(
    data: ReportData,
    thresholds: list[float],
    title: str | None = None,
    day: dt.date | None = None,
) -> str:
    """The whole report as one HTML string; headline, curves and confusion matrix
    are of ``day`` (default: the latest day in the tables)."""
    day = day or _latest_day(data)
    threshold = thresholds[0] if thresholds else None
    name = f"{data.model}" + (f" {data.version}" if data.version else "")
    alerts = data.alerts
    if not alerts.empty:
        alerts = alerts[
            ["rule", "model_version", "slice_key", "slice_value", "window_start", "metric",
             "value", "condition", "limit", "baseline_value"]
        ]  # fmt: skip
    sections = [
        f"<h2>Headline metrics, {day} (overall; threshold {threshold})</h2>",
        _table(_headline(data, day, threshold)),
        "<h2>ROC and PR curves</h2>",
        _img(_curves_figure(data, day, thresholds), "ROC and PR curves"),
        "<h2>Confusion matrix</h2>",
        _img(_confusion_figure(data, day, threshold), "confusion matrix"),
        "<h2>Trends</h2>",
        _img(_trend_figure(data), "metric trends"),
        "<h2>Worst slices (mean daily ROC AUC)</h2>",
        _table(_worst_slices(data)),
        "<h2>Alerts</h2>",
        _table(alerts),
    ]
    heading = html.escape(title or f"clfeval report: {name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table.t {{ border-collapse: collapse; font-size: 0.9em; }}
table.t td, table.t th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
img.plot {{ max-width: 100%; display: block; margin: 0.5em 0 1.5em; }}
</style></head>
<body><h1>{heading}</h1>
<p>Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from the clfeval output tables.</p>
{"".join(sections)}
</body></html>
"""
