"""One store's connection through neonize: its attempts (connect, pairing, resume, stop, logout), the handlers
neonize calls for its events, and the calls made on its live client.

- Each attempt names its device: `new_device=True` for a fresh pairing, `jid=<device JID>` to resume. Resuming
  a JID that is not in the auth store crashes the whole process (nil pointer in whatsmeow.NewClient), so the
  row is looked up first.
- Each attempt is a fresh client with its own name (`mwa-<process token>-<store>-<attempt>`): the Go client key
  and the database sessions' application_name. An attempt that is over (disconnected, logged out, timed out)
  stops its client; events neonize still delivers for it are dropped. whatsmeow would reconnect by itself; the
  manager owns reconnects (with backoff), so the driver never retries.
- QR codes arrive one per call: the first lasts 60 s, the next five 20 s each, and after ~160 s whatsmeow gives
  up without saying so: our own timer ends the pairing. Offline, `connect()` fails in ~30 ms ("no such host")
  and whatsmeow does not retry a failed first connect: the attempt ends in a clear, retryable Disconnected.
- neonize's send takes no message id: `send_text` ignores `wa_id` and returns the id whatsmeow assigned.
- `is_connected`/`is_logged_in` are coroutines; some endings arrive as no event at all, hence the liveness check.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from neonize.exc import NeonizeError
from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ClientName, ClientType, MediaType

from app.contracts import REASON_QR_TIMEOUT, jid_to_phone
from sessions.drivers.base import (
    Connected,
    Connection,
    Disconnected,
    DriverError,
    Event,
    EventCallback,
    Inbound,
    LoggedOut,
    OutboundMedia,
    PairingCode,
    QrCode,
    SentMessage,
)
from sessions.drivers.neonize.auth_store import whatsmeow_postgres_url
from sessions.drivers.neonize.events import (
    describe_connect_error,
    disconnected_from_temporary_ban,
    epoch_to_datetime,
    inbound_from_event,
    jid_from_string,
    logged_out_from_event,
    message_to_download,
    paired_from_event,
    receipt_from_event,
)
from sessions.drivers.neonize.runtime import Handler, detach_finalizer, new_client, register_handlers

if TYPE_CHECKING:
    from sessions.drivers.neonize.driver import NeonizeDriver

log = structlog.get_logger(__name__)

# whatsmeow's QR rotation: the first code lasts 60 s, the next five 20 s each, then it gives up silently.
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
# How long connect set-up keeps the Go maps to itself at most (it normally ends at the first QR/event/error).
SETTLE_SECONDS = 15.0
# How often a connected client is asked whether its socket is still up.
LIVENESS_SECONDS = 30.0
# An inbound message whose `on_event` fails is offered again this many times before it is given up.
INBOUND_ATTEMPTS = 3


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
        client = new_client(database, client_id, device_jid)
        register_handlers(client, loop, self.handlers(), self.qr_handler(), self.store_id)
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
            detach_finalizer(client)
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
            self._terminate(attempt, Disconnected(REASON_QR_TIMEOUT, retryable=False))

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

    async def send_media(
        self, chat_jid: str, media: OutboundMedia, *, wa_id: str | None = None
    ) -> SentMessage:
        """Upload, then send. Images and documents through neonize's builders (`build_image_message` makes the
        thumbnail with Pillow); video and audio through `upload` and a message built here, because neonize's
        builders for those run ffmpeg (duration, thumbnail), which is not a dependency of ours. `wa_id` is
        ignored, as in `send_text`."""
        jid = self._jid(chat_jid)
        async with self._call("sending media") as client:
            message = await self._build_media(client, media)
            response = await client.send_message(jid, message)
        return SentMessage(wa_id=response.ID, timestamp=epoch_to_datetime(response.Timestamp))

    @staticmethod
    async def _build_media(client: Any, media: OutboundMedia) -> Any:
        if media.type == "image":
            return await client.build_image_message(media.data, caption=media.caption)
        if media.type == "document":
            return await client.build_document_message(
                media.data, caption=media.caption, filename=media.file_name, mimetype=media.mime
            )
        if media.type not in ("video", "audio"):
            raise DriverError(f"cannot send media of type {media.type!r}", retryable=False)
        kind = MediaType.MediaVideo if media.type == "video" else MediaType.MediaAudio
        upload = await client.upload(media.data, kind)
        fields = {
            "URL": upload.url,
            "directPath": upload.DirectPath,
            "fileEncSHA256": upload.FileEncSHA256,
            "fileLength": upload.FileLength,
            "fileSHA256": upload.FileSHA256,
            "mediaKey": upload.MediaKey,
            "mimetype": media.mime,
        }
        if media.type == "video":
            return WAMessage(videoMessage=e2e.VideoMessage(caption=media.caption, **fields))
        return WAMessage(audioMessage=e2e.AudioMessage(**fields))

    async def download_media(self, kind: str, fetch: dict[str, Any]) -> bytes:
        """neonize's `download_any` on the media sub-message kept from the inbound event (sessions/media.py)."""
        try:
            message = message_to_download(fetch)
        except ValueError as exc:
            raise DriverError(str(exc), retryable=False) from exc
        async with self._call("downloading media") as client:
            data: bytes = await client.download_any(message)
        return data

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
