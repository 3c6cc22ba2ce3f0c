"""The same evaluation over Spark Connect and over a classic session (not a test).

Starts a Spark Connect server on 127.0.0.1 (local[2], Delta), writes demo
predictions, then times ``run_evaluation`` of conf/demo.toml, alternating: a
Connect client process and a classic process, each timing its own warm runs
(the first run of each process is a warm-up).

    .venv/bin/python benchmarks/connect_bench.py --rows 1000000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENT = """
import json, sys, time
from pyspark.sql import SparkSession
from clfeval.config import load_config
from clfeval.pipeline import run_evaluation
remote, config_path, out, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if remote == "classic":
    from clfeval.io.session import build_session
    spark = build_session("bench-classic", master="local[2]", quiet=True)
else:
    spark = SparkSession.builder.remote(remote).getOrCreate()
times = []
for k in range(reps + 1):
    config = load_config(config_path, [f"output.path={out}/{k}", "slices.crosses=[]"])
    started = time.perf_counter()
    run_evaluation(spark, config, full=True, log=lambda _: None)
    times.append(time.perf_counter() - started)
print(json.dumps(times[1:]))
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    from clfeval.io.session import build_session, connect_server_command
    from clfeval.io.tables import write_predictions
    from clfeval.spark.demo_data import demo_predictions

    work = Path(tempfile.mkdtemp(prefix="clfeval-connect-bench-"))
    spark = build_session("bench-data", master="local[2]", quiet=True)
    write_predictions(demo_predictions(spark, rows=args.rows, days=7), str(work / "predictions"))
    spark.stop()
    config = work / "demo.toml"
    text = (ROOT / "conf" / "demo.toml").read_text()
    config.write_text(text.replace('"demo_output/predictions"', f'"{work / "predictions"}"'))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        connect_server_command("127.0.0.1", port, extra_conf={"spark.sql.shuffle.partitions": "2"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        results: dict[str, list[float]] = {"classic": [], "connect": []}
        for side in ("classic", "connect", "classic", "connect"):
            remote = "classic" if side == "classic" else f"sc://127.0.0.1:{port}"
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CLIENT,
                    remote,
                    str(config),
                    str(work / side),
                    str(args.reps),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[side] += json.loads(done.stdout.strip().splitlines()[-1])
        for side, times in results.items():
            times.sort()
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"{side:8s} median {times[len(times) // 2]:.2f} s  runs {runs}")
        ratio = (
            sorted(results["connect"])[len(results["connect"]) // 2]
            / sorted(results["classic"])[len(results["classic"]) // 2]
        )
        print(f"connect / classic = {ratio:.2f} ({args.rows:,} rows)")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
