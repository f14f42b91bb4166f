"""The worker's reading: owned store streams (`app.kit.streams`) into per-chat lanes (`app.kit.lanes`).

An entry is acknowledged only after its effects committed. A failing entry is retried inside its lane (so the
chat keeps its order), then moved to the store's dead-letter stream and acknowledged, and the chat moves on.
Failures of PostgreSQL or Redis themselves are not the message's fault: they are retried until the servers
return, without counting attempts.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from taskiq.abc.formatter import TaskiqFormatter
from taskiq.message import TaskiqMessage

from app.contracts import messages_dlq
from app.kit.lanes import Key, Lanes, Retry, Unprocessable
from app.kit.streams import StreamConsumer, StreamEntry

log = structlog.get_logger(__name__)

# Runs consecutive task messages of one chat, in order; their effects commit before it returns.
Handler = Callable[[list[TaskiqMessage]], Awaitable[None]]
DeadLetter = Callable[[StreamEntry, TaskiqMessage | None, str], Awaitable[None]]

RETRY_DELAYS = (0.2, 1.0, 3.0)
RUN_MAX = 100  # entries of one chat handed to the handler at once
NOT_A_TASK = "not a task message"

# SQLSTATE classes and codes that say the database cannot serve right now, not that the message is bad:
# connection exceptions, insufficient resources ("too many clients"), operator intervention (a restart),
# and the transient conflicts of concurrent transactions (serialization failure, deadlock).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
TRANSIENT_SQLSTATES = ("40001", "40P01")


def is_infrastructure_error(exc: BaseException) -> bool:
    if isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | OperationalError
        | InterfaceError
        | OSError
        | PoolTimeoutError,
    ):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return (
        exc.connection_invalidated
        or sqlstate.startswith(TRANSIENT_SQLSTATE_CLASSES)
        or sqlstate in TRANSIENT_SQLSTATES
    )


@dataclass(frozen=True)
class Task:
    """A stream entry and the taskiq message it carries (None: not a task; it goes to the dead letters)."""

    entry: StreamEntry
    message: TaskiqMessage | None


class ChatLaneReceiver:
    def __init__(
        self,
        streams: StreamConsumer,
        formatter: TaskiqFormatter,
        handler: Handler,
        *,
        concurrency: int,
        chat_buffer: int,
        max_attempts: int,
        dead_letter: DeadLetter,
    ) -> None:
        self.streams = streams
        self.formatter = formatter
        self.handler = handler
        self.dead_letter = dead_letter
        self.lanes: Lanes[Task] = Lanes(
            self._handle,
            concurrency=concurrency,
            buffer=chat_buffer,
            run_max=RUN_MAX,
            batchable=lambda task: task.message is not None,
            retry=Retry(max_attempts, RETRY_DELAYS, transient=is_infrastructure_error),
            done=self._ack,
            dead=self._dead,
        )

    @property
    def handled(self) -> int:
        return self.lanes.completed

    async def run(self) -> None:
        async for batch in self.streams.batches():
            for entry in batch:
                self._enqueue(entry)
            # Backpressure: a chat far behind stops the reading until it catches up.
            await self.lanes.room()

    def _enqueue(self, entry: StreamEntry) -> None:
        message: TaskiqMessage | None
        try:
            message = self.formatter.loads(entry.fields.get("data", "").encode())
            chat = str(message.kwargs.get("chat_jid", ""))
        except Exception:  # not a task: nothing can run it; it goes to the dead letters in its own lane
            message, chat = None, f"?{entry.entry_id}"
        self.lanes.put((entry.store_id, chat), Task(entry, message))

    def drop_store(self, store_id: uuid.UUID) -> None:
        """The store's lease is gone: stop reading it and stop its lanes, mid-run too; its unacknowledged entries
        are replayed by the next owner (the handler skips what was committed already)."""
        self.streams.disown(store_id)
        self.lanes.drop_store(store_id)

    async def drain(self, timeout: float) -> bool:
        """Let the lanes finish what they hold (bounded); True when everything was handled."""
        return await self.lanes.wait_idle(timeout)

    async def _handle(self, _key: Key, run: list[Task]) -> None:
        messages = [task.message for task in run if task.message is not None]
        if len(messages) < len(run):
            raise Unprocessable(NOT_A_TASK)
        await self.handler(messages)

    async def _ack(self, _key: Key, run: list[Task]) -> None:
        await self.streams.ack_many([task.entry for task in run])

    async def _dead(self, _key: Key, task: Task, error: BaseException) -> None:
        reason = str(error) if isinstance(error, Unprocessable) else repr(error)
        await self.dead_letter(task.entry, task.message, reason)


async def write_dead_letter(
    redis: Redis, entry: StreamEntry, message: TaskiqMessage | None, error: str
) -> None:
    """Keep the entry, with why it failed, on `messages:store-<id>:dlq` (listed and replayed by `mostrador dlq`)."""
    message_id = str(message.kwargs.get("message_id", "")) if message else ""
    fields = {
        "data": entry.fields.get("data", ""),
        "error": error[:2000],
        "entry_id": entry.entry_id,
        "failed_at": datetime.now(UTC).isoformat(),
        "message_id": message_id,
    }
    await redis.xadd(messages_dlq(entry.store_id), fields)  # type: ignore[arg-type]
    log.error(
        "message moved to the dead-letter stream",
        store_id=str(entry.store_id),
        entry_id=entry.entry_id,
        message_id=message_id,
        error=error[:300],
    )
