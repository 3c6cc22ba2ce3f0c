"""The report page: one HTML file with its data, its Vega-Lite specs and the
JavaScript of Vega, Vega-Lite and vega-embed inline, so it opens without a network.

Why Vega-Lite: its three libraries together are about 0.9 MB of JavaScript
(``vl_convert.javascript_bundle()``, from the ``vl-convert-python`` wheel, no
download at run time), where plotly.js is about 4.6 MB, which would leave
almost nothing of a 5 MB page for data. Its specs are JSON built here, and
their ``params`` are Vega signals that the page's selectors set, so one
selector redraws every chart without rebuilding it.

The data are column-oriented JSON: strings as a dictionary and codes, numbers
to 5 significant digits. Curves are thinned (a point is kept when it is at
least ``CURVE_STEP`` from the last kept one in x or y); operating points are
taken from the full curves before that.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import math
import re
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from clfeval.report import specs
from clfeval.report.data import (
    DISTRIBUTION_BUCKETS,
    HEADLINE_METRICS,
    PER_CLASS_METRICS,
    RECOMMENDED_PREFIX,
    SLICE_METRICS,
    ReportData,
)
from clfeval.schema import LABEL_COVERAGE, REJECTED_ROWS

CURVE_STEP = 0.02
ALERT_COLUMNS = ("rule", "version", "slice", "granularity", "window", "metric", "class_label",
                 "threshold", "value", "condition", "limit", "change")  # fmt: skip
OVERALL_LABEL = "overall"


@functools.cache
def vega_javascript() -> str:
    """Vega, Vega-Lite and vega-embed as one script (``window.vegaEmbed``)."""
    import vl_convert

    return vl_convert.javascript_bundle().replace("</script", "<\\/script")


def _number(x: Any) -> float | int | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(f"{float(x):.5g}")


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as {column: values}; text columns as {"d": distinct, "i": codes}."""
    out: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            if pd.api.types.is_integer_dtype(series):
                out[name] = [int(v) for v in series]
            else:
                out[name] = [_number(v) for v in series.astype(float)]
            continue
        text = series.map(lambda v: None if v is None or v is pd.NA or v != v else str(v))
        codes, distinct = pd.factorize(text, use_na_sentinel=True)
        out[name] = {"d": [str(v) for v in distinct], "i": [int(c) for c in codes]}
    return out


def _slice_label(key: pd.Series, value: pd.Series) -> pd.Series:
    return np.where(key == "", OVERALL_LABEL, key + " = " + value)


def _window(frame: pd.DataFrame) -> pd.Series:
    return frame["window_start"].map(lambda d: d.isoformat() if hasattr(d, "isoformat") else d)


def thin_curve(x: np.ndarray, y: np.ndarray, step: float = CURVE_STEP) -> np.ndarray:
    """Indices of the points kept: the first, the last, and every point at least
    ``step`` away (in x or y) from the last kept one."""
    keep = [0]
    last_x, last_y = x[0], y[0]
    for i in range(1, len(x) - 1):
        if abs(x[i] - last_x) >= step or abs(y[i] - last_y) >= step:
            keep.append(i)
            last_x, last_y = x[i], y[i]
    if len(x) > 1:
        keep.append(len(x) - 1)
    return np.asarray(keep)


def _curves_and_points(data: ReportData, recommended: pd.DataFrame):
    """Thinned curves, and the operating points: the point of each ROC and PR
    curve whose threshold is nearest a configured or a recommended threshold."""
    c = data.curves
    if c.empty:
        return c, pd.DataFrame()
    c = c.assign(window=_window(c)).sort_values(
        ["model_version", "granularity", "window", "curve", "class_label", "point"]
    )
    thinned, points = [], []
    rec_by_key: dict[tuple, list[tuple[str, float]]] = {}
    for r in recommended.itertuples():
        key = (r.model_version, r.granularity, r.window)
        rec_by_key.setdefault(key, []).append((r.metric[len(RECOMMENDED_PREFIX) :], r.threshold))
    for key, part in c.groupby(
        ["model_version", "granularity", "window", "curve", "class_label"], dropna=False, sort=False
    ):
        x, y = part.x.to_numpy(float), part.y.to_numpy(float)
        thinned.append(part.iloc[thin_curve(x, y)])
        if key[3] not in ("roc", "pr"):
            continue
        marks = [("configured", f"t = {t:g}", t) for t in data.thresholds]
        marks += [("recommended", f"{name}: {t:.3g}", t) for name, t in rec_by_key.get(key[:3], [])]
        limits = part.threshold.to_numpy(float)
        for kind, label, t in marks:
            if t is None or not math.isfinite(t):
                continue
            i = int(np.nanargmin(np.abs(limits - t)))
            points.append((*key, kind, label, t, x[i], y[i]))
    curves = pd.concat(thinned)
    curves = curves.rename(columns={"model_version": "version"})[
        ["version", "granularity", "window", "curve", "class_label", "point", "threshold", "x", "y"]
    ]
    cols = ["version", "granularity", "window", "curve", "class_label", "kind", "label",
            "threshold", "x", "y"]  # fmt: skip
    return curves, pd.DataFrame(points, columns=cols)


