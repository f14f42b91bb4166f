from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class OrderLineRead(BaseModel):
    item: str
    quantity: int
    unit_price_cents: int


class OrderRead(BaseModel):
    id: uuid.UUID
    number: int = Field(description="The store's order number, 1, 2, 3...: what the customer was told.")
    status: str
    customer_name: str | None
    chat_jid: str | None = Field(description="The customer's WhatsApp chat; null if the chat was deleted.")
    lines: list[OrderLineRead] = Field(description="Items, and the delivery fee as a line when there is one.")
    total_cents: int = Field(description="The sum of the lines.")
    fulfilment: str = Field(description="delivery | pickup")
    address: str | None
    created_at: datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")


class BookingRead(BaseModel):
    id: uuid.UUID
    service: str
    starts_at: datetime
    customer_name: str
    status: str
    chat_jid: str | None = Field(description="The customer's WhatsApp chat; null if the chat was deleted.")
    created_at: datetime


class BookingPage(BaseModel):
    items: list[BookingRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")
