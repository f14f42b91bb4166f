"""The neonize driver, offline: real neonize protobufs through the handlers it registers with neonize, and real
connect attempts against a real PostgreSQL auth store, which end at the DNS lookup of web.whatsapp.com."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from neonize.events import EVENT_TO_INT
from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from app.kit.db import libpq_url
from sessions.drivers.base import (
    Connected,
    Disconnected,
    DriverError,
    Event,
    Inbound,
    InboundMessage,
    LoggedOut,
    Paired,
    QrCode,
    Receipt,
)
from sessions.drivers.neonize import (
    NeonizeConnection,
    NeonizeDriver,
    describe_connect_error,
    dispatch_from_go,
    epoch_to_datetime,
    fallback_message_id,
    jid_from_string,
    whatsmeow_postgres_url,
)

E = TypeVar("E", bound=Event)

OFFLINE_URL = "postgresql://nobody@127.0.0.1:1/unused"  # handler tests never touch the database
STORE = uuid.UUID("5b1f0c6e-0000-4000-8000-000000000001")
CUSTOMER = "5491155550000"
OWNER = "5491144440000"
TS_MS = 1_700_000_000_123
TS = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


class Recorder:
    """The manager's `on_event`: records events; can be slow, or fail a number of times first."""

    def __init__(self, *, delay: float = 0, failures: int = 0) -> None:
        self.events: list[Event] = []
        self.calls = 0
        self.delay = delay
        self.failures = failures
        self._arrived = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database down")
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def next(self, kind: type[E], timeout: float = 10) -> E:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: any(isinstance(e, kind) for e in self.events)), timeout
            )
        return next(e for e in self.events if isinstance(e, kind))


# --- real neonize protobufs, as neonize's Go side fills them -------------------------------------------------
def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> Any:
    return pb.JID(User=user, RawAgent=0, Device=device, Integrator=0, Server=server, IsEmpty=False)


EMPTY_JID = pb.JID(User="", RawAgent=0, Device=0, Integrator=0, Server="", IsEmpty=True)


def source(
    chat: Any, sender: Any, *, from_me: bool = False, group: bool = False, sender_alt: Any = EMPTY_JID
) -> Any:
    return pb.MessageSource(
        Chat=chat,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=group,
        SenderAlt=sender_alt,
        RecipientAlt=EMPTY_JID,
        BroadcastListOwner=EMPTY_JID,
    )


def message_event(
    content: Any,
    *,
    wa_id: str = "3EB0C0FFEE0123456789AB",
    chat: Any = None,
    sender: Any = None,
    from_me: bool = False,
    group: bool = False,
    sender_alt: Any = EMPTY_JID,
    timestamp: int = TS_MS,
) -> Any:
    chat = chat if chat is not None else jid(CUSTOMER)
    sender = sender if sender is not None else jid(CUSTOMER, device=3)
    info = pb.MessageInfo(
        MessageSource=source(chat, sender, from_me=from_me, group=group, sender_alt=sender_alt),
        ID=wa_id,
        ServerID=0,
        Type="text",
        Pushname="Ana",
        Timestamp=timestamp,
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )
    event = pb.Message(
        Info=info,
        Message=content,
        IsEphemeral=False,
        IsViewOnce=False,
        IsViewOnceV2=False,
        IsViewOnceV2Extension=False,
        IsDocumentWithCaption=False,
        IsLottieSticker=False,
        IsEdit=False,
        UnavailableRequestID="",
        RetryCount=0,
    )
    event.SerializeToString()  # every required field is set, as from Go
    return event


def receipt_event(kind: Any | None, ids: list[str]) -> Any:
    event = pb.Receipt(
        MessageSource=source(jid(CUSTOMER), jid(CUSTOMER)), MessageIDs=ids, Timestamp=1_700_000_000
    )
    if kind is not None:
        event.Type = kind
    return event


def expected(**overrides: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "wa_id": "3EB0C0FFEE0123456789AB",
        "chat_jid": f"{CUSTOMER}@s.whatsapp.net",
        "sender_jid": f"{CUSTOMER}@s.whatsapp.net",
        "timestamp": TS,
        "type": "text",
        "text": None,
        "sender_name": "Ana",
    }
    values.update(overrides)
    return InboundMessage(**values)


@pytest.fixture
async def offline_driver() -> AsyncIterator[NeonizeDriver]:
    driver = NeonizeDriver(OFFLINE_URL)
    yield driver
    await driver.close()


