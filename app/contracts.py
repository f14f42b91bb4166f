"""The contracts between the api, session-manager and worker processes: Redis key names and payloads.

All three processes import this module and nothing else of each other; docs/architecture.md describes each key.
"""

from __future__ import annotations

import json
import uuid
import zlib
from datetime import datetime
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskiq.message import TaskiqMessage

# Consumer groups: workers read the inbound streams, session managers the outboxes.
MESSAGES_GROUP = "workers"
OUTBOX_GROUP = "sessions"
# Task name of an inbound stream entry (a taskiq message, so that a taskiq worker can consume it).
INBOUND_TASK = "inbound.handle"
# The API publishes a store id here after committing a change of the store's desired state.
STORES_CHANGED_CHANNEL = "stores:changed"
# Taken (SET NX PX, 90 % of `media_retention_check_seconds`, never released) by the worker that runs the media
# retention round: one worker per interval (workers/retention.py).
MEDIA_RETENTION_LOCK_KEY = "lock:media-retention"


# --- Redis Cluster hash tags ------------------------------------------------------------------------------
# On a Redis Cluster (`redis+cluster://`, app/kit/redis.py) a store's streams, leases and simulated connection
# carry a hash tag before their usual name, `{s<bucket>}messages:store-<id>`: the store's bucket (crc32 of its
# id, modulo HASH_TAG_BUCKETS) picks one of HASH_TAG_BUCKETS tags, each chosen so that its slot falls in its own
# 1/HASH_TAG_BUCKETS of the slot range (so an evenly split cluster gets an even share of buckets). The keys of one
# bucket share a slot, so one XREADGROUP reads all owned streams of a bucket and one script renews all its leases
# (docs/contracts.md, "Redis Cluster"). On a single Redis there is no tag: the names are unchanged.
HASH_TAG_BUCKETS = 32
_hash_tags = False


def _bucket_tag(bucket: int) -> str:
    from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

    width = REDIS_CLUSTER_HASH_SLOTS // HASH_TAG_BUCKETS
    n = 0
    while key_slot(f"s{bucket}.{n}".encode()) // width != bucket:
        n += 1
    return f"{{s{bucket}.{n}}}"


_BUCKET_TAGS = [_bucket_tag(bucket) for bucket in range(HASH_TAG_BUCKETS)]


def use_hash_tags(enabled: bool) -> None:
    """Tag per-store key names for a Redis Cluster (called by `app.kit.redis.create_redis` for a cluster URL)."""
    global _hash_tags
    _hash_tags = enabled


def store_tag(store_id: uuid.UUID | str) -> str:
    """The hash tag of a store's keys on a cluster (`{s<bucket>.<n>}`), "" on a single Redis."""
    if not _hash_tags:
        return ""
    return _BUCKET_TAGS[zlib.crc32(str(store_id).encode()) % HASH_TAG_BUCKETS]


def messages_stream(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}messages:store-{store_id}"


def messages_dlq(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}messages:store-{store_id}:dlq"


def outbox_stream(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}outbox:store-{store_id}"


def store_events_channel(store_id: uuid.UUID | str) -> str:
    return f"store:{store_id}:events"


def store_qr_key(store_id: uuid.UUID | str) -> str:
    return f"store:{store_id}:qr"


def store_pairing_code_key(store_id: uuid.UUID | str) -> str:
    return f"store:{store_id}:pairing-code"


def sessions_lease_key(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}lease:sessions:store-{store_id}"


def worker_lease_key(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}lease:worker:store-{store_id}"


def lease_store_id(key: str) -> uuid.UUID:
    """The store a lease key covers: `[{tag}]lease:<sessions|worker>:store-<id>` -> `<id>`."""
    return uuid.UUID(key.split(":store-", 1)[1])


async def create_store_streams(redis: Redis, store_id: uuid.UUID | str) -> None:
    """Create a store's streams with their consumer groups. Not needed by the processes: each stream's owner
    creates its group when it takes the store (app/kit/streams.py); kept for the API until it stops calling it."""
    for stream, group in (
        (messages_stream(store_id), MESSAGES_GROUP),
        (outbox_stream(store_id), OUTBOX_GROUP),
    ):
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def inbound_entry(
    *,
    message_id: uuid.UUID,
    chat_jid: str,
    wa_id: str,
    conversation_id: uuid.UUID | None = None,
    seq: int | None = None,
) -> dict[str, str]:
    """Fields of a `messages:store-<id>` entry: a taskiq message, the way taskiq-redis's stream broker writes it.
    `conversation_id` and `seq` (the row's place in its chat), when given, spare the worker a lookup."""
    kwargs: dict[str, str | int] = {"message_id": str(message_id), "chat_jid": chat_jid, "wa_id": wa_id}
    if conversation_id is not None and seq is not None:
        kwargs |= {"conversation_id": str(conversation_id), "seq": seq}
    message = TaskiqMessage(
        task_id=uuid.uuid4().hex,
        task_name=INBOUND_TASK,
        labels={},
        labels_types=None,
        args=[],
        kwargs=kwargs,
    )
    return {"data": message.model_dump_json()}


def outbox_entry(*, message_id: uuid.UUID, chat_jid: str) -> dict[str, str]:
    return {"message_id": str(message_id), "chat_jid": chat_jid}


def qr_event(code: str, expires_at: datetime) -> str:
    return json.dumps({"type": "qr", "code": code, "expires_at": expires_at.isoformat()})


# Why a store is down, as a code a client can branch on; the reason's text is for people and may change. The
# drivers write these texts from the constants below, so the code follows from the status and the reason.
REASON_QR_TIMEOUT = "QR code not scanned in time"
REASON_TEMPORARY_BAN = "WhatsApp temporarily banned this number"
StatusReasonCode = Literal["qr_expired", "banned", "logged_out", "connection_error"]


