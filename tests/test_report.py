"""The HTML report job on a demo output, opened in headless Chromium.

Checks: the job exits 0 and writes one self-contained file (no http(s) URL to
fetch); every embedded plot is a PNG with more than one colour; Chromium loads
the page with no console errors and its full-page screenshot is not blank.
Chromium is Debian's package, installed by `make test` (target `browser`).
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from clfeval.cli import report_main
from clfeval.errors import EXIT_CONFIG, EXIT_OK

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def non_blank(png: bytes) -> bool:
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    return pixels.size > 0 and float(np.std(pixels[..., :3])) > 0.01


@pytest.fixture(scope="module")
def report(demo_output: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "fraud_detector.html"
    code = report_main(
        [
            "--config",
            str(ROOT / "conf" / "demo.toml"),
            "--set",
            f"output.path={demo_output / 'metrics'}",
            "--model",
            "fraud_detector",
            "--output",
            str(out),
        ]
    )
    assert code == EXIT_OK
    return out


def test_report_is_self_contained_with_non_empty_plots(report: Path) -> None:
    text = report.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", text)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 3  # curves, confusion matrix, trends
    assert all(non_blank(base64.b64decode(b)) for b in images)
    for heading in ("Headline metrics", "ROC and PR", "Confusion matrix", "Trends", "Worst"):
        assert heading in text
    assert "roc_auc" in text and "ci_lower" in text


def test_unknown_model_is_a_clear_error(demo_output: Path, tmp_path: Path) -> None:
    args = ["--config", str(ROOT / "conf" / "demo.toml"), "--output", str(tmp_path / "x.html")]
    args += ["--set", f"output.path={demo_output / 'metrics'}"]
    assert report_main([*args, "--model", "no_such_model"]) == EXIT_CONFIG
    assert report_main([*args, "--model", "x' OR '1'='1"]) == EXIT_CONFIG


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    done = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,4000",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    assert shot.exists() and non_blank(shot.read_bytes())
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('<img class="plot"') == 3


def test_report_of_a_chosen_day(demo_output: Path, tmp_path: Path) -> None:
    args = ["--config", str(ROOT / "conf" / "demo.toml"), "--model", "churn_model"]
    args += ["--set", f"output.path={demo_output / 'metrics'}", "--version", "v1"]
    out = tmp_path / "day.html"
    assert report_main([*args, "--output", str(out), "--day", "2026-11-02"]) == EXIT_OK
    text = out.read_text()
    assert "Headline metrics, 2026-11-02" in text and "ROC, 2026-11-02" not in text  # in a PNG
    assert report_main([*args, "--output", str(out), "--day", "2027-01-01"]) == EXIT_CONFIG
