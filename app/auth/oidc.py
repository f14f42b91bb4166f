"""Sign-in with an OpenID Connect provider: authorization code flow with PKCE, through authlib's OAuth 2 client.

`/login` sends the browser to the provider with a fresh `state`, `nonce` and PKCE verifier, kept in a short-lived
signed HttpOnly cookie (no server-side storage). `/callback` checks the state, trades the code for tokens, and
verifies the ID token: signature against the provider's JWKS, issuer, audience, expiry, and the nonce. Only a
verified email (`email_verified: true`) signs in, so nobody can claim an account by its address alone.
"""

from __future__ import annotations

import hmac
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # noqa: F401  (imported for its side effect: see the warning filter below)
import httpx
from authlib.oauth2 import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from app.auth.errors import OidcFailed, OidcNotConfigured
from app.auth.tokens import derive_key
from app.config import Settings

# authlib 1.9 warns at import that its client falls back to httpx (it would take the `httpx2` package): httpx is
# what we install on purpose, and the notice would be three lines of every start, failed ones included. Its
# module `authlib.deprecate` puts an "always" filter first when imported (above), so ours goes in front of it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

STATE_COOKIE = "mostrador_oidc"
STATE_TTL_SECONDS = 600
ID_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256", "EdDSA"]
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class OidcIdentity:
    email: str
    name: str | None


def _require(settings: Settings) -> tuple[str, str]:
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise OidcNotConfigured()
    return settings.oidc_issuer, settings.oidc_client_id


async def discover(issuer: str) -> Provider:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as http:
            response = await http.get(url)
            response.raise_for_status()
            document = response.json()
        return Provider(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise OidcFailed("the sign-in provider did not answer its discovery document") from exc


def _client(settings: Settings, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        scope="openid email profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_SECONDS,
    )


def _state_key(settings: Settings) -> OctKey:
    assert settings.secret_key
    return OctKey.import_key(derive_key(settings.secret_key, "oidc-state"))


async def start(settings: Settings, redirect_uri: str) -> tuple[str, str]:
    """The provider's authorization URL to send the browser to, and the signed state cookie to set."""
    issuer, _ = _require(settings)
    provider = await discover(issuer)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    async with _client(settings, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            provider.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
        )
    claims = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "exp": int(time.time()) + STATE_TTL_SECONDS,
    }
    return url, jwt.encode({"alg": "HS256"}, claims, _state_key(settings))


def _read_state(settings: Settings, cookie: str | None) -> dict[str, Any]:
    if not cookie:
        raise OidcFailed("the sign-in took too long or started in another browser; start again")
    try:
        decoded = jwt.decode(cookie, _state_key(settings), algorithms=["HS256"])
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)
    except JoseError as exc:
        raise OidcFailed("the sign-in took too long or started in another browser; start again") from exc
    return decoded.claims


async def finish(
    settings: Settings, redirect_uri: str, *, code: str, state: str, cookie: str | None
) -> OidcIdentity:
    """Check the callback against the state cookie, trade the code, verify the ID token: the verified identity."""
    issuer, client_id = _require(settings)
    saved = _read_state(settings, cookie)
    if not hmac.compare_digest(str(saved["state"]), state):
        raise OidcFailed("the sign-in answer does not belong to this browser's sign-in; start again")
    provider = await discover(issuer)
    try:
        async with _client(settings, redirect_uri) as client:
            token = await client.fetch_token(
                provider.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=saved["verifier"],
            )
            jwks = (await client.get(provider.jwks_uri)).raise_for_status().json()
    except (OAuth2Error, httpx.HTTPError, ValueError) as exc:
        raise OidcFailed("the sign-in provider refused the code") from exc
    claims = _verify_id_token(
        token.get("id_token"), jwks, provider=provider, client_id=client_id, nonce=saved["nonce"]
    )
    if claims.get("email_verified") is not True or not isinstance(claims.get("email"), str):
        raise OidcFailed("the sign-in provider did not vouch for an email address (email_verified)")
    name = claims.get("name")
    return OidcIdentity(email=claims["email"].strip().lower(), name=name if isinstance(name, str) else None)


def _verify_id_token(
    id_token: object, jwks: dict[str, Any], *, provider: Provider, client_id: str, nonce: str
) -> dict[str, Any]:
    if not isinstance(id_token, str):
        raise OidcFailed("the sign-in provider sent no ID token")
    registry = jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        decoded = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=ID_TOKEN_ALGORITHMS)  # type: ignore[arg-type]
        registry.validate(decoded.claims)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise OidcFailed("the sign-in provider's ID token did not verify") from exc
    return decoded.claims
