"""`inbound.handle`: run the store's bot on a chat's messages and commit every effect in one transaction.

The effects (the inbound row `handled`, the bot's new state, the reply rows `pending`, the conversation's
watermark) commit together or not at all. The conversation row is locked first, and only messages still
waiting are handled, so a redelivered entry (a crash after commit, before the acknowledgement) changes nothing. Replies
go on the store's outbox only after the commit; a reply whose outbox entry was lost is re-queued by the
sweeper (it is still `pending`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class InboundRef:
    """What an inbound stream entry carries (the kwargs of its task)."""

    message_id: str
    chat_jid: str
    wa_id: str = ""


class InboundHandler:
    def __init__(
        self, sessionmaker: AsyncSessionMaker, redis: Redis, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.clock = clock or (lambda: datetime.now(UTC))

    async def handle(self, refs: list[InboundRef]) -> None:
        """Handle inbound messages of one chat (a lane's run of entries): everything of the chat still waiting
        up to the newest of them, in one transaction per conversation."""
        async with transaction(self.sessionmaker) as session:
            targets = await WorkerRepository(session).inbound([uuid.UUID(ref.message_id) for ref in refs])
        newest: dict[uuid.UUID, int] = {}
        for target in targets:
            if target.status != MessageStatus.handled:  # handled: a redelivery of committed effects
                newest[target.conversation_id] = max(target.seq, newest.get(target.conversation_id, 0))
        for conversation_id, up_to_seq in newest.items():
            await self._handle_conversation(conversation_id, up_to_seq)

    async def _handle_conversation(self, conversation_id: uuid.UUID, up_to_seq: int) -> None:
        async with transaction(self.sessionmaker) as session:
            repository = WorkerRepository(session)
            conversation, store = await repository.lock_conversation(conversation_id)
            # The stream entries are triggers; the order is the conversation's. Older messages of this chat still
            # waiting (their entries lost with a Redis, or re-queued late by a sweeper) are answered first.
            backlog = await repository.unhandled_inbound(conversation.id, up_to_seq)
            if not backlog:
                return  # handled meanwhile by another handler that held the conversation
            state, paused = dict(conversation.bot_state), conversation.bot_paused
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
            replies: list[tuple[uuid.UUID, str]] = []
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
                    replies += [(inbound.id, text) for text in reply.replies]
            reply_ids = await repository.add_replies(
                store_id=store.id, conversation_id=conversation.id, replies=replies
            )
            await repository.mark_handled([inbound.id for inbound in backlog])
            await repository.save_conversation(
                conversation.id, state=state, handled_seq=backlog[-1].seq, paused=paused
            )
        # Committed: only now may the session manager see the replies.
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for reply_id in reply_ids:
                    pipe.xadd(
                        outbox_stream(store.id),
                        outbox_entry(message_id=reply_id, chat_jid=conversation.chat_jid),  # type: ignore[arg-type]
                    )
                await pipe.execute()
        except Exception:
            log.warning("queueing replies failed; the sweeper will", count=len(reply_ids), exc_info=True)
