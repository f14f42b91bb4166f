"""The events a webhook may subscribe to, and how a row of the change log (`events`) becomes one.

| webhook event | from the change log |
| --- | --- |
| `message.received` | `message.created` of an inbound message |
| `message.sent` | `message.status` to `sent` |
| `message.status` | `message.status` to `delivered`, `read` or `failed` |
| `store.status` | `store.status` (linking, connected, reconnecting, logged_out, error, ...) |
| `conversation.bot_paused` | `conversation.bot_paused` (`paused` / `resumed`) |

Other rows (an outbound message created `pending`, internal statuses such as `queued` or `handled`) are not
sent. The payload is `{"type", "timestamp", "data"}` (the Standard Webhooks convention), built at fan-out:
a message's content as of then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models import Conversation, Event, EventKind, Message

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_STATUS = "message.status"
STORE_STATUS = "store.status"
BOT_PAUSED = "conversation.bot_paused"
EVENT_TYPES = (MESSAGE_RECEIVED, MESSAGE_SENT, MESSAGE_STATUS, STORE_STATUS, BOT_PAUSED)
# A chain per conversation; events of no conversation (a store's status) share this one.
STORE_CHAIN = "store"
# The change-log kinds that can become a webhook event (what the fan-out reads).
SOURCE_KINDS = (
    EventKind.message_created,
    EventKind.message_status,
    EventKind.store_status,
    EventKind.conversation_bot_paused,
)


def webhook_event(event: Event, message: Message | None) -> str | None:
    """The webhook event type a change-log row is, or None when no webhook is told of it."""
    if event.kind == EventKind.message_created:
        return MESSAGE_RECEIVED if message is not None and message.direction == "in" else None
    if event.kind == EventKind.message_status:
        if event.status == "sent":
            return MESSAGE_SENT
        return MESSAGE_STATUS if event.status in ("delivered", "read", "failed") else None
    if event.kind == EventKind.store_status:
        return STORE_STATUS
    if event.kind == EventKind.conversation_bot_paused:
        return BOT_PAUSED
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def payload(
    kind: str, event: Event, message: Message | None, conversation: Conversation | None
) -> dict[str, Any]:
    data: dict[str, Any] = {"store_id": str(event.store_id)}
    if message is not None:
        data["message"] = {
            "id": str(message.id),
            "conversation_id": str(message.conversation_id),
            "chat_jid": conversation.chat_jid if conversation else None,
            "customer_name": conversation.customer_name if conversation else None,
            "direction": "inbound" if message.direction == "in" else "outbound",
            "wa_id": message.wa_id,
            "type": message.type,
            "text": message.text,
            "media": message.media,
            "status": event.status,
            "error": event.error,
            "reply_to_id": str(message.reply_to_id) if message.reply_to_id else None,
            "created_at": _iso(message.created_at),
            "wa_timestamp": _iso(message.wa_timestamp),
        }
    elif kind == STORE_STATUS:
        data["status"] = event.status
        data["reason"] = event.error
    elif kind == BOT_PAUSED:
        data["conversation_id"] = str(event.conversation_id)
        data["chat_jid"] = conversation.chat_jid if conversation else None
        data["bot_paused"] = event.status == "paused"
    return {"type": kind, "timestamp": event.created_at.isoformat(), "data": data}


def chain_of(event: Event) -> str:
    return str(event.conversation_id) if event.conversation_id is not None else STORE_CHAIN
