"""The real WhatsApp network, through neonize 0.5.2 (Python bindings over whatsmeow, a Go library).

This is the only module that imports neonize. What it has to work around (DESIGN.md, "What we know about
neonize 0.5.2", plus what reading neonize's Go side showed):

- Auth state lives in PostgreSQL: a client `name` starting with `postgres` selects whatsmeow's PostgreSQL store
  (through lib/pq, which wants `postgres://user:pass@host:port/db?sslmode=...`). Every connect attempt opens
  its own database pool that neonize never closes: each attempt gets a unique `application_name`, and once
  the attempt is over its sessions are ended with `pg_terminate_backend`, so reconnects do not leak
  PostgreSQL connections.
- Each store names its device: `new_device=True` for a fresh pairing, `jid=<device JID>` to resume. Resuming a
  JID that is not in the store crashes the whole process (nil pointer in whatsmeow.NewClient), so the row is
  looked up first.
- neonize keeps its clients in plain Go maps written by connect and stop and read by every call: a read during
  a write kills the process. Connect set-up and stop are writers, every other call a reader (`_GoMapGuard`).
- The Go side queues events in a 100-slot channel and whatsmeow acknowledges a message once it is queued, not
  once Python handled it. Each event callback is made to block until its handler (and the manager's
  `on_event`) finished: events are handled one at a time and in order per store, and a slow manager pushes
  back on whatsmeow once the channel is full. Up to ~100 messages acknowledged but not yet durable can be
  lost if the process dies; they cannot be un-acknowledged from here.
- neonize's send takes no message id: `send_text` ignores `wa_id` and returns the id whatsmeow assigned.
- `MessageInfo.Timestamp` arrives in milliseconds (`UnixMilli()` in neonize's encoder; older builds sent
  seconds, which `epoch_to_datetime` also accepts); `SendResponse.Timestamp` is in seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import hashlib
import secrets
import struct
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from neonize._binder import gocode
from neonize.aioze import events as neonize_events
from neonize.aioze.client import NewAClient
from neonize.events import EVENT_TO_INT, INT_TO_EVENT
from neonize.exc import NeonizeError
from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ClientName, ClientType, ReceiptType
from neonize.utils.jid import Jid2String
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.contracts import jid_to_phone
from app.kit.db import create_engine
from sessions.drivers.base import (
    Connected,
    Connection,
    Disconnected,
    Driver,
    DriverError,
    Event,
    EventCallback,
    Inbound,
    InboundMessage,
    LoggedOut,
    Paired,
    PairingCode,
    QrCode,
    Receipt,
    ReceiptKind,
    SentMessage,
)

log = structlog.get_logger(__name__)

# The size of the default executor the driver gave each event loop (it is replaced only to grow).
_executor_sizes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()

Handler = Callable[[Any, Any], Coroutine[Any, Any, None]]

# whatsmeow's QR rotation: the first code lasts 60 s, the next five 20 s each, then it gives up silently.
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
# How long connect set-up keeps the Go maps to itself at most (it normally ends at the first QR/event/error).
SETTLE_SECONDS = 15.0
# A finished attempt's ctypes callbacks stay referenced this long: Go may still call them briefly.
RETAIN_SECONDS = 300.0
# How often a connected client is asked whether its socket is still up.
LIVENESS_SECONDS = 30.0
# An inbound message whose `on_event` fails is offered again this many times before it is given up.
INBOUND_ATTEMPTS = 3
USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
# Chats that are never a customer conversation: status updates and broadcast lists, channels.
IGNORED_SERVERS = frozenset({"broadcast", "newsletter"})


# --- pure mappings from neonize's protobufs ------------------------------------------------------------------
def whatsmeow_postgres_url(url: str, *, application_name: str | None = None) -> str:
    """The form whatsmeow's PostgreSQL store (lib/pq) needs: `postgres://user:pass@host:port/db?sslmode=...`.

    Accepts `postgresql://`, `postgres://` and SQLAlchemy's `postgresql+asyncpg://`; SSL is off unless the URL
    asks for it (lib/pq would otherwise require it); `connect_timeout` keeps a dead server from hanging."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise ValueError(f"the WhatsApp auth store needs a PostgreSQL URL, got {parts.scheme!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ssl = query.pop("ssl", None)  # asyncpg's spelling
    if "sslmode" not in query:
        query["sslmode"] = {"true": "require", "false": "disable"}.get(ssl.lower(), ssl) if ssl else "disable"
    query.setdefault("connect_timeout", "10")
    if application_name:
        query["application_name"] = application_name
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


def epoch_to_datetime(value: int) -> datetime:
    """neonize's timestamps: milliseconds for messages, seconds elsewhere (and in older builds); 0 is unset.
    Any value past 1e11 is taken as milliseconds (1e11 seconds is the year 5138)."""
    if value <= 0:
        return datetime.now(UTC)
    seconds = value / 1000 if value > 100_000_000_000 else float(value)
    return datetime.fromtimestamp(seconds, UTC)


def jid_from_string(value: str) -> Any:
    """`5491155550000@s.whatsapp.net`, `5491155550000:12@s.whatsapp.net` or bare digits -> neonize's JID."""
    user, sep, server = value.strip().partition("@")
    if not sep:
        user, server = "".join(ch for ch in user if ch.isdigit()), USER_SERVER
    agent = device = 0
    if ":" in user:
        user, _, raw_device = user.partition(":")
        if "." in user:
            user, _, raw_agent = user.partition(".")
            agent = int(raw_agent)
        device = int(raw_device)
    if not user or not server:
        raise ValueError(f"not a WhatsApp JID: {value!r}")
    return pb.JID(User=user, RawAgent=agent, Device=device, Integrator=0, Server=server, IsEmpty=False)


def _bare(jid: Any) -> str:
    """`user@server` without agent or device."""
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def _is_set(jid: Any) -> bool:
    return bool(jid.User) and not jid.IsEmpty


def _prefer_phone(jid: Any, alternative: Any) -> Any:
    """WhatsApp addresses many chats by LID (an opaque id) and gives the phone-number JID beside it: the
    phone number is what a store knows its customers by, so it wins when present."""
    if jid.Server == LID_SERVER and _is_set(alternative) and alternative.Server == USER_SERVER:
        return alternative
    return jid


def _field(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _media(message: Any, **fields: str) -> dict[str, Any]:
    """The fields of a media message that are set, renamed (`fileLength` -> `size`, ...)."""
    return {key: getattr(message, name) for key, name in fields.items() if message.HasField(name)}


_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
)
# Content that is protocol plumbing, not something a customer said.
_PLUMBING = frozenset(
    {
        "protocolMessage",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
        "messageContextInfo",
        "deviceSentMessage",
        "keepInChatMessage",
        "encReactionMessage",
        "pollUpdateMessage",
        "pinInChatMessage",
    }
)


def _unwrap(message: Any) -> Any:
    for _ in range(3):  # whatsmeow already unwraps; stay safe with nested wrappers it may not know
        for name in _WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def classify_content(message: Any) -> tuple[str, str | None, dict[str, Any] | None] | None:
    """(type, text, media metadata) of a WhatsApp message, or None for protocol plumbing."""
    message = _unwrap(message)
    if message.HasField("conversation"):
        return "text", message.conversation, None
    if message.HasField("extendedTextMessage"):
        return "text", message.extendedTextMessage.text, None
    if message.HasField("imageMessage"):
        m = message.imageMessage
        media = _media(
            m, mimetype="mimetype", caption="caption", size="fileLength", width="width", height="height"
        )
        return "image", _field(m, "caption"), media
    for name in ("videoMessage", "ptvMessage"):
        if message.HasField(name):
            m = getattr(message, name)
            media = _media(
                m,
                mimetype="mimetype",
                caption="caption",
                size="fileLength",
                seconds="seconds",
                gif="gifPlayback",
            )
            if name == "ptvMessage":
                media["video_note"] = True
            return "video", _field(m, "caption"), media
    if message.HasField("audioMessage"):
        m = message.audioMessage
        return (
            "audio",
            None,
            _media(m, mimetype="mimetype", size="fileLength", seconds="seconds", voice_note="PTT"),
        )
    if message.HasField("documentMessage"):
        m = message.documentMessage
        media = _media(
            m, mimetype="mimetype", caption="caption", size="fileLength", file_name="fileName", title="title"
        )
        return "document", _field(m, "caption"), media
    if message.HasField("stickerMessage"):
        m = message.stickerMessage
        return "sticker", None, _media(m, mimetype="mimetype", size="fileLength", animated="isAnimated")
    if message.HasField("locationMessage"):
        m = message.locationMessage
        media = _media(
            m, latitude="degreesLatitude", longitude="degreesLongitude", name="name", address="address"
        )
        return "location", None, media
    if message.HasField("liveLocationMessage"):
        m = message.liveLocationMessage
        media = _media(m, latitude="degreesLatitude", longitude="degreesLongitude", caption="caption")
        media["live"] = True
        return "location", _field(m, "caption"), media
    if message.HasField("contactMessage"):
        m = message.contactMessage
        return "contact", None, _media(m, display_name="displayName", vcard="vcard")
    if message.HasField("contactsArrayMessage"):
        m = message.contactsArrayMessage
        contacts = [_media(c, display_name="displayName", vcard="vcard") for c in m.contacts]
        return "contact", None, {**_media(m, display_name="displayName"), "contacts": contacts}
    kinds = [descriptor.name for descriptor, _value in message.ListFields()]
    content = [kind for kind in kinds if kind not in _PLUMBING]
    if not content:
        return None
    return "other", None, {"kind": content[0]}


def inbound_from_event(ev: Any, *, group_messages: bool, own_messages: bool) -> InboundMessage | None:
    """A neonize `MessageEv` as the manager's InboundMessage; None when it is filtered out or not a message."""
    info = ev.Info
    source = info.MessageSource
    if source.Chat.Server in IGNORED_SERVERS:
        return None
    if source.IsGroup and not group_messages:
        return None
    if source.IsFromMe and not own_messages:
        return None
    if not ev.HasField("Message"):
        return None  # an "unavailable" placeholder: whatsmeow asks the phone and delivers the real one later
    content = classify_content(ev.Message)
    if content is None:
        return None
    kind, text, media = content
    sender = _prefer_phone(source.Sender, source.SenderAlt)
    chat = source.Chat
    if not source.IsGroup and chat.Server == LID_SERVER:
        if source.IsFromMe:
            chat = _prefer_phone(chat, source.RecipientAlt)
        elif chat.User == source.Sender.User:
            chat = sender
    return InboundMessage(
        wa_id=info.ID,
        chat_jid=_bare(chat),
        sender_jid=_bare(sender),
        timestamp=epoch_to_datetime(info.Timestamp),
        type=kind,
        text=text or None,
        sender_name=info.Pushname or None,
        media=media or None,
        is_group=source.IsGroup,
        from_me=source.IsFromMe,
    )


_RECEIPT_KINDS: dict[int, ReceiptKind] = {
    pb.Receipt.DELIVERED: "delivered",
    pb.Receipt.READ: "read",
    pb.Receipt.PLAYED: "played",
}


def receipt_from_event(ev: Any) -> Receipt | None:
    """Delivered/read/played receipts of messages we sent; other receipt types (our own devices' read
    receipts, retries, server errors...) are not the manager's business. `Type` is a required field with a
    default, so an unset type would read as DELIVERED: check it is actually there."""
    if not ev.HasField("Type"):
        return None
    kind = _RECEIPT_KINDS.get(ev.Type)
    if kind is None or not ev.MessageIDs:
        return None
    source = ev.MessageSource
    chat = _prefer_phone(source.Chat, source.SenderAlt) if not source.IsGroup else source.Chat
    return Receipt(chat_jid=_bare(chat), ids=list(ev.MessageIDs), kind=kind)


def paired_from_event(ev: Any) -> Paired | Disconnected:
    if ev.HasField("Status") and ev.Status == pb.PairStatus.SUCCESS and _is_set(ev.ID):
        device_jid = Jid2String(ev.ID)  # with its device number: what resumes this device later
        return Paired(device_jid=device_jid, phone=jid_to_phone(device_jid))
    error = ev.Error if ev.HasField("Error") and ev.Error else "unknown error"
    return Disconnected(f"pairing failed: {error}", retryable=False)


_LOGOUT_REASONS = {
    pb.LOGGED_OUT: "the device was unlinked from the phone",
    pb.MAIN_DEVICE_GONE: "the phone's WhatsApp account is gone (reinstalled or deleted)",
    pb.UNKNOWN_LOGOUT: "WhatsApp logged out this device",
}


def logged_out_from_event(ev: Any) -> LoggedOut:
    reason = (
        _LOGOUT_REASONS.get(ev.Reason) if ev.HasField("Reason") else None
    ) or "WhatsApp logged out this device"
    if ev.HasField("OnConnect") and ev.OnConnect:
        reason += " (found on connect)"
    return LoggedOut(reason)


def disconnected_from_temporary_ban(ev: Any) -> Disconnected:
    code = (
        pb.TemporaryBan.TempBanReason.Name(ev.Code) if ev.HasField("Code") and ev.Code else "unknown reason"
    )
    expire = f", lifted in {timedelta(seconds=ev.Expire)}" if ev.HasField("Expire") and ev.Expire > 0 else ""
    return Disconnected(f"WhatsApp temporarily banned this number ({code}{expire})", retryable=False)


def describe_connect_error(message: str) -> str:
    """A failed connect in words an operator can act on (the raw error follows)."""
    low = message.lower()
    if "no such host" in low or "server misbehaving" in low or "temporary failure in name resolution" in low:
        return f"cannot reach WhatsApp: DNS lookup failed (is this server offline?): {message}"
    if any(s in low for s in ("connection refused", "unreachable", "timeout", "timed out", "reset by peer")):
        return f"cannot reach WhatsApp: network error: {message}"
    if any(s in low for s in ("database", "pq:", "sql", "postgres")):
        return f"the WhatsApp auth store (PostgreSQL) failed: {message}"
    return f"connecting to WhatsApp failed: {message}"


def _fallback_message_id() -> str:
    """whatsmeow's id format (`3EB0` + 18 hex digits of a hash of time and randomness)."""
    digest = hashlib.sha256(struct.pack(">Q", int(time.time())) + secrets.token_bytes(16)).digest()
    return "3EB0" + digest[:9].hex().upper()


def dispatch_from_go(
    loop: asyncio.AbstractEventLoop, handlers: dict[int, Handler], client: Any, code: int, data: bytes
) -> None:
    """What runs on neonize's Go callback thread for each event: decode it and run its handler on the event
    loop, returning only when the handler has finished, so events are handled in order and a slow handler
    pushes back on whatsmeow. (neonize's own dispatcher fires and forgets.)"""
    event_type = INT_TO_EVENT.get(code)
    if event_type is None:
        return
    message = event_type.FromString(data)
    if code == EVENT_TO_INT[pb.Device]:
        if client is not None:
            client.me = message
        return
    if code == EVENT_TO_INT[pb.Connected] and client is not None:
        client.connected = True
    handler = handlers.get(code)
    if handler is None or loop.is_closed():
        return
    future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(handler(client, message), loop)
    while True:
        try:
            future.result(timeout=1.0)
            return
        except concurrent.futures.TimeoutError:
            if loop.is_closed() or not loop.is_running():
                future.cancel()
                return
        except BaseException:  # the handler logs its own failures; nothing may reach Go
            return


# --- process-wide machinery ----------------------------------------------------------------------------------
class _GoMapGuard:
    """neonize's clients live in unsynchronized Go maps: connect set-up and stop write them, every other call
    reads them, and a read during a write is a fatal error for the whole process. Writers run one at a time
    and alone; readers run together. Writers go first: a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._writer = asyncio.Lock()
        self._readers = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return self._writer.locked()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        async with self._writer:
            await self._idle.wait()
            yield

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        async with self._writer:
            self._readers += 1
            self._idle.clear()
        try:
            yield
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._idle.set()


class _AuthStore:
    """Short SQL on whatsmeow's tables (not through neonize): does a device exist, forget one, end a finished
    attempt's database sessions."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._engine: AsyncEngine | None = None
        self._closed = False

    def _get_engine(self) -> AsyncEngine:
        if self._closed:
            raise RuntimeError("the WhatsApp driver is closed")
        if self._engine is None:
            self._engine = create_engine(self._url, pool_size=1, application_name="mostrador-whatsmeow-admin")
        return self._engine

    async def _has_devices_table(self, conn: AsyncConnection) -> bool:
        # whatsmeow creates its tables on its first connect; a query on a missing table would fail.
        return bool(await conn.scalar(text("SELECT to_regclass('whatsmeow_device') IS NOT NULL")))

    async def device_exists(self, device_jid: str) -> bool:
        async with self._get_engine().connect() as conn:
            if not await self._has_devices_table(conn):
                return False
            query = text("SELECT 1 FROM whatsmeow_device WHERE jid = :jid")
            return await conn.scalar(query, {"jid": device_jid}) is not None

    async def forget_device(self, device_jid: str) -> bool:
        """Delete the device and (by cascade) all its keys and sessions."""
        async with self._get_engine().begin() as conn:
            if not await self._has_devices_table(conn):
                return False
            result = await conn.execute(
                text("DELETE FROM whatsmeow_device WHERE jid = :jid"), {"jid": device_jid}
            )
            return bool(result.rowcount)

    async def end_sessions(self, application_name: str) -> int:
        query = text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name AND pid <> pg_backend_pid()"
        )
        async with self._get_engine().connect() as conn:
            return int(await conn.scalar(query, {"name": application_name}) or 0)

    async def close(self) -> None:
        self._closed = True
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


