"""The tenant's members: listed by everyone in it, re-roled and removed by owners and admins, within rules."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select

from app.kit.db import AsyncSessionMaker
from app.models import User
from tests.support import PASSWORD, ClientMaker, insert_user, login


async def member(
    make_client: ClientMaker, sessionmaker: AsyncSessionMaker, tenant_id: str, role: str
) -> tuple[AsyncClient, str]:
    """A signed-in member of the tenant with this role: its client and its user id."""
    http = make_client(
        await login(make_client(), await insert_user(sessionmaker, tenant_id=tenant_id, role=role))
    )
    return http, (await http.get("/v1/users/me")).json()["id"]


async def me(http: AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get("/v1/users/me")).json()
    return body


async def test_the_list_shows_every_member_in_join_order_keyset_paged(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    owner = await me(client)
    tenant_id = owner["tenant"]["id"]
    viewer, viewer_id = await member(make_client, sessionmaker, tenant_id, "viewer")
    _, admin_id = await member(make_client, sessionmaker, tenant_id, "admin")

    listed = (await viewer.get("/v1/users")).json()  # a viewer reads the list too
    assert [m["id"] for m in listed["items"]] == [owner["id"], viewer_id, admin_id]
    assert [m["role"] for m in listed["items"]] == ["owner", "viewer", "admin"]
    assert set(listed["items"][0]) == {"id", "email", "role", "created_at"}  # no hash, no tenant internals
    assert listed["next_cursor"] is None

    first = (await client.get("/v1/users", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (await client.get("/v1/users", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [m["id"] for m in first["items"] + rest["items"]] == [owner["id"], viewer_id, admin_id]
    assert rest["next_cursor"] is None
    bad = await client.get("/v1/users", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


async def test_an_owner_changes_roles_and_a_demoted_member_loses_its_rights_at_once(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    tenant_id = (await me(client))["tenant"]["id"]
    admin, admin_id = await member(make_client, sessionmaker, tenant_id, "admin")
    assert (await admin.post("/v1/stores", json={"name": "Antes"})).status_code == 201

    changed = await client.patch(f"/v1/users/{admin_id}", json={"role": "viewer"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "viewer"
    # The token issued while an admin no longer works at all (its session ended); a new one is a viewer's.
    assert (await admin.post("/v1/stores", json={"name": "Después"})).status_code == 401
    again = make_client(await login(make_client(), changed.json()["email"]))
    assert (await again.get("/v1/users/me")).json()["role"] == "viewer"
    assert (await again.post("/v1/stores", json={"name": "Después"})).status_code == 403

    promoted = await client.patch(f"/v1/users/{admin_id}", json={"role": "owner"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "owner"
    # A promotion keeps the session: the same token now holds the owner's rights.
    assert (await again.post("/v1/stores", json={"name": "Ya dueña"})).status_code == 201


async def test_a_demoted_cookie_session_loses_its_rights_at_once(
    app: FastAPI, client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    email = await insert_user(sessionmaker, tenant_id=(await me(client))["tenant"]["id"], role="admin")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as page:
        logged_in = await page.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "cookie": True}
        )
        csrf = {"X-CSRF-Token": logged_in.json()["csrf_token"]}
        assert (await page.post("/v1/stores", json={"name": "Con cookie"}, headers=csrf)).status_code == 201
        admin_id = (await page.get("/v1/users/me")).json()["id"]
        assert (await client.patch(f"/v1/users/{admin_id}", json={"role": "viewer"})).status_code == 200
        assert (await page.post("/v1/stores", json={"name": "Otra"}, headers=csrf)).status_code == 401
        assert (await page.get("/v1/users")).status_code == 401


async def test_a_removed_member_is_gone_and_its_tokens_with_it(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    tenant_id = (await me(client))["tenant"]["id"]
    viewer, viewer_id = await member(make_client, sessionmaker, tenant_id, "viewer")
    removed = await client.delete(f"/v1/users/{viewer_id}")
    assert removed.status_code == 204, removed.text
    assert (await viewer.get("/v1/users/me")).status_code == 401
    assert viewer_id not in {m["id"] for m in (await client.get("/v1/users")).json()["items"]}
    assert (await client.delete(f"/v1/users/{viewer_id}")).json()["error"]["code"] == "user_not_found"


async def test_the_last_owner_can_be_neither_demoted_nor_removed(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    owner = await me(client)
    for response in (
        await client.patch(f"/v1/users/{owner['id']}", json={"role": "admin"}),
        await client.delete(f"/v1/users/{owner['id']}"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "last_owner"
        assert "only owner" in response.json()["error"]["message"]
    assert (await me(client))["role"] == "owner"


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    first = await me(client)
    second, second_id = await member(make_client, sessionmaker, first["tenant"]["id"], "owner")
    answers = await asyncio.gather(
        client.patch(f"/v1/users/{second_id}", json={"role": "admin"}),
        second.patch(f"/v1/users/{first['id']}", json={"role": "admin"}),
    )
    assert sorted(a.status_code for a in answers) in ([200, 401], [200, 403], [200, 409]), [
        a.text for a in answers
    ]
    # Whoever locked the owners first won; the other, demoted meanwhile, was refused: one owner is left.
    async with sessionmaker() as session:
        roles = await session.scalars(
            select(User.role).where(User.tenant_id == uuid.UUID(first["tenant"]["id"]))
        )
        assert sorted(roles) == ["admin", "owner"]


async def test_nobody_changes_their_own_role_or_removes_themselves(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    tenant_id = (await me(client))["tenant"]["id"]
    admin, admin_id = await member(make_client, sessionmaker, tenant_id, "admin")
    _, _second_owner = await member(make_client, sessionmaker, tenant_id, "owner")
    owner_id = (await me(client))["id"]
    for response in (
        await admin.patch(f"/v1/users/{admin_id}", json={"role": "viewer"}),
        await admin.delete(f"/v1/users/{admin_id}"),
        await client.patch(f"/v1/users/{owner_id}", json={"role": "admin"}),  # not the last owner: still own
        await client.delete(f"/v1/users/{owner_id}"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "own_membership"
    assert (await me(admin))["role"] == "admin"


async def test_an_admin_cannot_make_change_or_remove_an_owner(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    owner = await me(client)
    tenant_id = owner["tenant"]["id"]
    admin, _ = await member(make_client, sessionmaker, tenant_id, "admin")
    _, viewer_id = await member(make_client, sessionmaker, tenant_id, "viewer")
    _, second_owner = await member(make_client, sessionmaker, tenant_id, "owner")
    for response in (
        await admin.patch(f"/v1/users/{viewer_id}", json={"role": "owner"}),
        await admin.patch(f"/v1/users/{second_owner}", json={"role": "viewer"}),
        await admin.delete(f"/v1/users/{second_owner}"),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "owners_only"
    # What an admin may do: move non-owners around and remove them.
    assert (await admin.patch(f"/v1/users/{viewer_id}", json={"role": "admin"})).json()["role"] == "admin"
    assert (await admin.delete(f"/v1/users/{viewer_id}")).status_code == 204
    roles = {m["id"]: m["role"] for m in (await client.get("/v1/users")).json()["items"]}
    assert roles[second_owner] == "owner" and viewer_id not in roles


async def test_viewers_and_api_keys_cannot_change_members(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    owner = await me(client)
    viewer, _ = await member(make_client, sessionmaker, owner["tenant"]["id"], "viewer")
    _, admin_id = await member(make_client, sessionmaker, owner["tenant"]["id"], "admin")
    key = (await client.post("/v1/api-keys", json={"name": "k"})).json()["key"]
    for http in (viewer, make_client(key)):
        assert (await http.patch(f"/v1/users/{admin_id}", json={"role": "viewer"})).status_code == 403
        assert (await http.delete(f"/v1/users/{admin_id}")).status_code == 403
    assert (await make_client(key).get("/v1/users")).status_code == 403  # users only
    assert (await client.patch(f"/v1/users/{admin_id}", json={"role": "boss"})).status_code == 422


async def test_another_tenants_user_is_not_found(client: AsyncClient, other_client: AsyncClient) -> None:
    stranger = (await me(other_client))["id"]
    for response in (
        await client.patch(f"/v1/users/{stranger}", json={"role": "viewer"}),
        await client.delete(f"/v1/users/{stranger}"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "user_not_found"
    assert stranger not in (await client.get("/v1/users")).text
    assert (await me(other_client))["role"] == "owner"
