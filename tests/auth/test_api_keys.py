from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import select, update

from app.api_keys.keys import hash_key
from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.models import ApiKey
from tests.support import ClientMaker, create_api_key, post_store


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    created = await create_api_key(client, name="Integración")
    key = created["key"]
    assert key.startswith(f"mst_{created['prefix']}_") and len(key) >= 50
    assert sorted(created["scopes"]) == ["messages:read", "messages:send", "stores:read", "stores:write"]
    assert created["store_id"] is None and created["last_used_at"] is None

    listed = (await client.get("/v1/api-keys")).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in str(listed)

    async with sessionmaker() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])))
    assert row is not None and key not in row.key_hash
    assert settings.secret_key and row.key_hash == hash_key(settings.secret_key, key)


async def test_a_key_works_within_its_scopes(client: AsyncClient, make_client: ClientMaker) -> None:
    store_id = await post_store(client)
    reader = make_client((await create_api_key(client, scopes=["stores:read"]))["key"])
    assert (await reader.get(f"/v1/stores/{store_id}")).status_code == 200
    response = await reader.post(f"/v1/stores/{store_id}/link")
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"missing_scopes": ["stores:write"]}
    # Keys never manage keys, whatever their scopes.
    writer = make_client((await create_api_key(client))["key"])
    assert (await writer.post("/v1/api-keys", json={"name": "child"})).status_code == 403
    assert (await writer.get("/v1/api-keys")).status_code == 403


async def test_a_key_may_not_hold_account_scopes(client: AsyncClient) -> None:
    response = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["api_keys:write"]})
    assert response.status_code == 422
    assert "api_keys:write" in response.json()["error"]["details"][0]["message"]
    response = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["everything"]})
    assert response.status_code == 422


async def test_a_revoked_key_stops_at_once(client: AsyncClient, make_client: ClientMaker) -> None:
    created = await create_api_key(client)
    integration = make_client(created["key"])
    assert (await integration.get("/v1/stores")).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{created['id']}")).status_code == 204
    response = await integration.get("/v1/stores")
    assert response.status_code == 401
    assert (await client.get("/v1/api-keys")).json()["items"] == []
    assert (await client.delete(f"/v1/api-keys/{created['id']}")).status_code == 404  # already gone


async def test_a_guessed_or_mangled_key_gets_nothing(client: AsyncClient, make_client: ClientMaker) -> None:
    key = (await create_api_key(client))["key"]
    marker, prefix, secret = key.split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for guess in (
        f"{marker}_{prefix}_{flipped}",
        f"{marker}_{prefix}_",
        f"{marker}_000000000000_{secret}",
        "mst_",
    ):
        assert (await make_client(guess).get("/v1/stores")).status_code == 401, guess


async def test_a_key_limited_to_one_store_sees_no_other(
    client: AsyncClient, make_client: ClientMaker
) -> None:
    mine, other = await post_store(client, "Mía"), await post_store(client, "Otra")
    limited = make_client((await create_api_key(client, store_id=mine))["key"])
    assert [s["id"] for s in (await limited.get("/v1/stores")).json()["items"]] == [mine]
    assert (await limited.get(f"/v1/stores/{mine}")).status_code == 200
    for method, path in (("GET", ""), ("POST", "/link"), ("GET", "/bot"), ("GET", "/orders"), ("GET", "/qr")):
        response = await limited.request(method, f"/v1/stores/{other}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"] == {
            "code": "store_not_found",
            "message": "store not found",
            "details": {"store_id": other},
        }
    # It cannot make itself stores it would then see.
    assert (await limited.post("/v1/stores", json={"name": "Nueva"})).status_code == 403
    assert (await client.get(f"/v1/stores/{other}")).json()["desired_state"] == "unlinked"


async def test_a_key_for_another_tenants_store_is_refused(
    client: AsyncClient, other_client: AsyncClient
) -> None:
    theirs = await post_store(other_client)
    response = await client.post("/v1/api-keys", json={"name": "x", "store_id": theirs})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "store_not_found"


async def test_another_tenant_cannot_see_or_revoke_keys(
    client: AsyncClient, other_client: AsyncClient
) -> None:
    created = await create_api_key(client)
    assert (await other_client.get("/v1/api-keys")).json()["items"] == []
    assert (await other_client.delete(f"/v1/api-keys/{created['id']}")).status_code == 404
    assert (await other_client.delete("/v1/api-keys/not-a-uuid")).status_code == 404
    assert [k["id"] for k in (await client.get("/v1/api-keys")).json()["items"]] == [created["id"]]


async def test_last_use_is_written_at_most_once_a_minute(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    created = await create_api_key(client)
    integration = make_client(created["key"])
    key_id = uuid.UUID(created["id"])

    async def last_used() -> datetime | None:
        async with sessionmaker() as session:
            return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))

    await integration.get("/v1/stores")
    first = await last_used()
    assert first is not None
    await integration.get("/v1/stores")
    assert await last_used() == first  # not rewritten within the minute

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=an_hour_ago))
    await integration.get("/v1/stores")
    later = await last_used()
    assert later is not None and later > first
    assert (await client.get("/v1/api-keys")).json()["items"][0]["last_used_at"] is not None
