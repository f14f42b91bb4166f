"""What every bot needs to read customers' words and to write dates and prices, in Spanish and English.

Commands are accepted in both languages whatever the store's language: a customer who types "back" in a
Spanish-speaking store is understood all the same. Each bot keeps its own reply texts next to its logic.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from app.bots.configs import Language

YES = frozenset({"si", "s", "yes", "y", "ok", "dale", "confirmo", "confirmar", "confirm"})
NO = frozenset({"no", "n", "nop"})
BACK = frozenset({"0", "volver", "atras", "back"})
HOME = frozenset({"menu", "inicio", "start", "home"})
HUMAN = frozenset({"humano", "persona", "agente", "agent", "human", "person"})
HELP = frozenset({"ayuda", "help", "?"})

_WEEKDAYS = {
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PUNCTUATION = re.compile(r"[¿?¡!.,;:*_\"'()]+")


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: "¡Sí, dale!" -> "si dale"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_PUNCTUATION.sub(" ", plain).split())


def number(text: str) -> int | None:
    """The number a customer typed to choose from a list ("2", "2.", " 2 "), or None."""
    words = normalize(text)
    return int(words) if words.isdigit() and len(words) <= 4 else None


def has_words(text: str, phrase: str) -> bool:
    """Whether the normalized phrase appears as whole words in the normalized text."""
    wanted = normalize(phrase)
    return bool(wanted) and re.search(rf"(^| ){re.escape(wanted)}( |$)", normalize(text)) is not None


def numbered(items: list[str]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))


def format_day(day: date, language: Language) -> str:
    """ "lun 1/12" / "Mon Dec 1"."""
    weekday = _WEEKDAYS[language][day.weekday()]
    if language == "es":
        return f"{weekday} {day.day}/{day.month}"
    return f"{weekday} {_MONTHS_EN[day.month - 1]} {day.day}"


def format_time(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def format_money(cents: int, currency: str, language: Language) -> str:
    """Like "$1.500" / "$1,500.50": Spanish groups thousands with dots, English with commas; cents only if any."""
    units, rest = divmod(abs(cents), 100)
    grouped = f"{units:,}"
    decimals = f"{rest:02d}" if rest else ""
    if language == "es":
        grouped = grouped.replace(",", ".")
        amount = f"{grouped},{decimals}" if decimals else grouped
    else:
        amount = f"{grouped}.{decimals}" if decimals else grouped
    sign = "-" if cents < 0 else ""
    return f"{sign}{currency}{amount}"
