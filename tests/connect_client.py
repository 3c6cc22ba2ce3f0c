"""Run one evaluation as a Spark Connect client, in a process of its own (a
process that creates a Connect session switches pyspark into Connect mode for
good, so the suite's classic session cannot share it).

Usage: python tests/connect_client.py sc://127.0.0.1:PORT CONFIG [--full] [--set K=V ...]
Prints the run's result as one JSON line.
"""

from __future__ import annotations

import argparse
import json

from pyspark.sql import SparkSession

from clfeval.config import load_config
from clfeval.pipeline import run_evaluation


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("remote")
    p.add_argument("config")
    p.add_argument("--full", action="store_true")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    assert getattr(spark, "_jvm", None) is None
    lines: list[str] = []
    result = run_evaluation(
        spark, load_config(args.config, args.set), full=args.full, log=lines.append
    )
    print(
        json.dumps(
            {
                "status": result.status,
                "mode": result.mode,
                "rows_read": result.rows_read,
                "days": [str(w.first) for w in result.windows if w.granularity == "day"],
                "lines": lines,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main()
