"""The job over Spark Connect: a local Spark Connect server on 127.0.0.1 (the
one pyspark 4.x ships), Delta configured on the server, clfeval in a client
that has no JVM. Binary, multiclass and an incremental run; every output table
equals the classic run's (rows equal, floats to rtol 1e-9).

Each client runs in a process of its own (``tests/connect_client.py``): a
process that creates a Connect session switches pyspark into Connect mode for
good. Delta's own Connect plugin is not used (the server has only Delta's jar and its
two SQL settings), so this is what a Connect cluster without it sees: reads,
``replaceWhere`` writes and SQL, no ``DeltaTable`` calls.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from compare import COMPARED, output_frame

from clfeval.config import load_config
from clfeval.io import tables
from clfeval.io.session import connect_server_command
from clfeval.pipeline import run_evaluation
from clfeval.spark.demo_data import demo_multiclass_predictions, demo_predictions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.spark

pyspark = pytest.importorskip("pyspark")
if int(pyspark.__version__.split(".")[0]) < 4:
    pytest.skip("Spark Connect's server ships with pyspark 4", allow_module_level=True)
pytest.importorskip("grpc", reason="the Spark Connect client needs pyspark[connect]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Connect server exited:\n{log.read_text()[-5000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Connect server not listening within {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def connect(tmp_path_factory):
    """A Spark Connect server (local[2], Delta) on 127.0.0.1; yields its URL."""
    home = Path(pyspark.__file__).parent
    log = tmp_path_factory.mktemp("connect") / "server.log"
    port = free_port()
    command = connect_server_command(
        "127.0.0.1",
        port,
        extra_conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"},
    )
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The server's Python workers run the derive: clfeval must import there.
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, server, log, 240)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def over_connect(remote: str, name: str, overrides: list[str], full: bool = False) -> dict:
    """One evaluation by a Connect client in its own process (tests/connect_client.py)."""
    command = [sys.executable, str(ROOT / "tests" / "connect_client.py"), remote]
    command += [str(ROOT / "conf" / name), *[a for o in overrides for a in ("--set", o)]]
    if full:
        command.append("--full")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def overrides(data: Path, out: Path) -> list[str]:
    return [f"input.path={data}", f"output.path={out}", "slices.crosses=[]"]


def assert_same_outputs(spark, a, b) -> None:
    import pandas as pd

    for name in COMPARED:
        left, right = output_frame(spark, a, name), output_frame(spark, b, name)
        assert len(left) == len(right) > 0, name
        pd.testing.assert_frame_equal(
            left, right[left.columns], check_exact=False, rtol=1e-9, atol=1e-12
        )


def test_binary_and_multiclass_over_connect_equal_classic(spark, connect, tmp_path) -> None:
    start = dt.date(2026, 10, 5)
    binary = tmp_path / "binary"
    multi = tmp_path / "multi"
    tables.write_predictions(demo_predictions(spark, rows=8_000, days=2, start=start), str(binary))
    tables.write_predictions(
        demo_multiclass_predictions(spark, rows=3_000, days=2, start=start), str(multi)
    )
    for name, data in (("demo.toml", binary), ("demo_multiclass.toml", multi)):
        result = over_connect(connect, name, overrides(data, tmp_path / "connect"), full=True)
        assert result["status"] == "succeeded" and result["rows_read"] > 0
        assert any("Spark SQL (Spark Connect" in line for line in result["lines"]), result
        classic = load_config(ROOT / "conf" / name, overrides(data, tmp_path / "classic"))
        run_evaluation(spark, classic, full=True, log=lambda _: None)
        remote = load_config(ROOT / "conf" / name, overrides(data, tmp_path / "connect"))
        assert_same_outputs(spark, remote, classic)
    runs = output_frame(spark, remote, "runs")
    assert list(runs.status) == ["succeeded", "succeeded"]


def test_incremental_over_connect_picks_up_new_days(spark, connect, tmp_path) -> None:
    start = dt.date(2026, 10, 12)
    data = tmp_path / "predictions"
    tables.write_predictions(demo_predictions(spark, rows=6_000, days=2, start=start), str(data))
    remote = overrides(data, tmp_path / "connect")
    assert over_connect(connect, "demo.toml", remote)["mode"] == "initial"
    later = demo_predictions(spark, rows=3_000, days=1, start=start + dt.timedelta(days=2))
    later.write.format("delta").mode("append").partitionBy("date").save(str(data))
    result = over_connect(connect, "demo.toml", remote)
    assert result["mode"] == "incremental"
    assert result["days"] == [str(start + dt.timedelta(days=2))]
    classic = load_config(ROOT / "conf" / "demo.toml", overrides(data, tmp_path / "classic"))
    run_evaluation(spark, classic, full=True, log=lambda _: None)
    connected = load_config(ROOT / "conf" / "demo.toml", remote)
    assert_same_outputs(spark, connected, classic)