def _distribution(data: ReportData) -> pd.DataFrame:
    """Share of each group's rows per score bucket: the rows whose label is the
    class and the other rows."""
    d = data.distribution
    if d.empty:
        return d
    d = d.assign(window=_window(d))
    keys = ["model_version", "granularity", "window", "class_label"]
    rows = []
    for column, group in (("n_pos", "label = {c}"), ("n_neg", "other labels")):
        part = d[[*keys, "bucket", column]].rename(columns={column: "rows"})
        part = part.assign(group=[group.format(c=c) for c in part.class_label])
        total = part.groupby(keys, dropna=False)["rows"].transform("sum")
        rows.append(part.assign(share=np.where(total > 0, part.rows / total.clip(lower=1), 0)))
    out = pd.concat(rows)
    out = out.assign(
        lower=out.bucket / DISTRIBUTION_BUCKETS, upper=(out.bucket + 1) / DISTRIBUTION_BUCKETS
    )
    return out.rename(columns={"model_version": "version"})[
        ["version", "granularity", "window", "class_label", "group", "lower", "upper", "rows",
         "share"]
    ]  # fmt: skip


def _rejected_per_window(m: pd.DataFrame) -> pd.DataFrame:
    """Label coverage as written, and rejected rows of every window shown: the
    sum of its days' rows per version and reason (they are written per day)."""
    coverage = m[m.metric == LABEL_COVERAGE]
    days = m[(m.metric == REJECTED_ROWS) & (m.granularity == "day")]
    windows = m[m.slice == OVERALL_LABEL][["granularity", "window", "window_start", "window_end"]]
    parts = [coverage]
    for w in windows.drop_duplicates().itertuples():
        inside = days[(days.window_start >= w.window_start) & (days.window_start < w.window_end)]
        if inside.empty:
            continue
        summed = (
            inside.groupby(["version", "class_label"], as_index=False)
            .agg(value=("value", "sum"), n_rows=("n_rows", "sum"))
            .assign(granularity=w.granularity, window=w.window, metric=REJECTED_ROWS,
                    slice=OVERALL_LABEL)
        )  # fmt: skip
        parts.append(summed)
    return pd.concat(parts, ignore_index=True).reindex(columns=m.columns)


def _split_metrics(data: ReportData):
    m = data.metrics.assign(
        window=_window(data.metrics),
        slice=_slice_label(data.metrics.slice_key, data.metrics.slice_value),
    ).rename(columns={"model_version": "version"})
    overall = m[m.slice == OVERALL_LABEL]
    named = overall[~overall.metric.isin([REJECTED_ROWS, LABEL_COVERAGE])]
    labels_per_metric = named.groupby("metric").class_label.nunique()
    per_class_names = [n for n in PER_CLASS_METRICS if labels_per_metric.get(n, 0) > 1]
    is_per_class = m.metric.isin(per_class_names) & m.class_label.notna()
    per_class = m[is_per_class & (m.slice == OVERALL_LABEL)]
    # any metric of several classes (e.g. a multilabel model's per-label MCC) is not whole-model
    several = labels_per_metric[labels_per_metric > 1].index
    is_per_class = is_per_class | (m.metric.isin(several) & m.class_label.notna())
    rejected = _rejected_per_window(m)
    recommended = m[m.metric.str.startswith(RECOMMENDED_PREFIX) & (m.slice == OVERALL_LABEL)]
    whole = m[~is_per_class & ~m.metric.isin([REJECTED_ROWS, LABEL_COVERAGE])
              & ~m.metric.str.startswith(RECOMMENDED_PREFIX)]  # fmt: skip
    keep = ["version", "slice", "granularity", "window", "metric", "class_label", "threshold",
            "value", "ci_lower", "ci_upper", "n_rows", "weight_total"]  # fmt: skip
    return whole[keep], per_class[keep], rejected[keep], recommended, per_class_names


