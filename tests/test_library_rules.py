"""Static rules on the library source (DESIGN.md §6, §7)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "clfeval"


def sources(folder: Path = LIB) -> dict[str, str]:
    return {str(p.relative_to(LIB)): p.read_text() for p in folder.rglob("*.py")}


def imported_modules(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


PY4J_ONLY = re.compile(
    r"pyspark\.rdd|(?<!\w)_jvm\b|(?<!\w)_jdf\b|(?<!\w)_jsc\b|_jsparkSession|\bpy4j\b"
    r"|\.parallelize\(|\.rdd\b|SparkContext\b|sparkContext\b|Class\.forName"
    r"|\bjvm\.(?:io|org|java|scala)\."
)


def test_py4j_only_in_the_jvm_adapter_so_the_rest_runs_over_spark_connect() -> None:
    """py4j names, a session's JVM, JVM class names: only ``clfeval/jvm.py``."""
    offenders = {
        name: PY4J_ONLY.findall(text) for name, text in sources().items() if name != "jvm.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_py4j_rule_catches_each_way_in() -> None:
    for text in (
        'jvm = getattr(spark, "_jvm", None)',
        "rows._jdf.queryExecution()",
        "spark._jsparkSession",
        "from py4j.protocol import Py4JError",
        'jvm.java.lang.Class.forName("io.clfeval.PartitionStates", True, loader)',
        "jvm.org.apache.spark.sql.delta.DeltaLog.forTable(session, path)",
        "jvm.io.clfeval.PartitionStates",
        "spark.sparkContext.cancelAllJobs()",
    ):
        assert PY4J_ONLY.search(text), text


def test_core_imports_numpy_and_stdlib_only() -> None:
    for name, text in sources(LIB / "core").items():
        for module in imported_modules(text):
            top = module.split(".")[0]
            assert top not in {"pyspark", "pandas", "delta", "pyarrow"}, (name, module)


def test_spark_layer_never_reads_or_writes_tables() -> None:
    io_calls = re.compile(r"\.write\b|\.save\(|saveAsTable|\.read\.|DeltaTable")
    for name, text in sources(LIB / "spark").items():
        assert not io_calls.search(text), name


def test_io_layer_does_no_math() -> None:
    """io may use core's value types (``core.windows.WindowRange``), never its math."""
    math_modules = {"clfeval.core.binary", "clfeval.core.multiclass", "clfeval.core.intervals"}
    for name, text in sources(LIB / "io").items():
        assert not imported_modules(text) & math_modules, name
        assert "numpy" not in imported_modules(text), name


TASK_BRANCH = re.compile(
    r"is_multiclass|task\.type\s*[!=]=|type_name\s*[!=]=|isinstance\([^)]*Task\b"
    r"|[\"']multiclass[\"']\s*(?:[!=]=|in\b)|[\"']binary[\"']\s*(?:[!=]=|in\b)"
)


def test_no_branch_on_the_task_type_outside_the_task_modules() -> None:
    """The pipeline asks the task; only config validation names the task types."""
    allowed = {"config.py"}
    offenders = {
        name: TASK_BRANCH.findall(text)
        for name, text in sources().items()
        if not name.startswith("tasks/") and name not in allowed
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_branch_rule_catches_a_branch() -> None:
    for text in (
        "if config.is_multiclass:",
        'if config.task.type == "multiclass":',
        "x = 1 if task.type_name != 'binary' else 2",
        "if isinstance(task, MulticlassTask):",
    ):
        assert TASK_BRANCH.search(text), text


def test_pipeline_is_a_short_sequencer() -> None:
    lines = (LIB / "pipeline.py").read_text().splitlines()
    assert len(lines) <= 300


def test_reject_checks_name_reasons_of_the_catalog() -> None:
    """Every reason a check is declared with is in ``schema.REJECT_REASONS`` (the
    ``RejectCheck`` constructor also refuses others when a run builds it)."""
    from clfeval.schema import REJECT_REASONS

    named = set()
    for text in sources().values():
        named |= set(re.findall(r'RejectCheck\(\s*"([a-z_]+)"', text))
    assert named and named <= set(REJECT_REASONS), named - set(REJECT_REASONS)