def connection(driver: NeonizeDriver, recorder: Recorder) -> NeonizeConnection:
    return driver.connection(STORE, recorder)


async def feed(conn: NeonizeConnection, event: Any) -> None:
    """Through the very handler the driver registers with neonize for this event type."""
    await conn.handlers()[type(event)](None, event)


# --- messages -------------------------------------------------------------------------------------------------
async def test_text_from_conversation(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    await feed(
        connection(offline_driver, recorder), message_event(e2e.Message(conversation="hola, ¿abren hoy?"))
    )
    assert recorder.events == [Inbound(expected(text="hola, ¿abren hoy?"))]


async def test_text_from_extended_text_message(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    content = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="mirá esto https://example.com"))
    await feed(connection(offline_driver, recorder), message_event(content))
    assert recorder.events == [Inbound(expected(text="mirá esto https://example.com"))]


async def test_text_inside_an_ephemeral_wrapper(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    wrapped = e2e.FutureProofMessage(message=e2e.Message(conversation="efímero"))
    await feed(connection(offline_driver, recorder), message_event(e2e.Message(ephemeralMessage=wrapped)))
    assert recorder.events == [Inbound(expected(text="efímero"))]


@pytest.mark.parametrize(
    ("content", "kind", "text", "media"),
    [
        (
            e2e.Message(
                imageMessage=e2e.ImageMessage(
                    mimetype="image/jpeg", caption="¿tienen este?", fileLength=48213, width=800, height=600
                )
            ),
            "image",
            "¿tienen este?",
            {
                "mimetype": "image/jpeg",
                "caption": "¿tienen este?",
                "size": 48213,
                "width": 800,
                "height": 600,
            },
        ),
        (
            e2e.Message(
                audioMessage=e2e.AudioMessage(mimetype="audio/ogg; codecs=opus", seconds=7, PTT=True)
            ),
            "audio",
            None,
            {"mimetype": "audio/ogg; codecs=opus", "seconds": 7, "voice_note": True},
        ),
        (
            e2e.Message(
                documentMessage=e2e.DocumentMessage(
                    mimetype="application/pdf", fileName="lista.pdf", fileLength=1024, caption="precios"
                )
            ),
            "document",
            "precios",
            {"mimetype": "application/pdf", "file_name": "lista.pdf", "size": 1024, "caption": "precios"},
        ),
        (
            e2e.Message(videoMessage=e2e.VideoMessage(mimetype="video/mp4", seconds=12)),
            "video",
            None,
            {"mimetype": "video/mp4", "seconds": 12},
        ),
        (
            e2e.Message(stickerMessage=e2e.StickerMessage(mimetype="image/webp", isAnimated=False)),
            "sticker",
            None,
            {"mimetype": "image/webp", "animated": False},
        ),
        (
            e2e.Message(
                locationMessage=e2e.LocationMessage(
                    degreesLatitude=-34.6, degreesLongitude=-58.4, name="Local"
                )
            ),
            "location",
            None,
            {"latitude": -34.6, "longitude": -58.4, "name": "Local"},
        ),
        (
            e2e.Message(
                contactMessage=e2e.ContactMessage(displayName="Juan", vcard="BEGIN:VCARD\nEND:VCARD")
            ),
            "contact",
            None,
            {"display_name": "Juan", "vcard": "BEGIN:VCARD\nEND:VCARD"},
        ),
        (
            e2e.Message(reactionMessage=e2e.ReactionMessage(text="👍")),
            "other",
            None,
            {"kind": "reactionMessage"},
        ),
    ],
)
async def test_media_type_and_metadata_without_bytes(
    offline_driver: NeonizeDriver, content: Any, kind: str, text: str | None, media: dict[str, Any]
) -> None:
    recorder = Recorder()
    await feed(connection(offline_driver, recorder), message_event(content))
    assert recorder.events == [Inbound(expected(type=kind, text=text, media=media))]


async def test_protocol_messages_are_not_messages(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    conn = connection(offline_driver, recorder)
    revoke = e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE)
    await feed(conn, message_event(e2e.Message(protocolMessage=revoke)))
    unavailable = message_event(e2e.Message(conversation="x"))
    unavailable.ClearField("Message")  # a placeholder whatsmeow replaces with the real message later
    await feed(conn, unavailable)
    assert recorder.events == []


@pytest.mark.parametrize("group_messages", [False, True])
async def test_group_messages_filtered_by_default(group_messages: bool) -> None:
    group = jid("120363012345678901", "g.us")
    driver = NeonizeDriver(OFFLINE_URL, group_messages=group_messages)
    recorder = Recorder()
    await feed(
        connection(driver, recorder), message_event(e2e.Message(conversation="hola"), chat=group, group=True)
    )
    kept = Inbound(expected(chat_jid="120363012345678901@g.us", text="hola", is_group=True))
    assert recorder.events == ([kept] if group_messages else [])
    await driver.close()


@pytest.mark.parametrize("own_messages", [False, True])
async def test_own_messages_filtered_by_default(own_messages: bool) -> None:
    driver = NeonizeDriver(OFFLINE_URL, own_messages=own_messages)
    recorder = Recorder()
    event = message_event(e2e.Message(conversation="respuesta"), sender=jid(OWNER), from_me=True)
    await feed(connection(driver, recorder), event)
    kept = Inbound(expected(sender_jid=f"{OWNER}@s.whatsapp.net", text="respuesta", from_me=True))
    assert recorder.events == ([kept] if own_messages else [])
    await driver.close()


async def test_status_broadcasts_are_never_messages() -> None:
    driver = NeonizeDriver(OFFLINE_URL, group_messages=True, own_messages=True)
    recorder = Recorder()
    await feed(
        connection(driver, recorder),
        message_event(e2e.Message(conversation="story"), chat=jid("status", "broadcast")),
    )
    assert recorder.events == []
    await driver.close()


async def test_timestamp_is_milliseconds_and_seconds_also_work() -> None:
    assert epoch_to_datetime(TS_MS) == TS
    assert epoch_to_datetime(1_700_000_000) == TS.replace(microsecond=0)


async def test_lid_addressed_chat_uses_the_phone_number(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    lid = jid("123456789012345", "lid")
    event = message_event(e2e.Message(conversation="hola"), chat=lid, sender=lid, sender_alt=jid(CUSTOMER))
    await feed(connection(offline_driver, recorder), event)
    assert recorder.events == [Inbound(expected(text="hola", chat_alt_jid="123456789012345@lid"))]


async def test_a_chat_keeps_both_identifiers_when_whatsapp_gives_both(offline_driver: NeonizeDriver) -> None:
    lid = jid("123456789012345", "lid")
    text = e2e.Message(conversation="hola")
    cases = [
        # Addressed by phone number, the LID beside it.
        (message_event(text, sender_alt=lid), expected(text="hola", chat_alt_jid="123456789012345@lid")),
        # Addressed by LID, the number unknown: the LID alone names the chat.
        (
            message_event(text, chat=lid, sender=lid),
            expected(text="hola", chat_jid="123456789012345@lid", sender_jid="123456789012345@lid"),
        ),
        # Addressed by phone number, nothing beside it.
        (message_event(text), expected(text="hola")),
    ]
    for event, message in cases:
        recorder = Recorder()
        await feed(connection(offline_driver, recorder), event)
        assert recorder.events == [Inbound(message)]


async def test_handlers_run_to_completion_before_the_go_callback_returns(
    offline_driver: NeonizeDriver,
) -> None:
    """The path neonize's Go thread takes: serialized bytes and the event code, on another thread; it returns
    only once `on_event` has finished, and keeps the order."""
    recorder = Recorder(delay=0.2)
    conn = connection(offline_driver, recorder)
    by_code = {EVENT_TO_INT[event_type]: handler for event_type, handler in conn.handlers().items()}
    loop = asyncio.get_running_loop()
    for number in range(3):
        event = message_event(e2e.Message(conversation=f"m{number}"), wa_id=f"ID{number}")
        await asyncio.to_thread(
            dispatch_from_go, loop, by_code, None, EVENT_TO_INT[pb.Message], event.SerializeToString()
        )
        assert len(recorder.events) == number + 1  # durable before the callback returned
    assert [e.message.text for e in recorder.events if isinstance(e, Inbound)] == ["m0", "m1", "m2"]


async def test_a_failing_on_event_is_retried_for_messages_and_swallowed_for_the_rest(
    offline_driver: NeonizeDriver,
) -> None:
    recorder = Recorder(failures=2)
    conn = connection(offline_driver, recorder)
    await feed(conn, message_event(e2e.Message(conversation="otra vez")))
    assert recorder.calls == 3
    assert recorder.events == [Inbound(expected(text="otra vez"))]

    failing = Recorder(failures=1)
    await feed(connection(offline_driver, failing), receipt_event(pb.Receipt.READ, ["A"]))  # must not raise
    assert failing.calls == 1 and failing.events == []


# --- receipts -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "expected_kind"),
    [
        (pb.Receipt.DELIVERED, "delivered"),
        (pb.Receipt.READ, "read"),
        (pb.Receipt.PLAYED, "played"),
        (pb.Receipt.READ_SELF, None),
        (pb.Receipt.RETRY, None),
        (None, None),  # no Type at all: its default would read as DELIVERED
    ],
)
async def test_receipt_kinds(offline_driver: NeonizeDriver, kind: Any, expected_kind: str | None) -> None:
    recorder = Recorder()
    await feed(connection(offline_driver, recorder), receipt_event(kind, ["3EB0AAA", "3EB0BBB"]))
    wanted = (
        [Receipt(chat_jid=f"{CUSTOMER}@s.whatsapp.net", ids=["3EB0AAA", "3EB0BBB"], kind=expected_kind)]  # type: ignore[arg-type]
        if expected_kind
        else []
    )
    assert recorder.events == wanted


# --- pairing, connection state -------------------------------------------------------------------------------
async def test_qr_codes_then_pairing_then_connected(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    conn = connection(offline_driver, recorder)
    on_qr = conn.qr_handler()
    await on_qr(None, b"2@first,code")
    await on_qr(None, b"2@second,code")
    first, second = recorder.events
    assert isinstance(first, QrCode) and isinstance(second, QrCode)
    assert first.code == "2@first,code" and second.code == "2@second,code"
    now = datetime.now(UTC)
    assert timedelta(seconds=58) < first.expires_at - now <= timedelta(seconds=60)
    assert timedelta(seconds=18) < second.expires_at - now <= timedelta(seconds=20)

    paired = pb.PairStatus(
        ID=jid(OWNER, device=12), BusinessName="", Platform="android", Status=pb.PairStatus.SUCCESS
    )
    await feed(conn, paired)
    await feed(conn, pb.Connected(status=True))
    assert recorder.events[2:] == [
        Paired(device_jid=f"{OWNER}:12@s.whatsapp.net", phone=f"+{OWNER}"),
        Connected(phone=f"+{OWNER}"),
    ]
    await on_qr(None, b"2@late,code")  # whatsmeow's QR rotation may still tick: ignored once paired
    assert len(recorder.events) == 4


async def test_pairing_error(offline_driver: NeonizeDriver) -> None:
    recorder = Recorder()
    failed = pb.PairStatus(
        ID=EMPTY_JID, BusinessName="", Platform="", Status=pb.PairStatus.ERROR, Error="key mismatch"
    )
    await feed(connection(offline_driver, recorder), failed)
    assert await recorder.next(Disconnected) == Disconnected("pairing failed: key mismatch", retryable=False)


@pytest.mark.parametrize(
    ("event", "wanted"),
    [
        (
            pb.LoggedOut(OnConnect=False, Reason=pb.LOGGED_OUT),
            LoggedOut("the device was unlinked from the phone"),
        ),
        (
            pb.LoggedOut(OnConnect=True, Reason=pb.MAIN_DEVICE_GONE),
            LoggedOut("the phone's WhatsApp account is gone (reinstalled or deleted) (found on connect)"),
        ),
        (pb.Disconnected(status=True), Disconnected("the connection to WhatsApp was lost", retryable=True)),
        (
            pb.StreamError(Code="503", Raw=pb.Node(Tag="stream:error")),
            Disconnected("WhatsApp stream error 503", retryable=True),
        ),
        (
            pb.TemporaryBan(Code=pb.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600),
            Disconnected(
                "WhatsApp temporarily banned this number (SENT_TOO_MANY_SAME_MESSAGE, lifted in 1:00:00)",
                retryable=False,
            ),
        ),
    ],
)
async def test_connection_ending_events(offline_driver: NeonizeDriver, event: Any, wanted: Event) -> None:
    recorder = Recorder()
    conn = connection(offline_driver, recorder)
    await feed(conn, event)
    assert await recorder.next(type(wanted)) == wanted
    # The attempt is over: whatever neonize still delivers for it is dropped.
    await feed(conn, message_event(e2e.Message(conversation="tarde")))
    await asyncio.sleep(0.05)
    assert recorder.events == [wanted]


async def test_pairing_window_closes_on_our_own_timer() -> None:
    driver = NeonizeDriver(OFFLINE_URL, qr_timeout_seconds=0.1)
    recorder = Recorder()
    conn = connection(driver, recorder)
    await conn._pairing_timer(conn._attempt)  # the timer start() arms for a fresh pairing
    assert await recorder.next(Disconnected) == Disconnected("QR code not scanned in time", retryable=False)
    await driver.close()


# --- calls that need the network ------------------------------------------------------------------------------
async def test_calls_while_not_connected_fail_clearly(offline_driver: NeonizeDriver) -> None:
    conn = connection(offline_driver, Recorder())
    for call in (
        conn.send_text(f"{CUSTOMER}@s.whatsapp.net", "hola", wa_id="3EB0X"),
        conn.set_typing(f"{CUSTOMER}@s.whatsapp.net", True),
    ):
        with pytest.raises(DriverError, match="not connected") as info:
            await call
        assert info.value.retryable
    with pytest.raises(DriverError, match="only while pairing") as info:
        await conn.request_pairing_code("+54 9 11 5555-0000")
    assert not info.value.retryable
    await conn.logout()  # nothing linked, nothing to do
    await conn.stop()
    await conn.stop()  # idempotent


async def test_a_connected_event_alone_does_not_make_calls_possible(offline_driver: NeonizeDriver) -> None:
    conn = connection(offline_driver, Recorder())
    await feed(conn, pb.Connected(status=True))  # no neonize client behind it
    with pytest.raises(DriverError, match="not connected"):
        await conn.send_text(f"{CUSTOMER}@s.whatsapp.net", "hola")


def test_new_message_ids_are_whatsmeow_ids(offline_driver: NeonizeDriver) -> None:
    ids = {offline_driver.new_message_id() for _ in range(50)}
    assert len(ids) == 50
    ids.add(fallback_message_id())  # made in Python while a connect or stop holds neonize's Go maps
    assert all(re.fullmatch(r"3EB0[0-9A-F]{18}", i) for i in ids), ids


# --- small pure pieces ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/mostrador",
            "postgres://postgres@127.0.0.1:5432/mostrador?sslmode=disable&connect_timeout=10",
        ),
        (
            "postgresql+asyncpg://u:p%40ss@db:5433/app?sslmode=require",
            "postgres://u:p%40ss@db:5433/app?sslmode=require&connect_timeout=10",
        ),
        ("postgres://u@db/app?ssl=true", "postgres://u@db/app?sslmode=require&connect_timeout=10"),
    ],
)
def test_whatsmeow_postgres_url(url: str, wanted: str) -> None:
    assert whatsmeow_postgres_url(url) == wanted
    assert whatsmeow_postgres_url(url, application_name="mwa-x").endswith("&application_name=mwa-x")


