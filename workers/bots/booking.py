"""The booking bot (turnos): service -> day -> free slot -> name -> confirm, plus cancel and reschedule.

Commands (either language), at any step: "turno"/"reservar"/"book" or "menu"/"inicio" start a booking over;
"cancelar"/"cancel" lists the chat's bookings to cancel one; "reprogramar"/"cambiar"/"reschedule" to move one;
"0"/"volver"/"back" goes one step back. Lists are answered with the number of an entry (a service also by its
name); the confirmation with "1"/"sí"/"yes" or "2"/"no".

Two customers may confirm the same slot at once: the database lets one booking through (`BotTools.book`
returns None for the other), and the loser is offered what is still free.

State: {"bot": "booking", "step", ...} with what was offered (days, slots, bookings), so that a number always
means what the customer saw.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from app.bots.configs import BookableService, BookingConfig
from workers.bots.base import Bot, BotContext, BotMessage, BotReply, BotTools
from workers.bots.booking_texts import TEXTS
from workers.bots.i18n import BACK, HOME, NO, YES, format_day, format_time, has_words, normalize, number
from workers.bots.i18n import numbered as numbered_list
from workers.bots.slots import free_slots, local_today, open_days, store_zone

START = frozenset({"turno", "turnos", "reservar", "sacar turno", "book", "booking"})
CANCEL = frozenset({"cancelar", "cancelar turno", "cancel"})
RESCHEDULE = frozenset({"reprogramar", "cambiar", "cambiar turno", "reschedule", "change"})
MAX_NAME = 100


class BookingBot(Bot):
    kind: ClassVar[str] = "booking"
    config_model: ClassVar[type[BaseModel]] = BookingConfig

    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        assert isinstance(config, BookingConfig)
        turn = _Turn(context, config, tools, dict(state) if state.get("bot") == self.kind else {})
        if not turn.state:
            turn.replies.append(config.greeting or turn.text("greeting", store=context.store_name))
        await turn.handle(message.text, first_contact=not turn.state)
        return BotReply(replies=turn.replies, state={**turn.state, "bot": self.kind})


class _Turn:
    """One message's handling: reads and rewrites `state`, collects `replies`."""

    def __init__(self, context: BotContext, config: BookingConfig, tools: BotTools, state: dict[str, Any]):
        self.context, self.config, self.tools, self.state = context, config, tools, state
        self.texts = TEXTS[context.language]
        self.zone = store_zone(config)
        self.replies: list[str] = []

    def text(self, key: str, **values: Any) -> str:
        return self.texts[key].format(**values)

    def say(self, key: str, **values: Any) -> None:
        self.replies.append(self.text(key, **values))

    def when(self, moment: datetime) -> dict[str, str]:
        local = moment.astimezone(self.zone)
        return {"day": format_day(local.date(), self.context.language), "time": format_time(local)}

    # --- dispatch ---------------------------------------------------------------------------------------
    async def handle(self, text: str, *, first_contact: bool) -> None:
        words = normalize(text)
        step = self.state.get("step", "service")
        if words in HOME or words in START:
            return self.ask_service()
        if words in CANCEL:
            return await self.list_bookings("cancel")
        if words in RESCHEDULE:
            return await self.list_bookings("reschedule")
        if words in BACK:
            return await self.back(step)
        handler = {
            "service": self.on_service,
            "day": self.on_day,
            "slot": self.on_slot,
            "name": self.on_name,
            "confirm": self.on_confirm,
            "cancel": self.on_booking_chosen,
            "reschedule": self.on_booking_chosen,
        }.get(step)
        if handler is None or not await handler(text):
            if not first_contact:
                self.say("not_understood")
            self.repeat(step)

    def repeat(self, step: str) -> None:
        """Ask again what the current step asks, from the state (the same numbers mean the same entries)."""
        if step == "day":
            self.show_days()
        elif step == "slot":
            self.show_slots()
        elif step == "name":
            self.say("ask_name")
        elif step == "confirm":
            self.show_confirm()
        elif step in ("cancel", "reschedule"):
            self.show_bookings(step)
        else:
            self.ask_service()

    async def back(self, step: str) -> None:
        service, day = self.service(), self.state.get("day")
        if step in ("name", "confirm") and service is not None and day:
            await self.offer_slots(service, date.fromisoformat(day))
        elif step == "slot" and service is not None:
            await self.offer_days(service)
        else:
            self.ask_service()

    # --- choosing a service, a day, a slot ----------------------------------------------------------------
    def ask_service(self) -> None:
        self.state = {"step": "service"}
        names = [self.text("service", name=s.name, minutes=s.duration_minutes) for s in self.config.services]
        self.say("ask_service", services=numbered_list(names))

    async def on_service(self, text: str) -> bool:
        services = self.config.services
        chosen = number(text)
        if chosen is not None:
            service = services[chosen - 1] if 1 <= chosen <= len(services) else None
        else:
            service = next((s for s in services if has_words(text, s.name)), None)
        if service is None:
            return False
        self.state = {"step": "service", "service": service.name}
        await self.offer_days(service)
        return True

    def service(self) -> BookableService | None:
        name = str(self.state.get("service", "")).casefold()
        return next((s for s in self.config.services if s.name.casefold() == name), None)

    async def offer_days(self, service: BookableService) -> None:
        days = []
        for day in open_days(self.config, local_today(self.config, self.context.now)):
            if await self.free_slots(service, day):
                days.append(day.isoformat())
        if not days:
            self.say("no_days", service=service.name)
            self.ask_service()
            return
        self.state.update(step="day", days=days)
        self.show_days()

    def show_days(self) -> None:
        days = [format_day(date.fromisoformat(d), self.context.language) for d in self.state.get("days", [])]
        self.say("ask_day", service=self.state.get("service", ""), days=numbered_list(days))

    async def on_day(self, text: str) -> bool:
        days, service, chosen = self.state.get("days", []), self.service(), number(text)
        if service is None or chosen is None or not 1 <= chosen <= len(days):
            return False
        await self.offer_slots(service, date.fromisoformat(days[chosen - 1]))
        return True

    async def free_slots(self, service: BookableService, day: date) -> list[datetime]:
        taken = await self.tools.taken_slots(service.name, day)
        return free_slots(self.config, service, day, taken, self.context.now)

    async def offer_slots(self, service: BookableService, day: date) -> None:
        slots = await self.free_slots(service, day)
        if not slots:
            self.say("day_full", day=format_day(day, self.context.language))
            await self.offer_days(service)
            return
        self.state.update(step="slot", day=day.isoformat(), slots=[s.isoformat() for s in slots])
        self.show_slots()

    def show_slots(self) -> None:
        slots = [format_time(datetime.fromisoformat(s).astimezone(self.zone)) for s in self.state["slots"]]
        day = format_day(date.fromisoformat(self.state["day"]), self.context.language)
        self.say("ask_slot", day=day, slots=numbered_list(slots))

    async def on_slot(self, text: str) -> bool:
        slots, chosen = self.state.get("slots", []), number(text)
        if chosen is None or not 1 <= chosen <= len(slots):
            return False
        self.state["starts_at"] = slots[chosen - 1]
        if self.state.get("name"):  # rescheduling keeps the booking's name
            self.state["step"] = "confirm"
            self.show_confirm()
        else:
            self.state["step"] = "name"
            self.say("ask_name")
        return True

    # --- name, confirmation, booking ----------------------------------------------------------------------
    async def on_name(self, text: str) -> bool:
        name = " ".join(text.split())[:MAX_NAME]
        if not name or number(name) is not None:
            return False
        self.state.update(step="confirm", name=name)
        self.show_confirm()
        return True

    def show_confirm(self) -> None:
        starts_at = datetime.fromisoformat(self.state["starts_at"])
        self.say("confirm", service=self.state["service"], name=self.state["name"], **self.when(starts_at))

    async def on_confirm(self, text: str) -> bool:
        words = normalize(text)
        if words == "2" or words in NO:
            self.say("not_booked")
            self.ask_service()
            return True
        if words != "1" and words not in YES:
            return False
        service = self.service()
        if service is None:
            self.ask_service()
            return True
        starts_at = datetime.fromisoformat(self.state["starts_at"])
        booking = None
        if starts_at > self.context.now:
            booking = await self.tools.book(service.name, starts_at, self.state["name"])
        if booking is None:
            # Someone confirmed it first (or it is past now): offer what is still free that day, or other days.
            self.say("slot_taken")
            await self.offer_slots(service, date.fromisoformat(self.state["day"]))
            return True
        rescheduled = self.state.get("reschedule")
        if rescheduled:
            # Booked first, cancelled after: if the new slot had been lost, the old booking would still stand.
            await self.tools.cancel_booking(uuid.UUID(rescheduled))
        key = "rescheduled" if rescheduled else "booked"
        self.say(key, service=booking.service, name=booking.customer_name, **self.when(booking.starts_at))
        self.state = {"step": "service"}
        return True

    # --- cancelling and rescheduling ----------------------------------------------------------------------
    async def list_bookings(self, purpose: str) -> None:
        bookings = [b for b in await self.tools.bookings() if b.starts_at > self.context.now]
        if not bookings:
            self.say("no_bookings")
            self.ask_service()
            return
        listed = [
            {
                "id": str(b.id),
                "service": b.service,
                "starts_at": b.starts_at.isoformat(),
                "name": b.customer_name,
            }
            for b in sorted(bookings, key=lambda b: b.starts_at)
        ]
        self.state = {"step": purpose, "bookings": listed}
        self.show_bookings(purpose)

    def show_bookings(self, purpose: str) -> None:
        entries = [
            self.text("booking", service=b["service"], **self.when(datetime.fromisoformat(b["starts_at"])))
            for b in self.state["bookings"]
        ]
        self.say(f"ask_{purpose}", bookings=numbered_list(entries))

    async def on_booking_chosen(self, text: str) -> bool:
        bookings, chosen = self.state.get("bookings", []), number(text)
        if chosen is None or not 1 <= chosen <= len(bookings):
            return False
        booking = bookings[chosen - 1]
        when = self.when(datetime.fromisoformat(booking["starts_at"]))
        if self.state["step"] == "cancel":
            cancelled = await self.tools.cancel_booking(uuid.UUID(booking["id"]))
            self.say("cancelled" if cancelled else "cancel_failed", service=booking["service"], **when)
            self.ask_service()
            return True
        service = next((s for s in self.config.services if s.name == booking["service"]), None)
        if service is None:
            self.say("service_gone", service=booking["service"])
            self.ask_service()
            return True
        self.state = {
            "step": "service",
            "service": service.name,
            "reschedule": booking["id"],
            "name": booking["name"],
        }
        await self.offer_days(service)
        return True
