"""Every query of the session manager. The manager is a system process: it works across tenants, by store id."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DesiredState, Message, MessageStatus, Store, StoreStatus
from sessions.drivers.base import InboundMessage

# One round trip for a whole batch of inbound messages: their conversations are upserted (one row per chat,
# the latest sender name, the newest timestamp), then the messages inserted in batch order. Rows are written
# `queued` optimistically: the stream entries follow the commit, and should that XADD fail (or the process die
# first), the rows are set back to `received` or found by the worker's relay.
#
# One customer, one conversation (migration 0010): a chat may arrive under its phone JID or its LID, with the
# other one beside it or not. `keyed` names each chat of the batch by the key (`chat_jid`) of the conversation
# it belongs to: one found under either identifier (probes of the unique (store, chat_jid) index and of
# `ix_conversations_store_alt_jid`, stopping at the first hit: an existing chat costs what it did before), or,
# for a LID-only chat, the phone chat of the same batch that names that LID, else the chat itself (new). The
# upsert records the other identifier in `alt_jid`. Each message returns its conversation's key: the stream
# entry names the chat by it, so one customer's messages share one lane whatever identifier they came under.
SAVE_INBOUND = text("""
WITH input AS (
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:store_ids AS uuid[]), CAST(:chats AS text[]), CAST(:alts AS text[]),
        CAST(:wa_ids AS text[]), CAST(:senders AS text[]), CAST(:types AS text[]), CAST(:texts AS text[]),
        CAST(:media AS text[]), CAST(:names AS text[]), CAST(:timestamps AS timestamptz[])
    ) WITH ORDINALITY AS i(id, store_id, chat_jid, alt_jid, wa_id, sender_jid, type, text, media, name, ts, ord)
), chat AS (
    SELECT DISTINCT ON (store_id, chat_jid) store_id, chat_jid, alt_jid
    FROM input ORDER BY store_id, chat_jid, alt_jid NULLS LAST
), keyed AS (
    SELECT g.store_id, g.chat_jid, g.alt_jid, coalesce(
        (SELECT c.chat_jid FROM conversations c WHERE c.store_id = g.store_id AND c.chat_jid = g.chat_jid),
        (SELECT c.chat_jid FROM conversations c
          WHERE c.store_id = g.store_id AND c.alt_jid = g.chat_jid ORDER BY c.created_at LIMIT 1),
        CASE WHEN g.alt_jid IS NOT NULL THEN coalesce(
            (SELECT c.chat_jid FROM conversations c WHERE c.store_id = g.store_id AND c.chat_jid = g.alt_jid),
            (SELECT c.chat_jid FROM conversations c
              WHERE c.store_id = g.store_id AND c.alt_jid = g.alt_jid ORDER BY c.created_at LIMIT 1)
        ) END,
        CASE WHEN g.chat_jid LIKE '%@lid' THEN
            (SELECT min(b.chat_jid) FROM chat b WHERE b.store_id = g.store_id AND b.alt_jid = g.chat_jid)
        END,
        g.chat_jid
    ) AS key_jid
    FROM chat g
), targets AS (
    SELECT k.store_id, k.key_jid,
           max(CASE WHEN k.key_jid = k.chat_jid THEN k.alt_jid WHEN k.key_jid = k.alt_jid THEN k.chat_jid END)
               AS alt_jid,
           (array_agg(i.name ORDER BY i.ord DESC) FILTER (WHERE i.name IS NOT NULL))[1] AS name,
           max(i.ts) AS ts
    FROM input i JOIN keyed k ON k.store_id = i.store_id AND k.chat_jid = i.chat_jid
    GROUP BY k.store_id, k.key_jid
), chats AS (
    INSERT INTO conversations AS c
        (id, store_id, chat_jid, alt_jid, customer_name, last_message_at, bot_state, bot_paused)
    SELECT gen_random_uuid(), store_id, key_jid, alt_jid, name, ts, '{}', false
    FROM targets
    ORDER BY store_id, key_jid  -- rows are locked in this order, the worker's order too: no deadlock
    ON CONFLICT (store_id, chat_jid) DO UPDATE SET
        alt_jid = coalesce(c.alt_jid, excluded.alt_jid),
        customer_name = coalesce(excluded.customer_name, c.customer_name),
        last_message_at = greatest(c.last_message_at, excluded.last_message_at),
        updated_at = now()
    RETURNING c.id, c.store_id, c.chat_jid
), written AS (
    INSERT INTO messages
        (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text, media, status, attempts,
         wa_timestamp)
    SELECT i.id, i.store_id, chats.id, 'in', i.wa_id, i.sender_jid, i.type, i.text, CAST(i.media AS jsonb),
           'queued', 0, i.ts
    FROM input i
    JOIN keyed k ON k.store_id = i.store_id AND k.chat_jid = i.chat_jid
    JOIN chats ON chats.store_id = k.store_id AND chats.chat_jid = k.key_jid
    ORDER BY i.ord
    ON CONFLICT (store_id, wa_id) DO NOTHING
    RETURNING id, conversation_id, seq
)
SELECT written.id, chats.chat_jid, written.conversation_id, written.seq
FROM written JOIN chats ON chats.id = written.conversation_id
""")

# Messages the store's owner wrote from the phone (from-me messages the driver reports): recorded as the
# store's messages, already `sent`, in their chats. A WhatsApp id we already hold is one of our own sends (its id
# is recorded before the network call) or a redelivery: nothing is written for it. Returns, per chat that got a
# new one, its newest time: those chats have a person answering, and their bot is paused (PAUSE_FOR_OWN).
SAVE_OWN = text("""
WITH input AS (
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:store_ids AS uuid[]), CAST(:chats AS text[]), CAST(:wa_ids AS text[]),
        CAST(:senders AS text[]), CAST(:types AS text[]), CAST(:texts AS text[]), CAST(:media AS text[]),
        CAST(:timestamps AS timestamptz[])
    ) WITH ORDINALITY AS i(id, store_id, chat_jid, wa_id, sender_jid, type, text, media, ts, ord)
), chats AS (
    INSERT INTO conversations AS c (id, store_id, chat_jid, last_message_at, bot_state, bot_paused)
    SELECT gen_random_uuid(), store_id, chat_jid, max(ts), '{}', false
    FROM input GROUP BY store_id, chat_jid
    ORDER BY store_id, chat_jid
    ON CONFLICT (store_id, chat_jid) DO UPDATE SET
        last_message_at = greatest(c.last_message_at, excluded.last_message_at), updated_at = now()
    RETURNING c.id, c.store_id, c.chat_jid
), written AS (
    INSERT INTO messages
        (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text, media, status, attempts,
         wa_timestamp)
    SELECT i.id, i.store_id, chats.id, 'out', i.wa_id, i.sender_jid, i.type, i.text, CAST(i.media AS jsonb),
           'sent', 0, i.ts
    FROM input i JOIN chats ON chats.store_id = i.store_id AND chats.chat_jid = i.chat_jid
    ORDER BY i.ord
    ON CONFLICT (store_id, wa_id) DO NOTHING
    RETURNING conversation_id, wa_timestamp
)
SELECT conversation_id, max(wa_timestamp) FROM written GROUP BY conversation_id
""")

# The handoff clock starts when the person wrote (never in the future), and only moves forward.
PAUSE_FOR_OWN = text("""
UPDATE conversations c
SET bot_paused = true,
    bot_paused_at = greatest(CASE WHEN c.bot_paused THEN c.bot_paused_at END, least(u.at, now())),
    updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:at AS timestamptz[])) AS u(id, at)
