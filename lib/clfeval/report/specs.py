"""Vega-Lite specs of the report's charts, as JSON-ready dicts.

Every spec reads a named dataset (filled in by the page) and declares the
page's selector values as ``params`` (Vega signals: ``granularity``,
``window``, ``slice``, ``threshold``, ``cls``, ``metric``, each prefixed
``sel_``); the page sets
them on every chart when a selector changes. The marks that draw data are
named ``data_*``, so a test can count them in the page's SVG.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an id only, never fetched
PARAMS = ("granularity", "window", "slice", "threshold", "cls", "metric")
SIGNAL = "sel_"  # signal names: sel_granularity, ... (Vega has a function named slice)
WINDOW = "datum.granularity === sel_granularity && datum.window === sel_window"


def _params(meta: dict[str, Any]) -> list[dict[str, Any]]:
    granularity = meta["granularities"][0] if meta["granularities"] else None
    windows = meta["windows"].get(granularity, [])
    values = {
        "granularity": granularity,
        "window": windows[-1] if windows else None,
        "slice": "overall",
        "threshold": meta["thresholds"][0] if meta["thresholds"] else None,
        "cls": meta["classes"][0] if meta["classes"] else None,
        "metric": meta["headline"][0] if meta["headline"] else None,
    }
    return [{"name": SIGNAL + n, "value": values[n]} for n in PARAMS]


def _base(meta: dict[str, Any], dataset: str, **extra: Any) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "data": {"name": dataset},
        "params": _params(meta),
        "config": {"view": {"stroke": "#ccc"}, "font": "system-ui, sans-serif"},
        **extra,
    }


def _series_color(meta: dict[str, Any]) -> dict[str, Any]:
    """Curves: colour by class (per-class curves, dashed by version) or by version."""
    if meta["per_class"]:
        return {
            "color": {"field": "class_label", "type": "nominal", "title": "class",
                      "sort": meta["classes"]},
            "strokeDash": {"field": "version", "type": "nominal", "title": "version"},
        }  # fmt: skip
    return {"color": {"field": "version", "type": "nominal", "title": "version"}}


def trend(meta: dict[str, Any], granularity: str) -> dict[str, Any]:
    """One granularity: the selected metric per version and window, its interval
    as a band, fired alerts as red triangles, the selected window as a rule."""
    series = (
        f"datum.granularity === '{granularity}' && datum.metric === sel_metric && "
        "datum.slice === sel_slice && "
        "(datum.threshold === null || datum.threshold === sel_threshold)"
    )
    # A date computed from the text, so that the shared rows keep window as text.
    x = {"field": "t", "type": "temporal", "timeUnit": "utcyearmonthdate", "title": None}
    color = {"field": "version", "type": "nominal", "title": "version"}
    return _base(
        meta,
        "metrics",
        width=360,
        height=200,
        title=f"{granularity}",
        transform=[{"filter": series}, {"calculate": "toDate(datum.window)", "as": "t"}],
        layer=[
            {
                "name": "data_band",
                "mark": {"type": "area", "opacity": 0.2},
                "encoding": {"x": x, "y": {"field": "ci_lower", "type": "quantitative",
                             "scale": {"zero": False}, "title": None},
                             "y2": {"field": "ci_upper"}, "color": color},
            },
            {
                "name": "data_line",
                "mark": {"type": "line", "point": True},
                "encoding": {
                    "x": x,
                    "y": {"field": "value", "type": "quantitative", "title": None},
                    "color": color,
                    "tooltip": [
                        {"field": "version"}, {"field": "window"},
                        {"field": "value", "format": ".4f"},
                        {"field": "ci_lower", "format": ".4f"},
                        {"field": "ci_upper", "format": ".4f"},
                        {"field": "n_rows", "format": ","},
                    ],
                },
            },
            {
                "name": "data_alerts",
                "data": {"name": "alerts"},
                "transform": [{"filter": series}, {"calculate": "toDate(datum.window)", "as": "t"}],
                "mark": {"type": "point", "shape": "triangle-down", "size": 140,
                         "filled": True, "color": "#d62728"},
                "encoding": {"x": x, "y": {"field": "value", "type": "quantitative"},
                             "tooltip": [{"field": "rule"}, {"field": "version"},
                                         {"field": "condition"}, {"field": "limit"},
                                         {"field": "value", "format": ".4f"}]},
            },
            {
                "data": {"values": [{}]},
                "transform": [{"filter": f"sel_granularity === '{granularity}'"},
                              {"calculate": "toDate(sel_window)", "as": "t"}],
                "mark": {"type": "rule", "color": "#999", "strokeDash": [2, 2]},
                "encoding": {"x": x},
            },
        ],
    )  # fmt: skip


def curve(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """ROC (x FPR, y TPR) or PR (x recall, y precision) of the selected window,
    configured thresholds as circles, recommended ones as diamonds."""
    axes = {"roc": ("false positive rate", "true positive rate"), "pr": ("recall", "precision")}
    x_title, y_title = axes[name]
    scale = {"domain": [0, 1]}
    x = {"field": "x", "type": "quantitative", "title": x_title, "scale": scale}
    y = {"field": "y", "type": "quantitative", "title": y_title, "scale": scale}
    layers: list[dict[str, Any]] = []
    if name == "roc":
        layers.append({"data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
                       "mark": {"type": "line", "color": "#bbb", "strokeDash": [3, 3]},
                       "encoding": {"x": x, "y": y}})  # fmt: skip
    series = f"{WINDOW} && datum.curve === '{name}'"
    layers.append({
        "name": "data_curve",
        "transform": [{"filter": series}],
        "mark": {"type": "line", "interpolate": "linear"},
        "encoding": {"x": x, "y": y, "order": {"field": "point"},
                     **_series_color(meta),
                     "tooltip": [{"field": "version"}, {"field": "class_label", "title": "class"},
                                 {"field": "threshold", "format": ".4g"},
                                 {"field": "x", "format": ".4f"}, {"field": "y", "format": ".4f"}]},
    })  # fmt: skip
    layers.append({
        "name": "data_points",
        "data": {"name": "points"},
        "transform": [{"filter": series}],
        "mark": {"type": "point", "size": 70, "filled": True, "stroke": "black",
                 "strokeWidth": 0.8},
        "encoding": {"x": x, "y": y,
                     "shape": {"field": "kind", "type": "nominal", "title": "operating point",
                               "scale": {"domain": ["configured", "recommended"],
                                         "range": ["circle", "diamond"]}},
                     **{k: v for k, v in _series_color(meta).items() if k == "color"},
                     "tooltip": [{"field": "version"}, {"field": "label"},
                                 {"field": "class_label", "title": "class"},
                                 {"field": "x", "format": ".4f"}, {"field": "y", "format": ".4f"}]},
    })  # fmt: skip
    title = {"roc": "ROC", "pr": "Precision-recall"}[name]
    return _base(meta, "curves", width=320, height=300, title=title, layer=layers)


def confusion(meta: dict[str, Any]) -> dict[str, Any]:
    """One K x K matrix per version: rows, and the share of each actual label's
    rows (a row's rates sum to 1); per threshold where the rows have one."""
    order = meta["labels"]
    cell = f"{WINDOW} && (datum.threshold === null || datum.threshold === sel_threshold)"
    x = {"field": "predicted_label", "type": "ordinal", "sort": order, "title": "predicted"}
    y = {"field": "actual_label", "type": "ordinal", "sort": order, "title": "actual"}
    size = 70 * max(len(order), 2)
    return _base(
        meta,
        "confusion",
        transform=[
            {"filter": cell},
            {"joinaggregate": [{"op": "sum", "field": "n_rows", "as": "actual_rows"}],
             "groupby": ["version", "actual_label"]},
            {"calculate": "datum.actual_rows > 0 ? datum.n_rows / datum.actual_rows : 0",
             "as": "rate"},
            {"calculate": "format(datum.n_rows, ',') ", "as": "count_text"},
            {"calculate": "format(datum.rate, '.1%')", "as": "rate_text"},
        ],
        facet={"column": {"field": "version", "type": "nominal", "title": "version"}},
        spec={
            "width": size,
            "height": size,
            "encoding": {"x": x, "y": y},
            "layer": [
                {"name": "data_cells", "mark": "rect",
                 "encoding": {"color": {"field": "rate", "type": "quantitative",
                                        "scale": {"scheme": "blues", "domain": [0, 1]},
                                        "title": "rate of actual"},
                              "tooltip": [{"field": "actual_label"}, {"field": "predicted_label"},
                                          {"field": "n_rows", "format": ","},
                                          {"field": "weight", "format": ",.1f"},
                                          {"field": "rate", "format": ".2%"}]}},
                {"name": "data_counts", "mark": {"type": "text", "dy": -7, "fontSize": 12},
                 "encoding": {"text": {"field": "count_text"},
                              "color": {"condition": {"test": "datum.rate > 0.5",
                                                      "value": "white"}, "value": "#111"}}},
                {"mark": {"type": "text", "dy": 8, "fontSize": 10},
                 "encoding": {"text": {"field": "rate_text"},
                              "color": {"condition": {"test": "datum.rate > 0.5",
                                                      "value": "white"}, "value": "#333"}}},
            ],
        },
    )  # fmt: skip


def calibration(meta: dict[str, Any]) -> dict[str, Any]:
    """Reliability: mean score (x) against the observed rate (y) per bin;
    per class, the selected class and the top label."""
    scale = {"domain": [0, 1]}
    x = {"field": "x", "type": "quantitative", "title": "mean predicted", "scale": scale}
    y = {"field": "y", "type": "quantitative", "title": "observed rate", "scale": scale}
    if meta["per_class"]:
        which = ("(datum.curve === 'calibration_top_label' || "
                 "(datum.curve === 'calibration' && datum.class_label === sel_cls))")  # fmt: skip
        color = {"field": "series", "type": "nominal", "title": "reliability of"}
        extra = [{"calculate": "datum.curve === 'calibration' ? 'class ' + datum.class_label "
                  ": 'top label'", "as": "series"}]  # fmt: skip
        dash = {"strokeDash": {"field": "version", "type": "nominal"}}
    else:
        which, extra, dash = "datum.curve === 'calibration'", [], {}
        color = {"field": "version", "type": "nominal"}
    return _base(
        meta,
        "curves",
        width=320,
        height=300,
        title="Reliability",
        layer=[
            {"data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
             "mark": {"type": "line", "color": "#bbb", "strokeDash": [3, 3]},
             "encoding": {"x": x, "y": y}},
            {"name": "data_reliability",
             "transform": [{"filter": f"{WINDOW} && {which}"}, *extra],
             "mark": {"type": "line", "point": True},
             "encoding": {"x": x, "y": y, "color": color, **dash, "order": {"field": "point"},
                          "tooltip": [{"field": "version"}, {"field": "x", "format": ".4f"},
                                      {"field": "y", "format": ".4f"}]}},
        ],
    )  # fmt: skip


def distribution(meta: dict[str, Any]) -> dict[str, Any]:
    """Share of each group's rows per score bucket (of the selected class's
    probability where the rows are per class), one panel per version."""
    which = f"{WINDOW} && (datum.class_label === sel_cls || sel_cls === null)"
    return _base(
        meta,
        "distribution",
        transform=[{"filter": which}],
        facet={"column": {"field": "version", "type": "nominal", "title": "version"}},
        spec={
            "width": 260,
            "height": 180,
            "layer": [{
                "name": "data_bars",
                "mark": {"type": "bar", "opacity": 0.55, "binSpacing": 0},
                "encoding": {
                    "x": {"field": "lower", "type": "quantitative", "title": "score",
                          "scale": {"domain": [0, 1]}},
                    "x2": {"field": "upper"},
                    "y": {"field": "share", "type": "quantitative", "stack": None,
                          "title": "share of the group's rows", "axis": {"format": ".0%"}},
                    "y2": {"datum": 0},
                    "color": {"field": "group", "type": "nominal", "title": None},
                    "tooltip": [{"field": "group"}, {"field": "lower"}, {"field": "upper"},
                                {"field": "rows", "format": ","},
                                {"field": "share", "format": ".2%"}],
                },
            }],
        },
    )  # fmt: skip


def rejected(meta: dict[str, Any]) -> dict[str, Any]:
    """Rows rejected per reason in the selected window, per version."""
    return _base(
        meta,
        "rejected",
        width=420,
        transform=[{"filter": f"{WINDOW} && datum.metric === 'rejected_rows'"}],
        layer=[{
            "name": "data_rejected",
            "mark": "bar",
            "encoding": {
                "y": {"field": "class_label", "type": "nominal", "title": "reason"},
                "yOffset": {"field": "version"},
                "x": {"field": "value", "type": "quantitative", "title": "rows rejected"},
                "color": {"field": "version", "type": "nominal"},
                "tooltip": [{"field": "version"}, {"field": "class_label", "title": "reason"},
                            {"field": "value", "format": ","}],
            },
        }],
    )  # fmt: skip


def all_specs(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Chart id -> spec; the page places each in the element of that id."""
    out = {f"trend-{g}": trend(meta, g) for g in meta["granularities"]}
    out["roc"] = curve(meta, "roc")
    out["pr"] = curve(meta, "pr")
    out["confusion"] = confusion(meta)
    out["calibration"] = calibration(meta)
    out["distribution"] = distribution(meta)
    out["rejected"] = rejected(meta)
    return out