def test_whatsmeow_postgres_url_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        NeonizeDriver("sqlite:///whatsmeow.db")


def test_jid_parsing() -> None:
    assert jid_from_string("5491155550000:12@s.whatsapp.net") == jid(CUSTOMER, device=12)
    assert jid_from_string("120363012345678901@g.us") == jid("120363012345678901", "g.us")
    assert jid_from_string("+54 9 11 5555-0000") == jid(CUSTOMER)


def test_connect_errors_in_words() -> None:
    dns = "dial tcp: lookup web.whatsapp.com on 10.0.0.53:53: no such host"
    assert describe_connect_error(dns).startswith("cannot reach WhatsApp: DNS lookup failed")
    assert describe_connect_error("dial tcp 1.2.3.4:443: connect: connection refused").startswith(
        "cannot reach WhatsApp: network error"
    )
    assert describe_connect_error(
        "failed to upgrade database: pq: password authentication failed"
    ).startswith("the WhatsApp auth store (PostgreSQL) failed")


# --- real connect attempts, offline ---------------------------------------------------------------------------
async def whatsmeow_sessions(database_url: str, driver: NeonizeDriver) -> int:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", f"mwa-{driver.token}-%"
        )
        return int(count)
    finally:
        await conn.close()


async def eventually_no_sessions(database_url: str, driver: NeonizeDriver) -> None:
    deadline = time.monotonic() + 10
    while await whatsmeow_sessions(database_url, driver):
        assert time.monotonic() < deadline, "a finished attempt kept its PostgreSQL sessions"
        await asyncio.sleep(0.1)


