"""The menu bot: a configurable tree of numbered options (FAQ, information, hand-off to a person).

Commands (either language): a number or a keyword chooses an option of the current menu (a keyword is also
looked up in the whole tree); "0"/"volver"/"back" goes up one level; "menu"/"inicio"/"start" goes to the
top; "humano"/"persona"/"agent"/"human" hands the chat to a person.

State: {"bot": "menu", "path": [i, j, ...]}, the indices of the submenu the customer is in.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from app.bots.configs import MenuConfig, MenuOption
from workers.bots.base import Bot, BotContext, BotMessage, BotReply, BotTools
from workers.bots.i18n import BACK, HOME, HUMAN, has_words, normalize, number, numbered

TEXTS = {
    "es": {
        "choose": "Elegí una opción (respondé con el número):",
        "back": "0. Volver",
        "human_hint": "Escribí *humano* para hablar con una persona.",
        "not_understood": "No entendí tu mensaje.",
        "after_answer": "¿Algo más? Elegí otra opción o escribí *menu* para ver todas.",
        "handoff": "Te paso con una persona del equipo; en breve te responde por acá.",
    },
    "en": {
        "choose": "Choose an option (reply with its number):",
        "back": "0. Back",
        "human_hint": "Type *human* to talk to a person.",
        "not_understood": "Sorry, I didn't get that.",
        "after_answer": "Anything else? Choose another option or type *menu* to see them all.",
        "handoff": "I'm passing you to a person from our team; they will answer you here shortly.",
    },
}

Path = list[int]


class MenuBot(Bot):
    kind: ClassVar[str] = "menu"
    config_model: ClassVar[type[BaseModel]] = MenuConfig

    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        assert isinstance(config, MenuConfig)
        texts = TEXTS[context.language]
        first_contact = state.get("bot") != self.kind
        path = [] if first_contact else _valid_path(config, state.get("path"))
        replies = [config.greeting] if first_contact else []
        words = normalize(message.text)
        handoff = False

        if words in HOME:
            path = []
            replies.append(_render(config, path, texts))
        elif words in BACK:
            path = path[:-1]
            replies.append(_render(config, path, texts))
        elif words in HUMAN:
            replies.append(config.handoff_message or texts["handoff"])
            handoff = True
        elif (chosen := _choose(config, path, message.text)) is None:
            if not first_contact:
                replies.append(texts["not_understood"])
            replies.append(_render(config, path, texts))
        else:
            option = _option_at(config, chosen)
            if option.answer:
                replies.append(option.answer)
            if option.handoff:
                handoff = True
                if not option.answer:
                    replies.append(config.handoff_message or texts["handoff"])
            if option.options:
                path = chosen
                replies.append(_render(config, path, texts))
            else:
                path = chosen[:-1]
                if not handoff:
                    replies.append(texts["after_answer"])
        return BotReply(replies=replies, state={"bot": self.kind, "path": path}, handoff=handoff)


def _options(config: MenuConfig, path: Path) -> list[MenuOption]:
    options = config.options
    for index in path:
        options = options[index].options
    return options


def _option_at(config: MenuConfig, path: Path) -> MenuOption:
    return _options(config, path[:-1])[path[-1]]


def _valid_path(config: MenuConfig, raw: Any) -> Path:
    """The saved path, or the top when the store changed its menu since (the path may lead nowhere now)."""
    if not isinstance(raw, list):
        return []
    options, path = config.options, []
    for index in raw:
        if not isinstance(index, int) or not 0 <= index < len(options) or not options[index].options:
            return []
        path.append(index)
        options = options[index].options
    return path


def _matches(option: MenuOption, text: str) -> bool:
    if normalize(option.title) == normalize(text):
        return True
    return any(has_words(text, keyword) for keyword in option.keywords)


def _choose(config: MenuConfig, path: Path, text: str) -> Path | None:
    """The option the customer chose: by number or keyword in the current menu, else by keyword anywhere."""
    options = _options(config, path)
    chosen = number(text)
    if chosen is not None:
        return [*path, chosen - 1] if 1 <= chosen <= len(options) else None
    for index, option in enumerate(options):
        if _matches(option, text):
            return [*path, index]
    return _search(config.options, [], text)


def _search(options: list[MenuOption], path: Path, text: str) -> Path | None:
    for index, option in enumerate(options):
        if _matches(option, text):
            return [*path, index]
        found = _search(option.options, [*path, index], text)
        if found is not None:
            return found
    return None


def _render(config: MenuConfig, path: Path, texts: dict[str, str]) -> str:
    heading = f"*{_option_at(config, path).title}*" if path else texts["choose"]
    lines = [heading, numbered([option.title for option in _options(config, path)])]
    lines.append(texts["back"] if path else texts["human_hint"])
    return "\n".join(lines)
