"""`inbound.handle`: run the store's bot on a chat's messages and commit every effect in one transaction.

The effects (the inbound rows `handled`, the bot's new state, the reply rows `pending`) commit together or
not at all. The conversation row is locked first, and only messages still
waiting are handled, so a redelivered entry (a crash after commit, before the acknowledgement) changes nothing. Replies
go on the store's outbox only after the commit; a reply whose outbox entry was lost is re-queued by the
relay (workers/relay.py; it is still `pending`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import outbox_entry, outbox_stream
from app.kit import metrics
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, transaction
from app.models import MessageStatus
from app.stores.settings import HandoffSettings
from workers.bots.base import BotContext, BotMessage
from workers.bots.registry import language_of, load_bot
from workers.bots.tools import DatabaseBotTools
from workers.repository import ConversationRow, ConversationSave, InboundRow, StoreRow, WorkerRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InboundRef:
    """What an inbound stream entry carries (the kwargs of its task)."""

    message_id: str
    chat_jid: str
    wa_id: str = ""
    # The row's conversation and place in it, when the entry carries them (the inbound recorder's do; the
    # relay's and older ones don't, and are looked up).
    conversation_id: str = ""
    seq: int = 0


class InboundHandler:
    def __init__(
        self, sessionmaker: AsyncSessionMaker, redis: Redis, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.clock = clock or (lambda: datetime.now(UTC))
        # The runs of every lane that arrive while a transaction is in flight share the next one.
        self._runs: GroupCommit[list[InboundRef], None] = GroupCommit(self._handle_runs, max_batch=200)

    async def handle(self, refs: list[InboundRef]) -> None:
        """Handle inbound messages of one chat (a lane's run of entries): everything of the chat still waiting
        up to the newest of them. Returns once the effects are committed."""
        try:
            await self._runs.submit(refs)
        except Exception:
            # A shared transaction fails as a whole: this run again on its own, so that one failing chat (a bot
            # bug, a bad message) fails only itself.
            await self._handle_runs([refs])

    async def _handle_runs(self, runs: list[list[InboundRef]]) -> list[None]:
        async with transaction(self.sessionmaker) as session:
            repository = WorkerRepository(session)
            up_to = await _up_to(repository, [ref for run in runs for ref in run])
            if not up_to:
                return [None] * len(runs)
            conversations = await repository.lock_conversations(list(up_to))
            # The stream entries are triggers; the order is the conversation's. Older messages of a chat still
            # waiting (their entries lost with a Redis, or re-queued late by the relay) are answered first.
            backlog: dict[uuid.UUID, list[InboundRow]] = {}
            for row in await repository.unhandled_inbound(up_to):
                backlog.setdefault(row.conversation_id, []).append(row)
            replies: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]] = []  # (store, conversation, to, text)
            chats: list[str] = []
            saves: list[ConversationSave] = []
            for conversation, store in conversations:
                waiting = backlog.get(conversation.id)
                if not waiting:
                    continue  # handled meanwhile by another handler that held the conversation (or a redelivery)
                texts, save = await self._run_bot(session, conversation, store, waiting)
                replies += [(store.id, conversation.id, reply_to, text) for reply_to, text in texts]
                chats += [conversation.chat_jid] * len(texts)
                saves.append(save)
            if not saves:
                return [None] * len(runs)
            handled_ids = [row.id for rows in backlog.values() for row in rows]
            reply_ids = await repository.write_effects(replies, handled_ids, saves)
            outbox = [
                (reply[0], reply_id, chat)
                for reply, reply_id, chat in zip(replies, reply_ids, chats, strict=True)
            ]
        # Committed: the metrics count the batch, and only now may the session manager see the replies.
        committed = time.time()
        handled = [row.created_at for rows in backlog.values() for row in rows]
        metrics.count_messages("in", "handled", len(handled))
        metrics.observe_handling([committed - created.timestamp() for created in handled])
        if replies:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for store_id, reply_id, chat_jid in outbox:
                        entry = outbox_entry(message_id=reply_id, chat_jid=chat_jid)
                        pipe.xadd(outbox_stream(store_id), entry)  # type: ignore[arg-type]
                    await pipe.execute()
            except Exception:
                log.warning("queueing replies failed; the relay will", count=len(outbox), exc_info=True)
        return [None] * len(runs)

    async def _run_bot(
        self, session: AsyncSession, conversation: ConversationRow, store: StoreRow, waiting: list[InboundRow]
    ) -> tuple[list[tuple[uuid.UUID, str]], ConversationSave]:
        """The store's bot on a chat's waiting messages, in order: the replies (reply_to, text) and the
        conversation's new state."""
        state, paused = dict(conversation.bot_state), conversation.bot_paused
        paused_at = conversation.bot_paused_at
        bot, config = load_bot(store.bot_kind, store.bot_config)
        now = self.clock()
        if paused and _resume_is_due(store, paused_at, now):
            paused, paused_at = False, None
        context = BotContext(store_id=store.id, store_name=store.name, language=language_of(config), now=now)
        tools = DatabaseBotTools(
            session,
            store_id=store.id,
            conversation_id=conversation.id,
            chat_jid=conversation.chat_jid,
            now=now,
        )
        replies: list[tuple[uuid.UUID, str]] = []
        for inbound in waiting:
            if paused:  # a person took the chat over (handoff); the bot stays quiet
                break
            message = BotMessage(
                text=inbound.text or "",
                type=inbound.type,
                chat_jid=conversation.chat_jid,
                customer_name=conversation.customer_name,
                received_at=inbound.wa_timestamp or inbound.created_at,
                id=inbound.id,
            )
            reply = await bot.handle(context, config, state, message, tools)
            state = reply.state
            if reply.handoff:  # the customer asked for a person: the bot is quiet from here on
                paused, paused_at = True, now
            replies += [(inbound.id, text) for text in reply.replies]
        return replies, ConversationSave(conversation.id, state, paused, paused_at)


async def _up_to(repository: WorkerRepository, refs: list[InboundRef]) -> dict[uuid.UUID, int]:
    """Per conversation, the newest `seq` the entries name. Entries that carry no place are looked up, and
    skipped if already handled (a redelivery of committed effects)."""
    up_to: dict[uuid.UUID, int] = {}
    unplaced: list[uuid.UUID] = []
    for ref in refs:
        if ref.conversation_id and ref.seq:
            conversation_id = uuid.UUID(ref.conversation_id)
            up_to[conversation_id] = max(up_to.get(conversation_id, 0), ref.seq)
        else:
            unplaced.append(uuid.UUID(ref.message_id))
    if unplaced:
        for target in await repository.inbound(unplaced):
            if target.status != MessageStatus.handled:
                up_to[target.conversation_id] = max(up_to.get(target.conversation_id, 0), target.seq)
    return up_to


def _resume_is_due(store: StoreRow, paused_at: datetime | None, now: datetime) -> bool:
    """Whether the store has the bot take a handed-off chat back, and the person left it long enough."""
    minutes = HandoffSettings.from_store_settings(store.settings).auto_resume_minutes
    return minutes is not None and paused_at is not None and now - paused_at >= timedelta(minutes=minutes)