@pytest.fixture
async def driver(database_url: str) -> AsyncIterator[NeonizeDriver]:
    driver = NeonizeDriver(database_url, max_stores=2)
    await driver.start()
    yield driver
    await driver.close()
    assert not driver.live


async def offline_attempt(
    conn: NeonizeConnection, recorder: Recorder, device_jid: str | None
) -> Disconnected:
    started = time.monotonic()
    await conn.start(device_jid=device_jid)
    disconnected = await recorder.next(Disconnected, timeout=10)
    assert time.monotonic() - started < 5, "an offline connect must end promptly"
    return disconnected


async def test_offline_fresh_pairing_ends_in_a_clear_retryable_disconnect(
    driver: NeonizeDriver, database_url: str
) -> None:
    recorder = Recorder()
    conn = driver.connection(uuid.uuid4(), recorder)
    disconnected = await offline_attempt(conn, recorder, None)
    assert disconnected.retryable
    assert disconnected.reason.startswith("cannot reach WhatsApp"), disconnected.reason
    assert not any(isinstance(e, QrCode) for e in recorder.events)
    assert conn not in driver.live  # its slot is free again
    with pytest.raises(DriverError, match="not connected"):
        await conn.send_text(f"{CUSTOMER}@s.whatsapp.net", "hola")
    with pytest.raises(DriverError):
        await conn.request_pairing_code("+5491155550000")
    await eventually_no_sessions(database_url, driver)  # neonize's per-attempt pool does not leak
    # The driver does not retry by itself (the manager does, with backoff): nothing more arrives.
    await asyncio.sleep(0.5)
    assert len(recorder.events) == 1
    # And a second attempt on the same connection behaves the same.
    recorder.events.clear()
    again = await offline_attempt(conn, recorder, None)
    assert again.retryable and again.reason.startswith("cannot reach WhatsApp")


