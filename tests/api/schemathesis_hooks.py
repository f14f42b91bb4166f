"""schemathesis hooks for `test_schemathesis.py` (loaded by schemathesis.toml, in the schemathesis process).

Each hook says why it is there; none hides a route or a check.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from schemathesis import Case
from schemathesis.hooks import HookContext

BASE_URL = os.environ["MOSTRADOR_FUZZ_BASE_URL"]
TOKEN = os.environ["MOSTRADOR_FUZZ_TOKEN"]
LEAVER_EMAIL = os.environ["MOSTRADOR_FUZZ_LEAVER_EMAIL"]
PASSWORD = os.environ["MOSTRADOR_FUZZ_PASSWORD"]
LOGOUT = "/v1/auth/logout"


@schemathesis.auth(refresh_interval=None)
class OwnerAuth:
    """The tenant owner's access token on every request but `POST /v1/auth/logout`, which ends every token of
    its user: logging the owner out would sign the rest of the run out (every later answer a 401). Logout
    cases log out a second user of the tenant instead, with a token from a fresh login each time."""

    def get(self, case: Case, context: Any) -> str:
        if case.operation.path != LOGOUT:
            return TOKEN
        response = httpx.post(
            f"{BASE_URL}/v1/auth/login", json={"email": LEAVER_EMAIL, "password": PASSWORD}, timeout=30
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def set(self, case: Case, data: str, context: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    """A page `cursor` is opaque: only a `next_cursor` the endpoint returned is one, and no schema can list
    those. The document declares its alphabet (so malformed ones are still sent, and must be a 422), but a
    random string of that alphabet is rightly a 422 too, which the positive checks would count as a valid
    request refused; positive cases therefore go without one (the first page)."""
    meta = case.meta
    if case.query and "cursor" in case.query and meta is not None and not meta.generation.mode.is_negative:
        case.query = {name: value for name, value in case.query.items() if name != "cursor"}
    return case


@schemathesis.hook
def map_body(context: HookContext, body: Any) -> Any:
    """Rules of the bots' configs that span fields, which JSON Schema cannot state (the descriptions do): an
    opening range ends after it starts, and service names and catalog ids are unique, case aside. Generated
    bodies are made to keep them, so that a schema-valid body is a valid one; bodies that break the schema in
    other ways are still sent as they are."""
    if context.operation is None or not context.operation.path.endswith("/bot") or not isinstance(body, dict):
        return body
    config = body.get("config")
    if not isinstance(config, dict):
        return body
    hours = config.get("opening_hours")
    if isinstance(hours, dict):
        for ranges in hours.values():
            for index, one in enumerate(ranges if isinstance(ranges, list) else []):
                ranges[index] = _ordered(one)
    for key, field, longest in (("services", "name", 200), ("catalog", "id", 40)):
        items = config.get(key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get(field), str) and item[field].strip():
                    suffix = f"-{index}"
                    item[field] = item[field].strip()[: longest - len(suffix)] + suffix
    return body


def _ordered(one: Any) -> Any:
    pair = [one.get("start"), one.get("end")] if isinstance(one, dict) else one
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
        return one
    start, end = sorted(pair)
    if start == end:
        start, end = "00:00", "23:59"
    return {"start": start, "end": end} if isinstance(one, dict) else [start, end]
