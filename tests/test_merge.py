"""The central merge of stored states (run.merge, jobs/merge.py), on local paths.

Two "regions" evaluate their own predictions (the demo table split by region);
the merge reads their stored daily states only. Its tables must equal one run
over the union of the predictions: counts exactly, floats to rtol 1e-9 (sums of
weights added in another order), the binned ROC AUC equal and the exact
(scikit-learn) AUC inside its bounds. The ``source`` slice of each region must
equal that region's own overall slice. An incremental merge after one region
re-evaluated a changed day re-merges that day only. Bad sources (layout
differs, missing, listed twice, written by a newer clfeval) fail with one
paragraph naming the location and exit code 2 or 3, and write nothing
(--allow-missing-sources: tests/test_merge_s3.py, on a real object store).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from compare import COMPARED, output_frame
from pyspark.sql import functions as F
from sklearn import metrics as skm

from clfeval import cli
from clfeval.config import parse_config
from clfeval.errors import EXIT_CONFIG, EXIT_CONTRACT
from clfeval.io import tables
from clfeval.pipeline import run_evaluation, run_merge
from clfeval.spark import demo_data
from clfeval.spark.demo_data import demo_predictions

pytestmark = pytest.mark.spark

START = dt.date(2026, 3, 1)  # a Sunday: the days span two weeks
DAYS = 4
REGIONS = {"eu": ("EU", "MEA"), "us": ("NA", "APAC", "LATAM")}
TIGHT = {"rtol": 1e-9, "atol": 1e-12}
# The central tables' windows (and those of the reference run over the union).
CENTRAL = {"granularities": ["day", "week"]}


def settings(**sections) -> dict:
    """The settings every place shares (task, bins, thresholds), as raw TOML tables."""
    raw = {
        "task": {"positive_label": 1, "negative_labels": [0]},
        "metrics": {"thresholds": [0.05, 0.5]},
        "output": {"granularities": ["day", "week"]},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def place_config(predictions: str, output_path: str, **sections):
    """An evaluation next to one place's predictions (its slices: device)."""
    # A place writes no rollups unless asked: a merge reads only its daily states.
    raw = settings(**{"output": {"granularities": ["day"]}, **sections})
    raw["input"] = {"path": predictions, "weight_column": "weight", "date_partition_column": "date"}
    raw.setdefault("slices", {"segment_columns": ["device"]})
    raw["output"] = {**raw["output"], "path": output_path}
    return parse_config(raw)


def merge_raw(sources: dict[str, str], output: str, **sections) -> dict:
    raw = settings(**sections)
    raw["sources"] = [{"name": n, "path": p} for n, p in sources.items()]
    raw["slices"] = {"segment_columns": ["device", "source"], "crosses": [["source", "device"]]}
    raw["output"] = {**raw["output"], "path": output}
    return raw


def demo_rows(spark, rows: int = 6_000, seed: int = 7):
    return demo_predictions(
        spark, rows=rows, days=DAYS, start=START, positive_rate=0.1, seed=seed, partitions=2
    )


def write_regions(spark, df, base: Path, mode: str = "overwrite") -> None:
    """The demo rows split by region into one predictions table per place, and
    all of them into the union table (the reference run's input)."""
    every = [r for regions in REGIONS.values() for r in regions]
    assert sorted(every) == sorted(demo_data.REGIONS)  # the places hold every row
    for name, regions in REGIONS.items():
        part = df.where(F.col("region").isin(*regions))
        part.write.format("delta").mode(mode).partitionBy("date").save(str(base / name / "pred"))
    write_union(spark, df, base, mode)


def write_union(spark, df, base: Path, mode: str = "overwrite") -> None:
    """All the demo rows in one table: the input of the reference run."""
    df.write.format("delta").mode(mode).partitionBy("date").save(str(base / "union_pred"))


def quiet(_: str) -> None:
    pass


def evaluate_places(spark, base: Path, **kwargs) -> None:
    for name in REGIONS:
        config = place_config(str(base / name / "pred"), str(base / name / "out"))
        run_evaluation(spark, config, log=quiet, **kwargs)


def without_source(frame: pd.DataFrame) -> pd.DataFrame:
    keep = ~frame["slice_key"].str.contains("source")
    return frame[keep].reset_index(drop=True)


def assert_merge_equals_union(spark, central, union) -> None:
    """Every compared table of the merge (its slices without ``source``) equals
    the union run's: same rows, floats to rtol 1e-9, the rest exactly."""
    for name in COMPARED:
        merged = without_source(output_frame(spark, central, name))
        single = output_frame(spark, union, name)
        assert len(merged) == len(single) > 0, name
        pd.testing.assert_frame_equal(
            merged, single[merged.columns], check_exact=False, **TIGHT, obj=name
        )