async def test_offline_resume_ends_in_a_clear_retryable_disconnect(
    driver: NeonizeDriver, database_url: str
) -> None:
    # whatsmeow creates its tables on its first connect.
    first = Recorder()
    await offline_attempt(driver.connection(uuid.uuid4(), first), first, None)
    device_jid = f"{OWNER}:7@s.whatsapp.net"
    db = await asyncpg.connect(libpq_url(database_url))
    try:
        await db.execute(
            """INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,
               signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,
               adv_device_sig) VALUES ($1, 1234, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10)""",
            device_jid, os.urandom(32), os.urandom(32), os.urandom(32), os.urandom(64), os.urandom(32),
            b"\x0a\x00", os.urandom(64), os.urandom(32), os.urandom(64),
        )  # fmt: skip
        recorder = Recorder()
        conn = driver.connection(uuid.uuid4(), recorder)
        disconnected = await offline_attempt(conn, recorder, device_jid)
        assert disconnected.retryable
        assert disconnected.reason.startswith("cannot reach WhatsApp"), disconnected.reason
        assert not any(isinstance(e, LoggedOut) for e in recorder.events)
        await eventually_no_sessions(database_url, driver)
    finally:
        await db.execute("DELETE FROM whatsmeow_device WHERE jid = $1", device_jid)
        await db.close()


