"""The rules the OpenAPI document promises, checked fast (the schemathesis run checks them all, slowly)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from app.stores.schemas import PHONE_PATTERN, normalize_phone
from tests.support import post_store


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]


async def test_every_error_answer_is_documented_as_the_one_error_shape(app: FastAPI) -> None:
    document = app.openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        if "requestBody" in operation:
            assert "400" in operation["responses"], (method, path)
        if "{" in path:
            assert "404" in operation["responses"], (method, path)


async def test_authenticated_routes_declare_their_credentials_and_401_403(app: FastAPI) -> None:
    operations = {(m, p): op for p, m, op in _operations(app.openapi())}
    stores = operations[("get", "/v1/stores")]
    assert {"HTTPBearer": []} in stores["security"] and {"APIKeyCookie": []} in stores["security"]
    assert {"401", "403"} <= stores["responses"].keys()
    assert "security" not in operations[("post", "/v1/auth/signup")]
    assert "security" not in operations[("get", "/healthz")]


async def test_a_405_lists_every_method_of_the_path(client: AsyncClient) -> None:
    # GET and POST /v1/stores are two routes: Starlette's own 405 named the first one's methods only.
    response = await client.put("/v1/stores", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_nul_characters_are_refused_in_json_and_in_the_query(client: AsyncClient) -> None:
    response = await client.post("/v1/stores", json={"name": "Kiosco\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "body"
    response = await client.get("/v1/stores", params={"cursor": "a\x00b"})
    assert response.status_code == 422, response.text
    # Nothing was written.
    assert (await client.get("/v1/stores")).json()["items"] == []


async def test_request_booleans_and_integers_take_json_values_only(client: AsyncClient) -> None:
    store_id = await post_store(client)
    path = f"/v1/stores/{store_id}"
    for wrong in (0, "7", True):
        body = {"settings": {"handoff": {"auto_resume_minutes": wrong}}}
        assert (await client.patch(path, json=body)).status_code == 422, wrong
    # JSON Schema counts 5.0 as an integer.
    response = await client.patch(path, json={"settings": {"handoff": {"auto_resume_minutes": 5.0}}})
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["handoff"]["auto_resume_minutes"] == 5
    login = {"email": "nobody@example.com", "password": "whatever-long", "cookie": 0}
    assert (await client.post("/v1/auth/login", json=login)).status_code == 422


async def test_since_and_until_take_dates_not_unix_times(client: AsyncClient) -> None:
    store_id = await post_store(client)
    assert (await client.get(f"/v1/stores/{store_id}/stats", params={"until": "0.5"})).status_code == 422
    ok = await client.get(f"/v1/stores/{store_id}/stats", params={"until": "2026-12-06T00:00:00Z"})
    assert ok.status_code == 200, ok.text


def test_a_phone_number_matches_the_documented_pattern_exactly_when_it_is_accepted() -> None:
    samples = [
        "+54 9 11 5555-0000",
        "5491155550000",
        " +5491155550000 ",
        "+5491155550000\n",
        "12",
        "+",
        "++54911555500",
    ]
    samples += ["+54911555500001234", "54-", "abc", "+54 9 11 5555 0000 x", "1234567", "12345678"]
    for sample in samples:
        documented = re.search(PHONE_PATTERN, sample) is not None
        try:
            normalize_phone(sample)
            accepted = True
        except ValueError:
            accepted = False
        assert documented == accepted, sample
