from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ForeignKey, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class DeliveryStatus:
    pending = "pending"  # waiting for its (first or next) attempt
    succeeded = "succeeded"  # a 2xx answer
    failed = "failed"  # given up: a 4xx other than 408/429, the retry window ran out, or its webhook disabled


class Webhook(IdMixin, TimestampMixin, Base):
    """A store's subscription: the events it wants POSTed to `url`, signed with its secret (Standard Webhooks)."""

    __tablename__ = "webhooks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # `whsec_...` encrypted with a key derived from MOSTRADOR_SECRET_KEY (app/webhooks/secrets.py), never plain.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # After a rotation the old secret signs too (a second signature) until it expires.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The first failure of the current run of failures (null after any success): the window starts here.
    failing_since: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)  # why the webhook turned itself off


class WebhookDelivery(IdMixin, TimestampMixin, Base):
    """One event for one webhook. Attempted in `seq` order within its chain (webhook, order_key)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # A chain's head: its oldest pending delivery.
        Index(
            "ix_webhook_deliveries_chain",
            "webhook_id",
            "order_key",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
        # The relay's sweep: pending deliveries that are due.
        Index(
            "ix_webhook_deliveries_due",
            "store_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_log", "webhook_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(
        BigInteger
    )  # the `events` row it reports (no FK: goes with the store)
    event: Mapped[str] = mapped_column(String(64))  # message.received, message.sent, ...
    # `webhook-id`: the same for every attempt, redelivery and replay of this event to this webhook.
    message_id: Mapped[str] = mapped_column(String(64))
    order_key: Mapped[str] = mapped_column(String(64))  # the conversation's id, or "store"
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    give_up_at: Mapped[datetime]  # the end of its retry window (from its creation, redelivery or replay)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None]  # when it succeeded or was given up


class WebhookDispatchPosition(Base):
    """Where the fan-out of a store's events to its webhooks stands in the change log (`events`): written in the
    transaction that writes the deliveries, so a crash repeats nothing and loses nothing."""

    __tablename__ = "webhook_dispatch_positions"

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True)
    xid: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
