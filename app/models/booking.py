from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class BookingStatus(StrEnum):
    booked = "booked"
    cancelled = "cancelled"


class Booking(IdMixin, TimestampMixin, Base):
    """A slot taken through the booking bot (turnos)."""

    __tablename__ = "bookings"
    __table_args__ = (
        # The rule that settles a race for a slot: among live bookings a store's service has each start time
        # at most once. Cancelled rows stay as history and free the slot again.
        Index(
            "uq_bookings_store_service_starts_at",
            "store_id",
            "service",
            "starts_at",
            unique=True,
            postgresql_where=text("status = 'booked'"),
        ),
        # The store's upcoming bookings, keyset-paginated on (starts_at, id).
        Index(
            "ix_bookings_store_upcoming",
            "store_id",
            "starts_at",
            "id",
            postgresql_where=text("status = 'booked'"),
        ),
    )

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The chat that booked; a booking outlives the conversation's deletion (it is the store's record).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    service: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    customer_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default=BookingStatus.booked.value)
