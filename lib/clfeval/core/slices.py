"""Slice keys and values.

A slice is a list of segment columns; its key is the column names joined by
``,`` (``""`` is the overall slice) and its value is the row's values joined by
``,``. Values are escaped so that a value containing a comma, a backslash or a
quote stays unambiguous:

* ``\\`` becomes ``\\\\`` and ``,`` becomes ``\\,``;
* a NULL value is written ``\\N`` (no escaped real value can produce it).
"""

from __future__ import annotations

NULL_TOKEN = "\\N"


def escape_value(value: object) -> str:
    if value is None:
        return NULL_TOKEN
    return str(value).replace("\\", "\\\\").replace(",", "\\,")


def join_values(values: list[object]) -> str:
    return ",".join(escape_value(v) for v in values)


def split_values(slice_value: str) -> list[str | None]:
    """Inverse of ``join_values`` for one or more columns (strings, NULL as None)."""
    parts: list[str | None] = []
    current: list[str] = []
    is_null = False
    i = 0
    while i < len(slice_value):
        ch = slice_value[i]
        if ch == "\\" and i + 1 < len(slice_value):
            escaped = slice_value[i + 1]
            if escaped == "N":
                is_null = True
            else:
                current.append(escaped)
            i += 2
            continue
        if ch == ",":
            parts.append(None if is_null else "".join(current))
            current, is_null = [], False
        else:
            current.append(ch)
        i += 1
    parts.append(None if is_null else "".join(current))
    return parts


def slice_key(columns: tuple[str, ...]) -> str:
    return ",".join(columns)


def decode(key: str, value: str) -> dict[str, str | None]:
    """``{column: value}`` of a ``(slice_key, slice_value)`` pair; ``{}`` for overall."""
    if key == "":
        return {}
    columns = key.split(",")
    values = split_values(value)
    if len(values) != len(columns):
        raise ValueError(f"slice_value {value!r} does not have {len(columns)} values")
    return dict(zip(columns, values, strict=True))
