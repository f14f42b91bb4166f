"""What the booking bot says, in Spanish (default) and English. Placeholders are filled by `str.format`."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "greeting": "¡Hola! Soy el asistente de turnos de {store}.",
        "service": "{name} ({minutes} min)",
        "ask_service": (
            "¿Qué turno querés reservar? Respondé con el número:\n{services}\n"
            "Para cancelar o cambiar un turno que ya tenés, escribí *cancelar* o *reprogramar*."
        ),
        "no_days": "No quedan turnos libres para {service} en los próximos días.",
        "ask_day": "¿Qué día querés venir? ({service})\n{days}\n0. Volver",
        "day_full": "Ya no quedan horarios libres el {day}.",
        "ask_slot": "Horarios libres el {day}:\n{slots}\n0. Volver",
        "ask_name": "¿A nombre de quién reservo el turno?",
        "confirm": "¿Confirmás este turno?\n{service}: {day} a las {time}\nA nombre de: {name}\n1. Sí\n2. No",
        "booked": (
            "¡Listo! Tu turno quedó reservado: {service}, {day} a las {time}, a nombre de {name}.\n"
            "Si necesitás cambiarlo escribí *reprogramar*; para cancelarlo, *cancelar*."
        ),
        "rescheduled": "¡Listo! Cambié tu turno: ahora es {service}, {day} a las {time}.",
        "slot_taken": "Uy, alguien acaba de reservar ese horario.",
        "not_booked": "Listo, no reservé nada.",
        "no_bookings": "No tenés turnos reservados.",
        "booking": "{service}: {day} a las {time}",
        "ask_cancel": "¿Qué turno querés cancelar?\n{bookings}\n0. Volver",
        "ask_reschedule": "¿Qué turno querés cambiar?\n{bookings}\n0. Volver",
        "cancelled": "Cancelé tu turno de {service} del {day} a las {time}.",
        "cancel_failed": "Ese turno ({service}, {day} a las {time}) ya no estaba reservado.",
        "service_gone": "Ya no damos turnos de {service}; podés cancelarlo o reservar otro.",
        "not_understood": "No entendí tu respuesta.",
    },
    "en": {
        "greeting": "Hi! I'm {store}'s booking assistant.",
        "service": "{name} ({minutes} min)",
        "ask_service": (
            "What would you like to book? Reply with the number:\n{services}\n"
            "To cancel or change a booking you already have, type *cancel* or *reschedule*."
        ),
        "no_days": "There are no free slots for {service} in the coming days.",
        "ask_day": "Which day would you like to come? ({service})\n{days}\n0. Back",
        "day_full": "There are no free slots left on {day}.",
        "ask_slot": "Free times on {day}:\n{slots}\n0. Back",
        "ask_name": "What name should I put the booking under?",
        "confirm": "Shall I confirm this booking?\n{service}: {day} at {time}\nName: {name}\n1. Yes\n2. No",
        "booked": (
            "Done! You are booked: {service}, {day} at {time}, under {name}.\n"
            "To change it type *reschedule*; to cancel it, *cancel*."
        ),
        "rescheduled": "Done! I moved your booking: it is now {service}, {day} at {time}.",
        "slot_taken": "Sorry, someone has just booked that time.",
        "not_booked": "OK, I did not book anything.",
        "no_bookings": "You have no bookings.",
        "booking": "{service}: {day} at {time}",
        "ask_cancel": "Which booking do you want to cancel?\n{bookings}\n0. Back",
        "ask_reschedule": "Which booking do you want to change?\n{bookings}\n0. Back",
        "cancelled": "I cancelled your {service} booking on {day} at {time}.",
        "cancel_failed": "That booking ({service}, {day} at {time}) was no longer active.",
        "service_gone": "We no longer take {service} bookings; you can cancel it or book something else.",
        "not_understood": "Sorry, I didn't get that.",
    },
}
