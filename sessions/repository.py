"""Every query of the session manager. The manager is a system process: it works across tenants, by store id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, DesiredState, Direction, Message, MessageStatus, Store, StoreStatus
from sessions.drivers.base import InboundMessage

# Outbound statuses only move forward: a late "delivered" receipt must not undo "read".
OUTBOUND_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "played": 4}


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
    chat_jid: str
    text: str
    wa_id: str


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
    async def save_inbound(self, store_id: uuid.UUID, message: InboundMessage) -> uuid.UUID | None:
        """Insert the message (and its conversation); None when this WhatsApp id was already recorded."""
        upsert = insert(Conversation).values(
            id=uuid.uuid4(),
            store_id=store_id,
            chat_jid=message.chat_jid,
            customer_name=message.sender_name,
            last_message_at=message.timestamp,
            bot_state={},
            handled_seq=0,
            bot_paused=False,
        )
        statement = upsert.on_conflict_do_update(
            index_elements=[Conversation.store_id, Conversation.chat_jid],
            set_={
                "customer_name": func.coalesce(upsert.excluded.customer_name, Conversation.customer_name),
                "last_message_at": func.greatest(
                    Conversation.last_message_at, upsert.excluded.last_message_at
                ),
                "updated_at": func.now(),
            },
        ).returning(Conversation.id)
        conversation_id = (await self.session.execute(statement)).scalar_one()
        row = (
            insert(Message)
            .values(
                id=uuid.uuid4(),
                store_id=store_id,
                conversation_id=conversation_id,
                direction=Direction.inbound.value,
                wa_id=message.wa_id,
                sender_jid=message.sender_jid,
                type=message.type,
                text=message.text,
                media=message.media,
                # Queued optimistically: the stream entry follows the commit. Should that XADD fail (or the
                # process die first), the row is set back to `received` or found by the worker's sweeper.
                status=MessageStatus.queued.value,
                attempts=0,
                wa_timestamp=message.timestamp,
            )
            .on_conflict_do_nothing(index_elements=[Message.store_id, Message.wa_id])
            .returning(Message.id)
        )
        return (await self.session.execute(row)).scalar()

    async def mark_queued(self, ids: list[uuid.UUID]) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == MessageStatus.received)
            .values(status=MessageStatus.queued.value)
        )

    async def mark_not_queued(self, message_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.queued)
            .values(status=MessageStatus.received.value)
        )

    async def received_backlog(
        self, store_ids: list[uuid.UUID], older_than: datetime, limit: int = 1000
    ) -> list[tuple[uuid.UUID, uuid.UUID, str, str]]:
        """Inbound rows committed but never queued (a crash or a Redis outage between the two), oldest first."""
        query = (
            select(Message.id, Message.store_id, Conversation.chat_jid, Message.wa_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.store_id.in_(store_ids),
                Message.status == MessageStatus.received,
                Message.created_at < older_than,
            )
            .order_by(Message.seq)
            .limit(limit)
        )
        return [(r[0], r[1], r[2], r[3] or "") for r in (await self.session.execute(query)).all()]

    # --- outbound ------------------------------------------------------------------------------------------
    async def claim_for_sending(self, message_id: uuid.UUID, wa_id: str) -> OutboundToSend | None:
        """pending -> sending, recording the WhatsApp id first; None if the row is not pending any more."""
        claimed = (
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.pending)
            .values(status=MessageStatus.sending.value, wa_id=wa_id, attempts=Message.attempts + 1)
            .returning(Message.conversation_id, Message.text)
        )
        row = (await self.session.execute(claimed)).one_or_none()
        if row is None:
            return None
        chat_jid = (
            await self.session.execute(
                select(Conversation.chat_jid).where(Conversation.id == row.conversation_id)
            )
        ).scalar_one()
        return OutboundToSend(id=message_id, chat_jid=chat_jid, text=row.text or "", wa_id=wa_id)

    async def earlier_pending(self, message_id: uuid.UUID) -> list[uuid.UUID]:
        """Pending replies of the same chat written before this one, oldest first."""
        this = select(Message.conversation_id, Message.seq).where(Message.id == message_id).subquery()
        query = (
            select(Message.id)
            .join(this, Message.conversation_id == this.c.conversation_id)
            .where(
                Message.direction == Direction.outbound,
                Message.status == MessageStatus.pending,
                Message.seq < this.c.seq,
            )
            .order_by(Message.seq)
        )
        return list((await self.session.execute(query)).scalars())

    async def outbound_status(self, message_id: uuid.UUID) -> str | None:
        return (await self.session.execute(select(Message.status).where(Message.id == message_id))).scalar()

    async def finish_sending(
        self,
        message_id: uuid.UUID,
        status: MessageStatus,
        *,
        error: str | None = None,
        sent_at: datetime | None = None,
        wa_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "error": error}
        if sent_at is not None:
            values["wa_timestamp"] = sent_at
        if wa_id is not None:  # the network's id, when it did not take ours (neonize picks its own)
            values["wa_id"] = wa_id
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.sending)
            .values(**values)
        )

    async def back_to_pending(self, message_id: uuid.UUID, error: str) -> None:
        """A send that certainly did not reach WhatsApp (refused before the network call) may be tried again."""
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.sending)
            .values(status=MessageStatus.pending.value, error=error)
        )

    async def fail_unsent(self, message_id: uuid.UUID, error: str) -> None:
        await self.session.execute(
            update(Message)
            .where(
                Message.id == message_id, Message.status.in_([MessageStatus.pending, MessageStatus.sending])
            )
            .values(status=MessageStatus.failed.value, error=error)
        )

    async def apply_receipt(self, store_id: uuid.UUID, wa_ids: list[str], kind: str) -> None:
        rank = OUTBOUND_RANK.get(kind)
        if rank is None:
            return
        lower = [status for status, r in OUTBOUND_RANK.items() if r < rank and status not in ("pending",)]
        await self.session.execute(
            update(Message)
            .where(
                Message.store_id == store_id,
                Message.wa_id.in_(wa_ids),
                Message.direction == Direction.outbound,
                Message.status.in_(lower),
            )
            .values(status="read" if kind == "played" else kind)
        )
