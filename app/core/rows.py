"""The one way queries turn database rows into typed rows.

Both row sources go through ``msgspec.convert``: Piccolo answers dicts, ``db.fetch`` answers
asyncpg Records (a Mapping, converted to a dict first). Columns a struct does not declare are
ignored, so a query may select helper columns (e.g. a window count) without a second struct.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def to_struct(row: Mapping[str, Any], type_: type[S]) -> S:
    return msgspec.convert(row if isinstance(row, dict) else dict(row), type_)


def to_structs(rows: Iterable[Mapping[str, Any]], type_: type[S]) -> list[S]:
    return [to_struct(row, type_) for row in rows]


def maybe_struct(row: Mapping[str, Any] | None, type_: type[S]) -> S | None:
    return None if row is None else to_struct(row, type_)
