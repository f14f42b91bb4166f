"""The rules the OpenAPI document promises, checked fast (the schemathesis run checks them all, slowly)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from app.media.limits import LIMITS
from app.media.schemas import MediaSettingsUpdate
from app.sending.schemas import SendMessage
from app.sim.schemas import BASE64_PATTERN
from app.stores.schemas import PHONE_PATTERN, normalize_phone
from app.webhooks.schemas import ReplayRequest, WebhookUpdate
from app.webhooks.urls import URL_PATTERN, UnsafeUrl, parse
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


def test_a_webhook_url_matches_the_documented_pattern_exactly_when_it_parses() -> None:
    samples = [
        "http://a.example/hook",
        "HTTPS://hooks.example.com:8443/x?y=1#z",
        "https://1.2.3.4",
        "http://a",
    ]
    samples += [
        "00000000",
        "ftp://a.example",
        "http://",
        "http://user:pw@a.example",
        "http://a.example:99999",
    ]
    samples += [
        "http://.",
        " http://a.example",
        "http://a.example/x y",
        "http://-a.example",
        "https:/a.example",
    ]
    for sample in samples:
        documented = re.fullmatch(URL_PATTERN, sample) is not None
        try:
            parse(sample)
            parsed = True
        except UnsafeUrl:
            parsed = False
        # The pattern is a little stricter than parse() (no blanks, a host starting with a letter or
        # digit), never looser: what it documents always parses.
        assert documented == parsed or sample in (
            " http://a.example",
            "http://-a.example",
            "http://a.example/x y",
        ), sample
        assert parsed or not documented, sample


def test_sim_base64_matches_the_documented_pattern_exactly_when_it_decodes() -> None:
    for sample in [
        "aGVsbG8=",
        "aGVsbG8",
        "aGVs",
        "aGVsbA==",
        "a===",
        "aGVs bG8=",
        "aGVsbG8=\n",
        "____",
        "Zm9v+/==",
    ]:
        documented = re.fullmatch(BASE64_PATTERN, sample) is not None
        try:
            base64.b64decode(sample, validate=True)
            decodes = True
        except binascii.Error:
            decodes = False
        assert documented == decodes, sample


def test_text_or_media_is_declared_as_the_api_checks_it(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    send_schema = {**schemas["SendMessage"], "components": {"schemas": schemas}}
    to = "+5491166660000"
    media = {"upload_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"}
    bodies: list[dict[str, Any]] = [
        {"to": to, "text": "hola"},
        {"to": to, "media": media, "caption": "una foto"},
        {"to": to},
        {"to": to, "text": None, "media": None},
        {"to": to, "text": "hola", "media": media},
        {"to": to, "text": "hola", "caption": "sin foto"},
        {"to": to, "media": {"url": "https://a.example/x.png", **media}},
        {"to": to, "media": {}},
    ]
    validator = Draft202012Validator(send_schema)
    for body in bodies:
        documented = validator.is_valid(body)
        try:
            SendMessage.model_validate(body)
            accepted = True
        except ValidationError:
            accepted = False
        assert documented == accepted, body
    inbound = Draft202012Validator({**schemas["InboundRequest"], "components": {"schemas": schemas}})
    assert not inbound.is_valid({"from": to, "text": None, "media": None})
    assert inbound.is_valid({"from": to, "text": "hola"})


def test_the_new_bodies_take_json_booleans_integers_and_dates_only(app: FastAPI) -> None:
    for wrong in (0, "true"):
        with pytest.raises(ValidationError):
            WebhookUpdate.model_validate({"enabled": wrong})
        with pytest.raises(ValidationError):
            SendMessage.model_validate({"to": "+5491166660000", "text": "hola", "pause_bot": wrong})
    for moment in (0, "0", 1.5):
        with pytest.raises(ValidationError):
            ReplayRequest.model_validate({"since": moment, "until": "2026-12-06T00:00:00Z"})
    assert ReplayRequest.model_validate({"since": "2026-12-05T00:00:00Z", "until": "2026-12-06T00:00:00Z"})
    for days in (0, "5", True):
        with pytest.raises(ValidationError):
            MediaSettingsUpdate.model_validate({"retention_days": days})
    retention = app.openapi()["components"]["schemas"]["MediaSettingsUpdate"]["properties"]["retention_days"]
    assert {"type": "integer", "minimum": 1, "maximum": 36500} in retention["anyOf"]


def test_an_upload_documents_the_mime_types_it_accepts(app: FastAPI) -> None:
    content = app.openapi()["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]
    assert set(content) == set(LIMITS["document"].mimes)
