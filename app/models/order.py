from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class Order(IdMixin, TimestampMixin, Base):
    """An order confirmed through the orders bot (pedidos)."""

    __tablename__ = "orders"
    # Newest first is by number: unique per store, and increasing in the order orders were placed.
    __table_args__ = (UniqueConstraint("store_id", "number"),)

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The chat that ordered; an order outlives the conversation's deletion (it is the store's record).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    # What the customer and the store call it ("pedido #12"): 1, 2, 3... per store, from `order_counters`.
    number: Mapped[int] = mapped_column(Integer)
    # [{"item", "quantity", "unit_price_cents"}]; the delivery fee, when there is one, is a line too, so the
    # lines always add up to the total.
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    fulfilment: Mapped[str] = mapped_column(String(10))  # delivery | pickup
    address: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="confirmed")
    customer_name: Mapped[str | None] = mapped_column(String(200))


class OrderCounter(Base):
    """The last order number given out per store.

    Taken with one `INSERT .. ON CONFLICT DO UPDATE .. RETURNING`: the row lock orders concurrent checkouts of
    one store (no retry loop, unlike max(number) + 1), and a rolled-back order gives its number back.
    """

    __tablename__ = "order_counters"

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)
