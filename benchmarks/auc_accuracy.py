"""Binned vs exact ROC AUC on an evaluated predictions table.

For every (model, version, slice, day) group of the metrics table, recompute the
exact AUC with scikit-learn from the raw rows and print the largest
|binned AUC - exact AUC|, the widest guaranteed bound, and whether every exact
value lies inside its bound. Usage (after `make demo`):

    .venv/bin/python benchmarks/auc_accuracy.py --config conf/demo.toml
"""

from __future__ import annotations

import argparse

import numpy as np
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from clfeval.config import load_config
from clfeval.core.slices import join_values
from clfeval.io import tables
from clfeval.io.session import build_session


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="conf/demo.toml")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    config = load_config(args.config, args.set)
    spark = build_session("clfeval-auc-accuracy", timezone=config.run.timezone)
    i = config.input
    raw = (
        tables.read_table(spark, tables.input_location(config))
        .select(
            F.col(i.model_name_column).alias("model_name"),
            F.col(i.model_version_column).alias("model_version"),
            F.to_date(F.col(i.event_time_column)).alias("day"),
            *[F.col(c) for c in config.finest_segments()],
            F.col(i.label_column).alias("label"),
            F.col(i.score_column).alias("score"),
            (F.col(i.weight_column) if i.weight_column else F.lit(1.0)).alias("weight"),
        )
        .where(F.col("score").between(0, 1) & F.col("label").isNotNull() & ~F.isnan("score"))
        .toPandas()
    )
    metrics = tables.read_table(spark, tables.output_location(config, "metrics"))
    auc = (
        metrics.where(F.col("metric") == "roc_auc")
        .select(
            "model_name",
            "model_version",
            "slice_key",
            "slice_value",
            "window_start",
            "value",
            "bound_lower",
            "bound_upper",
        )
        .toPandas()
        .set_index(["model_name", "model_version", "slice_key", "slice_value", "window_start"])
    )
    errors, widths, sizes, outside = [], [], [], 0
    for columns in config.slices_to_compute():
        for key, part in raw.groupby(["model_name", "model_version", "day", *columns]):
            model, version, day, *values = key
            y = (part.label.astype(str) == config.positive_label_text()).to_numpy()
            if y.all() or not y.any():
                continue
            exact = roc_auc_score(y, part.score, sample_weight=part.weight)
            row = auc.loc[(model, version, ",".join(columns), join_values(values), day)]
            errors.append(abs(row.value - exact))
            sizes.append(min(int(y.sum()), int((~y).sum())))
            widths.append(row.bound_upper - row.bound_lower)
            outside += not (row.bound_lower - 1e-12 <= exact <= row.bound_upper + 1e-12)
    errors_arr = np.array(errors)
    print(f"layout: {config.layout().layout_id} ({config.layout().n_bins} bins)")
    print(f"groups compared:               {errors_arr.size}")
    print(f"max |binned AUC - exact AUC|:  {errors_arr.max():.3g}")
    print(f"median |binned - exact|:       {np.median(errors_arr):.3g}")
    print(f"max guaranteed bound width:    {max(widths):.3g}")
    print(f"exact AUC outside its bound:   {outside}")
    size_arr = np.array(sizes)
    print("by group size (min of positives, negatives):")
    for low, high in ((1, 10), (10, 100), (100, 1000), (1000, 10**12)):
        sel = (size_arr >= low) & (size_arr < high)
        if sel.any():
            print(
                f"  [{low}, {high}): {sel.sum():5d} groups, max |error| "
                f"{errors_arr[sel].max():.3g}, median {np.median(errors_arr[sel]):.3g}"
            )


if __name__ == "__main__":
    main()
