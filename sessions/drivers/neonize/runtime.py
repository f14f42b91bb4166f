"""Living with neonize's Go runtime inside our process: what a mistake here costs is the whole process.

- neonize keeps its clients in plain Go maps written by connect and stop and read by every call: a read during
  a write kills the process (`concurrent map writes`; 250 clients connecting/stopping at once crashed it in 3 of
  6 runs). Connect set-up and stop are writers, every other call a reader (`GoMapGuard`), so clients start
  and stop one at a time.
- The Go side queues events in a 100-slot channel and whatsmeow acknowledges a message once it is queued, not
  once Python handled it. Each event callback is made to block until its handler (and the manager's
  `on_event`) finished (`dispatch_from_go`): events are handled one at a time and in order per store, and a
  slow manager pushes back on whatsmeow once the channel is full. Up to ~100 messages acknowledged but not yet
  durable can be lost if the process dies; they cannot be un-acknowledged from here.
- Handlers must be registered before `connect()` (neonize tells Go which events to forward from that list),
  one per event type per client; neonize swallows exceptions raised in them.
- neonize dispatches every Go callback to one event loop per process, fixed at its first connect (tests: one
  loop per process for neonize code). Its blocking calls run in that loop's default executor, and each live
  client pins one of its threads for its whole life: the executor is sized for the store cap (`pin_loop`).
- A client object collected by the GC stops any later client with the same uuid (neonize's finalizer): it is
  rebound to our per-attempt uuid when the client is made and detached after `stop()`.
- whatsmeow's message id generator may be called without a client, but not while the Go maps are written.
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
from typing import Any

import structlog
from neonize._binder import gocode
from neonize.aioze import events as neonize_events
from neonize.aioze.client import NewAClient
from neonize.events import EVENT_TO_INT, INT_TO_EVENT
from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps

from sessions.drivers.base import DriverError
from sessions.drivers.neonize.events import jid_from_string

log = structlog.get_logger(__name__)

Handler = Callable[[Any, Any], Coroutine[Any, Any, None]]

# The size of the default executor the driver gave each event loop (it is replaced only to grow).
_executor_sizes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


class GoMapGuard:
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


def pin_loop(bound: asyncio.AbstractEventLoop | None, executor_workers: int) -> asyncio.AbstractEventLoop:
    """The running loop, checked to be the one neonize dispatches to (`bound`: the loop the driver already
    uses, if any). The first time, the loop's default executor is grown to `executor_workers` threads."""
    loop = asyncio.get_running_loop()
    pinned = neonize_events.event_global_loop
    if (bound is not None and bound is not loop) or (pinned is not None and pinned is not loop):
        raise DriverError(
            "neonize is bound to another event loop of this process; run the WhatsApp driver in one loop",
            retryable=False,
        )
    if bound is None and _executor_sizes.get(loop, 0) < executor_workers:
        executor = ThreadPoolExecutor(max_workers=executor_workers, thread_name_prefix="neonize")
        loop.set_default_executor(executor)
        _executor_sizes[loop] = executor_workers
    return loop


def new_client(database: str, client_id: str, device_jid: str | None) -> Any:
    """A neonize client keyed by `client_id`: a fresh device to pair (`device_jid` None) or exactly that device.
    With neither `new_device` nor `jid`, whatsmeow would resume the *first* device in the database: another
    store's session."""
    props = DeviceProps(os="Mostrador", platformType=DeviceProps.DESKTOP)
    if device_jid is None:
        client = NewAClient(name=database, uuid=client_id, props=props, new_device=True)
    else:
        client = NewAClient(name=database, jid=jid_from_string(device_jid), props=props)
        client.uuid = client_id.encode()  # neonize would key it by the phone number
    # neonize's finalizer stops the client's uuid when the object is collected; rebind it to ours.
    client._stop_finalizer.detach()
    client._stop_finalizer = weakref.finalize(client, NewAClient._release_ffi, client.uuid, gocode)
    return client


def detach_finalizer(client: Any) -> None:
    """After `stop()`: a collected client would stop its uuid again later; the finalizer has done its part."""
    client._stop_finalizer.detach()


def register_handlers(
    client: Any,
    loop: asyncio.AbstractEventLoop,
    handlers: dict[Any, Handler],
    on_qr: Callable[[Any, bytes], Awaitable[None]],
    store_id: uuid.UUID,
) -> None:
    """Handlers go in before connect(): neonize tells Go which events to forward from this list. Events then
    reach them through `dispatch_from_go` instead of neonize's own dispatcher."""
    for event_type, handler in handlers.items():
        client.event(event_type)(handler)
    client.event.qr(on_qr)  # QR codes come one per call, outside the event channel, on their own callback
    by_code = {EVENT_TO_INT[event_type]: handler for event_type, handler in handlers.items()}

    def execute(_uuid: Any, binary: int, size: int, code: int) -> None:  # on a Go thread
        try:
            dispatch_from_go(loop, by_code, client, code, ctypes.string_at(binary, size))
        except BaseException:
            log.exception("neonize event dispatch failed", store_id=str(store_id), code=code)

    client.event.execute = execute  # read by connect() when it hands the callback to Go


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


def new_message_id(guard: GoMapGuard) -> str:
    """whatsmeow's generator, called without a client (it accepts that). Not while a connect or stop writes
    neonize's Go maps: then the same format is made here."""
    if not guard.busy:
        with contextlib.suppress(Exception):
            generated = gocode.GenerateMessageID(b"")
            if isinstance(generated, bytes) and generated:
                return generated.decode()
    return fallback_message_id()


def fallback_message_id() -> str:
    """whatsmeow's id format (`3EB0` + 18 hex digits of a hash of time and randomness)."""
    digest = hashlib.sha256(struct.pack(">Q", int(time.time())) + secrets.token_bytes(16)).digest()
    return "3EB0" + digest[:9].hex().upper()
