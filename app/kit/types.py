"""Request field types that accept exactly what their JSON Schema type says.

pydantic's lax mode, which FastAPI uses for bodies, takes `true` and `"5"` for an integer and `0` or `"yes"`
for a boolean; the OpenAPI document says `integer` and `boolean`, so a fuzzer (and a careful client) expects
those to be refused. JSON Schema counts `5.0` as an integer, so that is accepted (as 5).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, StrictBool


def json_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(json_integer)]
JsonBool = StrictBool

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


def json_date_time(value: Any) -> Any:
    # pydantic would read `0` or `"0"` as a Unix time; the document says `format: date-time` (RFC 3339).
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date and time with its offset, like 2026-12-06T10:00:00Z")
    return value


JsonAwareDatetime = Annotated[AwareDatetime, BeforeValidator(json_date_time)]