WHERE c.id = u.id
""")

# Per target reply: the chat's oldest pending reply up to it (found in the in-flight index, by conversation),
# claimed for sending.
CLAIM_FOR_SENDING = text("""
WITH pick AS (
    SELECT r.target, r.wa_id, (
        SELECT m.id FROM messages m
        WHERE m.conversation_id = t.conversation_id AND m.status = 'pending' AND m.seq <= t.seq
          AND m.direction = 'out'
        ORDER BY m.seq LIMIT 1
    ) AS id
    FROM unnest(CAST(:targets AS uuid[]), CAST(:wa_ids AS text[])) AS r(target, wa_id)
    JOIN messages t ON t.id = r.target
)
UPDATE messages m
SET status = 'sending', wa_id = pick.wa_id, attempts = m.attempts + 1, updated_at = now()
FROM pick
WHERE m.id = pick.id AND m.status = 'pending'
RETURNING pick.target, m.id, m.text, m.wa_id, m.attempts, m.type, m.media
""")

# A send's outcome. A delivered/read receipt can be committed before the outcome (the network answers the send
# and reports delivery at once; the outcome waits for its batch): such a row keeps its further status, and still
# gets its send time and WhatsApp id.
FINISH_SENDING = text("""
UPDATE messages m
SET status = CASE WHEN m.status = 'sending' THEN u.status ELSE m.status END,
    error = CASE WHEN m.status = 'sending' THEN u.error ELSE m.error END,
    wa_timestamp = coalesce(u.sent_at, m.wa_timestamp),
    wa_id = coalesce(u.wa_id, m.wa_id), updated_at = now()
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:errors AS text[]),
    CAST(:sent_at AS timestamptz[]), CAST(:wa_ids AS text[])
) AS u(id, status, error, sent_at, wa_id)
WHERE m.id = u.id
  AND (m.status = 'sending' OR (u.status = 'sent' AND m.status IN ('delivered', 'read')))
