"""The job on a real Spark standalone cluster (a master and two workers on 127.0.0.1).

The demo evaluation is submitted with ``spark-submit --master spark://127.0.0.1:PORT``
(executors in separate JVMs, the package shipped with ``--py-files``) and its
output tables are compared with a local-mode run of the same config: identical
rows, sums equal to rtol 1e-12 (only the order of float additions may differ).
The cluster is stopped by the fixture, also when the test fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from clfeval.io import tables
from clfeval.io.session import AGGREGATORS_JAR, DELTA_CONF, DELTA_PACKAGE
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_predictions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.spark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def wait_for_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{text!r} not seen in {path} within {timeout}s:\n{path.read_text()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Start a master and two workers (1 core, 1 GiB each); yield the master URL."""
    logs = tmp_path_factory.mktemp("cluster-logs")
    home = spark_home()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    try:
        master_log = logs / "master.log"
        procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(free_port()),
                ],
                stdout=master_log.open("w"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        wait_for_log(master_log, "I have been elected leader", 60)
        for i in range(2):
            worker_log = logs / f"worker{i}.log"
            procs.append(
                subprocess.Popen(
                    [
                        spark_class,
                        "org.apache.spark.deploy.worker.Worker",
                        url,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(free_port()),
                        "--work-dir",
                        str(logs / f"work{i}"),
                    ],
                    stdout=worker_log.open("w"),
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            wait_for_log(worker_log, "Successfully registered with master", 60)
        yield url, env
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def package_zip(folder: Path) -> Path:
    """What `make dist` ships for --py-files: the clfeval package at the zip's root."""
    out = folder / "clfeval.zip"
    with zipfile.ZipFile(out, "w") as z:
        for path in (ROOT / "lib" / "clfeval").rglob("*.py"):
            z.write(path, path.relative_to(ROOT / "lib"))
    return out


def test_cluster_run_equals_local_run(spark, cluster, tmp_path) -> None:
    url, env = cluster
    data = tmp_path / "predictions"
    tables.write_predictions(demo_predictions(spark, rows=20_000, days=2), str(data))
    common = ["--set", f"input.path={data}", "--set", "slices.crosses=[]"]
    conf_args = [a for k, v in DELTA_CONF.items() for a in ("--conf", f"{k}={v}")]
    submit = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        url,
        "--packages",
        DELTA_PACKAGE,
        *conf_args,
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        "spark.executor.memory=768m",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--jars",
        str(AGGREGATORS_JAR),
        "--py-files",
        str(package_zip(tmp_path)),
        str(ROOT / "jobs" / "evaluate.py"),
        "--config",
        str(ROOT / "conf" / "demo.toml"),
        *common,
        "--set",
        f"output.path={tmp_path / 'cluster'}",
    ]
    started = time.monotonic()
    done = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=900)
    cluster_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-5000:]
    assert "succeeded" in done.stdout
    # Executors in their own JVMs ran the JVM scan shipped with --jars.
    assert "clfeval's JVM scan" in done.stdout, done.stdout

    from clfeval.config import load_config

    local_config = load_config(
        ROOT / "conf" / "demo.toml", [*common[1::2], f"output.path={tmp_path / 'local'}"]
    )
    cluster_config = load_config(
        ROOT / "conf" / "demo.toml", [*common[1::2], f"output.path={tmp_path / 'cluster'}"]
    )
    started = time.monotonic()
    run_evaluation(spark, local_config, log=lambda _: None)
    local_seconds = time.monotonic() - started
    print(
        f"\ndemo evaluation wall time: cluster {cluster_seconds:.1f}s "
        f"(incl. spark-submit start), local {local_seconds:.1f}s (warm session)"
    )
    for name in ("score_histograms", "metrics", "confusion_matrices", "curves"):
        a = tables.read_table(spark, tables.output_location(local_config, name)).toPandas()
        b = tables.read_table(spark, tables.output_location(cluster_config, name)).toPandas()
        assert len(a) == len(b) > 0, name
        cols = [c for c in a.columns if a[c].dtype == object or c in ("bin", "point", "threshold")]
        a = a.sort_values(cols).reset_index(drop=True)
        b = b.sort_values(cols).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-12)
