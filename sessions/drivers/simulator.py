"""An offline WhatsApp network for development, tests, demos and load tests.

It plays WhatsApp's servers and the phones; its state lives in Redis (keys in app/contracts.py), so the API's
`/v1/sim` endpoints can play the customers and the owner's phone from another process. It behaves like the real
network where that matters to us: QR codes rotate (60 s, then 20 s, six in all, then the pairing times out),
a device must be paired before it connects, customers' messages wait in a queue until the device acknowledges
them (a crash before the acknowledgement means redelivery), sent messages get ids, timestamps and receipts,
and faults (disconnect, optionally followed by reconnects that crash; logout from the phone; a failed send)
can be injected. A store seen with two live
connections at once is recorded in `sim:conflicts`: tests assert it stays empty.

One reader task per process serves every simulated connection with a single blocking XREADGROUP, so a
thousand stores cost one Redis connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from enum import Enum

import structlog
from redis.exceptions import ResponseError

from app.config import Settings
from app.contracts import (
    REASON_QR_TIMEOUT,
    REASON_TEMPORARY_BAN,
    SIM_CONFLICTS_KEY,
    SIM_DEVICE_GROUP,
    SIM_MEDIA_TTL_SECONDS,
    jid_to_phone,
    phone_to_jid,
    sim_connection_key,
    sim_control_stream,
    sim_device_key,
    sim_inbound_stream,
    sim_media_key,
    sim_outbound_stream,
    sim_pairing_key,
)
from app.kit.batching import GroupCommit
from app.kit.redis import ReadInFlight, create_redis, group_by_slot, read_group
from sessions.drivers.base import (
    Connected,
    Connection,
    Disconnected,
    Driver,
    DriverError,
    Event,
    EventCallback,
    InboundBatch,
    InboundMessage,
    LoggedOut,
    OutboundMedia,
    Paired,
    PairingCode,
    QrCode,
    Receipt,
    SentMessage,
)

log = structlog.get_logger(__name__)

READ_BLOCK_MS = 200
CONNECTION_TTL_MS = 6000  # the live-connection marker outlives a dead process by at most this long
CONSUMER = "device"
INBOUND_BATCH = 500  # inbound entries handed to the manager at once (it commits them together)
# Compare-and-set on the live-connection marker: only its holder refreshes or drops it.
REFRESH_SCRIPT = """
local alive = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('PEXPIRE', key, ARGV[#ARGV])
    alive[#alive + 1] = 1
  else
    alive[#alive + 1] = 0
  end
end
return alive
"""
RELEASE_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class _State(Enum):
    idle = "idle"
    pairing = "pairing"
    connected = "connected"


def _inbound_message(fields: dict[str, str]) -> InboundMessage:
    # `from` is the JID the network addresses the chat by (a LID or a phone JID); `from_alt`, when the network
    # knows it, the other one (neonize's SenderAlt). As the neonize driver does, the number names the chat.
    chat, alt = fields["from"], fields.get("from_alt") or None
    if alt is not None and chat.endswith("@lid") and not alt.endswith("@lid"):
        chat, alt = alt, chat
    kind = fields.get("type") or "text"
    media: dict[str, object] | None = None
    if kind != "text":
        # What WhatsApp announces of a media message (neonize's names), and where the bytes are.
        media = {
            "mimetype": fields.get("mime") or "application/octet-stream",
            "fetch": {"sim": fields["media"]},
        }
        if fields.get("size"):
            media["size"] = int(fields["size"])
        for name in ("caption", "file_name"):
            if fields.get(name):
                media[name] = fields[name]
        if fields.get("voice_note"):
            media["voice_note"] = True
    # `from_me`: the store's owner wrote to this customer from the phone itself; WhatsApp reports such messages
    # to every linked device (a neonize `MessageEv` with `IsFromMe`).
    from_me = fields.get("from_me") == "1"
    return InboundMessage(
        wa_id=fields["id"],
        chat_jid=chat,
        chat_alt_jid=alt,
        sender_jid=fields.get("sender") or chat,
        timestamp=datetime.fromtimestamp(int(fields["ts"]) / 1000, UTC),
        type=kind,
        text=fields.get("text") or fields.get("caption") or None,
        sender_name=(fields.get("name") or None) if not from_me else None,
        media=media,
        from_me=from_me,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class SimulatorConnection(Connection):
    def __init__(self, driver: SimulatorDriver, store_id: uuid.UUID, on_event: EventCallback) -> None:
        self.driver = driver
        self.redis = driver.redis
        self.store_id = store_id
        self.on_event = on_event
        self.state = _State.idle
        self.token = secrets.token_hex(8)
        self.device_jid: str | None = None
        self.phone: str | None = None
        self.qr_code: str | None = None
        self.fail_next_send = False
        self.fail_next_downloads = 0
        self.crash_next_starts = (
            0  # fault injection: starts that raise an unexpected error (not a DriverError)
        )
        self._timer: asyncio.Task[None] | None = None
        # Entries are handled in arrival order, one at a time, by one task per connection.
        self._entries: asyncio.Queue[tuple[str, str, dict[str, str]]] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self, *, device_jid: str | None) -> None:
        if self.state is not _State.idle:
            return
        if self.crash_next_starts > 0:
            self.crash_next_starts -= 1
            raise RuntimeError("start crashed (simulated fault)")
        if not await self.redis.set(
            sim_connection_key(self.store_id), self.token, nx=True, px=CONNECTION_TTL_MS
        ):
            # The real network would replace the other connection ("stream replaced"); we record the conflict.
            await self.redis.rpush(SIM_CONFLICTS_KEY, str(self.store_id))
            await self._emit(Disconnected("another connection of this device is live", retryable=True))
            return
        control, inbound = sim_control_stream(self.store_id), sim_inbound_stream(self.store_id)
        await self._ensure_group(control, "$")
        await self._ensure_group(inbound, "0")
        # Actions queued while no connection was live (a fault, a scan of an old code) are not for this one.
        await self.redis.xgroup_setid(control, SIM_DEVICE_GROUP, "$")
        self._consumer = asyncio.create_task(self._consume())
        if device_jid is None:
            self.state = _State.pairing
            self.driver.attach(self, [control])
            self._timer = asyncio.create_task(self._rotate_qr_codes())
            return
        raw = await self.redis.get(sim_device_key(device_jid))
        if raw is None:
            await self._close()
            await self._emit(LoggedOut("this device was logged out from the phone"))
            return
        await self._connected(device_jid, json.loads(raw)["phone"])

    async def _connected(self, device_jid: str, phone: str) -> None:
        self.device_jid, self.phone, self.state = device_jid, phone, _State.connected
        inbound = sim_inbound_stream(self.store_id)
        await self._emit(Connected(phone=phone))
        # Messages delivered to an earlier connection but never acknowledged come first, as WhatsApp does.
        pending = await read_group(self.redis, SIM_DEVICE_GROUP, CONSUMER, {inbound: "0"}, count=10_000)
        for _stream, entries in pending:
            for entry_id, fields in entries:
                self._entries.put_nowait((inbound, entry_id, fields))
        self.driver.attach(self, [sim_control_stream(self.store_id), inbound])

    async def _ensure_group(self, stream: str, start: str) -> None:
        try:
            await self.redis.xgroup_create(stream, SIM_DEVICE_GROUP, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def stop(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
        if self.state is _State.pairing:
            await self.redis.delete(sim_pairing_key(self.store_id))
        self.state = _State.idle
        self.driver.detach(self)
        # Entries not handed over yet are not acknowledged: the next connection reads them again, in order.
        self._entries = asyncio.Queue()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer is not asyncio.current_task():
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        for task in list(self._tasks):
            task.cancel()
        # A read begun before the detach may still bring this queue's entries (delivered to the device, so
        # pending, and dropped here): it must be over before the next connection, here or in another process,
        # may start and replay the pending ones, or they would stay pending unseen.
        await self.driver.settle([sim_control_stream(self.store_id), sim_inbound_stream(self.store_id)])
        await self.redis.eval(RELEASE_SCRIPT, 1, sim_connection_key(self.store_id), self.token)

    async def logout(self) -> None:
        if self.device_jid is not None:
            await self.redis.delete(sim_device_key(self.device_jid))
        await self._close()

    # --- pairing -------------------------------------------------------------------------------------------
    async def _rotate_qr_codes(self) -> None:
        settings = self.driver.settings
        for number in range(settings.sim_qr_count):
            lifetime = settings.sim_qr_first_seconds if number == 0 else settings.sim_qr_next_seconds
            await self._show_code(f"2@{secrets.token_urlsafe(36)},{secrets.token_urlsafe(24)}", lifetime)
            await asyncio.sleep(lifetime)
        if self.state is _State.pairing:
            await self._close()
            await self._emit(Disconnected(REASON_QR_TIMEOUT, retryable=False))

    async def _show_code(self, code: str, lifetime: float) -> QrCode:
        self.qr_code = code
        qr = QrCode(code=code, expires_at=_now() + timedelta(seconds=lifetime))
        payload = json.dumps({"code": code, "expires_at": qr.expires_at.isoformat()})
        await self.redis.set(sim_pairing_key(self.store_id), payload, px=max(1, int(lifetime * 1000)))
        await self._emit(qr)
        return qr

    async def request_pairing_code(self, phone: str) -> PairingCode:
        if self.state is not _State.pairing:
            raise DriverError("a pairing code can be requested only while pairing", retryable=False)
        code = secrets.token_hex(4).upper()
        lifetime = self.driver.settings.sim_qr_first_seconds
        # The code typed on the phone plays the same part as a scanned QR: the scan endpoint accepts either.
        self.qr_code = code
        pairing = PairingCode(code=code, expires_at=_now() + timedelta(seconds=lifetime))
        payload = json.dumps({"code": code, "expires_at": pairing.expires_at.isoformat(), "phone": phone})
        await self.redis.set(sim_pairing_key(self.store_id), payload, px=int(lifetime * 1000))
        return pairing

    async def _on_scan(self, fields: dict[str, str]) -> None:
        if self.state is not _State.pairing:
            return
        if fields.get("code") and fields["code"] != self.qr_code:
            log.info("sim scan of a stale code ignored", store_id=str(self.store_id))
            return
        phone = jid_to_phone(phone_to_jid(fields.get("phone") or "+5491155550000"))
        device_jid = f"{phone.removeprefix('+')}:{secrets.randbelow(90) + 10}@s.whatsapp.net"
        await self.redis.set(
            sim_device_key(device_jid), json.dumps({"store_id": str(self.store_id), "phone": phone})
        )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.redis.delete(sim_pairing_key(self.store_id))
        self.state = _State.idle  # not pairing any more; _connected moves it on
        await self._emit(Paired(device_jid=device_jid, phone=phone))
        await self._connected(device_jid, phone)

    # --- entries from the network ---------------------------------------------------------------------------
    def deliver(self, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        self._entries.put_nowait((stream, entry_id, fields))

    async def _consume(self) -> None:
        # Ends once the connection closed (and maybe started again with a consumer of its own): a closed
        # connection's consumer running on beside the new one would take entries of the same queue, out of order.
        me = asyncio.current_task()
        while self._consumer is me:
            entries = [await self._entries.get()]
            while not self._entries.empty() and len(entries) < INBOUND_BATCH:
                entries.append(self._entries.get_nowait())
            inbound: list[tuple[str, str, dict[str, str]]] = []
            for stream, entry_id, fields in entries:
                if stream == sim_control_stream(self.store_id):
                    await self._deliver_inbound(inbound)  # what came before the control entry goes first
                    inbound = []
                    await self.redis.xack(stream, SIM_DEVICE_GROUP, entry_id)
                    await self._on_control(fields)
                elif self.state is _State.connected:
                    inbound.append((stream, entry_id, fields))
            await self._deliver_inbound(inbound)

    async def _deliver_inbound(self, entries: list[tuple[str, str, dict[str, str]]]) -> None:
        """Hand messages to the manager all at once (it commits them together, in this order), then acknowledge
        them. If that fails, none is acknowledged and all are handed over again (those already saved are
        recognised by their WhatsApp id)."""
        delay = 0.05
        while entries and self.state is _State.connected:
            try:
                await self.on_event(InboundBatch([_inbound_message(fields) for _, _, fields in entries]))
            except Exception as exc:
                log.warning(
                    "inbound handler failed; retrying", store_id=str(self.store_id), error=repr(exc)[:300]
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            # Acknowledged only after the manager made them durable: a crash before this means redelivery.
            await self.driver.acks.submit((entries[0][0], [entry_id for _, entry_id, _ in entries]))
            return

    async def _on_control(self, fields: dict[str, str]) -> None:
        kind = fields.get("kind")
        if kind == "scan":
            await self._on_scan(fields)
        elif kind == "disconnect" and self.state is not _State.idle:
            self.crash_next_starts = int(fields.get("crash_starts") or 0)
            await self._close()
            await self._emit(Disconnected("connection lost (simulated fault)", retryable=True))
        elif kind == "logout" and self.device_jid is not None:
            await self.logout()
            await self._emit(LoggedOut("logged out from the phone"))
        elif kind == "send_failure":
            self.fail_next_send = True
        elif kind == "ban" and self.state is not _State.idle:
            # What the neonize driver reports on WhatsApp's TemporaryBan event: not retryable.
            await self._close()
            await self._emit(
                Disconnected(f"{REASON_TEMPORARY_BAN} (simulated, lifted in 1:00:00)", retryable=False)
            )
        elif kind == "download_failure":
            self.fail_next_downloads += 1

    # --- sending -------------------------------------------------------------------------------------------
    async def send_text(self, chat_jid: str, text: str, *, wa_id: str | None = None) -> SentMessage:
        if self.state is not _State.connected:
            raise DriverError("not connected", retryable=True)
        if self.fail_next_send:
            self.fail_next_send = False
            raise DriverError("send failed (simulated fault)", retryable=True)
        message_id = wa_id or self.driver.new_message_id()
        now = _now()
        fields = {"id": message_id, "chat": chat_jid, "text": text, "ts": str(int(now.timestamp() * 1000))}
        await self.driver.sends.submit((sim_outbound_stream(self.store_id), fields))
        if self.driver.settings.sim_receipts:
            self._spawn(self._receipts(chat_jid, message_id))
        return SentMessage(wa_id=message_id, timestamp=now)

    async def send_media(
        self, chat_jid: str, media: OutboundMedia, *, wa_id: str | None = None
    ) -> SentMessage:
        if self.state is not _State.connected:
            raise DriverError("not connected", retryable=True)
        if self.fail_next_send:
            self.fail_next_send = False
            raise DriverError("send failed (simulated fault)", retryable=True)
        message_id = wa_id or self.driver.new_message_id()
        token = f"out-{self.store_id}-{message_id}"
        # The upload to the media servers, then the message that points at it.
        await self.redis.set(
            sim_media_key(token), base64.b64encode(media.data).decode(), ex=SIM_MEDIA_TTL_SECONDS
        )
        now = _now()
        fields = {
            "id": message_id,
            "chat": chat_jid,
            "text": media.caption or "",
            "ts": str(int(now.timestamp() * 1000)),
            "type": media.type,
            "mime": media.mime,
            "caption": media.caption or "",
            "file_name": media.file_name or "",
            "size": str(len(media.data)),
            "sha256": hashlib.sha256(media.data).hexdigest(),
            "media": token,
        }
        await self.driver.sends.submit((sim_outbound_stream(self.store_id), fields))
        if self.driver.settings.sim_receipts:
            self._spawn(self._receipts(chat_jid, message_id))
        return SentMessage(wa_id=message_id, timestamp=now)

    async def download_media(self, kind: str, fetch: dict[str, object]) -> bytes:
        if self.state is not _State.connected:
            raise DriverError("not connected", retryable=True)
        if self.fail_next_downloads > 0:
            self.fail_next_downloads -= 1
            raise DriverError("media download failed (simulated fault)", retryable=True)
        token = fetch.get("sim")
        if not isinstance(token, str):
            raise DriverError("not a simulated media reference", retryable=False)
        raw = await self.redis.get(sim_media_key(token))
        if raw is None:
            raise DriverError("the media is no longer on WhatsApp's servers", retryable=False)
        return base64.b64decode(raw)

    async def _receipts(self, chat_jid: str, message_id: str) -> None:
        delay = self.driver.settings.sim_receipt_delay_ms / 1000
        for kind in ("delivered", "read"):
            await asyncio.sleep(delay)
            await self._emit(Receipt(chat_jid=chat_jid, ids=[message_id], kind=kind))

    async def set_typing(self, chat_jid: str, typing: bool) -> None:
        if self.state is not _State.connected:
            raise DriverError("not connected", retryable=True)

    # --- helpers -------------------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, event: Event) -> None:
        try:
            await self.on_event(event)
        except Exception:
            log.exception(
                "event handler failed", store_id=str(self.store_id), event_type=type(event).__name__
            )


class SimulatorDriver(Driver):
    name = "simulator"

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis = create_redis(redis_url)
        # The blocking read gets a connection of its own, so it never waits behind ordinary commands.
        self._reader_redis = create_redis(redis_url)
        self._streams: dict[str, SimulatorConnection] = {}
        self._live: dict[uuid.UUID, SimulatorConnection] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reading = ReadInFlight()  # the blocking read in flight (see `settle`)
        # Sends of every connection reach the "network" in one pipeline per round, as a real client's frames
        # share one socket.
        self.sends: GroupCommit[tuple[str, dict[str, str]], None] = GroupCommit(self._send_batch)
        # Likewise the acknowledgements of every connection's delivered messages (stream, entry ids).
        self.acks: GroupCommit[tuple[str, list[str]], None] = GroupCommit(self._ack_batch)

    async def _send_batch(self, sends: list[tuple[str, dict[str, str]]]) -> list[None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, fields in sends:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            await pipe.execute()
        return [None] * len(sends)

    async def _ack_batch(self, acks: list[tuple[str, list[str]]]) -> list[None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_ids in acks:
                pipe.xack(stream, SIM_DEVICE_GROUP, *entry_ids)
            await pipe.execute()
        return [None] * len(acks)

    def connection(self, store_id: uuid.UUID, on_event: EventCallback) -> Connection:
        return SimulatorConnection(self, store_id, on_event)

    def new_message_id(self) -> str:
        return "3EB0" + secrets.token_hex(8).upper()

    def attach(self, conn: SimulatorConnection, streams: list[str]) -> None:
        self._live[conn.store_id] = conn
        for stream in streams:
            self._streams[stream] = conn

    def detach(self, conn: SimulatorConnection) -> None:
        if self._live.get(conn.store_id) is conn:
            del self._live[conn.store_id]
        for stream in [s for s, c in self._streams.items() if c is conn]:
            del self._streams[stream]

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_forever()),
            asyncio.create_task(self._refresh_forever()),
        ]

    async def close(self) -> None:
        self.sends.close()
        self.acks.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._reader_redis.aclose()
        await self.redis.aclose()

    async def _refresh(self, keys: list[str], tokens: list[str]) -> list[int]:
        """REFRESH_SCRIPT over `keys`: one call per hash slot on a Redis Cluster."""
        groups = group_by_slot(self.redis, keys)
        replies = await asyncio.gather(
            *[
                self.redis.eval(
                    REFRESH_SCRIPT,
                    len(group),
                    *[keys[i] for i in group],
                    *[tokens[i] for i in group],
                    str(CONNECTION_TTL_MS),
                )
                for group in groups
            ]
        )
        alive = [0] * len(keys)
        for group, reply in zip(groups, replies, strict=True):
            for i, ok in zip(group, reply, strict=True):
                alive[i] = int(ok)
        return alive

    async def settle(self, streams: list[str]) -> None:
        """Return once no read in flight names these (detached) queues: none is in a read still to come."""
        await self._reading.settle(streams, READ_BLOCK_MS / 1000 + 2)

    async def _read_forever(self) -> None:
        while True:
            if not self._streams:
                await asyncio.sleep(0.05)
                continue
            with self._reading.reading(self._streams):
                delay = await self._read_round()
            if delay:
                await asyncio.sleep(delay)

    async def _read_round(self) -> float:
        """One blocking read of every attached queue, its entries handed to their connections (those of a queue
        detached meanwhile stay pending, for its next connection to replay). Returns how long to wait after a
        failure."""
        try:
            batch = await read_group(
                self._reader_redis,
                SIM_DEVICE_GROUP,
                CONSUMER,
                dict.fromkeys(self._streams, ">"),
                count=500,
                block=READ_BLOCK_MS,
            )
        except ResponseError as exc:  # a stream deleted under us (NOGROUP): recreated on next start
            log.warning("sim read failed", error=str(exc))
            return 0.2
        except Exception:
            log.warning("sim read failed; retrying", exc_info=True)
            return 0.5
        for stream, entries in batch:
            conn = self._streams.get(stream)
            for entry_id, fields in entries:
                if conn is not None:
                    conn.deliver(stream, entry_id, fields)
        return 0.0

    async def _refresh_forever(self) -> None:
        """Keep every live connection's marker alive; a connection that lost its marker is replaced."""
        while True:
            await asyncio.sleep(CONNECTION_TTL_MS / 3000)
            live = list(self._live.values())
            if not live:
                continue
            keys = [sim_connection_key(c.store_id) for c in live]
            try:
                alive = await self._refresh(keys, [c.token for c in live])
            except Exception:
                log.warning("sim refresh failed", exc_info=True)
                continue
            for conn, ok in zip(live, alive, strict=True):
                if not ok and conn.state is not _State.idle:
                    await conn._close()
                    await conn._emit(Disconnected("connection replaced", retryable=True))
