"""The central merge against a real object store: two "regional" runs write their
predictions and tables to two buckets of an S3-compatible server (moto's server,
a separate process on 127.0.0.1), and the merge reads both through Hadoop's S3A
connector (hadoop-aws at the Hadoop version of the installed pyspark, and the
AWS SDK bundle it declares, fetched from Maven Central by Ivy once and cached).

The regional runs (their predictions in local tables, their output tables in
the buckets) and the merges run in one child process (this file run as a
script): its session starts with the S3A connector and per-bucket credentials,
set through session settings as a user would set them (``--conf``). The merged
tables are written to a local folder, which this test's session compares with
one run over the union of the predictions (``test_merge.places``): counts
exactly, floats to rtol 1e-9.
A source in a bucket that does not exist fails the merge naming it (exit 3);
with --allow-missing-sources the others are merged and the missing one recorded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import test_merge as local

HERE = Path(__file__).resolve().parent
BUCKETS = {"eu": "clfeval-eu", "us": "clfeval-us"}
ACCESS = {"eu": ("eu-key", "eu-secret"), "us": ("us-key", "us-secret")}


def hadoop_version() -> str:
    """The Hadoop version of the installed pyspark (its hadoop-client-api jar)."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    found = sorted(jars.glob("hadoop-client-api-*.jar"))
    assert found, f"no hadoop-client-api jar in {jars}"
    return found[0].stem.removeprefix("hadoop-client-api-")


def s3a_conf(endpoint: str) -> dict[str, str]:
    """Session settings for S3A against the test server: the connector's package,
    the endpoint without TLS, path-style addressing, and credentials per bucket
    (each place its own)."""
    conf = {
        "spark.jars.packages": f"org.apache.hadoop:hadoop-aws:{hadoop_version()}",
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.attempts.maximum": "2",
        "spark.hadoop.fs.s3a.retry.limit": "2",
    }
    for place, bucket in BUCKETS.items():
        key, secret = ACCESS[place]
        conf[f"spark.hadoop.fs.s3a.bucket.{bucket}.access.key"] = key
        conf[f"spark.hadoop.fs.s3a.bucket.{bucket}.secret.key"] = secret
    return conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3-compatible server as a child process on 127.0.0.1, with the two buckets."""
    pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is not installed")
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {log.read_text()}") from None
                time.sleep(0.2)
        for place, bucket in BUCKETS.items():
            key, secret = ACCESS[place]
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                region_name="us-east-1",
            ).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def places(spark, tmp_path_factory):
    """test_merge's two places and their union run (computed once a session)."""
    return local.evaluated_places(spark, tmp_path_factory)


def test_merge_reads_two_buckets_through_s3a(spark, places, s3_endpoint, tmp_path):
    from compare import output_frame

    from clfeval.config import parse_config
    from clfeval.io import tables

    report = tmp_path / "report.json"
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, __file__, s3_endpoint, str(tmp_path), str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])},
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    done = json.loads(report.read_text())
    print(
        f"child process (S3A session, 2 regional runs, 2 merges): {time.monotonic() - started:.1f}s"
    )
    # A source in a bucket that does not exist: one paragraph naming it, exit 3.
    assert done["missing"]["code"] == 3, done["missing"]
    assert "s3a://clfeval-gone/out" in done["missing"]["err"]
    assert len(done["missing"]["err"].strip().splitlines()) == 1
    # With --allow-missing-sources: merged, the missing one recorded in the run's row.
    assert done["allowed"]["code"] == 0 and "clfeval-gone" in done["allowed"]["message"]
    # The merge of the two buckets equals one run over the union of the predictions.
    print("child process steps (s):", done["steps"])
    union = places[3]  # one run over all the rows the two places evaluated
    with_gone = {**done["sources"], "gone": "s3a://clfeval-gone/out"}
    central = parse_config(local.merge_raw(with_gone, str(tmp_path / "central")))
    local.assert_merge_equals_union(spark, central, union)
    run = tables.read_runs(spark, central).first()
    assert run["input"].count("s3a://") == 3 and set(run["input_versions"]) == set(BUCKETS)
    metrics = output_frame(spark, central, "metrics")
    assert set(metrics[metrics.slice_key == "source"].slice_value) == set(BUCKETS)


def _child(endpoint: str, work: str, report: str) -> None:
    """The regional runs and the merges, in a session with S3A (run as a script)."""
    import contextlib
    import io

    from clfeval import cli
    from clfeval.io import tables
    from clfeval.io.session import build_session
    from clfeval.pipeline import run_evaluation

    steps: dict[str, float] = {}
    clock = time.monotonic()

    def step(name: str) -> None:
        nonlocal clock
        steps[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    spark = build_session(
        "clfeval-s3-test", master="local[2]", extra_conf=s3a_conf(endpoint), quiet=True
    )
    step("session with S3A")
    df = local.demo_rows(spark)
    sources = {}
    for place, regions in local.REGIONS.items():
        # The predictions stay where they are (a local table here); the place's
        # tables go to its bucket: only they are read by the merge.
        predictions = f"{work}/{place}_pred"
        tables.write_predictions(df.where(df.region.isin(*regions)), predictions)
        step(f"{place}: predictions written")
        root = f"s3a://{BUCKETS[place]}"
        config = local.place_config(predictions, f"{root}/out")
        run_evaluation(spark, config, log=local.quiet, full=True)
        step(f"{place}: evaluated")
        sources[place] = f"{root}/out"
    out: dict = {"sources": sources, "steps": steps}

    def merge(raw: dict, *flags: str) -> dict:
        path = Path(work) / "merge.toml"
        path.write_text(local.to_toml(raw), encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.merge_main(["--config", str(path), "--quiet", *flags])
        return {"code": code, "err": err.getvalue()}

    with_gone = {**sources, "gone": "s3a://clfeval-gone/out"}
    out["missing"] = merge(local.merge_raw(with_gone, f"{work}/failed"))
    step("merge failing on the missing bucket")
    central = local.merge_raw(with_gone, f"{work}/central")
    out["allowed"] = merge(central, "--allow-missing-sources")
    step("merge with --allow-missing-sources")
    from clfeval.config import parse_config

    row = tables.read_runs(spark, parse_config(central)).first()
    out["allowed"]["message"] = row["message"]
    Path(report).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    _child(*sys.argv[1:4])
