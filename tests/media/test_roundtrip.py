"""Media in and out through the simulator, with the session manager (and, for the bot, the worker) running:
the bytes the customer sent are the bytes the API serves; the bytes a send names are the bytes the customer
gets."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.contracts import outbox_entry, sim_control_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.media.schemas import SendMedia
from app.media.service import media as media_service
from app.media.storage import LocalMediaStorage
from app.models import Conversation, Message, Tenant
from tests.media.helpers import jpeg, pdf, voice_note
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status
from tests.workers.helpers import running_worker

CUSTOMER = "+5491166660001"
CHAT = "5491166660001@s.whatsapp.net"


async def tenant_of(client: AsyncClient) -> uuid.UUID:
    return uuid.UUID((await client.get("/v1/users/me")).json()["tenant"]["id"])


async def send_file(client: AsyncClient, store_id: uuid.UUID, data: bytes, **media: Any) -> str:
    body = {"from": CUSTOMER, "media": {"data_base64": base64.b64encode(data).decode(), **media}}
    response = await client.post(f"/v1/sim/stores/{store_id}/inbound", json=body)
    assert response.status_code == 202, response.text
    wa_id: str = response.json()["id"]
    return wa_id


async def row(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, wa_id: str) -> Message | None:
    async with sessionmaker() as session:
        found: Message | None = await session.scalar(
            select(Message).where(Message.store_id == store_id, Message.wa_id == wa_id)
        )
        return found


async def test_inbound_media_is_downloaded_and_served(
    client: AsyncClient, other_client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker,
    redis: Redis, redis_url: str,
) -> None:  # fmt: skip
    quick = fast_settings(settings)
    store_id = await create_store(
        sessionmaker, redis, paired_phone="+5493400000101", tenant_id=await tenant_of(client)
    )
    photo, note, document = jpeg(300_000), voice_note(), pdf()
    async with running_manager(quick, sessionmaker, redis, redis_url):
        await wait_status(sessionmaker, store_id, "connected")
        photo_id = await send_file(client, store_id, photo, type="image", mime="image/jpeg", caption="¿este?")
        note_id = await send_file(
            client, store_id, note, type="audio", mime="audio/ogg; codecs=opus", voice_note=True
        )
        doc_id = await send_file(
            client, store_id, document, type="document", mime="application/pdf", file_name="lista.pdf"
        )

        async def all_stored() -> bool:
            rows = [await row(sessionmaker, store_id, w) for w in (photo_id, note_id, doc_id)]
            return all(r is not None and r.media and r.media.get("state") == "stored" for r in rows)

        await wait_for(all_stored, timeout=20, what="the three media stored")

    for wa_id, data, kind, mime in (
        (photo_id, photo, "image", "image/jpeg"),
        (note_id, note, "audio", "audio/ogg; codecs=opus"),  # a voice note keeps its mime type
        (doc_id, document, "document", "application/pdf"),
    ):
        message = await row(sessionmaker, store_id, wa_id)
        assert message is not None and message.media is not None
        assert "fetch" not in message.media  # the download reference is dropped once stored
        item = (await client.get(f"/v1/stores/{store_id}/messages/{message.id}")).json()
        assert item["type"] == kind
        assert item["media"]["mime"] == mime and item["media"]["size"] == len(data)
        assert item["media"]["status"] == "available"
        url = item["media"]["download_url"]
        assert url == f"/v1/stores/{store_id}/messages/{message.id}/media"
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == data  # bytes equal
        assert response.headers["content-type"].startswith(mime.split(";")[0])
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        # Another tenant learns nothing of it.
        stranger = await other_client.get(url)
        assert stranger.status_code == 404 and set(stranger.json()) == {"error"}

    photo_row = await row(sessionmaker, store_id, photo_id)
    assert photo_row is not None and photo_row.text == "¿este?"
    assert (photo_row.media or {})["caption"] == "¿este?"
    doc_row = await row(sessionmaker, store_id, doc_id)
    assert doc_row is not None and (doc_row.media or {})["file_name"] == "lista.pdf"
    response = await client.get(f"/v1/stores/{store_id}/messages/{doc_row.id}/media")
    assert response.headers["content-disposition"] == 'inline; filename="lista.pdf"'

    # Range requests: a middle slice, an open end, a suffix; one past the end is a 416.
    url = f"/v1/stores/{store_id}/messages/{photo_row.id}/media"
    response = await client.get(url, headers={"Range": "bytes=100-1099"})
    assert response.status_code == 206
    assert response.content == photo[100:1100]
    assert response.headers["content-range"] == f"bytes 100-1099/{len(photo)}"
    assert response.headers["content-length"] == "1000"
    response = await client.get(url, headers={"Range": f"bytes={len(photo) - 10}-"})
    assert (response.status_code, response.content) == (206, photo[-10:])
    response = await client.get(url, headers={"Range": "bytes=-70000"})
    assert (response.status_code, response.content) == (206, photo[-70000:])
    response = await client.get(url, headers={"Range": f"bytes={len(photo)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(photo)}"
    # Several ranges: the whole file (RFC 9110 allows ignoring them).
    response = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (response.status_code, response.content) == (200, photo)


async def test_a_failing_download_never_holds_the_bot_and_is_retried(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    store_id = await create_store(
        sessionmaker, redis, paired_phone="+5493400000102", tenant_id=await tenant_of(client)
    )
    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "echo", "config": {}})
    assert response.status_code == 200, response.text
    photo = jpeg()
    async with (
        running_manager(quick, sessionmaker, redis, redis_url) as manager,
        running_worker(quick, sessionmaker, redis, redis_url),
    ):
        manager.media.retry_base_seconds = 0.3
        await wait_status(sessionmaker, store_id, "connected")
        for _ in range(2):  # the next two downloads fail
            await redis.xadd(sim_control_stream(store_id), {"kind": "download_failure"})
        wa_id = await send_file(client, store_id, photo, type="image", mime="image/jpeg", caption="hola")

        async def handled() -> Message | None:
            found = await row(sessionmaker, store_id, wa_id)
            return found if found is not None and found.status == "handled" else None

        # The bot answered the message while its media was still not downloaded.
        handled_row = await wait_for(handled, timeout=20, what="the message handled by the bot")
        async with sessionmaker() as session:
            replies = (
                await session.scalars(select(Message).where(Message.reply_to_id == handled_row.id))
            ).all()
        assert [r.text for r in replies] == ["hola"]

        async def tried_and_stored() -> Message | None:
            found = await row(sessionmaker, store_id, wa_id)
            return found if found is not None and (found.media or {}).get("state") == "stored" else None

        stored = await wait_for(tried_and_stored, timeout=20, what="the media stored after two failures")
        assert stored.media is not None and stored.media["attempts"] == 2  # two failed tries recorded
    response = await client.get(f"/v1/stores/{store_id}/messages/{stored.id}/media")
    assert response.content == photo


async def test_media_out_through_the_outbox(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    """A send's media (an upload, a second send of the same upload) reaches the customer byte for byte."""
    quick = fast_settings(settings)
    tenant_id = await tenant_of(client)
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000103", tenant_id=tenant_id)
    photo, document = jpeg(), pdf()
    response = await client.post("/v1/uploads", content=photo, headers={"Content-Type": "image/jpeg"})
    photo_upload = response.json()["id"]
    response = await client.post(
        "/v1/uploads", content=document, headers={"Content-Type": "application/pdf"},
        params={"file_name": "catalogo.pdf"},
    )  # fmt: skip
    doc_upload = response.json()["id"]
    storage = LocalMediaStorage(quick.media_dir)

    async with transaction(sessionmaker) as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        chat = Conversation(store_id=store_id, chat_jid=CHAT, bot_state={})
        session.add(chat)
        await session.flush()
        outbound = []
        for upload_id, caption in ((photo_upload, "la foto"), (doc_upload, None), (photo_upload, "otra vez")):
            kind, media = await media_service.prepare_send(
                session, storage, quick, tenant_id=tenant_id, store_id=store_id,
                media=SendMedia(upload_id=uuid.UUID(upload_id)), caption=caption,
            )  # fmt: skip
            message = Message(
                store_id=store_id, conversation_id=chat.id, direction="out", type=kind, text=caption,
                media=media, status="pending",
            )  # fmt: skip
            session.add(message)
            await session.flush()
            outbound.append(message.id)

    async with running_manager(quick, sessionmaker, redis, redis_url):
        await wait_status(sessionmaker, store_id, "connected")
        for message_id in outbound:
            await redis.xadd(f"outbox:store-{store_id}", outbox_entry(message_id=message_id, chat_jid=CHAT))  # type: ignore[arg-type]

        async def delivered() -> list[dict[str, Any]]:
            items = (await client.get(f"/v1/sim/stores/{store_id}/outbound")).json()["items"]
            return items if len(items) == 3 else []

        items = await wait_for(delivered, timeout=20, what="three media messages on the network")

    assert [(i["type"], i["text"]) for i in items] == [
        ("image", "la foto"),
        ("document", ""),
        ("image", "otra vez"),
    ]
    assert items[1]["media"]["file_name"] == "catalogo.pdf"
    assert items[1]["media"]["mime"] == "application/pdf"
    for item, data in zip(items, (photo, document, photo), strict=True):
        assert item["media"]["sha256"] == hashlib.sha256(data).hexdigest()
        response = await client.get(item["media"]["url"])
        assert response.status_code == 200 and response.content == data  # bytes equal
    async with sessionmaker() as session:
        statuses = [(await session.get(Message, m)) for m in outbound]
    assert all(m is not None and m.status in ("sent", "delivered", "read") for m in statuses)
    # Each message has its own copy: the upload may expire without taking the message's media with it.
    keys = {m.media["key"] for m in statuses if m is not None and m.media}
    assert len(keys) == 3


