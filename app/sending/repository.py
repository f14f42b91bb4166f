"""Every query of sending. The store was read through the tenant-scoped store repository first (its 404 is the
tenant check); these statements then work on that store's rows by its id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text

from app.kit.repository import RepositoryBase
from app.models import Direction, Message, MessageStatus

# Claim a key: a new row, or an expired one taken over. A concurrent request with the same key waits here for
# the first one's transaction (the unique constraint), then finds the row taken (no row returned) or, if the
# first rolled back, claims it itself.
CLAIM_KEY = text("""
INSERT INTO idempotency_keys AS k (id, store_id, key, request_hash, message_id, created_at)
VALUES (gen_random_uuid(), :store_id, :key, :request_hash, NULL, now())
ON CONFLICT (store_id, key) DO UPDATE
    SET request_hash = excluded.request_hash, message_id = NULL, created_at = now()
    WHERE k.created_at < :expired_before
RETURNING k.id
""")

# The chat's conversation (created if new), locked like the worker locks it (NO KEY UPDATE: no key column
# changes), so the reply's `seq` follows the bot's replies committed before it.
UPSERT_CONVERSATION = text("""
INSERT INTO conversations AS c (id, store_id, chat_jid, last_message_at, bot_state, bot_paused)
VALUES (gen_random_uuid(), :store_id, :chat_jid, now(), '{}', false)
ON CONFLICT (store_id, chat_jid) DO UPDATE SET
    last_message_at = greatest(c.last_message_at, now()), updated_at = now()
RETURNING c.id
""")

# A person's reply pauses the bot and restarts the handoff clock (`bot_paused_at`), even in a chat already
# paused. An UPDATE of its own (not part of the upsert), so that a new chat paused at once also gets its
# `conversation.bot_paused` event in the change log (written by the table's UPDATE trigger).
PAUSE = text(
    "UPDATE conversations SET bot_paused = true, bot_paused_at = now(), updated_at = now() WHERE id = :id"
)

PURGE_KEYS = text("""
DELETE FROM idempotency_keys WHERE id IN (
    SELECT id FROM idempotency_keys WHERE store_id = :store_id AND created_at < :expired_before
    ORDER BY created_at LIMIT :limit
)
""")


@dataclass(frozen=True)
class KeyRow:
    request_hash: str
    message_id: uuid.UUID | None


class SendingRepository(RepositoryBase[Message]):
    model = Message

    async def claim_key(
        self, store_id: uuid.UUID, key: str, request_hash: str, expired_before: datetime
    ) -> uuid.UUID | None:
        """The key's row id if this request claimed the key; None if the key is taken (and not expired)."""
        params = {
            "store_id": store_id,
            "key": key,
            "request_hash": request_hash,
            "expired_before": expired_before,
        }
        return (await self.session.execute(CLAIM_KEY, params)).scalar()

    async def get_key(self, store_id: uuid.UUID, key: str) -> KeyRow | None:
        row = (
            await self.session.execute(
                text(
                    "SELECT request_hash, message_id FROM idempotency_keys WHERE store_id = :s AND key = :k"
                ),
                {"s": store_id, "k": key},
            )
        ).first()
        return None if row is None else KeyRow(row[0], row[1])

    async def key_made(self, key_id: uuid.UUID, message_id: uuid.UUID) -> None:
        await self.session.execute(
            text("UPDATE idempotency_keys SET message_id = :m WHERE id = :id"),
            {"m": message_id, "id": key_id},
        )

    async def purge_keys(self, store_id: uuid.UUID, expired_before: datetime, limit: int = 100) -> None:
        """Forget some of the store's expired keys (a little at each keyed send keeps the table bounded)."""
        await self.session.execute(
            PURGE_KEYS, {"store_id": store_id, "expired_before": expired_before, "limit": limit}
        )

    async def conversation_for_reply(self, store_id: uuid.UUID, chat_jid: str, *, pause: bool) -> uuid.UUID:
        params = {"store_id": store_id, "chat_jid": chat_jid}
        found = uuid.UUID(str((await self.session.execute(UPSERT_CONVERSATION, params)).scalar_one()))
        if pause:
            await self.session.execute(PAUSE, {"id": found})
        return found

    async def add_outbound(
        self,
        store_id: uuid.UUID,
        conversation_id: uuid.UUID,
        text_: str | None,
        *,
        type_: str = "text",
        media: dict[str, Any] | None = None,
    ) -> Message:
        """The reply `pending`, as the worker writes the bot's (the session manager's outbox sends it). One
        round trip: the row comes back from the INSERT itself (its id, `seq`, timestamps). A media message has
        its type, its `media` JSON (bytes already in storage) and its caption as `text`."""
        statement = (
            insert(Message)
            .values(
                id=uuid.uuid4(),
                store_id=store_id,
                conversation_id=conversation_id,
                direction=Direction.outbound.value,
                type=type_,
                text=text_,
                status=MessageStatus.pending.value,
                attempts=0,
                # Only when set: an explicit None would be stored as JSON `null`, not SQL NULL.
                **({"media": media} if media is not None else {}),
            )
            .returning(Message)
        )
        return (await self.session.scalars(statement)).one()