async def test_resuming_a_device_the_store_does_not_hold_is_a_logout_not_a_crash(
    driver: NeonizeDriver,
) -> None:
    recorder = Recorder()
    conn = driver.connection(uuid.uuid4(), recorder)
    await conn.start(device_jid=f"{OWNER}:99@s.whatsapp.net")  # whatsmeow itself would crash the process here
    assert recorder.events == [LoggedOut("this device is no longer linked here; link the number again")]
    assert conn not in driver.live


async def test_store_cap(database_url: str) -> None:
    driver = NeonizeDriver(database_url, max_stores=1)
    first, second = Recorder(), Recorder()
    a, b = driver.connection(uuid.uuid4(), first), driver.connection(uuid.uuid4(), second)
    results = await asyncio.gather(a.start(device_jid=None), b.start(device_jid=None), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], DriverError), results
    assert str(results[1]).startswith("store cap reached") and results[1].retryable
    await first.next(Disconnected)  # offline: the first attempt ends and frees its slot
    await offline_attempt(b, second, None)
    await driver.close()


# --- the calls themselves, against neonize's real method signatures -----------------------------------------
class SignatureCheckedClient:
    """Stands in for neonize's NewAClient once connected (which needs the network): every call is bound to the
    real NewAClient method's signature, so a wrong argument fails here as it would there."""

    def __init__(self, *, connected: bool = True) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.alive = connected
        self.stopped = False
        self._stop_finalizer = self  # detach() below

    def detach(self) -> None:
        pass

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        from neonize.aioze.client import NewAClient

        inspect.signature(getattr(NewAClient, name)).bind(self, *args, **kwargs)
        self.calls.append((name, args, kwargs))

    async def send_message(self, *args: Any, **kwargs: Any) -> Any:
        self._record("send_message", *args, **kwargs)
        return pb.SendResponse(ID="3EB0ASSIGNEDBYWHATSMEOW", Timestamp=1_700_000_000, ServerID=0)

    async def send_chat_presence(self, *args: Any, **kwargs: Any) -> None:
        self._record("send_chat_presence", *args, **kwargs)

    async def build_image_message(self, *args: Any, **kwargs: Any) -> Any:
        self._record("build_image_message", *args, **kwargs)
        return e2e.Message(imageMessage=e2e.ImageMessage(caption=kwargs.get("caption"), directPath="/i"))

    async def build_document_message(self, *args: Any, **kwargs: Any) -> Any:
        self._record("build_document_message", *args, **kwargs)
        return e2e.Message(
            documentMessage=e2e.DocumentMessage(fileName=kwargs.get("filename"), directPath="/d")
        )

    async def upload(self, *args: Any, **kwargs: Any) -> Any:
        self._record("upload", *args, **kwargs)
        return pb.UploadResponse(
            url="https://mmg.whatsapp.net/x", DirectPath="/v/t62/x", MediaKey=b"k" * 32,
            FileEncSHA256=b"e" * 32, FileSHA256=b"s" * 32, FileLength=len(args[0]),
        )  # fmt: skip

    async def download_any(self, *args: Any, **kwargs: Any) -> bytes:
        self._record("download_any", *args, **kwargs)
        return b"the decrypted bytes"

    async def PairPhone(self, *args: Any, **kwargs: Any) -> str:
        self._record("PairPhone", *args, **kwargs)
        return "ABCD1234"

    async def logout(self, *args: Any, **kwargs: Any) -> None:
        self._record("logout", *args, **kwargs)

    async def stop(self) -> None:
        self._record("stop")
        self.stopped = True

    @property
    def is_connected(self) -> Any:
        async def check() -> bool:
            return self.alive

        return check()


