from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.bots.configs import BookingConfig
from app.kit.db import AsyncSessionMaker
from app.models import Booking, BookingStatus
from tests.bots.helpers import Chat, create_store, open_chat
from workers.bots.base import Booking as BookedSlot
from workers.bots.slots import free_slots, local_today, open_days
from workers.bots.tools import DatabaseBotTools

BA = ZoneInfo("America/Argentina/Buenos_Aires")
MONDAY = date(2031, 3, 3)
TUESDAY = date(2031, 3, 4)
NOW = datetime(2031, 3, 3, 10, 5, tzinfo=BA)  # Monday 10:05 in Buenos Aires


def booking_config(language: str = "es", **overrides: Any) -> dict[str, Any]:
    return {
        "language": language,
        "services": [{"name": "Corte", "duration_minutes": 30}, {"name": "Color", "duration_minutes": 60}],
        "opening_hours": {
            "mon": [["09:00", "13:00"], ["16:00", "20:00"]],
            "tue": [["09:00", "10:00"]],
            "sat": [["10:00", "12:00"]],
        },
        "slot_minutes": 30,
        "days_ahead": 3,
        **overrides,
    }


def at(day: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BA)


def hhmm(slots: list[datetime]) -> list[str]:
    return [slot.astimezone(BA).strftime("%H:%M") for slot in slots]


# --- slots (pure) -------------------------------------------------------------------------------------------
def test_slots_fit_opening_hours_and_start_after_now() -> None:
    config = BookingConfig.model_validate(booking_config())
    corte, color = config.services
    slots = hhmm(free_slots(config, corte, MONDAY, [], NOW))
    assert slots[0] == "10:30"  # 10:00 started before now (10:05)
    assert "13:00" not in slots and "15:30" not in slots  # closed at midday
    assert slots[-1] == "19:30" and "16:00" in slots
    # A 60-minute service must end by closing time: 12:00 is the last morning start, 19:00 the last one.
    color_slots = hhmm(free_slots(config, color, MONDAY, [], NOW))
    assert "12:00" in color_slots and "12:30" not in color_slots and color_slots[-1] == "19:00"
    # Nothing is left once the day is over.
    assert free_slots(config, corte, MONDAY, [], at(MONDAY, "19:30")) == []


def test_taken_slots_block_overlapping_starts() -> None:
    config = BookingConfig.model_validate(booking_config())
    corte, color = config.services
    slots = hhmm(free_slots(config, color, MONDAY, [at(MONDAY, "11:00")], NOW))
    assert slots[:2] == ["12:00", "16:00"]  # 10:30, 11:00 and 11:30 overlap 11:00-12:00
    assert hhmm(free_slots(config, corte, TUESDAY, [at(TUESDAY, "09:30")], NOW)) == ["09:00"]


def test_open_days_and_the_store_time_zone() -> None:
    config = BookingConfig.model_validate(booking_config())
    assert open_days(config, MONDAY) == [MONDAY, TUESDAY, date(2031, 3, 8)]
    closed = BookingConfig.model_validate(booking_config(opening_hours={}))
    assert open_days(closed, MONDAY) == []
    # 02:00 UTC on Tuesday is still Monday 23:00 in Buenos Aires: today is the store's today.
    assert local_today(config, datetime(2031, 3, 4, 2, 0, tzinfo=UTC)) == MONDAY
    tokyo = BookingConfig.model_validate(booking_config(timezone="Asia/Tokyo"))
    assert local_today(tokyo, datetime(2031, 3, 3, 16, 0, tzinfo=UTC)) == TUESDAY


# --- conversations ------------------------------------------------------------------------------------------
async def booked_rows(sessionmaker: AsyncSessionMaker) -> list[Booking]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Booking).order_by(Booking.starts_at)))


