from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class Upload(IdMixin, TimestampMixin, Base):
    """Media bytes sent to `POST /v1/uploads`, waiting to be sent (`"media": {"upload_id": ...}`). A send copies
    the object to the message's own key, so an upload can be sent many times and expire on its own."""

    __tablename__ = "uploads"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Set when a key limited to one store uploaded it: only that store may send it.
    store_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))  # image | video | audio | document
    mime: Mapped[str] = mapped_column(String(150))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str] = mapped_column(Text)
    # After this the upload can no longer be sent, and the retention job deletes it.
    expires_at: Mapped[datetime] = mapped_column(index=True)
