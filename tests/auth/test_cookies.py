"""The web page's cookie session: HttpOnly, SameSite=Lax, Secure; CSRF token on every state-changing request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.streaming import StreamingASGITransport, sse_events
from tests.support import PASSWORD, new_email, signup


@pytest.fixture
async def page(app: FastAPI) -> AsyncIterator[tuple[AsyncClient, str]]:
    """A browser-like client (https, keeps cookies) logged in with a cookie session; and its CSRF token."""
    async with AsyncClient(transport=StreamingASGITransport(app), base_url="https://test") as http:
        email = new_email()
        async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as plain:
            await signup(plain, email=email)
        response = await http.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "cookie": True}
        )
        assert response.status_code == 200, response.text
        csrf = response.json()["csrf_token"]
        assert csrf
        yield http, csrf


async def test_login_sets_an_httponly_samesite_secure_session_cookie(app: FastAPI) -> None:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as http:
        email = new_email()
        await signup(http, email=email)
        response = await http.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "cookie": True}
        )
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert set(cookies) == {"mostrador_session", "mostrador_csrf"}
    session = cookies["mostrador_session"]
    assert "httponly" in session and "samesite=lax" in session and "secure" in session
    assert "httponly" not in cookies["mostrador_csrf"]  # the page's script reads it
    assert response.json()["csrf_token"] in response.headers.get_list("set-cookie")[1]
    # Without `cookie: true`, no cookie at all.
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as http:
        response = await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.headers.get_list("set-cookie") == [] and response.json()["csrf_token"] is None


async def test_a_cookie_write_without_the_csrf_token_is_refused(page: tuple[AsyncClient, str]) -> None:
    http, csrf = page
    assert (await http.get("/v1/stores")).status_code == 200  # reads need no token
    refused = await http.post("/v1/stores", json={"name": "Sin token"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    wrong = await http.post("/v1/stores", json={"name": "Mal token"}, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert (await http.get("/v1/stores")).json()["items"] == []  # neither was created
    created = await http.post("/v1/stores", json={"name": "Con token"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text


async def test_the_event_stream_accepts_the_cookie(page: tuple[AsyncClient, str]) -> None:
    http, csrf = page
    store = (await http.post("/v1/stores", json={"name": "SSE"}, headers={"X-CSRF-Token": csrf})).json()
    async with asyncio.timeout(10), http.stream("GET", f"/v1/stores/{store['id']}/events") as response:
        assert response.status_code == 200
        name, data = await anext(sse_events(response))
        assert name == "status" and data["status"] == "unlinked"


async def test_logout_ends_the_cookie_session(page: tuple[AsyncClient, str]) -> None:
    http, csrf = page
    old = http.cookies["mostrador_session"]
    assert (await http.post("/v1/auth/logout")).status_code == 403  # a cookie write: the token is needed
    response = await http.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert "mostrador_session" not in http.cookies  # the browser is told to forget it...
    # ...and one that kept it anyway gets nothing with it.
    http.cookies.set("mostrador_session", old, domain="test")
    assert (await http.get("/v1/stores")).status_code == 401
