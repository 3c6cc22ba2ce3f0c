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


def test_no_rdd_jvm_or_parallelize_so_it_runs_over_spark_connect() -> None:
    banned = re.compile(r"pyspark\.rdd|\._jvm|_jsc|\.parallelize\(|\.rdd\b|SparkContext\b")
    offenders = {name: banned.findall(text) for name, text in sources().items()}
    assert {k: v for k, v in offenders.items() if v} == {}


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
    """Every reason a check may tag is in ``schema.REJECT_REASONS`` (the
    ``RejectCheck`` constructor refuses others), and no module writes a reason
    as a bare string outside the catalog and the checks."""
    from clfeval.schema import REJECT_REASONS

    named = set()
    for name, text in sources().items():
        named |= set(re.findall(r'RejectCheck\(\s*"([a-z_]+)"', text))
    assert named and named <= set(REJECT_REASONS), named - set(REJECT_REASONS)