async def test_spanish_booking_from_hello_to_confirmation(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="booking", config=booking_config())

    reply = await chat.send("Hola!")
    assert reply.replies[0] == "¡Hola! Soy el asistente de turnos de Rulos."
    assert "1. Corte (30 min)\n2. Color (60 min)" in reply.replies[1]
    assert chat.state == {"bot": "booking", "step": "service"}

    reply = await chat.send("1")
    assert reply.replies == ["¿Qué día querés venir? (Corte)\n1. lun 3/3\n2. mar 4/3\n3. sáb 8/3\n0. Volver"]
    assert chat.state["days"] == ["2031-03-03", "2031-03-04", "2031-03-08"]

    reply = await chat.send("2")
    assert reply.replies == ["Horarios libres el mar 4/3:\n1. 09:00\n2. 09:30\n0. Volver"]

    assert (await chat.send("2")).replies == ["¿A nombre de quién reservo el turno?"]
    reply = await chat.send("Ana Pérez")
    assert reply.replies == [
        "¿Confirmás este turno?\nCorte: mar 4/3 a las 09:30\nA nombre de: Ana Pérez\n1. Sí\n2. No"
    ]

    reply = await chat.send("Sí")
    assert reply.replies[0].startswith("¡Listo! Tu turno quedó reservado: Corte, mar 4/3 a las 09:30")
    assert chat.state == {"bot": "booking", "step": "service"}
    [row] = await booked_rows(sessionmaker)
    assert (row.service, row.starts_at, row.customer_name) == ("Corte", at(TUESDAY, "09:30"), "Ana Pérez")
    assert row.status == BookingStatus.booked and row.conversation_id == chat.conversation_id


async def test_english_booking_and_wrong_answers(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="booking", config=booking_config("en"))
    reply = await chat.send("hi")
    assert reply.replies[0] == "Hi! I'm Rulos's booking assistant."
    assert reply.replies[1].startswith("What would you like to book?")

    reply = await chat.send("9")
    assert reply.replies[0] == "Sorry, I didn't get that." and "1. Corte (30 min)" in reply.replies[1]
    reply = await chat.send("color")  # a service by its name
    assert reply.replies[0].startswith("Which day would you like to come? (Color)\n1. Mon Mar 3")
    reply = await chat.send("tomorrow")
    assert reply.replies[0] == "Sorry, I didn't get that." and "2. Tue Mar 4" in reply.replies[1]
    assert (await chat.send("2")).replies == ["Free times on Tue Mar 4:\n1. 09:00\n0. Back"]
    assert (await chat.send("back")).replies[0].startswith("Which day")  # one step back: the days again
    await chat.send("1")
    await chat.send("1")  # Monday 10:30
    await chat.send("John")
    reply = await chat.send("no")
    assert reply.replies[0] == "OK, I did not book anything."
    assert await booked_rows(sessionmaker) == []
    for text in ("2", "1", "1", "John"):  # Color, Monday 10:30
        await chat.send(text)
    reply = await chat.send("yes")
    assert reply.replies[0].startswith("Done! You are booked: Color, Mon Mar 3 at 10:30, under John.")


async def book(chat: Chat, service: int, day: int, slot: int, name: str) -> list[str]:
    for text in (str(service), str(day), str(slot), name, "1"):
        reply = await chat.send(text)
    return reply.replies


async def test_slots_taken_by_others_are_not_offered(sessionmaker: AsyncSessionMaker) -> None:
    store_id = await create_store(sessionmaker, kind="booking", config=booking_config())
    ana = await open_chat(sessionmaker, now=NOW, store_id=store_id, chat_jid="ana@s.whatsapp.net")
    await ana.send("hola")
    await book(ana, 1, 2, 2, "Ana")  # Tuesday 09:30

    bea = await open_chat(sessionmaker, now=NOW, store_id=store_id, chat_jid="bea@s.whatsapp.net")
    await bea.send("hola")
    await bea.send("1")
    assert (await bea.send("2")).replies == ["Horarios libres el mar 4/3:\n1. 09:00\n0. Volver"]
    await bea.send("1")
    await bea.send("Bea")
    await bea.send("si")
    # Tuesday is full now: it is no longer offered.
    await bea.send("hola")
    reply = await bea.send("1")
    assert reply.replies == ["¿Qué día querés venir? (Corte)\n1. lun 3/3\n2. sáb 8/3\n0. Volver"]


