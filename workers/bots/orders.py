"""The orders bot (pedidos): a numbered catalog, a cart, checkout with delivery or pickup, a numbered order.

Commands (either language), `N` being an item's number in the catalog (or its id or name):
- `Q x N` ("2 x 3", "2x3") or `agregar N [Q]` / `add N [Q]`: add Q (default 1) of item N; a bare `N` adds one;
- `quitar N [Q]` / `sacar` / `remove N [Q]`: remove item N from the cart (only Q of it when given);
- `carrito` / `cart`: the cart and its running total; `vaciar` / `clear`: empty it;
- `menu` / `catalogo` / `catalog`: the catalog; `ayuda` / `help`: these commands;
- `pedir` / `listo` / `checkout` / `done`: check out -> delivery (address) or pickup -> confirm (1/sí, 2/no).

State: {"bot": "orders", "step": browse|fulfilment|address|confirm, "cart": [[item_id, quantity], ...],
"fulfilment", "address"}.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from app.bots.configs import CatalogItem, OrdersConfig
from workers.bots.base import Bot, BotContext, BotMessage, BotReply, BotTools, Order, OrderLine
from workers.bots.i18n import BACK, HELP, HOME, NO, YES, format_money, normalize, number
from workers.bots.orders_texts import TEXTS

CATALOG = HOME | {"catalogo", "catalog", "carta", "productos", "lista"}
CART = frozenset({"carrito", "ver carrito", "cart"})
CLEAR = frozenset({"vaciar", "vaciar carrito", "clear", "empty"})
CHECKOUT = frozenset({"pedir", "listo", "terminar", "finalizar", "confirmar", "checkout", "done", "order"})
DELIVERY = frozenset({"1", "envio", "delivery", "domicilio", "enviar"})
PICKUP = frozenset({"2", "retiro", "retirar", "pickup", "pick up", "local"})
_TIMES = re.compile(r"^(\d+) ?[x\u00d7] ?(.+)$")  # "x" or the multiplication sign
_ADD = re.compile(r"^(?:agregar|agrega|sumar|add) (.+?)(?: (\d+))?$")
_REMOVE = re.compile(r"^(?:quitar|quita|sacar|saca|borrar|remove|delete) (.+?)(?: (\d+))?$")
MAX_QUANTITY = 99
Cart = list[list[Any]]  # [[item_id, quantity]]: a list, so that the cart keeps the order items were added


class OrdersBot(Bot):
    kind: ClassVar[str] = "orders"
    config_model: ClassVar[type[BaseModel]] = OrdersConfig

    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        assert isinstance(config, OrdersConfig)
        turn = _Turn(context, config, state if state.get("bot") == self.kind else {})
        if state.get("bot") != self.kind:
            turn.replies.append(config.greeting or turn.text("greeting", store=context.store_name))
            turn.replies += [turn.catalog(), turn.text("catalog_hint")]
            if turn.understand(message.text) is None:  # a greeting ("hola"): the catalog is the answer
                return turn.reply(self.kind)
            turn.replies.clear()
        await turn.handle(message, tools)
        return turn.reply(self.kind)


class _Turn:
    def __init__(self, context: BotContext, config: OrdersConfig, state: dict[str, Any]) -> None:
        self.context, self.config = context, config
        self.texts = TEXTS[context.language]
        self.items = _display_order(config.catalog)
        known = {item.id for item in self.items}
        # Items the store removed from its catalog since they were added leave the cart.
        self.cart: Cart = [[i, q] for i, q in state.get("cart", []) if i in known]
        self.step: str = state.get("step", "browse")
        self.fulfilment: str | None = state.get("fulfilment")
        self.address: str | None = state.get("address")
        self.replies: list[str] = []

    def text(self, key: str, **values: Any) -> str:
        return self.texts[key].format(**values)

    def say(self, key: str, **values: Any) -> None:
        self.replies.append(self.text(key, **values))

    def money(self, cents: int) -> str:
        return format_money(cents, self.config.currency, self.context.language)

    def reply(self, kind: str) -> BotReply:
        state: dict[str, Any] = {"bot": kind, "step": self.step, "cart": self.cart}
        state.update(fulfilment=self.fulfilment, address=self.address)
        return BotReply(replies=self.replies, state=state)

    def understand(self, text: str) -> str | None:
        """The command a message is, without acting on it (None: not a command of the browsing step)."""
        words = normalize(text)
        for name, words_set in (("help", HELP), ("catalog", CATALOG), ("cart", CART), ("clear", CLEAR)):
            if words in words_set:
                return name
        if words in CHECKOUT:
            return "checkout"
        if _TIMES.match(words) or _ADD.match(words) or words.isdigit():
            return "add"
        return "remove" if _REMOVE.match(words) else None

    # --- dispatch ---------------------------------------------------------------------------------------
    async def handle(self, message: BotMessage, tools: BotTools) -> None:
        words = normalize(message.text)
        if self.step == "address" and words not in BACK and words not in HOME and len(words) >= 3:
            self.address = " ".join(message.text.split())[:300]
            return self.ask_confirm()
        if self.step == "fulfilment" and (words in DELIVERY or words in PICKUP):
            return self.choose_fulfilment("delivery" if words in DELIVERY else "pickup")
        if self.step == "confirm" and (words == "1" or words in YES):
            return await self.place(message, tools)
        if self.step == "confirm" and (words == "2" or words in NO):
            self.step = "browse"
            return self.say("not_placed")
        if self.step != "browse" and words in BACK:
            self.step = "browse"
            return self.show_cart()
        # Past the cart, a number answers the question asked: any other one is a wrong answer, not an item.
        if self.step != "browse" and (self.understand(words) is None or words.isdigit()):
            self.say("not_understood")
            return self.repeat()
        self.step = "browse"
        self.browse(words)

    def browse(self, words: str) -> None:
        command = self.understand(words)
        if command == "help":
            self.say("help")
        elif command == "catalog":
            self.replies += [self.catalog(), self.text("catalog_hint")]
        elif command == "cart":
            self.show_cart()
        elif command == "clear":
            self.cart = []
            self.say("cleared")
        elif command == "checkout":
            self.checkout()
        elif command == "add":
            self.add(words)
        elif command == "remove":
            self.remove(words)
        else:
            self.say("not_understood")
            self.say("help")

    def repeat(self) -> None:
        if self.step == "fulfilment":
            self.say("ask_fulfilment", fee=self.money(self.config.delivery_fee_cents))
        elif self.step == "address":
            self.say("ask_address")
        else:
            self.ask_confirm()

    # --- catalog and cart -------------------------------------------------------------------------------
    def catalog(self) -> str:
        lines, category = [], None
        for position, item in enumerate(self.items, start=1):
            if item.category and item.category != category:
                lines.append(f"*{item.category}*")
            category = item.category
            lines.append(f"{position}. {item.name}: {self.money(item.price_cents)}")
        return "\n".join(lines)

    def find(self, ref: str) -> CatalogItem | None:
        position = number(ref)
        if position is not None:
            return self.items[position - 1] if 1 <= position <= len(self.items) else None
        ref = normalize(ref)
        return next((i for i in self.items if ref in (normalize(i.id), normalize(i.name))), None)

    def quantity(self, item_id: str) -> int:
        return next((int(q) for i, q in self.cart if i == item_id), 0)

    def add(self, words: str) -> None:
        if match := _TIMES.match(words):
            quantity, ref = int(match[1]), match[2]
        elif match := _ADD.match(words):
            ref, quantity = match[1], int(match[2] or 1)
        else:
            ref, quantity = words, 1
        item = self.find(ref)
        if item is None:
            return self.say("unknown_item", item=ref)
        current = self.quantity(item.id)
        if not 1 <= quantity <= MAX_QUANTITY - current:
            return self.say("bad_quantity", max=MAX_QUANTITY)
        self.cart = [[i, q + quantity if i == item.id else q] for i, q in self.cart]
        if not current:
            self.cart.append([item.id, quantity])
        self.say("added", quantity=quantity, item=item.name)
        self.show_cart(next_step=True)

    def remove(self, words: str) -> None:
        match = _REMOVE.match(words)
        assert match is not None
        item = self.find(match[1])
        if item is None:
            return self.say("unknown_item", item=match[1])
        current = self.quantity(item.id)
        if not current:
            return self.say("not_in_cart", item=item.name)
        removed = min(int(match[2] or current), current)
        self.cart = [[i, q - removed if i == item.id else q] for i, q in self.cart]
        self.cart = [[i, q] for i, q in self.cart if q > 0]
        self.say("removed", quantity=removed, item=item.name)
        self.show_cart(next_step=bool(self.cart))

    def lines(self) -> list[OrderLine]:
        by_id = {item.id: item for item in self.items}
        lines = [OrderLine(by_id[i].name, q, by_id[i].price_cents) for i, q in self.cart]
        if self.fulfilment == "delivery" and self.config.delivery_fee_cents:
            lines.append(OrderLine(self.texts["delivery_line"], 1, self.config.delivery_fee_cents))
        return lines

    def summary(self, lines: list[OrderLine]) -> str:
        shown = [
            f"{ln.quantity} x {ln.item}: {self.money(ln.quantity * ln.unit_price_cents)}" for ln in lines
        ]
        total = self.money(sum(ln.quantity * ln.unit_price_cents for ln in lines))
        return self.text("cart", lines="\n".join(shown), total=total)

    def show_cart(self, *, next_step: bool = True) -> None:
        if not self.cart:
            return self.say("cart_empty")
        self.replies.append(self.summary(self.lines()))
        if next_step:
            self.say("cart_next")

    # --- checkout ---------------------------------------------------------------------------------------
    def checkout(self) -> None:
        if not self.cart:
            return self.say("cart_empty")
        if self.config.delivery_enabled and self.config.pickup_enabled:
            self.step = "fulfilment"
            return self.say("ask_fulfilment", fee=self.money(self.config.delivery_fee_cents))
        self.choose_fulfilment("delivery" if self.config.delivery_enabled else "pickup")

    def choose_fulfilment(self, fulfilment: Literal["delivery", "pickup"]) -> None:
        self.fulfilment = fulfilment
        if fulfilment == "delivery":
            self.step = "address"
            return self.say("ask_address")
        self.address = None
        self.ask_confirm()

    def fulfilment_text(self) -> str:
        if self.fulfilment == "delivery":
            return self.text("to_address", address=self.address)
        return self.text("pickup")

    def ask_confirm(self) -> None:
        self.step = "confirm"
        self.say("confirm", summary=self.summary(self.lines()), fulfilment=self.fulfilment_text())

    async def place(self, message: BotMessage, tools: BotTools) -> None:
        lines = self.lines()
        order = await tools.place_order(
            Order(
                id=uuid.uuid4(),
                lines=lines,
                total_cents=sum(line.quantity * line.unit_price_cents for line in lines),
                fulfilment="delivery" if self.fulfilment == "delivery" else "pickup",
                address=self.address if self.fulfilment == "delivery" else None,
                customer_name=message.customer_name,
            )
        )
        total = self.money(order.total_cents)
        self.say("placed", number=order.number, total=total, fulfilment=self.fulfilment_text())
        self.step, self.cart, self.fulfilment, self.address = "browse", [], None, None


def _display_order(catalog: list[CatalogItem]) -> list[CatalogItem]:
    """Items grouped by category (categories in order of first appearance): the catalog's numbering."""
    rank: dict[str | None, int] = {}
    for item in catalog:
        rank.setdefault(item.category, len(rank))
    return sorted(catalog, key=lambda item: rank[item.category])
