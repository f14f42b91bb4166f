from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class DesiredState(StrEnum):
    """What the tenant asked for; the session manager reconciles live connections towards it."""

    unlinked = "unlinked"  # no connection wanted
    linked = "linked"  # keep a connection (pair first if there is no device yet)
    logged_out = "logged_out"  # log the device out, then stay unlinked


class StoreStatus(StrEnum):
    """What the session manager last observed."""

    unlinked = "unlinked"
    linking = "linking"
    connected = "connected"
    reconnecting = "reconnecting"
    logged_out = "logged_out"
    error = "error"


class Store(IdMixin, TimestampMixin, Base):
    __tablename__ = "stores"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    desired_state: Mapped[str] = mapped_column(String(20), default=DesiredState.unlinked.value)
    status: Mapped[str] = mapped_column(String(20), default=StoreStatus.unlinked.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    # whatsmeow's device JID (`<number>:<device>@s.whatsapp.net`): resumes exactly this store's device.
    device_jid: Mapped[str | None] = mapped_column(String(100))
    # Set by `POST /v1/stores/{id}/pairing-code`: the manager pairs by phone number instead of QR.
    pairing_phone: Mapped[str | None] = mapped_column(String(32))
    bot_kind: Mapped[str] = mapped_column(String(20), default="echo")
    bot_config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Per-store knobs (rate limits, group/self message filters); validated by the stores domain.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
