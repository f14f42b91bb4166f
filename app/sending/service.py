"""Sending from the API: a reply row `pending` in the chat's conversation, then its outbox entry after the commit.

The row is written exactly as the worker writes the bot's replies (outbound, `pending`, under the conversation's
row lock, so its `seq` orders it after the replies committed before it); the session manager's outbox then
sends it like any reply: paced by the store's rate limits, a chat's oldest pending row first. An outbox entry
lost after the commit is put back by the worker's relay (the row is still `pending`).
"""

from __future__ import annotations

import contextlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.contracts import outbox_entry, outbox_stream
from app.kit.unit_of_work import after_commit
from app.media.service import media as media_service
from app.media.storage import MediaStorage
from app.messages.repository import MessageRepository
from app.messages.schemas import MessageRead
from app.models import Store, StoreStatus, Tenant
from app.sending.errors import IdempotencyKeyInUse, IdempotencyKeyReused, StoreNotConnected
from app.sending.repository import SendingRepository
from app.sending.schemas import SendMessage, chat_jid_for
from app.stores.service import store as store_service

# One keyed send in this many also forgets up to a hundred of the store's expired keys: the table stays bounded
# without a round trip per send or a periodic job (an expired key is taken over by its next use anyway).
PURGE_SHARE = 1 / 20


@dataclass(frozen=True)
class Sent:
    message: MessageRead
    replayed: bool  # an earlier request with the same Idempotency-Key made it; nothing new was sent


class SendingService:
    async def send(
        self,
        session: AsyncSession,
        redis: Redis,
        *,
        tenant: Tenant,
        store_id: str,
        request: SendMessage,
        idempotency_key: str | None,
        key_hours: int,
        storage: MediaStorage | None = None,
        settings: Settings | None = None,
    ) -> Sent:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        repository = SendingRepository.from_session(session)
        key_id: uuid.UUID | None = None
        if idempotency_key is not None:
            expired_before = datetime.now(UTC) - timedelta(hours=key_hours)
            if random.random() < PURGE_SHARE:
                await repository.purge_keys(store.id, expired_before)
            key_id = await repository.claim_key(
                store.id, idempotency_key, request.fingerprint(), expired_before
            )
            if key_id is None:
                # Before the store's status: a retry of a send that was accepted gets its message even if the
                # store disconnected since.
                return Sent(
                    await self._replay(session, tenant, store, idempotency_key, request), replayed=True
                )
        if store.status != StoreStatus.connected:
            raise StoreNotConnected(store.status)  # the rollback forgets the key: a later retry may send
        chat_jid = chat_jid_for(request.to)
        kind, media, text = "text", None, request.text
        if request.media is not None:
            assert storage is not None and settings is not None, "a media send needs the storage and settings"
            # Fetched or copied before the conversation's row is locked: a slow URL holds no lock.
            kind, media = await media_service.prepare_send(
                session, storage, settings, tenant_id=tenant.id, store_id=store.id,
                media=request.media, caption=request.caption,
            )  # fmt: skip
            text = request.caption
        try:
            conversation_id = await repository.conversation_for_reply(
                store.id, chat_jid, pause=request.pause_bot
            )
            message = await repository.add_outbound(store.id, conversation_id, text, type_=kind, media=media)
        except BaseException:
            if media is not None and storage is not None:  # the copy made for this message has no row
                with contextlib.suppress(Exception):
                    await storage.delete(str(media["key"]))
            raise
        if key_id is not None:
            await repository.key_made(key_id, message.id)
        entry = outbox_entry(message_id=message.id, chat_jid=chat_jid)
        stream = outbox_stream(store.id)

        async def queue() -> None:
            await redis.xadd(stream, entry)  # type: ignore[arg-type]

        # Only a committed row may be seen by the session manager; a rollback drops the entry.
        after_commit(session, queue)
        return Sent(MessageRead.of(message, chat_jid), replayed=False)

    async def _replay(
        self, session: AsyncSession, tenant: Tenant, store: Store, key: str, request: SendMessage
    ) -> MessageRead:
        found = await SendingRepository.from_session(session).get_key(store.id, key)
        if found is None or found.message_id is None:
            raise IdempotencyKeyInUse(key)
        if found.request_hash != request.fingerprint():
            raise IdempotencyKeyReused(key)
        message = await MessageRepository.for_tenant(session, tenant.id).get(store.id, found.message_id)
        if message is None:  # cannot be: the key goes with its message (cascade)
            raise IdempotencyKeyInUse(key)
        return MessageRead.of(*message)


sending = SendingService()