RETURNING m.id
""")

# Outbound statuses only move forward: a late "delivered" receipt must not undo "read".
OUTBOUND_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "played": 4}

# Receipts of many stores in one round trip (looked up by the unique (store, WhatsApp id) index). A receipt may
# come before the send's outcome is committed, so `sending` rows move too (the outcome then finds the row no
# longer `sending` and leaves it). The ranks in the CASE are OUTBOUND_RANK's.
APPLY_RECEIPTS = text("""
UPDATE messages m
SET status = r.status, updated_at = now()
FROM (
    SELECT DISTINCT ON (store_id, wa_id) store_id, wa_id, status, rank
    FROM unnest(
        CAST(:store_ids AS uuid[]), CAST(:wa_ids AS text[]), CAST(:statuses AS text[]), CAST(:ranks AS int[])
    ) AS u(store_id, wa_id, status, rank)
    ORDER BY store_id, wa_id, rank DESC
) r
WHERE m.store_id = r.store_id AND m.wa_id = r.wa_id AND m.direction = 'out'
  AND m.status IN ('sending', 'sent', 'delivered')
  AND CASE m.status WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END < r.rank
""")


@dataclass(frozen=True)
class SavedInbound:
    """An inbound message just written: its row, and its conversation's key and place (`seq`) in it."""

    id: uuid.UUID
    chat_jid: str
    conversation_id: uuid.UUID
    seq: int


@dataclass(frozen=True)
class WantedStore:
    id: uuid.UUID
    desired_state: str
    status: str
    device_jid: str | None
    pairing_phone: str | None
    settings: dict[str, Any]


@dataclass(frozen=True)
class OutboundToSend:
    id: uuid.UUID
    text: str
    wa_id: str
    attempts: int  # this one included
    type: str = "text"
    media: dict[str, Any] | None = None  # a media message's `media` JSON (its bytes under `key` in storage)


@dataclass(frozen=True)
class MediaToDownload:
    store_id: uuid.UUID
    message_id: uuid.UUID
    type: str
    media: dict[str, Any]  # as the row holds it: `fetch`, and `attempts` after failed tries


@dataclass(frozen=True)
class MediaStored:
    message_id: uuid.UUID
    key: str
    size: int
    sha256: str


# A media download's outcome, on a row whose media is still `pending` (a second download, after a hand-over,
# changes nothing). Stored: the download reference goes (it holds the media's decryption key).
MEDIA_STORED = text("""
UPDATE messages m
SET media = (m.media - 'fetch' - 'next_at' - 'error')
            || jsonb_build_object('state', 'stored', 'key', u.key, 'size', u.size, 'sha256', u.sha256,
                                  'stored_at', now())
FROM unnest(CAST(:ids AS uuid[]), CAST(:keys AS text[]), CAST(:sizes AS bigint[]), CAST(:shas AS text[]))
     AS u(id, key, size, sha256)
WHERE m.id = u.id AND m.media ->> 'state' = 'pending'
""")
MEDIA_NOT_YET = text("""
UPDATE messages
SET media = media || jsonb_build_object('attempts', CAST(:attempts AS int), 'error', CAST(:error AS text),
                                        'next_at', CAST(:next_at AS timestamptz))
WHERE id = :id AND media ->> 'state' = 'pending'
""")
MEDIA_FAILED = text("""
UPDATE messages
SET media = (media - 'fetch' - 'next_at')
            || jsonb_build_object('state', 'failed', 'attempts', CAST(:attempts AS int), 'error', CAST(:error AS text))
WHERE id = :id AND media ->> 'state' = 'pending'
""")
PENDING_MEDIA = text("""
SELECT store_id, id, type, media FROM messages
WHERE media ->> 'state' = 'pending' AND store_id = ANY(CAST(:store_ids AS uuid[]))
  AND coalesce(CAST(media ->> 'next_at' AS timestamptz), '-infinity') <= now()
ORDER BY created_at
LIMIT :limit
""")


