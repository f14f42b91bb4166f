"""Change-log rows -> delivery rows for the webhooks subscribed to them (the dispatcher's and the replay's)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event, Webhook
from app.webhooks.catalog import chain_of, payload, webhook_event
from app.webhooks.repository import DeliveryRef, FanoutRepository, NewDelivery
from app.webhooks.signing import message_id


async def fan_out(
    session: AsyncSession,
    events: Sequence[Event],
    webhooks: Sequence[Webhook],
    *,
    now: datetime,
    window: timedelta,
    kinds: Sequence[str] | None = None,
    replay: bool = False,
) -> list[DeliveryRef]:
    """Write a pending delivery per (event, subscribed webhook), in the events' order; payloads built now.
    `kinds` narrows the webhook events further (a replay of some events only). Outside a replay, a webhook gets
    only events recorded after it was created: its store's position may be older (the visibility horizon it
    started from lags behind the present while any transaction on the server runs long)."""
    if not events or not webhooks:
        return []
    repository = FanoutRepository(session)
    messages, conversations = await repository.context(events)
    by_store: dict[object, list[Webhook]] = {}
    for webhook in webhooks:
        by_store.setdefault(webhook.store_id, []).append(webhook)
    new: list[NewDelivery] = []
    for event in events:
        subscribers = by_store.get(event.store_id)
        if not subscribers:
            continue
        message = messages.get(event.message_id) if event.message_id is not None else None
        kind = webhook_event(event, message)
        if kind is None or (kinds is not None and kind not in kinds):
            continue
        conversation = conversations.get(event.conversation_id) if event.conversation_id else None
        body = payload(kind, event, message, conversation)
        for webhook in subscribers:
            if kind in webhook.events and (replay or event.created_at >= webhook.created_at):
                new.append(
                    NewDelivery(
                        webhook_id=webhook.id,
                        store_id=event.store_id,
                        event_id=event.id,
                        event=kind,
                        message_id=message_id(webhook.id, event.id),
                        order_key=chain_of(event),
                        payload=body,
                    )
                )
    return await repository.add_deliveries(new, now=now, give_up_at=now + window)
