from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class IdempotencyKey(IdMixin, Base):
    """An `Idempotency-Key` of `POST /v1/stores/{id}/messages`: the request it was first used with (a hash of
    the normalised body) and the message that request made. Scoped to the store (and so to its tenant); the
    unique constraint, not a check before the insert, makes two concurrent requests with one key one message."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("store_id", "key"),
        # The purge of expired keys reads a store's oldest keys.
        Index("ix_idempotency_keys_store_created", "store_id", "created_at"),
    )

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the normalised request
    # Null only inside the transaction that claims the key (it is set before that transaction commits).
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
