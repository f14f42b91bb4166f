from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import update

from app.kit.db import AsyncSessionMaker
from app.models import Invite
from tests.support import ClientMaker, login, new_email


async def invite(client: AsyncClient, role: str = "viewer") -> dict[str, str]:
    response = await client.post("/v1/invites", json={"email": new_email(), "role": role})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    assert body["token"] in body["url"]
    return body


async def test_an_invite_joins_the_tenant_with_its_role_once(
    client: AsyncClient, make_client: ClientMaker
) -> None:
    store_id = (await client.post("/v1/stores", json={"name": "Compartida"})).json()["id"]
    created = await invite(client, "viewer")
    assert [i["id"] for i in (await client.get("/v1/invites")).json()["items"]] == [created["id"]]
    assert "token" not in (await client.get("/v1/invites")).json()["items"][0]

    anonymous = make_client()
    accepted = await anonymous.post(
        "/v1/invites/accept", json={"token": created["token"], "password": "their own pw"}
    )
    assert accepted.status_code == 201, accepted.text
    member = make_client(accepted.json()["access_token"])
    me = (await member.get("/v1/users/me")).json()
    assert me["role"] == "viewer" and me["email"] == created["email"]
    assert me["tenant"]["id"] == (await client.get("/v1/users/me")).json()["tenant"]["id"]
    assert (await member.get(f"/v1/stores/{store_id}")).status_code == 200
    assert (await member.post(f"/v1/stores/{store_id}/link")).status_code == 403  # a viewer
    await login(make_client(), created["email"], "their own pw")

    again = await anonymous.post(
        "/v1/invites/accept", json={"token": created["token"], "password": "another pw"}
    )
    assert again.status_code == 404  # single use
    assert (await client.get("/v1/invites")).json()["items"] == []


async def test_an_admin_invite_gives_write_access(client: AsyncClient, make_client: ClientMaker) -> None:
    created = await invite(client, "admin")
    accepted = await make_client().post(
        "/v1/invites/accept", json={"token": created["token"], "password": "12345678"}
    )
    member = make_client(accepted.json()["access_token"])
    assert (await member.post("/v1/stores", json={"name": "De la admin"})).status_code == 201


async def test_nobody_is_invited_as_owner(client: AsyncClient) -> None:
    response = await client.post("/v1/invites", json={"email": new_email(), "role": "owner"})
    assert response.status_code == 422


async def test_concurrent_accepts_of_one_invite_make_one_user(
    client: AsyncClient, make_client: ClientMaker
) -> None:
    created = await invite(client)
    answers = await asyncio.gather(
        *(
            make_client().post("/v1/invites/accept", json={"token": created["token"], "password": "12345678"})
            for _ in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 404, 404, 404]


async def test_revoked_expired_and_guessed_invites_get_nothing(
    client: AsyncClient, other_client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    revoked, expired = await invite(client), await invite(client)
    assert (await other_client.delete(f"/v1/invites/{revoked['id']}")).status_code == 404  # not theirs
    assert (await client.delete(f"/v1/invites/{revoked['id']}")).status_code == 204
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Invite)
            .where(Invite.id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for token in (revoked["token"], expired["token"], "inv_" + "A" * 43, expired["token"][:-1] + "x"):
        response = await make_client().post(
            "/v1/invites/accept", json={"token": token, "password": "12345678"}
        )
        assert response.status_code == 404, token
        assert response.json()["error"]["code"] == "invite_not_found"


async def test_viewers_and_keys_cannot_invite(viewer_client: AsyncClient) -> None:
    response = await viewer_client.post("/v1/invites", json={"email": new_email(), "role": "viewer"})
    assert response.status_code == 403