def payload(data: ReportData) -> dict[str, Any]:
    """The page's data and settings (what the selectors offer and what the
    tables, charts and texts are drawn from)."""
    whole, per_class, rejected, recommended, per_class_names = _split_metrics(data)
    curves, points = _curves_and_points(
        data, recommended.rename(columns={"version": "model_version"})
    )
    confusion = data.confusion
    if not confusion.empty:
        confusion = confusion.assign(window=_window(confusion)).rename(
            columns={"model_version": "version"}
        )[["version", "granularity", "window", "threshold", "actual_label", "predicted_label",
           "n_rows", "weight"]]  # fmt: skip
    alerts = data.alerts
    if not alerts.empty:
        alerts = alerts.assign(
            window=_window(alerts), slice=_slice_label(alerts.slice_key, alerts.slice_value)
        ).rename(columns={"model_version": "version"})
        alerts = alerts[list(ALERT_COLUMNS)]
    present = set(whole[whole.slice == OVERALL_LABEL].metric)
    headline = [n for n in HEADLINE_METRICS if n in present]
    slice_metrics = [
        n for n in SLICE_METRICS if n in set(whole[whole.slice != OVERALL_LABEL].metric)
    ]
    thresholds = sorted({float(t) for t in whole.threshold.dropna()})
    windows = {
        g: sorted(set(part.window))
        for g, part in whole[whole.slice == OVERALL_LABEL].groupby("granularity")
    }
    granularities = [g for g in ("day", "week", "month") if g in windows]
    granularities += sorted(g for g in windows if g not in granularities)
    versions = sorted(set(whole.version))
    champion = data.champion if data.champion in versions else versions[0]
    classes = sorted(set(per_class.class_label.dropna()))
    order = [c for c in data.class_order if c in classes] + [
        c for c in classes if c not in data.class_order
    ]
    labels = sorted(
        set(confusion.actual_label) | set(confusion.predicted_label) if not confusion.empty else []
    )
    label_order = [c for c in data.class_order if c in labels] or sorted(labels, reverse=True)
    slices = [OVERALL_LABEL, *sorted(set(whole.slice) - {OVERALL_LABEL})]
    return {
        "meta": {
            "model": data.selection.model,
            "versions": versions,
            "champion": champion,
            "granularities": granularities,
            "windows": windows,
            "slices": slices,
            "thresholds": thresholds,
            "classes": order,
            "labels": label_order,
            "headline": headline,
            "slice_metrics": slice_metrics,
            "per_class_metrics": per_class_names,
            "per_class": bool(per_class_names),
            "weighted": data.weight_column,
            "confidence_level": data.confidence_level,
        },
        "tables": {
            "metrics": _columns(whole),
            "per_class": _columns(per_class),
            "rejected": _columns(rejected),
            "curves": _columns(curves),
            "points": _columns(points),
            "confusion": _columns(confusion),
            "alerts": _columns(alerts),
            "distribution": _columns(_distribution(data)),
        },
    }


def _provenance(data: ReportData) -> str:
    runs = data.runs
    if runs.empty:
        return "<p>No runs table next to the metrics.</p>"
    same = runs[runs.results_hash == data.results_hash]
    note = "succeeded runs with this config's results settings"
    if same.empty:
        same, note = runs, "latest succeeded runs of this output (none with this config's settings)"
    rows = []
    for r in same.head(5).itertuples():
        windows = "; ".join(
            f"{w['granularity']} {w['first_start']}..{w['last_start']}"
            for w in (r.windows if r.windows is not None else [])
        )
        versions = ", ".join(f"{k} v{v}" for k, v in dict(r.input_versions or {}).items())
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    r.run_id,
                    f"{r.started_at:%Y-%m-%d %H:%M}",
                    r.mode,
                    r.input,
                    versions,
                    str(r.config_hash)[:12],
                    windows,
                )
            )
            + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "run id",
            "started (UTC)",
            "mode",
            "input",
            "input versions",
            "config hash",
            "windows written",
        )
    )
    return (
        f"<p>{html.escape(note)}; this report's config hash "
        f"<code>{data.config_hash[:12]}</code>.</p>"
        f'<table class="t" id="provenance"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render(data: ReportData, title: str | None = None) -> str:
    """The whole report as one self-contained HTML string."""
    body = payload(data)
    meta = body["meta"]
    body["specs"] = specs.all_specs(meta)
    sel = data.selection
    scope = (
        f"versions {', '.join(meta['versions'])}; "
        f"granularities {', '.join(meta['granularities'])}; "
        f"windows {sel.since or 'first'} to {sel.until or 'last'}; slice keys "
        + ("all" if sel.slice_keys is None else ", ".join(sel.slice_keys) or "none")
    )
    weighted = (
        f"Metric values and intervals are <b>weighted</b> by the column "
        f"<code>{html.escape(meta['weighted'])}</code>; <code>rows</code>, the confusion-matrix "
        "counts and the score distribution count rows (unweighted)."
        if meta["weighted"]
        else "No weight column is configured: every number is unweighted (rows)."
    )
    heading = html.escape(title or f"clfeval report: {sel.model}")
    package = resources.files("clfeval.report")
    parts = {
        "title": heading,
        "style": package.joinpath("page.css").read_text("utf-8"),
        "weighted": weighted,
        "level": f"{meta['confidence_level']:.0%}",
        "scope": html.escape(scope),
        "generated": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "provenance": _provenance(data),
        "data": json.dumps(body, separators=(",", ":"), allow_nan=False).replace("</", "<\\/"),
        "script": package.joinpath("page.js").read_text("utf-8"),
        "vega": vega_javascript(),
    }
    template = package.joinpath("page.html").read_text("utf-8")
    # One pass, so that no inserted text is scanned for placeholders again.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)
