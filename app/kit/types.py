"""Request field types that accept exactly what their JSON Schema type says.

pydantic's lax mode, which FastAPI uses for bodies, takes `true` and `"5"` for an integer and `0` or `"yes"`
for a boolean; the OpenAPI document says `integer` and `boolean`, so a fuzzer (and a careful client) expects
those to be refused. JSON Schema counts `5.0` as an integer, so that is accepted (as 5).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, StrictBool


def json_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(json_integer)]
JsonBool = StrictBool
