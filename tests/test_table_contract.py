"""The README's table reference agrees with the output-table contract
(``clfeval.schema``), and the contract with what the code builds."""

from __future__ import annotations

import re
from pathlib import Path

from clfeval import schema

ROOT = Path(__file__).resolve().parents[1]


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """``### name`` sections of the README's "## Output tables" chapter, each
    with the (column, type) rows of its ``| column | type | meaning |`` table."""
    text = (ROOT / "README.md").read_text()
    chapter = text.split("\n## Output tables", 1)[1].split("\n## ", 1)[0]
    tables = {}
    for section in chapter.split("\n### ")[1:]:
        name = section.split("\n", 1)[0].strip().strip("`")
        columns = []
        for line in section.splitlines():
            if line.startswith(KEY_ROW):  # the key columns, listed once under score_histograms
                columns += tables["score_histograms"][: len(schema.KEY_COLUMNS)]
            row = re.match(r"^\|\s*`?([a-z_]+)`?\s*\|\s*`?([a-z<>,_: ]+?)`?\s*\|", line)
            if row and row[1] != "column":
                columns.append((row[1], row[2].replace(" ", "")))
        tables[name] = columns
    return tables


KEY_ROW = "| *the 7 key columns* |"


def test_every_table_of_the_contract_is_documented_column_by_column() -> None:
    documented = documented_tables()
    for name, struct in schema.TABLE_SCHEMAS.items():
        expected = [(f.name, f.dataType.simpleString()) for f in struct.fields]
        assert documented.get(name) == expected, name


def test_the_documentation_check_can_fail() -> None:
    """A column left out of the README would be caught: the parsed lists are not
    empty and a shortened schema differs."""
    documented = documented_tables()
    metrics = [(f.name, f.dataType.simpleString()) for f in schema.METRICS_SCHEMA.fields]
    assert documented["metrics"] and documented["metrics"] != metrics[:-1]


def test_windowed_tables_start_with_the_key_columns() -> None:
    for name, struct in schema.TABLE_SCHEMAS.items():
        names = [f.name for f in struct.fields]
        if name == "runs":
            continue
        keys = [n for n in names if n in schema.KEY_COLUMNS]
        assert keys == list(schema.KEY_COLUMNS), name
        assert set(schema.PARTITION_COLUMNS) <= set(names), name


def test_state_sums_and_keys_are_histogram_columns() -> None:
    names = [f.name for f in schema.HISTOGRAM_SCHEMA.fields]
    assert set(schema.STATE_SUMS) <= set(names)
    assert set(schema.HISTOGRAM_KEYS) <= set(names)
    assert not set(schema.STATE_SUMS) & set(schema.HISTOGRAM_KEYS)


def test_reject_reasons_that_are_not_bad() -> None:
    assert set(schema.NOT_BAD_REASONS) == {"excluded_by_filter", "unlabeled"}