class NeonizeDriver(Driver):
    """One per process. `max_stores` caps the live connections; `executor_workers` sizes the event loop's
    default executor (each live client pins one of its threads for its whole life, and a stopped client that
    was still pairing keeps its thread until whatsmeow's QR rotation ends, up to 160 s later)."""

    name = "neonize"

    def __init__(
        self,
        database_url: str,
        *,
        max_stores: int = 100,
        executor_workers: int | None = None,
        qr_timeout_seconds: float = 160,
        group_messages: bool = False,
        own_messages: bool = False,
        connect_timeout_seconds: float = 60,
    ) -> None:
        if max_stores < 1:
            raise ValueError("max_stores must be at least 1")
        self.database_url = database_url
        whatsmeow_postgres_url(database_url)  # refuse a non-PostgreSQL URL now, not at the first connect
        self.max_stores = max_stores
        self.executor_workers = executor_workers or 2 * max_stores + 32
        self.qr_timeout_seconds = qr_timeout_seconds
        self.group_messages = group_messages
        self.own_messages = own_messages
        self.connect_timeout_seconds = connect_timeout_seconds
        # Tells this process's database sessions apart from another process's (application_name).
        self.token = secrets.token_hex(3)
        self.guard = _GoMapGuard()
        self.auth = _AuthStore(database_url)
        self.live: set[NeonizeConnection] = set()
        self._retired: set[Any] = set()  # finished clients whose ctypes callbacks Go may still call
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection(self, store_id: uuid.UUID, on_event: EventCallback) -> NeonizeConnection:
        return NeonizeConnection(self, store_id, on_event)

    async def start(self) -> None:
        self.bind_loop()

    def bind_loop(self) -> asyncio.AbstractEventLoop:
        """neonize dispatches every Go callback to one event loop per process, fixed at its first connect;
        its calls run in the loop's default executor, which must hold a thread per live client."""
        loop = asyncio.get_running_loop()
        pinned = neonize_events.event_global_loop
        if (self._loop is not None and self._loop is not loop) or (pinned is not None and pinned is not loop):
            raise DriverError(
                "neonize is bound to another event loop of this process; run the WhatsApp driver in one loop",
                retryable=False,
            )
        if self._loop is None:
            if _executor_sizes.get(loop, 0) < self.executor_workers:
                executor = ThreadPoolExecutor(max_workers=self.executor_workers, thread_name_prefix="neonize")
                loop.set_default_executor(executor)
                _executor_sizes[loop] = self.executor_workers
            self._loop = loop
        return loop

    async def close(self) -> None:
        stopping = list(self.live)
        for conn in stopping:
            with contextlib.suppress(Exception):
                await conn.stop()
        # Their blocking neonize calls return shortly after a stop (a client stopped while pairing: only when
        # whatsmeow's QR rotation ends, which is also how long the process may wait for that thread at exit).
        running = [c._task for c in stopping if c._task is not None and not c._task.done()]
        if running:
            await asyncio.wait(running, timeout=5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        await self.auth.close()

    def new_message_id(self) -> str:
        """whatsmeow's generator, called without a client (it accepts that). Not while a connect or stop
        writes neonize's Go maps: then the same format is made here."""
        if not self.guard.busy:
            with contextlib.suppress(Exception):
                generated = gocode.GenerateMessageID(b"")
                if isinstance(generated, bytes) and generated:
                    return generated.decode()
        return _fallback_message_id()

    # --- bookkeeping used by the connections ---------------------------------------------------------------
    def reserve(self, conn: NeonizeConnection) -> None:
        if conn not in self.live and len(self.live) >= self.max_stores:
            raise DriverError(f"store cap reached ({self.max_stores} per process)", retryable=True)
        self.live.add(conn)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def retire(self, client: Any) -> None:
        """Keep a finished client (and so its ctypes callbacks) referenced a while, then let it go."""
        self._retired.add(client)
        loop = self._loop or asyncio.get_running_loop()
        loop.call_later(RETAIN_SECONDS, self._retired.discard, client)

    async def end_sessions(self, application_name: str) -> None:
        try:
            ended = await self.auth.end_sessions(application_name)
        except Exception as exc:
            log.warning(
                "could not end a finished attempt's database sessions", app=application_name, error=str(exc)
            )
            return
        if ended:
            log.debug("ended a finished attempt's database sessions", app=application_name, count=ended)


# --- one store's connection ----------------------------------------------------------------------------------
class NeonizeConnection(Connection):
    def __init__(self, driver: NeonizeDriver, store_id: uuid.UUID, on_event: EventCallback) -> None:
        self.driver = driver
        self.store_id = store_id
        self.on_event = on_event
        self.log = log.bind(store_id=str(store_id))
        self._attempt = 0
        self._client: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._starting = False
        self._closing = False
        self._connected = False
        self._paired = False
        self._pairing = False
        self._qr_count = 0
        self._device_jid: str | None = None
        self._phone: str | None = None
        self._pairing_deadline = datetime.now(UTC)
        self._settled = asyncio.Event()
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._stops = 0

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self, *, device_jid: str | None) -> None:
        driver = self.driver
        if self._client is not None or self._starting:
            return
        loop = driver.bind_loop()
        driver.reserve(self)  # before any await: concurrent starts cannot both pass the cap
        self._starting = True
        stops = self._stops
        try:
            if device_jid is not None:
                try:
                    exists = await driver.auth.device_exists(device_jid)
                except Exception as exc:
                    raise DriverError(f"the WhatsApp auth store (PostgreSQL) is unreachable: {exc}") from exc
                if stops != self._stops:
                    return  # stopped meanwhile
                if not exists:
                    # Resuming a device whatsmeow does not hold would crash the process (see the module doc).
                    driver.live.discard(self)
                    await self._emit(LoggedOut("this device is no longer linked here; link the number again"))
                    return
            await self._connect(loop, device_jid)
        finally:
            self._starting = False
            if self._client is None:
                driver.live.discard(self)

    async def _connect(self, loop: asyncio.AbstractEventLoop, device_jid: str | None) -> None:
        driver = self.driver
        self._attempt += 1
        attempt = self._attempt
        self._closing = self._connected = self._paired = False
        self._qr_count = 0
        self._device_jid = device_jid
        self._phone = jid_to_phone(device_jid) if device_jid else None
        self._pairing = device_jid is None
        self._settled = asyncio.Event()
        # One name per attempt: the Go client key and the database sessions' application_name (max 63 chars).
        client_id = f"mwa-{driver.token}-{self.store_id.hex}-{attempt}"
        database = whatsmeow_postgres_url(driver.database_url, application_name=client_id)
        props = DeviceProps(os="Mostrador", platformType=DeviceProps.DESKTOP)
        if device_jid is None:
            client = NewAClient(name=database, uuid=client_id, props=props, new_device=True)
        else:
            client = NewAClient(name=database, jid=jid_from_string(device_jid), props=props)
            client.uuid = client_id.encode()  # neonize would key it by the phone number
        # neonize's finalizer stops the client's uuid when the object is collected; rebind it to ours.
        client._stop_finalizer.detach()
        client._stop_finalizer = weakref.finalize(client, NewAClient._release_ffi, client.uuid, gocode)
        self._register(client, loop)
        self._client = client
        if self._pairing:
            self._pairing_deadline = datetime.now(UTC) + timedelta(seconds=driver.qr_timeout_seconds)
            self._start_timer("pairing", self._pairing_timer(attempt))
        self._start_timer("watchdog", self._watchdog(attempt))
        self.log.info("connecting to WhatsApp", resume=device_jid is not None, attempt=attempt)
        failure: Exception | None = None
        async with driver.guard.write():
            try:
                task = await client.connect()
            except Exception as exc:
                failure = exc
            else:
                self._task = task
                task.add_done_callback(lambda done: self._on_task_done(attempt, client_id, done))
                # Hold the Go maps until neonize has registered the client: first QR code, event or error.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), SETTLE_SECONDS)
        if failure is not None:
            self._closing = True
            await self._teardown(attempt)
            raise DriverError(f"neonize could not start a connection: {failure}") from failure

    def _register(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Handlers go in before connect(): neonize tells Go which events to forward from this list."""
        handlers = self.handlers()
        for event_type, handler in handlers.items():
            client.event(event_type)(handler)
        client.event.qr(self.qr_handler())
        by_code = {EVENT_TO_INT[event_type]: handler for event_type, handler in handlers.items()}

        def execute(_uuid: Any, binary: int, size: int, code: int) -> None:  # on a Go thread
            try:
                dispatch_from_go(loop, by_code, client, code, ctypes.string_at(binary, size))
            except BaseException:
                log.exception("neonize event dispatch failed", store_id=str(self.store_id), code=code)

        client.event.execute = execute  # read by connect() when it hands the callback to Go

    async def stop(self) -> None:
        """Disconnect, keeping the device linked. Idempotent."""
        self._stops += 1
        self._closing = True
        await self._teardown(self._attempt)

    async def logout(self) -> None:
        """Unlink the device on the phone (connected) or, offline, forget it here: then the phone keeps listing
        it until it is removed there, which is reported as an error after the local clean-up."""
        client, connected = self._client, self._connected and not self._closing
        self._closing = True
        if client is not None and connected:
            try:
                async with self.driver.guard.read():
                    await client.logout()  # whatsmeow deletes the device from its store itself
            except NeonizeError as exc:
                self.log.warning("logout on the network failed; forgetting the device here", error=str(exc))
            else:
                await self._teardown(self._attempt)
                self._device_jid = None
                return
        await self._teardown(self._attempt)
        device_jid, self._device_jid = self._device_jid, None
        if device_jid is None:
            return
        try:
            await self.driver.auth.forget_device(device_jid)
        except Exception as exc:
            raise DriverError(f"could not forget the device in the auth store: {exc}") from exc
        raise DriverError(
            "not connected: the device was forgotten here, but the phone lists it until it is unlinked there",
            retryable=False,
        )

    async def _teardown(self, attempt: int) -> None:
        """Stop this attempt's client (if it is still the current one) and free its slot."""
        if attempt != self._attempt:
            return
        current = asyncio.current_task()
        for name, timer in list(self._timers.items()):
            if timer is not current:
                timer.cancel()
            del self._timers[name]
        client, self._client = self._client, None
        self._connected = self._pairing = False
        if client is not None:
            try:
                async with self.driver.guard.write():
                    await client.stop()
            except Exception:
                self.log.warning("stopping the neonize client failed", exc_info=True)
            # A collected client would stop its uuid again later: the finalizer has done its part.
            client._stop_finalizer.detach()
            self.driver.retire(client)
        self.driver.live.discard(self)

    def _terminate(self, attempt: int, event: Event) -> None:
        """The attempt is over (disconnected, logged out, timed out...): stop it, then tell the manager."""
        if attempt != self._attempt or self._closing:
            return
        self._closing = True

        async def run() -> None:
            try:
                await self._teardown(attempt)
            finally:
                reason = getattr(event, "reason", None)
                self.log.info("connection ended", ending=type(event).__name__, reason=reason)
                await self._emit(event)

        self.driver.spawn(run())

    def _on_task_done(self, attempt: int, client_id: str, task: asyncio.Task[Any]) -> None:
        """neonize's blocking connect call returned: an error at once (offline, DNS, database), or the end after
        a stop. Either way the attempt's database pool is finished with."""
        if attempt == self._attempt:
            self._settled.set()
        self.driver.spawn(self.driver.end_sessions(client_id))
        if task.cancelled():
            error = "the connection task was cancelled"
        elif task.exception() is not None:
            error = describe_connect_error(str(task.exception()))
        else:
            error = "the connection to WhatsApp ended"
        self._terminate(attempt, Disconnected(error, retryable=True))

    # --- timers --------------------------------------------------------------------------------------------
    def _start_timer(self, name: str, coro: Awaitable[None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = asyncio.ensure_future(coro)

    def _stop_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _pairing_timer(self, attempt: int) -> None:
        """whatsmeow stops rotating QR codes after ~160 s without saying so: end the attempt ourselves."""
        await asyncio.sleep(self.driver.qr_timeout_seconds)
        if attempt == self._attempt and not self._paired:
            self._terminate(attempt, Disconnected("QR code not scanned in time", retryable=False))

    async def _watchdog(self, attempt: int) -> None:
        """No QR code and no connection in time: never leave a store hanging in "connecting"."""
        await asyncio.sleep(self.driver.connect_timeout_seconds)
        if attempt == self._attempt and not self._connected:
            self._terminate(attempt, Disconnected("timed out connecting to WhatsApp", retryable=True))

    async def _liveness(self, attempt: int) -> None:
        """Some ways a connection ends reach us as no event at all (events we cannot subscribe to safely, see
        handlers()): ask whatsmeow now and then, and end the attempt after two failed checks in a row."""
        failures = 0
        while attempt == self._attempt and not self._closing:
            await asyncio.sleep(LIVENESS_SECONDS)
            try:
                async with self._call("checking the connection") as client:
                    alive = bool(await client.is_connected)
            except DriverError:
                return
            failures = 0 if alive else failures + 1
            if failures >= 2:
                reason = "the connection to WhatsApp closed (replaced, refused or dropped)"
                self._terminate(attempt, Disconnected(reason, retryable=True))
                return

    # --- events from neonize -------------------------------------------------------------------------------
    def handlers(self) -> dict[Any, Handler]:
        """The handler registered with neonize for each event type (tests call them directly). Each one drops
        events of an attempt that is over, and logs instead of raising: neonize swallows exceptions."""
        attempt = self._attempt

        def guarded(handle: Callable[[int, Any], Coroutine[Any, Any, None]]) -> Handler:
            async def run(_client: Any, ev: Any) -> None:
                if attempt != self._attempt or self._closing:
                    return
                self._settled.set()
                try:
                    await handle(attempt, ev)
                except Exception:
                    self.log.exception("neonize event handler failed", handler=handle.__name__)

            return run

        # Only event types neonize encodes completely. Its Go side panics (killing the process) on an empty
        # protobuf (&data[0] of an empty buffer: StreamReplaced, ClientOutdated, KeepAliveRestored) and on one
        # missing a required field (ConnectFailure with a reason it does not know, and possibly others). What
        # those would say is caught by the watchdog (no connection in time) and the liveness check instead.
        return {
            pb.Message: guarded(self._on_message),
            pb.Receipt: guarded(self._on_receipt),
            pb.PairStatus: guarded(self._on_pair_status),
            pb.Connected: guarded(self._on_connected),
            pb.Disconnected: guarded(self._on_disconnected),
            pb.LoggedOut: guarded(self._on_logged_out),
            pb.StreamError: guarded(self._on_stream_error),
            pb.TemporaryBan: guarded(self._on_temporary_ban),
            pb.KeepAliveTimeout: guarded(self._on_keepalive_timeout),
        }

    def qr_handler(self) -> Callable[[Any, bytes], Awaitable[None]]:
        """QR codes come one per call, outside neonize's event channel, on their own callback."""
        attempt = self._attempt

        async def on_qr(_client: Any, data: bytes) -> None:
            if attempt != self._attempt or self._closing or self._paired:
                return
            self._settled.set()
            try:
                self._stop_timer("watchdog")  # a QR code means the socket is up: the pairing timer takes over
                lifetime = FIRST_QR_SECONDS if self._qr_count == 0 else NEXT_QR_SECONDS
                self._qr_count += 1
                code = data.decode() if isinstance(data, bytes) else str(data)
                await self._emit(
                    QrCode(code=code, expires_at=datetime.now(UTC) + timedelta(seconds=lifetime))
                )
            except Exception:
                self.log.exception("neonize QR handler failed")

        return on_qr

    async def _on_message(self, attempt: int, ev: Any) -> None:
        message = inbound_from_event(
            ev, group_messages=self.driver.group_messages, own_messages=self.driver.own_messages
        )
        if message is None:
            return
        delay = 0.5
        for number in range(1, INBOUND_ATTEMPTS + 1):
            try:
                await self.on_event(Inbound(message))
                return
            except Exception:
                if number == INBOUND_ATTEMPTS or attempt != self._attempt or self._closing:
                    # whatsmeow already acknowledged it to WhatsApp (see the module doc): say so loudly.
                    self.log.error("inbound message not recorded", wa_id=message.wa_id, exc_info=True)
                    return
                self.log.warning("recording an inbound message failed; retrying", wa_id=message.wa_id)
                await asyncio.sleep(delay)
                delay *= 2

    async def _on_receipt(self, attempt: int, ev: Any) -> None:
        receipt = receipt_from_event(ev)
        if receipt is not None:
            await self._emit(receipt)

    async def _on_pair_status(self, attempt: int, ev: Any) -> None:
        event = paired_from_event(ev)
        if isinstance(event, Disconnected):
            self._terminate(attempt, event)
            return
        self._paired, self._pairing = True, False
        self._device_jid, self._phone = event.device_jid, event.phone
        self._stop_timer("pairing")
        self._start_timer("watchdog", self._watchdog(attempt))  # whatsmeow reconnects to log in
        await self._emit(event)

    async def _on_connected(self, attempt: int, ev: Any) -> None:
        self._connected = True
        self._stop_timer("watchdog")
        if self._client is not None:
            self._start_timer("liveness", self._liveness(attempt))
        await self._emit(Connected(phone=self._phone))

    async def _on_disconnected(self, attempt: int, ev: Any) -> None:
        # whatsmeow would reconnect by itself; the manager owns reconnects (with backoff), so this attempt ends.
        self._terminate(attempt, Disconnected("the connection to WhatsApp was lost", retryable=True))

    async def _on_logged_out(self, attempt: int, ev: Any) -> None:
        self._terminate(attempt, logged_out_from_event(ev))

    async def _on_stream_error(self, attempt: int, ev: Any) -> None:
        code = ev.Code if ev.HasField("Code") else "unknown"
        self._terminate(attempt, Disconnected(f"WhatsApp stream error {code}", retryable=True))

    async def _on_temporary_ban(self, attempt: int, ev: Any) -> None:
        self._terminate(attempt, disconnected_from_temporary_ban(ev))

    async def _on_keepalive_timeout(self, attempt: int, ev: Any) -> None:
        self.log.warning("WhatsApp keepalive timed out; whatsmeow keeps trying", errors=ev.ErrorCount)

    async def _emit(self, event: Event) -> None:
        try:
            await self.on_event(event)
        except Exception:
            self.log.exception("event callback failed", kind=type(event).__name__)

    # --- calls on a live connection ------------------------------------------------------------------------
    def _live_client(self, *, connected: bool = True) -> Any:
        client = self._client
        if client is None or self._closing or (connected and not self._connected):
            raise DriverError("not connected to WhatsApp", retryable=True)
        return client

    @contextlib.asynccontextmanager
    async def _call(self, what: str, *, connected: bool = True) -> AsyncIterator[Any]:
        """A neonize call on this store's live client, as a reader of the Go maps; its errors as DriverError."""
        self._live_client(connected=connected)
        async with self.driver.guard.read():
            client = self._live_client(connected=connected)  # a stop may have won the race for the maps
            try:
                yield client
            except NeonizeError as exc:
                raise DriverError(f"{what} failed: {exc}", retryable=True) from exc

    async def send_text(self, chat_jid: str, text: str, *, wa_id: str | None = None) -> SentMessage:
        """neonize 0.5.2 cannot send with a chosen id: `wa_id` is ignored and the id whatsmeow gave the message
        is returned (record it: receipts refer to it)."""
        jid = self._jid(chat_jid)
        async with self._call("sending") as client:
            response = await client.send_message(jid, WAMessage(conversation=text))
        return SentMessage(wa_id=response.ID, timestamp=epoch_to_datetime(response.Timestamp))

    async def mark_read(self, chat_jid: str, sender_jid: str, ids: list[str]) -> None:
        if not ids:
            return
        chat, sender = self._jid(chat_jid), self._jid(sender_jid)
        async with self._call("marking as read") as client:
            await client.mark_read(*ids, chat=chat, sender=sender, receipt=ReceiptType.READ)

    async def set_typing(self, chat_jid: str, typing: bool) -> None:
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        jid = self._jid(chat_jid)
        async with self._call("typing presence") as client:
            await client.send_chat_presence(jid, state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)

    async def request_pairing_code(self, phone: str) -> PairingCode:
        digits = "".join(ch for ch in phone if ch.isdigit())
        if not digits:
            raise DriverError(f"not a phone number: {phone!r}", retryable=False)
        if not self._pairing or self._client is None or self._closing:
            raise DriverError("a pairing code can be requested only while pairing", retryable=False)
        if self._qr_count == 0:
            raise DriverError("not connected to WhatsApp yet: no pairing code", retryable=True)
        async with self._call("requesting a pairing code", connected=False) as client:
            code = await client.PairPhone(digits, True, ClientName.LINUX, ClientType.CHROME)
        return PairingCode(code=str(code), expires_at=self._pairing_deadline)

    @staticmethod
    def _jid(value: str) -> Any:
        try:
            return jid_from_string(value)
        except ValueError as exc:
            raise DriverError(str(exc), retryable=False) from exc
