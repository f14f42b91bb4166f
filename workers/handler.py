"""`inbound.handle`: run the store's bot on one message and commit every effect in one transaction.

The effects (the inbound row `handled`, the bot's new state, the reply rows `pending`, the conversation's
watermark) commit together or not at all. The conversation row is locked first, and only messages still
waiting are handled, so a redelivered entry (a crash after commit, before the acknowledgement) changes nothing. Replies
go on the store's outbox only after the commit; a reply whose outbox entry was lost is re-queued by the
sweeper (it is still `pending`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis

from app.contracts import outbox_entry, outbox_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import MessageStatus
from workers.bots.base import BotContext, BotMessage
from workers.bots.registry import language_of, load_bot
from workers.bots.tools import DatabaseBotTools
from workers.repository import WorkerRepository

log = structlog.get_logger(__name__)


class InboundHandler:
    def __init__(
        self, sessionmaker: AsyncSessionMaker, redis: Redis, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.clock = clock or (lambda: datetime.now(UTC))

    async def handle(self, message_id: str, chat_jid: str, wa_id: str = "") -> None:
        async with transaction(self.sessionmaker) as session:
            repository = WorkerRepository(session)
            target = await repository.inbound(uuid.UUID(message_id))
            if target is None or target.status == MessageStatus.handled:
                return  # gone, or a redelivery of a message whose effects are committed
            conversation = await repository.lock_conversation(target.conversation_id)
            # The stream entry is a trigger; the order is the conversation's. Older messages of this chat still
            # waiting (their entries lost with a Redis, or re-queued late by a sweeper) are answered first.
            backlog = await repository.unhandled_inbound(conversation.id, target.seq)
            if not backlog:
                return  # handled meanwhile by another handler that held the conversation
            state, paused = dict(conversation.bot_state), conversation.bot_paused
            store = await repository.store(target.store_id)
            bot, config = load_bot(store.bot_kind, store.bot_config)
            now = self.clock()
            context = BotContext(
                store_id=store.id, store_name=store.name, language=language_of(config), now=now
            )
            tools = DatabaseBotTools(
                session,
                store_id=store.id,
                conversation_id=conversation.id,
                chat_jid=conversation.chat_jid,
                now=now,
            )
            reply_ids: list[uuid.UUID] = []
            for inbound in backlog:
                if not paused:  # paused: a person took the chat over (handoff); the bot stays quiet
                    message = BotMessage(
                        text=inbound.text or "",
                        type=inbound.type,
                        chat_jid=conversation.chat_jid,
                        customer_name=conversation.customer_name,
                        received_at=inbound.wa_timestamp or inbound.created_at,
                    )
                    reply = await bot.handle(context, config, state, message, tools)
                    state, paused = reply.state, paused or reply.handoff
                    reply_ids += await repository.add_replies(
                        store_id=store.id,
                        conversation_id=conversation.id,
                        reply_to=inbound.id,
                        texts=reply.replies,
                    )
                await repository.mark_handled(inbound.id)
            await repository.save_conversation(
                conversation.id, state=state, handled_seq=backlog[-1].seq, paused=paused
            )
        # Committed: only now may the session manager see the replies.
        try:
            for reply_id in reply_ids:
                await self.redis.xadd(
                    outbox_stream(target.store_id),
                    outbox_entry(message_id=reply_id, chat_jid=conversation.chat_jid),  # type: ignore[arg-type]
                )
        except Exception:
            log.warning("queueing replies failed; the sweeper will", message_id=message_id, exc_info=True)