def with_client(conn: NeonizeConnection, client: SignatureCheckedClient, *, connected: bool = True) -> None:
    conn._client, conn._connected = client, connected
    conn.driver.live.add(conn)


async def test_calls_on_a_live_client(offline_driver: NeonizeDriver) -> None:
    from neonize.utils.enum import ChatPresence, ChatPresenceMedia

    conn = connection(offline_driver, Recorder())
    client = SignatureCheckedClient()
    with_client(conn, client)
    chat = f"{CUSTOMER}@s.whatsapp.net"

    sent = await conn.send_text(chat, "¡hola!", wa_id="3EB0CHOSENBYUS")
    # neonize cannot send with a chosen id: the id whatsmeow assigned comes back, with its time (seconds).
    assert sent.wa_id == "3EB0ASSIGNEDBYWHATSMEOW"
    assert sent.timestamp == TS.replace(microsecond=0)
    await conn.set_typing(chat, True)
    await conn.set_typing(chat, False)
    name, args, _ = client.calls[0]
    assert name == "send_message" and args == (jid(CUSTOMER), e2e.Message(conversation="¡hola!"))
    media = ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
    assert client.calls[1] == (
        "send_chat_presence",
        (jid(CUSTOMER), ChatPresence.CHAT_PRESENCE_COMPOSING, media),
        {},
    )
    assert client.calls[2] == (
        "send_chat_presence",
        (jid(CUSTOMER), ChatPresence.CHAT_PRESENCE_PAUSED, media),
        {},
    )

    await conn.logout()
    assert [c[0] for c in client.calls[3:]] == ["logout", "stop"]
    assert conn not in offline_driver.live
    with pytest.raises(DriverError, match="not connected"):
        await conn.send_text(chat, "otra")


async def test_pairing_code_while_pairing(offline_driver: NeonizeDriver) -> None:
    conn = connection(offline_driver, Recorder())
    client = SignatureCheckedClient()
    with_client(conn, client, connected=False)
    conn._pairing = True
    with pytest.raises(DriverError, match="not connected to WhatsApp yet") as info:
        await conn.request_pairing_code("+54 9 11 5555-0000")  # no QR code yet: the socket is not up
    assert info.value.retryable
    await conn.qr_handler()(None, b"2@code")
    code = await conn.request_pairing_code("+54 9 11 5555-0000")
    assert code.code == "ABCD1234"
    assert client.calls[-1][0] == "PairPhone" and client.calls[-1][1][0] == CUSTOMER
    await conn.stop()
    assert client.stopped