# The places fixture's result, computed once per session (tests/test_merge_s3.py
# compares its merge through S3 with the same union run).
_PLACES: list = []


@pytest.fixture(scope="module")
def places(spark, tmp_path_factory):
    """Two places evaluated, one union run, one merge of the two places."""
    return evaluated_places(spark, tmp_path_factory)


def evaluated_places(spark, tmp_path_factory):
    """The ``places`` fixture's value, computed once a session."""
    if not _PLACES:
        _PLACES.append(_evaluate_places(spark, tmp_path_factory))
    return _PLACES[0]


def _evaluate_places(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("merge")
    write_regions(spark, demo_rows(spark), base)
    evaluate_places(spark, base, full=True)
    union = place_config(str(base / "union_pred"), str(base / "union_out"), output=CENTRAL)
    run_evaluation(spark, union, log=quiet, full=True)
    sources = {name: str(base / name / "out") for name in REGIONS}
    central = parse_config(merge_raw(sources, str(base / "central")))
    result = run_merge(spark, central, log=quiet)
    return base, sources, central, union, result


def test_merge_equals_one_run_over_the_union(spark, places):
    _base, _, central, union, result = places
    assert result.status == "succeeded" and result.mode == "initial"
    assert_merge_equals_union(spark, central, union)
    runs = {
        "central": tables.read_runs(spark, central).first(),
        "union": tables.read_runs(spark, union).first(),
    }
    for field in ("rows_read", "rows_evaluated", "rows_rejected", "reject_counts"):
        assert runs["central"][field] == runs["union"][field], field
    assert runs["central"]["rows_rejected"] > 0  # the demo's bad rows are counted
    # The sources' Delta versions, for the next incremental merge.
    assert set(runs["central"]["input_versions"]) == set(REGIONS)
    # The exact ROC AUC of the raw union rows inside the merged bounds, per model and day.
    raw = (
        tables.read_table(spark, tables.input_location(union))
        .where(F.col("label").isin(0, 1) & F.col("score").between(0, 1))
        .where(F.col("weight").isNotNull() & (F.col("weight") >= 0))
        .select("model_name", "model_version", "date", "label", "score", "weight")
        .toPandas()
    )
    metrics = output_frame(spark, central, "metrics")
    auc = metrics[
        (metrics.metric == "roc_auc") & (metrics.slice_key == "") & (metrics.granularity == "day")
    ]
    checked = 0
    for r in auc.itertuples():
        rows = raw[
            (raw.model_name == r.model_name)
            & (raw.model_version == r.model_version)
            & (raw.date == r.window_start)
        ]
        exact = skm.roc_auc_score(rows.label, rows.score, sample_weight=rows.weight)
        assert r.bound_lower - 1e-12 <= exact <= r.bound_upper + 1e-12
        checked += 1
    assert checked == len(auc) > 0


def test_source_slice_is_each_places_overall_slice(spark, places):
    base, sources, central, _, _ = places
    merged = output_frame(spark, central, "metrics")
    for name in REGIONS:
        own = place_config(str(base / name / "pred"), sources[name])
        theirs = output_frame(spark, own, "metrics")
        theirs = theirs[(theirs.slice_key == "") & (theirs.metric != "rejected_rows")]
        # The places store days only; the center also rolls weeks up.
        mine = merged[
            (merged.slice_key == "source")
            & (merged.slice_value == name)
            & (merged.granularity == "day")
        ]
        mine = mine.assign(slice_key="", slice_value="")
        columns = list(theirs.columns)
        mine = mine.sort_values([*columns[:7], "metric", "class_label", "threshold"])
        theirs = theirs.sort_values([*columns[:7], "metric", "class_label", "threshold"])
        pd.testing.assert_frame_equal(
            mine.reset_index(drop=True)[columns], theirs.reset_index(drop=True), **TIGHT
        )
        # The cross source,device: the place's device slices, its name first.
        cross = merged[merged.slice_key == "source,device"]
        assert set(cross.slice_value.str.split(",").str[0]) == set(REGIONS)


def test_incremental_merge_re_merges_changed_days_only(spark, places):
    base, _, central, _, _ = places
    changed_day = START + dt.timedelta(days=1)
    extra = demo_rows(spark, rows=1_500, seed=11).where(
        (F.col("date") == F.lit(changed_day)) & F.col("region").isin(*REGIONS["eu"])
    )
    for target in (base / "eu" / "pred", base / "union_pred"):
        extra.write.format("delta").mode("append").partitionBy("date").save(str(target))
    eu = place_config(str(base / "eu" / "pred"), str(base / "eu" / "out"))
    assert run_evaluation(spark, eu, log=quiet).mode == "incremental"
    result = run_merge(spark, central, log=quiet)
    assert result.mode == "incremental"
    days = [w for w in result.windows if w.granularity == "day"]
    assert [(w.first, w.last) for w in days] == [(changed_day, changed_day)]
    fresh = place_config(str(base / "union_pred"), str(base / "union_fresh"), output=CENTRAL)
    run_evaluation(spark, fresh, log=quiet, full=True)
    assert_merge_equals_union(spark, central, fresh)
    # Nothing changed since: nothing to merge.
    again = run_merge(spark, central, log=quiet)
    assert again.mode == "incremental" and again.windows == []


def merge_cli(tmp_path: Path, raw: dict, *flags: str) -> int:
    path = tmp_path / "merge.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    return cli.merge_main(["--config", str(path), "--quiet", *flags])


def to_toml(raw: dict) -> str:
    """A small TOML writer for the test's configs (tables, arrays of tables)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    for section, body in raw.items():
        items = body if isinstance(body, list) else [body]
        for item in items:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def assert_failed_naming(capsys, code: int, expected: int, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)
    return err


def test_bad_sources_fail_naming_the_location(spark, places, tmp_path, capsys):
    _base, sources, _, _, _ = places
    out = tmp_path / "central"
    # A layout that differs (other thresholds: other bin edges) from the sources'.
    raw = merge_raw(sources, str(out), metrics={"thresholds": [0.3]})
    err = assert_failed_naming(capsys, merge_cli(tmp_path, raw), EXIT_CONTRACT, *sources.values())
    assert "bin layout" in err and "thresholds [0.05, 0.5]" in err
    # A task whose labels differ.
    raw = merge_raw(sources, str(out), task={"positive_label": 0, "negative_labels": [1]})
    assert_failed_naming(capsys, merge_cli(tmp_path, raw), EXIT_CONTRACT, "task")
    # A missing source (and --allow-missing-sources not given).
    gone = str(tmp_path / "nowhere")
    raw = merge_raw({**sources, "apac": gone}, str(out))
    err = assert_failed_naming(capsys, merge_cli(tmp_path, raw), EXIT_CONTRACT, "apac", gone)
    # The same place listed twice, under two names.
    raw = merge_raw({**sources, "eu_again": sources["eu"]}, str(out))
    assert_failed_naming(capsys, merge_cli(tmp_path, raw), EXIT_CONFIG, "eu_again", "twice")
    # A source written by a newer clfeval.
    newer = tmp_path / "newer"
    shutil.copytree(sources["us"], newer)
    newer_source = parse_config(
        {**settings(), "input": {"path": "x"}, "output": {"path": str(newer)}}
    )
    row = tables.read_runs(spark, newer_source).first().asDict()
    row.update(
        run_id="from-the-future",
        code_version="99.0.0",
        ended_at=row["ended_at"] + dt.timedelta(minutes=1),
    )
    tables.start_run(spark, newer_source, row)
    raw = merge_raw({"eu": sources["eu"], "us": str(newer)}, str(out))
    err = assert_failed_naming(capsys, merge_cli(tmp_path, raw), EXIT_CONTRACT, str(newer))
    assert "99.0.0" in err
    # Nothing was written by any of them.
    assert not out.exists()


def test_merge_config_checks_its_sources():
    """conf/merge.toml is a valid merge config; bad [[sources]] name the key."""
    from clfeval.config import load_config
    from clfeval.errors import ConfigError

    example = load_config(Path(__file__).resolve().parents[1] / "conf" / "merge.toml")
    assert [s.name for s in example.sources] == ["eu", "us", "apac"]
    raw = merge_raw({"a": "/data/a", "b": "/data/b/"}, "/central")
    problems = [
        ({"sources": [*raw["sources"], {"name": "c", "path": "/data/a/"}]}, "listed twice"),
        ({"sources": [*raw["sources"], {"name": "a", "path": "/data/c"}]}, "also the name"),
        ({"sources": [*raw["sources"], {"name": "c", "path": "/central"}]}, "own output"),
        ({"sources": [{"name": "x,y", "path": "/data/x"}]}, r"sources\[0\]\.name"),
        ({"sources": [{"name": "x"}]}, "exactly one of path or catalog_schema"),
        ({"input": {"path": "/data/p"}}, "a merge reads the stored states"),
        ({"slices": {"crosses": [["device", "source"]]}}, "put 'source' first"),
    ]
    for change, expected in problems:
        with pytest.raises(ConfigError, match=expected):
            parse_config({**raw, **change})