async def test_downloads_left_by_a_restart_are_found_and_gone_media_fails(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    """A pending download whose manager died is found by the next owner's sweep; media that is no longer on
    WhatsApp's servers fails at once (no pointless retries) and says so."""
    from app.contracts import SIM_MEDIA_TTL_SECONDS, sim_media_key

    quick = fast_settings(settings)
    store_id = await create_store(
        sessionmaker, redis, paired_phone="+5493400000106", tenant_id=await tenant_of(client)
    )
    photo = jpeg()
    await redis.set(sim_media_key("left-behind"), base64.b64encode(photo).decode(), ex=SIM_MEDIA_TTL_SECONDS)
    async with transaction(sessionmaker) as session:
        chat = Conversation(store_id=store_id, chat_jid=CHAT, bot_state={})
        session.add(chat)
        await session.flush()
        rows = {}
        for name, token in (("left", "left-behind"), ("gone", "no-longer-there")):
            message = Message(
                store_id=store_id, conversation_id=chat.id, direction="in", wa_id=name, type="image",
                status="handled",
                media={"state": "pending", "mimetype": "image/jpeg", "fetch": {"sim": token}},
            )  # fmt: skip
            session.add(message)
            await session.flush()
            rows[name] = message.id

    async with running_manager(quick, sessionmaker, redis, redis_url):

        async def settled() -> bool:
            found = [await row(sessionmaker, store_id, name) for name in ("left", "gone")]
            return [(m.media or {}).get("state") for m in found if m is not None] == ["stored", "failed"]

        await wait_for(settled, timeout=20, what="one stored by the sweep, one failed")
    response = await client.get(f"/v1/stores/{store_id}/messages/{rows['left']}/media")
    assert response.content == photo
    gone = await row(sessionmaker, store_id, "gone")
    assert gone is not None and gone.media is not None
    assert gone.media["attempts"] == 1 and "no longer" in gone.media["error"] and "fetch" not in gone.media
    response = await client.get(f"/v1/stores/{store_id}/messages/{rows['gone']}/media")
    assert response.status_code == 404 and response.json()["error"]["details"] == {"state": "failed"}
    item = (await client.get(f"/v1/stores/{store_id}/messages/{rows['gone']}")).json()
    assert item["media"]["status"] == "failed" and item["media"]["download_url"] is None