async def test_a_slot_that_went_by_is_not_booked(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="booking", config=booking_config())
    await chat.send("hola")
    for text in ("1", "1", "1", "Ana"):  # Monday 10:30
        await chat.send(text)
    reply = await chat.send("si", now=at(MONDAY, "10:40"))
    assert reply.replies[0] == "Uy, alguien acaba de reservar ese horario."
    assert reply.replies[1].startswith("Horarios libres el lun 3/3:\n1. 11:00")
    assert await booked_rows(sessionmaker) == []


async def test_cancel_frees_the_slot(sessionmaker: AsyncSessionMaker) -> None:
    store_id = await create_store(sessionmaker, kind="booking", config=booking_config())
    ana = await open_chat(sessionmaker, now=NOW, store_id=store_id, chat_jid="ana@s.whatsapp.net")
    await ana.send("hola")
    assert (await ana.send("cancelar")).replies[0] == "No tenés turnos reservados."
    await book(ana, 1, 2, 2, "Ana")
    await book(ana, 2, 1, 1, "Ana")  # Color, Monday 10:30

    reply = await ana.send("cancelar")
    assert reply.replies == [
        "¿Qué turno querés cancelar?\n1. Color: lun 3/3 a las 10:30\n2. Corte: mar 4/3 a las 09:30\n0. Volver"
    ]
    assert (await ana.send("5")).replies[0] == "No entendí tu respuesta."
    reply = await ana.send("2")
    assert reply.replies[0] == "Cancelé tu turno de Corte del mar 4/3 a las 09:30."
    rows = await booked_rows(sessionmaker)
    assert [(r.service, r.status) for r in rows] == [("Color", "booked"), ("Corte", "cancelled")]

    # Another customer can take the freed slot; the cancelled row stays as history.
    bea = await open_chat(sessionmaker, now=NOW, store_id=store_id, chat_jid="bea@s.whatsapp.net")
    await bea.send("hola")
    assert (await book(bea, 1, 2, 2, "Bea"))[0].startswith("¡Listo!")
    assert len(await booked_rows(sessionmaker)) == 3


async def test_reschedule_books_the_new_slot_then_cancels_the_old(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="booking", config=booking_config("en"))
    await chat.send("hi")
    await book(chat, 1, 2, 1, "Ana")  # Corte, Tuesday 09:00
    reply = await chat.send("reschedule")
    assert reply.replies == ["Which booking do you want to change?\n1. Corte: Tue Mar 4 at 09:00\n0. Back"]
    reply = await chat.send("1")
    assert reply.replies[0].startswith("Which day would you like to come? (Corte)")
    await chat.send("1")  # Monday
    reply = await chat.send("2")  # 11:00; the name is the booking's, not asked again
    assert reply.replies[0].startswith("Shall I confirm this booking?\nCorte: Mon Mar 3 at 11:00\nName: Ana")
    reply = await chat.send("yes")
    assert reply.replies == ["Done! I moved your booking: it is now Corte, Mon Mar 3 at 11:00."]
    rows = await booked_rows(sessionmaker)
    assert [(r.starts_at, r.status) for r in rows] == [
        (at(MONDAY, "11:00"), "booked"),
        (at(TUESDAY, "09:00"), "cancelled"),
    ]


# --- the race for the last slot -----------------------------------------------------------------------------
class RacingTools(DatabaseBotTools):
    """Both customers reach the insert before either commits: a real race, not one after the other."""

    barrier: asyncio.Barrier

    async def book(self, service: str, starts_at: datetime, customer_name: str) -> BookedSlot | None:
        await self.barrier.wait()
        return await super().book(service, starts_at, customer_name)


