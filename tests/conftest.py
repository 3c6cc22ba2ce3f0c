"""One session-scoped SparkSession (local[2], Delta) for the whole suite."""

from __future__ import annotations

import pytest

from clfeval.io.session import LOCAL_SMALL_CONF, build_session


@pytest.fixture(scope="session")
def spark():
    session = build_session(
        "clfeval-tests",
        master="local[2]",
        extra_conf={**LOCAL_SMALL_CONF, "spark.ui.showConsoleProgress": "false"},
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
