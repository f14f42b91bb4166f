"""The one keyset-pagination cursor codec: opaque, typed by the columns it was made for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.kit.pagination import InvalidCursor, decode_cursor, encode_cursor

MOMENT = datetime(2031, 3, 3, 13, 5, 7, 123456, tzinfo=UTC)
ID = uuid.UUID("8f0c6f5e-4c1e-4d7e-9a51-2b7f3f6f1a10")


def test_a_cursor_round_trips_its_values() -> None:
    cursor = encode_cursor([MOMENT, ID])
    assert "=" not in cursor and "2031" not in cursor  # opaque and URL-safe
    assert decode_cursor(cursor, [datetime, uuid.UUID]) == (MOMENT, ID)
    assert decode_cursor(encode_cursor([42]), [int]) == (42,)


@pytest.mark.parametrize(
    ("values", "types"),
    [
        ([MOMENT, ID], [int]),  # another endpoint's cursor
        ([42], [datetime, uuid.UUID]),
        ([True], [int]),  # JSON true is not an order number
        (["2031-03-03T13:05:00", str(ID)], [datetime, uuid.UUID]),  # naive timestamp
        ([MOMENT, "not-a-uuid"], [datetime, uuid.UUID]),
        ([1.5], [int]),
    ],
)
def test_a_cursor_of_the_wrong_shape_is_invalid(values: list[Any], types: list[type[Any]]) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(values), types)


@pytest.mark.parametrize("cursor", ["", "not-a-cursor!", "e30", "bnVsbA"])  # "", junk, {}, null
def test_garbage_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, [int])