@dataclass(frozen=True)
class SendOutcome:
    id: uuid.UUID
    status: MessageStatus  # sent or failed
    error: str | None = None
    sent_at: datetime | None = None
    wa_id: str | None = None  # the network's id, when it did not take ours (neonize picks its own)


class SessionsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def wanted_stores(self, ids: list[uuid.UUID] | None = None) -> list[WantedStore]:
        """Stores that need a live connection or a logout (of `ids` only, when given). Error and logged-out
        stores wait for the API (a new `link` resets their status) before the manager tries again."""
        query = select(
            Store.id, Store.desired_state, Store.status, Store.device_jid, Store.pairing_phone, Store.settings
        ).where(
            or_(
                and_(
                    Store.desired_state == DesiredState.linked,
                    Store.status.not_in([StoreStatus.error, StoreStatus.logged_out]),
                ),
                and_(Store.desired_state == DesiredState.logged_out, Store.status != StoreStatus.logged_out),
            )
        )
        if ids is not None:
            query = query.where(Store.id.in_(ids))
        return [WantedStore(*row) for row in (await self.session.execute(query)).all()]

    async def get_wanted(self, store_id: uuid.UUID) -> WantedStore | None:
        found = await self.wanted_stores([store_id])
        return found[0] if found else None

    async def desired_state(self, store_id: uuid.UUID) -> str | None:
        return (await self.session.execute(select(Store.desired_state).where(Store.id == store_id))).scalar()

    async def set_status(
        self, store_id: uuid.UUID, status: StoreStatus, reason: str | None, **values: Any
    ) -> str | None:
        """Write the status; return the store's phone number (for the status event)."""
        statement = (
            update(Store)
            .where(Store.id == store_id)
            .values(status=status.value, status_reason=reason, **values)
            .returning(Store.phone_number)
        )
        return (await self.session.execute(statement)).scalar()

    # --- inbound -------------------------------------------------------------------------------------------
    async def save_inbound(self, batch: list[tuple[uuid.UUID, InboundMessage]]) -> list[SavedInbound | None]:
        """Insert a batch of (store id, message) with their conversations in one statement, in batch order (a
        chat's `seq` follows it). Returns each message's new row, with its conversation's key (`chat_jid`:
        the identifier the conversation was created under, which may be the message's other one), or None
        where nothing was written: its WhatsApp id was already recorded (a redelivery)."""
        ids = [uuid.uuid4() for _ in batch]
        params = {
            "ids": ids,
            "store_ids": [store_id for store_id, _ in batch],
            "chats": [m.chat_jid for _, m in batch],
            "alts": [m.chat_alt_jid for _, m in batch],
            "wa_ids": [m.wa_id for _, m in batch],
            "senders": [m.sender_jid for _, m in batch],
            "types": [m.type for _, m in batch],
            "texts": [m.text for _, m in batch],
            "media": [_media_json(m.media) for _, m in batch],
            "names": [m.sender_name for _, m in batch],
            "timestamps": [m.timestamp for _, m in batch],
        }
        written = {row[0]: SavedInbound(*row) for row in await self.session.execute(SAVE_INBOUND, params)}
        return [written.get(message_id) for message_id in ids]

    async def save_own(self, batch: list[tuple[uuid.UUID, InboundMessage]]) -> int:
        """Record from-me messages (the owner writing from the phone) and pause the bot in their chats; our
        own sends and redeliveries (WhatsApp ids already held) change nothing. Two statements: run it in a
        transaction. Returns how many chats were paused."""
        params = {
            "ids": [uuid.uuid4() for _ in batch],
            "store_ids": [store_id for store_id, _ in batch],
            "chats": [m.chat_jid for _, m in batch],
            "wa_ids": [m.wa_id for _, m in batch],
            "senders": [m.sender_jid for _, m in batch],
            "types": [m.type for _, m in batch],
            "texts": [m.text for _, m in batch],
            "media": [json.dumps(m.media) if m.media is not None else None for _, m in batch],
            "timestamps": [m.timestamp for _, m in batch],
        }
        chats = (await self.session.execute(SAVE_OWN, params)).all()
        if chats:
            # In (store, chat) order like every conversation lock: the upsert above took them in that order.
            await self.session.execute(
                PAUSE_FOR_OWN, {"ids": [row[0] for row in chats], "at": [row[1] for row in chats]}
            )
        return len(chats)

    async def mark_not_queued(self, ids: list[uuid.UUID]) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == MessageStatus.queued)
            .values(status=MessageStatus.received.value)
        )

    # --- outbound ------------------------------------------------------------------------------------------
    async def claim_for_sending(self, claims: list[tuple[uuid.UUID, str]]) -> list[OutboundToSend | None]:
        """For each (target reply id, new WhatsApp id): move the chat's oldest pending reply up to the target
        (an earlier one whose entry was lost goes first) pending -> sending, recording the WhatsApp id before
        the network call. None where nothing up to the target is pending. One statement for the batch; the
        claims are for different chats (one lane each)."""
        if not claims:
            return []
        rows = await self.session.execute(
            CLAIM_FOR_SENDING, {"targets": [c[0] for c in claims], "wa_ids": [c[1] for c in claims]}
        )
        by_target = {
            row.target: OutboundToSend(row.id, row.text or "", row.wa_id, row.attempts, row.type, row.media)
            for row in rows
        }
        return [by_target.get(target) for target, _ in claims]

    async def finish_sending(self, finishes: list[SendOutcome]) -> list[bool]:
        """Write each send's outcome on its row if the row is still `sending`; True where it was."""
        if not finishes:
            return []
        rows = await self.session.execute(
            FINISH_SENDING,
            {
                "ids": [f.id for f in finishes],
                "statuses": [f.status.value for f in finishes],
                "errors": [f.error for f in finishes],
                "sent_at": [f.sent_at for f in finishes],
                "wa_ids": [f.wa_id for f in finishes],
            },
        )
        changed = {row[0] for row in rows}
        return [f.id in changed for f in finishes]

    async def back_to_pending(self, message_id: uuid.UUID, error: str) -> None:
        """A send that certainly did not reach WhatsApp (refused before the network call) may be tried again."""
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.sending)
            .values(status=MessageStatus.pending.value, error=error)
        )

    async def apply_receipts(self, receipts: list[tuple[uuid.UUID, str, str]]) -> None:
        """Apply (store id, WhatsApp id, kind) receipts of any stores in one statement; statuses only move
        forward, and of several receipts for one message the furthest wins."""
        known = [(store_id, wa_id, kind) for store_id, wa_id, kind in receipts if kind in OUTBOUND_RANK]
        if not known:
            return
        await self.session.execute(
            APPLY_RECEIPTS,
            {
                "store_ids": [r[0] for r in known],
                "wa_ids": [r[1] for r in known],
                "statuses": ["read" if r[2] == "played" else r[2] for r in known],
                "ranks": [OUTBOUND_RANK[r[2]] for r in known],
            },
        )

    # --- media ---------------------------------------------------------------------------------------------
    async def pending_media(self, store_ids: list[uuid.UUID], limit: int) -> list[MediaToDownload]:
        """Media to download now (never tried, or its retry is due), oldest first."""
        if not store_ids:
            return []
        rows = await self.session.execute(PENDING_MEDIA, {"store_ids": store_ids, "limit": limit})
        return [MediaToDownload(row.store_id, row.id, row.type, row.media) for row in rows]

    async def media_stored(self, stored: list[MediaStored]) -> None:
        """Several downloads' outcomes in one statement (rows no longer `pending` are left as they are)."""
        if not stored:
            return
        await self.session.execute(
            MEDIA_STORED,
            {
                "ids": [s.message_id for s in stored],
                "keys": [s.key for s in stored],
                "sizes": [s.size for s in stored],
                "shas": [s.sha256 for s in stored],
            },
        )

    async def media_not_yet(
        self, message_id: uuid.UUID, *, attempts: int, error: str, next_at: datetime
    ) -> None:
        await self.session.execute(
            MEDIA_NOT_YET, {"id": message_id, "attempts": attempts, "error": error, "next_at": next_at}
        )

    async def media_failed(self, message_id: uuid.UUID, *, attempts: int, error: str) -> None:
        await self.session.execute(MEDIA_FAILED, {"id": message_id, "attempts": attempts, "error": error})


def _media_json(media: dict[str, Any] | None) -> str | None:
    """An inbound message's media as stored: with a download reference, it is `pending` until downloaded."""
    if media is None:
        return None
    if "fetch" in media:
        media = {**media, "state": "pending"}
    return json.dumps(media)
