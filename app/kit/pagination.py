"""Keyset pagination, for every paginated route.

A page is the rows after (or, newest first, before) the last row of the previous page in a total order of
columns that ends with a unique one, like `(created_at, id)`. Unlike OFFSET, a page stays stable while rows
are added, and costs one index range scan however deep it is. The client gets the last row's sort key as an
opaque cursor (`next_cursor`) and passes it back as `?cursor=`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import QueryableAttribute

from app.kit.errors import MostradorError

RowT = TypeVar("RowT")
Ts = TypeVarTuple("Ts")
CursorValue = int | str | datetime | uuid.UUID
# What every `cursor` parameter declares: cursors are unpadded URL-safe base64 (`encode_cursor`). Opaque all
# the same: only a `next_cursor` the endpoint returned is a cursor, any other string of this shape is a 422.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"


class InvalidCursor(MostradorError):
    status_code = 422
    code = "validation_error"

    def __init__(self) -> None:
        # Shaped like FastAPI's validation errors, so clients handle both the same way.
        super().__init__(
            "invalid request: query.cursor",
            details=[
                {
                    "field": "query.cursor",
                    "message": "not a cursor returned by this endpoint",
                    "type": "value_error",
                }
            ],
        )


def encode_cursor(values: Sequence[CursorValue]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else _plain(v) for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type[Any]]) -> tuple[CursorValue, ...]:
    """The values of a cursor, checked against the types of the columns it was made for."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise InvalidCursor()
        return tuple(_load(value, kind) for value, kind in zip(values, types, strict=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc


def _plain(value: CursorValue) -> int | str:
    return str(value) if isinstance(value, uuid.UUID) else value  # type: ignore[return-value]


def _load(value: Any, kind: type[Any]) -> CursorValue:
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if kind is datetime and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:  # every timestamp column is timezone-aware
            raise ValueError("naive timestamp")
        return moment
    raise TypeError(f"a cursor value {value!r} for a {kind.__name__} column")


@dataclass(frozen=True)
class Keyset:
    """A total order for pages: `columns` (the last one unique), ascending, or descending for newest first."""

    columns: tuple[QueryableAttribute[Any], ...]
    descending: bool = False

    def apply(self, statement: Select[*Ts], *, limit: int, cursor: str | None) -> Select[*Ts]:
        """The statement ordered, started after the cursor, and limited to one more row than the page: the
        extra row tells whether there is a next page without a COUNT."""
        order = [column.desc() if self.descending else column.asc() for column in self.columns]
        statement = statement.order_by(*order).limit(limit + 1)
        if cursor is None:
            return statement
        values = decode_cursor(cursor, [column.type.python_type for column in self.columns])
        key, after = tuple_(*self.columns), tuple_(*values)
        return statement.where(key < after if self.descending else key > after)

    def page(
        self, rows: Sequence[RowT], *, limit: int, key: Callable[[RowT], Sequence[CursorValue]]
    ) -> tuple[list[RowT], str | None]:
        """The page out of the rows `apply`'s statement returned, and the cursor of the next one (or None)."""
        page = list(rows[:limit])
        if len(rows) <= limit:
            return page, None
        return page, encode_cursor(key(page[-1]))
