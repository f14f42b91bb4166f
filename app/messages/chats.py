"""How a chat is named to integrators: its E.164 number when WhatsApp addresses it by phone, else its JID."""

from __future__ import annotations

import phonenumbers

PHONE_SERVER = "s.whatsapp.net"
# What the `chat` filter accepts: a number in international form (spaces, dots, dashes and parentheses allowed,
# as people write them) or a WhatsApp JID (`<user>@<server>`, e.g. a LID chat `123456789@lid`).
CHAT_PATTERN = r"^(\+[0-9][0-9 ().-]{5,30}|[0-9A-Za-z._:-]{1,80}@[a-z.]{1,40})$"


def chat_name(jid: str) -> str:
    """`5491155550000@s.whatsapp.net` -> `+5491155550000`; a LID or group JID stays as it is."""
    user, _, server = jid.partition("@")
    if server == PHONE_SERVER and user.isdigit():
        return "+" + user
    return jid


def shown_jid(chat_jid: str, alt_jid: str | None) -> str:
    """The JID a conversation is shown by: its phone JID where known (its key, or the other identifier
    WhatsApp gave beside a LID), else its key. `SHOWN_JID` in app/messages/repository.py is the same in SQL."""
    if alt_jid is not None and alt_jid.endswith("@" + PHONE_SERVER):
        return alt_jid
    return chat_jid


def chat_jid(chat: str) -> str:
    """The JID a `chat` filter names (it matched CHAT_PATTERN). A number is normalised to E.164 with
    `phonenumbers` when it is one; digits that are no valid number still name a (then unknown) chat, so the
    filter finds nothing rather than answering a 422 that the schema's pattern does not announce."""
    if "@" in chat:
        return chat
    digits = "".join(ch for ch in chat if ch.isdigit())
    try:
        number = phonenumbers.parse(chat, None)
    except phonenumbers.NumberParseException:
        return digits + "@" + PHONE_SERVER
    if phonenumbers.is_valid_number(number):
        digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return digits + "@" + PHONE_SERVER