async def test_a_connection_that_closed_silently_is_noticed(
    offline_driver: NeonizeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some endings come with no event neonize can safely deliver (stream replaced, client outdated): the
    liveness check asks whatsmeow and ends the attempt."""
    monkeypatch.setattr("sessions.drivers.neonize.connection.LIVENESS_SECONDS", 0.05)
    recorder = Recorder()
    conn = connection(offline_driver, recorder)
    client = SignatureCheckedClient()
    with_client(conn, client, connected=False)
    await feed(conn, pb.Connected(status=True))
    client.alive = False
    disconnected = await recorder.next(Disconnected, timeout=5)
    assert disconnected.retryable and "closed" in disconnected.reason
    assert client.stopped and conn not in offline_driver.live


async def test_inbound_media_carries_what_download_any_needs(offline_driver: NeonizeDriver) -> None:
    """A media message with a direct path keeps its media sub-message (serialized) as the download reference;
    the driver hands exactly that message to neonize's `download_any` later, after any restart."""
    image = e2e.ImageMessage(
        mimetype="image/jpeg", caption="mirá", fileLength=5, directPath="/v/t62.7118-24/abc",
        mediaKey=b"k" * 32, fileSHA256=b"s" * 32, fileEncSHA256=b"e" * 32,
    )  # fmt: skip
    recorder = Recorder()
    conn = connection(offline_driver, recorder)
    await feed(conn, message_event(e2e.Message(imageMessage=image)))
    [event] = recorder.events
    assert isinstance(event, Inbound) and event.message.media is not None
    fetch = event.message.media["fetch"]
    assert fetch["field"] == "imageMessage"
    assert event.message.media["mimetype"] == "image/jpeg" and event.message.media["size"] == 5

    client = SignatureCheckedClient()
    with_client(conn, client)
    assert await conn.download_media("image", fetch) == b"the decrypted bytes"
    name, args, _ = client.calls[-1]
    assert name == "download_any" and args == (e2e.Message(imageMessage=image),)
    with pytest.raises(DriverError) as info:
        await conn.download_media("image", {"field": "conversation", "proto": ""})
    assert not info.value.retryable
    await conn.stop()


async def test_media_sends_through_neonize_builders_and_upload(offline_driver: NeonizeDriver) -> None:
    from neonize.utils.enum import MediaType

    from sessions.drivers.base import OutboundMedia

    conn = connection(offline_driver, Recorder())
    client = SignatureCheckedClient()
    with_client(conn, client)
    chat = f"{CUSTOMER}@s.whatsapp.net"

    sent = await conn.send_media(
        chat, OutboundMedia("image", b"\xff\xd8\xffjpeg", "image/jpeg", caption="hola")
    )
    assert sent.wa_id == "3EB0ASSIGNEDBYWHATSMEOW"
    assert client.calls[0] == ("build_image_message", (b"\xff\xd8\xffjpeg",), {"caption": "hola"})
    assert client.calls[1][0] == "send_message" and client.calls[1][1][0] == jid(CUSTOMER)

    await conn.send_media(
        chat, OutboundMedia("document", b"%PDF-1", "application/pdf", caption=None, file_name="lista.pdf")
    )
    assert client.calls[2] == (
        "build_document_message",
        (b"%PDF-1",),
        {"caption": None, "filename": "lista.pdf", "mimetype": "application/pdf"},
    )

    await conn.send_media(chat, OutboundMedia("audio", b"OggS..", "audio/ogg"))
    assert client.calls[4] == ("upload", (b"OggS..", MediaType.MediaAudio), {})
    message = client.calls[5][1][1]
    assert message.audioMessage.mimetype == "audio/ogg" and message.audioMessage.directPath == "/v/t62/x"
    assert message.audioMessage.mediaKey == b"k" * 32 and message.audioMessage.fileLength == 6

    await conn.send_media(chat, OutboundMedia("video", b"....ftypmp4", "video/mp4", caption="video"))
    assert client.calls[6] == ("upload", (b"....ftypmp4", MediaType.MediaVideo), {})
    message = client.calls[7][1][1]
    assert message.videoMessage.caption == "video" and message.videoMessage.mimetype == "video/mp4"

    with pytest.raises(DriverError) as info:
        await conn.send_media(chat, OutboundMedia("sticker", b"x", "image/webp"))
    assert not info.value.retryable
    await conn.stop()
