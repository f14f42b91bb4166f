"""Sign-in through an OpenID Connect provider the test runs on 127.0.0.1 (real HTTP both ways)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from joserfc.jwk import RSAKey
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.auth.oidc_provider import LocalOidcProvider
from tests.support import ClientMaker, signup


@pytest.fixture
async def provider() -> AsyncIterator[LocalOidcProvider]:
    provider = LocalOidcProvider(client_id="mostrador", client_secret="provider-secret")
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
async def oidc_app(
    settings: Settings, engine: AsyncEngine, redis: Redis, provider: LocalOidcProvider
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "oidc_issuer": provider.issuer,
                "oidc_client_id": provider.client_id,
                "oidc_client_secret": provider.client_secret,
            }
        )
    )
    async with app.router.lifespan_context(app):
        yield app


def browser(app: FastAPI) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app), base_url="https://test")


async def sign_in(http: AsyncClient) -> httpx.Response:
    """What a browser does: our login redirects to the provider, the provider redirects back to our callback."""
    start = await http.get("/v1/auth/oidc/login")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as network:  # the provider is a real server
        approved = await network.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["location"])
    assert back.path == "/v1/auth/oidc/callback"
    return await http.get(f"{back.path}?{back.query}")


async def test_a_new_person_signs_in_and_gets_a_tenant(
    oidc_app: FastAPI, provider: LocalOidcProvider
) -> None:
    async with browser(oidc_app) as http:
        start = await http.get("/v1/auth/oidc/login")
        params = parse_qs(urlsplit(start.headers["location"]).query)
        assert params["code_challenge_method"] == ["S256"] and params["nonce"] and params["state"]
        response = await sign_in(http)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["csrf_token"] and "mostrador_session" in http.cookies  # a cookie session for the page
        me = (await http.get("/v1/users/me")).json()  # the cookie alone authenticates
        assert (
            me["email"] == "ana@example.com" and me["role"] == "owner" and me["tenant"]["name"] == "Ana Pérez"
        )
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await http.get("/v1/users/me", headers=bearer)).json()["id"] == me["id"]

    async with browser(oidc_app) as http:  # again, another day: the same user and tenant
        response = await sign_in(http)
        assert (await http.get("/v1/users/me")).json()["tenant"]["id"] == me["tenant"]["id"]
    assert provider.token_requests == 2


async def test_an_existing_account_signs_in_by_its_verified_email(
    oidc_app: FastAPI, provider: LocalOidcProvider, make_client: ClientMaker
) -> None:
    async with browser(oidc_app) as http:
        token = await signup(http, email="ana@example.com", business_name="Peluquería Ana")
        tenant_id = (await http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})).json()[
            "tenant"
        ]
        response = await sign_in(http)
        assert response.status_code == 200
        assert (await http.get("/v1/users/me")).json()["tenant"] == tenant_id


async def test_a_forged_id_token_a_wrong_nonce_or_an_unverified_email_sign_nobody_in(
    oidc_app: FastAPI, provider: LocalOidcProvider
) -> None:
    for spoil in ("forged signature", "wrong nonce", "unverified email"):
        provider.signing_key, provider.nonce_override, provider.email_verified = provider.key, None, True
        if spoil == "forged signature":
            provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "published", "alg": "RS256"})
        elif spoil == "wrong nonce":
            provider.nonce_override = "replayed-nonce"
        else:
            provider.email_verified = False
        async with browser(oidc_app) as http:
            response = await sign_in(http)
            assert response.status_code == 401, spoil
            assert response.json()["error"]["code"] == "oidc_failed", spoil
            assert "mostrador_session" not in http.cookies


async def test_a_callback_without_its_browsers_state_is_refused(
    oidc_app: FastAPI, provider: LocalOidcProvider
) -> None:
    async with browser(oidc_app) as http:
        start = await http.get("/v1/auth/oidc/login")
        async with httpx.AsyncClient() as network:
            approved = await network.get(start.headers["location"])
        back = urlsplit(approved.headers["location"])
    async with browser(oidc_app) as attacker_victim:  # another browser, without the state cookie
        response = await attacker_victim.get(f"{back.path}?{back.query}")
        assert response.status_code == 401
    async with browser(oidc_app) as http:
        await http.get("/v1/auth/oidc/login")
        code = parse_qs(back.query)["code"][0]
        response = await http.get("/v1/auth/oidc/callback", params={"code": code, "state": "not-the-state"})
        assert response.status_code == 401
    assert provider.token_requests == 0  # refused before any code was traded


async def test_without_a_provider_the_routes_say_so(client: AsyncClient) -> None:
    response = await client.get("/v1/auth/oidc/login")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "oidc_not_configured"
