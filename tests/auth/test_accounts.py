from __future__ import annotations

import time
import uuid
from statistics import median

from httpx import AsyncClient
from joserfc import jwt
from joserfc.jwk import OctKey

from app.auth.tokens import TokenKind, derive_key, issue_token
from app.config import Settings
from tests.support import PASSWORD, ClientMaker, login, new_email, signup


async def test_signup_creates_a_tenant_and_its_owner(make_client: ClientMaker) -> None:
    anonymous = make_client()
    email = new_email()
    response = await anonymous.post(
        "/v1/auth/signup", json={"email": email.upper(), "password": PASSWORD, "business_name": " Kiosco "}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "csrf_token"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 900 and body["csrf_token"] is None

    me = (await make_client(body["access_token"]).get("/v1/users/me")).json()
    assert me["email"] == email  # stored lower-cased
    assert me["role"] == "owner"
    assert me["tenant"]["name"] == "Kiosco"
    assert "stores:write" in me["scopes"] and "api_keys:write" in me["scopes"]


async def test_signup_twice_with_one_email_is_a_conflict(make_client: ClientMaker) -> None:
    email = new_email()
    await signup(make_client(), email=email)
    response = await make_client().post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "business_name": "Otra"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


async def test_signup_rejects_a_short_password_and_a_bad_email(make_client: ClientMaker) -> None:
    for body, field in (
        ({"email": new_email(), "password": "short", "business_name": "K"}, "body.password"),
        ({"email": "not-an-email", "password": PASSWORD, "business_name": "K"}, "body.email"),
    ):
        response = await make_client().post("/v1/auth/signup", json=body)
        assert response.status_code == 422
        assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_login_returns_a_working_token(make_client: ClientMaker) -> None:
    email = new_email()
    await signup(make_client(), email=email)
    token = await login(make_client(), email.upper())  # emails are case-insensitive
    assert (await make_client(token).get("/v1/stores")).status_code == 200


async def test_wrong_email_and_wrong_password_get_the_same_answer_after_the_same_work(
    make_client: ClientMaker,
) -> None:
    email = new_email()
    await signup(make_client(), email=email)
    anonymous = make_client()

    async def attempt(body: dict[str, str]) -> tuple[float, int, str]:
        started = time.perf_counter()
        response = await anonymous.post("/v1/auth/login", json=body)
        return time.perf_counter() - started, response.status_code, response.text

    wrong_password = [await attempt({"email": email, "password": "not the password"}) for _ in range(3)]
    unknown_email = [await attempt({"email": new_email(), "password": "not the password"}) for _ in range(3)]
    answers = {(status, text) for _, status, text in wrong_password + unknown_email}
    assert len(answers) == 1
    [(status, text)] = answers
    assert status == 401 and "invalid_credentials" in text
    # Without the dummy hash an unknown email answers in a database lookup (~1 ms), a wrong password in an
    # argon2 verification (tens of ms): a ratio far below this one.
    ratio = median(t for t, _, _ in unknown_email) / median(t for t, _, _ in wrong_password)
    assert ratio > 0.5, ratio


async def test_logout_revokes_the_token_at_once(client: AsyncClient, make_client: ClientMaker) -> None:
    assert (await client.get("/v1/stores")).status_code == 200
    response = await client.post("/v1/auth/logout")
    assert response.status_code == 204
    after = await client.get("/v1/stores")
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"


async def test_a_new_login_after_logout_works(make_client: ClientMaker) -> None:
    email = new_email()
    first = make_client(await signup(make_client(), email=email))
    assert (await first.post("/v1/auth/logout")).status_code == 204
    second = make_client(await login(make_client(), email))
    assert (await second.get("/v1/stores")).status_code == 200
    assert (await first.get("/v1/stores")).status_code == 401


async def test_changing_the_password_ends_other_sessions(make_client: ClientMaker) -> None:
    email = new_email()
    old_session = make_client(await signup(make_client(), email=email))
    other_session = make_client(await login(make_client(), email))

    wrong = await old_session.post(
        "/v1/auth/password", json={"current_password": "not it at all", "new_password": "a new passphrase"}
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"

    response = await old_session.post(
        "/v1/auth/password", json={"current_password": PASSWORD, "new_password": "a new passphrase"}
    )
    assert response.status_code == 200
    fresh = make_client(response.json()["access_token"])
    assert (await fresh.get("/v1/stores")).status_code == 200
    assert (await other_session.get("/v1/stores")).status_code == 401
    assert (await old_session.get("/v1/stores")).status_code == 401
    anonymous = make_client()
    old = await anonymous.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    await login(anonymous, email, "a new passphrase")


def _claims(user_id: str, tenant_id: str, **overrides: object) -> dict[str, object]:
    now = time.time()
    claims: dict[str, object] = {
        "iss": "mostrador",
        "sub": user_id,
        "tid": tenant_id,
        "jti": "x",
        "kind": "access",
        "iat": now,
        "exp": int(now) + 600,
    }
    claims.update(overrides)
    return claims


async def test_a_jwt_with_a_wrong_signature_expired_or_unsigned_is_refused(
    client: AsyncClient, make_client: ClientMaker, settings: Settings
) -> None:
    me = (await client.get("/v1/users/me")).json()
    assert settings.secret_key
    good_key = OctKey.import_key(derive_key(settings.secret_key, "jwt"))
    wrong_key = OctKey.import_key(derive_key("another-secret-key-of-enough-length-000000", "jwt"))
    user, tenant = me["id"], me["tenant"]["id"]

    valid = jwt.encode({"alg": "HS256"}, _claims(user, tenant), good_key)
    assert (await make_client(valid).get("/v1/stores")).status_code == 200  # the forging itself is right

    header, payload, _ = valid.split(".")
    refused = {
        "wrong signature": jwt.encode({"alg": "HS256"}, _claims(user, tenant), wrong_key),
        "expired": jwt.encode(
            {"alg": "HS256"},
            _claims(user, tenant, iat=time.time() - 120, exp=int(time.time()) - 60),
            good_key,
        ),
        "unsigned (alg none)": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
        "signature stripped": f"{header}.{payload}.",
        "another tenant": jwt.encode({"alg": "HS256"}, _claims(user, str(uuid.uuid4())), good_key),
        "unknown user": jwt.encode({"alg": "HS256"}, _claims(str(uuid.uuid4()), tenant), good_key),
        "a session token as bearer": issue_token(
            settings.secret_key,
            user_id=uuid.UUID(user),
            tenant_id=uuid.UUID(tenant),
            kind=TokenKind.session,
            ttl_seconds=600,
        )[0],
        "garbage": "not.a.token",
    }
    for why, token in refused.items():
        response = await make_client(token).get("/v1/stores")
        assert response.status_code == 401, why
        assert response.headers["www-authenticate"] == "Bearer", why
        assert response.json()["error"]["code"] == "not_authenticated", why


async def test_no_credentials_is_a_401_with_a_json_body(make_client: ClientMaker) -> None:
    response = await make_client().get("/v1/stores")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"
    response = await make_client().get("/v1/stores", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401


async def test_a_viewer_reads_but_does_not_write(client: AsyncClient, viewer_client: AsyncClient) -> None:
    store_id = (await client.post("/v1/stores", json={"name": "Kiosco"})).json()["id"]
    assert (await viewer_client.get(f"/v1/stores/{store_id}")).status_code == 200
    assert (await viewer_client.get("/v1/stores")).json()["items"][0]["id"] == store_id
    for method, path, body in (
        ("POST", "/v1/stores", {"name": "No"}),
        ("POST", f"/v1/stores/{store_id}/link", None),
        ("PUT", f"/v1/stores/{store_id}/bot", {"kind": "echo", "config": {}}),
        ("POST", "/v1/api-keys", {"name": "No"}),
    ):
        response = await viewer_client.request(method, path, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    assert (await client.get(f"/v1/stores/{store_id}")).json()["desired_state"] == "unlinked"
