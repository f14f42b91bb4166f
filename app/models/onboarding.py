from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class OnboardingLink(IdMixin, TimestampMixin, Base):
    """A link that lets someone without an account connect one store's number, and nothing else."""

    __tablename__ = "onboarding_links"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    # HMAC-SHA256 of the URL's token (high-entropy): looked up by it, never stored plain.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Set once the store was seen connected through the link: from then on it shows "connected", nothing more.
    completed_at: Mapped[datetime | None]