async def race(chats: list[Chat], monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    RacingTools.barrier = asyncio.Barrier(len(chats))
    with monkeypatch.context() as patch:  # only for the race: later messages book one at a time
        patch.setattr("tests.bots.helpers.DatabaseBotTools", RacingTools)
        replies = await asyncio.gather(*(chat.send("si") for chat in chats))
    return [reply.replies for reply in replies]


async def two_customers_at_confirm(
    sessionmaker: AsyncSessionMaker, service: int, day: int, slot: int
) -> list[Chat]:
    store_id = await create_store(sessionmaker, kind="booking", config=booking_config())
    chats = []
    for name in ("ana", "bea"):
        chat = await open_chat(sessionmaker, now=NOW, store_id=store_id, chat_jid=f"{name}@s.whatsapp.net")
        for text in ("hola", str(service), str(day), str(slot), name.title()):
            await chat.send(text)
        assert chat.state["step"] == "confirm"
        chats.append(chat)
    return chats


async def test_two_customers_race_for_a_slot_one_wins(
    sessionmaker: AsyncSessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await two_customers_at_confirm(sessionmaker, service=1, day=2, slot=2)  # Corte, Tuesday 09:30
    replies = await race(chats, monkeypatch)

    [row] = await booked_rows(sessionmaker)
    assert row.starts_at == at(TUESDAY, "09:30")
    winner = 0 if row.customer_name == "Ana" else 1
    loser = 1 - winner
    assert replies[winner][0].startswith("¡Listo! Tu turno quedó reservado")
    # The loser is told, and offered what is still free that day (the winner's slot is gone).
    assert replies[loser] == [
        "Uy, alguien acaba de reservar ese horario.",
        "Horarios libres el mar 4/3:\n1. 09:00\n0. Volver",
    ]
    assert chats[loser].state["step"] == "slot"
    assert (await book_rest(chats[loser]))[0].startswith("¡Listo!")


async def book_rest(chat: Chat) -> list[str]:
    await chat.send("1")
    return (await chat.send("si")).replies


async def test_the_loser_of_a_days_last_slot_gets_other_days(
    sessionmaker: AsyncSessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = await two_customers_at_confirm(sessionmaker, service=2, day=2, slot=1)  # Color, Tuesday 09:00
    replies = await race(chats, monkeypatch)
    assert len(await booked_rows(sessionmaker)) == 1
    loser = replies[0] if replies[1][0].startswith("¡Listo!") else replies[1]
    assert loser == [
        "Uy, alguien acaba de reservar ese horario.",
        "Ya no quedan horarios libres el mar 4/3.",
        "¿Qué día querés venir? (Color)\n1. lun 3/3\n2. sáb 8/3\n0. Volver",
    ]


async def test_book_keeps_the_transaction_usable_after_a_conflict(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="booking", config=booking_config())
    async with sessionmaker() as session, session.begin():
        tools = chat.tools(session)
        first = await tools.book("Corte", at(TUESDAY, "09:00"), "Ana")
        assert first is not None
        assert await tools.book("Corte", at(TUESDAY, "09:00"), "Bea") is None
        # Same transaction, still usable: the conflict rolled back only its savepoint.
        assert await tools.taken_slots("Corte", TUESDAY) == [at(TUESDAY, "09:00")]
        assert [b.id for b in await tools.bookings()] == [first.id]
    assert len(await booked_rows(sessionmaker)) == 1
    # Days are the store's days: a booking at 23:30 local time (02:30 UTC the next day) is on its local day.
    async with sessionmaker() as session, session.begin():
        tools = chat.tools(session)
        late = at(MONDAY, "23:30")
        assert await tools.book("Corte", late, "Ana") is not None
        assert await tools.taken_slots("Corte", MONDAY) == [late]
        assert await tools.taken_slots("Corte", MONDAY + timedelta(days=1)) == [at(TUESDAY, "09:00")]
