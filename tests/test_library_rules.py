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
    for name, text in sources(LIB / "io").items():
        assert "clfeval.core" not in " ".join(imported_modules(text)), name