def status_reason_code(status: str, reason: str | None) -> StatusReasonCode | None:
    """`qr_expired` (no scan in time), `banned` (WhatsApp banned the number), `logged_out` (unlinked from the
    phone), `connection_error` (any other error), or None for a store that is not down."""
    if status == "logged_out":
        return "logged_out"
    if status != "error":
        return None
    if reason and reason.startswith(REASON_QR_TIMEOUT):
        return "qr_expired"
    if reason and reason.startswith(REASON_TEMPORARY_BAN):
        return "banned"
    return "connection_error"


def status_event(status: str, *, phone_number: str | None, reason: str | None) -> str:
    return json.dumps(
        {
            "type": "status",
            "status": status,
            "phone_number": phone_number,
            "reason": reason,
            "reason_code": status_reason_code(status, reason),
        }
    )


def pairing_code_event(code: str, expires_at: datetime) -> str:
    return json.dumps({"type": "pairing_code", "code": code, "expires_at": expires_at.isoformat()})


def parse_event(raw: str | bytes) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(raw)
    return event


# --- The simulator's network (MOSTRADOR_WHATSAPP_DRIVER=simulator) -------------------------------------------
# The session manager's simulator driver plays WhatsApp's servers and the phones; the API's /v1/sim endpoints
# play the customers and the store owner's phone. They meet only in these keys.
SIM_DEVICE_GROUP = "device"  # consumer group of the simulated device on its inbound stream
SIM_CONFLICTS_KEY = "sim:conflicts"  # a store seen with two live connections at once (must stay empty)


def sim_pairing_key(store_id: uuid.UUID | str) -> str:
    """JSON {code, expires_at} while a QR code is showing (expires with it): what a scan pairs with."""
    return f"sim:store-{store_id}:pairing"


def sim_control_stream(store_id: uuid.UUID | str) -> str:
    """Entries {kind: scan|disconnect|logout|send_failure|download_failure, phone?, code?, crash_starts?}: the
    phone's and the network's actions (`crash_starts` with a disconnect: that many reconnects then fail
    unexpectedly; `download_failure`: the next media download fails, retryably)."""
    return f"sim:store-{store_id}:control"


def sim_inbound_stream(store_id: uuid.UUID | str) -> str:
    """Entries {id, from (chat JID), name, text, ts (ms)}, and for media {type, mime, caption, file_name, size,
    voice_note, media (a `sim_media_key` token)}: customers' messages waiting for the device, kept until the
    device acknowledges them (like WhatsApp's offline queue)."""
    return f"{store_tag(store_id)}sim:store-{store_id}:inbound"


def sim_outbound_stream(store_id: uuid.UUID | str) -> str:
    """Entries {id, chat, text, ts (ms)}, and for media {type, mime, caption, file_name, size, sha256, media (a
    `sim_media_key` token)}: what the store sent, in the order the network accepted it."""
    return f"sim:store-{store_id}:outbound"


SIM_MEDIA_TTL_SECONDS = 7 * 86400  # WhatsApp's servers keep media for a while, then it cannot be downloaded


def sim_media_key(token: str) -> str:
    """Base64 of a media file on the simulated network's "media servers" (inbound: the customer's upload, a
    store's download; outbound: what the store uploaded). Expires after SIM_MEDIA_TTL_SECONDS."""
    return f"sim:media:{token}"


def sim_connection_key(store_id: uuid.UUID | str) -> str:
    """Held (with a short TTL, refreshed) by the one live simulated connection of a store."""
    return f"{store_tag(store_id)}sim:store-{store_id}:connection"


def sim_device_key(device_jid: str) -> str:
    """JSON {store_id, phone} of a linked simulated device; deleted on logout."""
    return f"sim:device:{device_jid}"


def phone_to_jid(phone: str) -> str:
    """`+54 9 11 5555-0000` -> `5491155550000@s.whatsapp.net`."""
    return "".join(ch for ch in phone if ch.isdigit()) + "@s.whatsapp.net"


def jid_to_phone(jid: str) -> str:
    """`5491155550000:12@s.whatsapp.net` -> `+5491155550000`."""
    return "+" + jid.split("@", 1)[0].split(":", 1)[0]


# --- Webhooks (app/webhooks, workers/webhooks) ----------------------------------------------------------------
# `webhooks:store-<id>`: triggers of deliveries, taskiq messages for the task `webhooks.deliver` (kwargs
# `delivery_id` and `chain`, "<webhook id>:<conversation id | store>"), read by the holder of
# `lease:webhooks:store-<id>` in one lane per chain. PostgreSQL (`webhook_deliveries`) is the record: an entry
# only says "look at this chain"; the relay re-adds what is due.
WEBHOOKS_GROUP = "webhooks"
WEBHOOK_TASK = "webhooks.deliver"


def webhooks_stream(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}webhooks:store-{store_id}"


def webhooks_lease_key(store_id: uuid.UUID | str) -> str:
    return f"{store_tag(store_id)}lease:webhooks:store-{store_id}"


def webhook_entry(*, delivery_id: uuid.UUID, chain: str) -> dict[str, str]:
    message = TaskiqMessage(
        task_id=uuid.uuid4().hex,
        task_name=WEBHOOK_TASK,
        labels={},
        labels_types=None,
        args=[],
        kwargs={"delivery_id": str(delivery_id), "chain": chain},
    )
    return {"data": message.model_dump_json()}


def webhook_disabled_event(webhook_id: uuid.UUID | str, url: str, reason: str) -> str:
    """On `store:<id>:events`: a webhook turned itself off after failing for its whole retry window."""
    return json.dumps(
        {"type": "webhook_disabled", "webhook_id": str(webhook_id), "url": url, "reason": reason}
    )
