"""The simulator's controls: entries on the streams the session manager's simulator driver reads.

They are tenant-scoped like the stores they act on, so one tenant cannot scan, message or break another's.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import (
    SIM_MEDIA_TTL_SECONDS,
    phone_to_jid,
    sim_control_stream,
    sim_inbound_stream,
    sim_media_key,
    sim_outbound_stream,
    sim_pairing_key,
)
from app.kit.errors import Conflict, MostradorError, NotFound
from app.models import Tenant
from app.sim.schemas import FaultKind, OutboundMessage, SimInboundMedia, SimOutboundMedia
from app.stores.service import store as store_service


class NoQrToScan(Conflict):
    code = "no_qr_to_scan"


class BadSimMedia(MostradorError):
    status_code = 422
    code = "invalid_media"


class SimMediaNotFound(NotFound):
    code = "media_not_found"


def random_phone() -> str:
    return f"+549115555{secrets.randbelow(10_000):04d}"


def new_message_id() -> str:
    # The shape of the ids WhatsApp gives messages sent from its own clients, like the simulator's.
    return "3EB0" + secrets.token_hex(8).upper()


class SimService:
    async def scan(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str, phone: str | None
    ) -> str:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        raw = await redis.get(sim_pairing_key(store.id))
        if raw is None:
            raise NoQrToScan(
                "no QR code is showing for this store, so there is nothing to scan: POST "
                f"/v1/stores/{store.id}/link, wait for the `qr` event (GET /v1/stores/{store.id}/events), "
                "then scan",
                details={"status": store.status, "desired_state": store.desired_state},
            )
        phone = phone or random_phone()
        # The code pins the scan to the QR code showing now: a scan of an old code is ignored, as on WhatsApp.
        code = json.loads(raw)["code"]
        await self._xadd(redis, sim_control_stream(store.id), {"kind": "scan", "phone": phone, "code": code})
        return phone

    async def inbound(
        self,
        session: AsyncSession,
        redis: Redis,
        *,
        tenant: Tenant,
        store_id: str,
        sender: str,
        text: str | None,
        message_id: str | None,
        name: str | None,
        media: SimInboundMedia | None = None,
        from_me: bool = False,
        lid: str | None = None,
        hide_phone: bool = False,
    ) -> str:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        message_id = message_id or new_message_id()
        # A LID-addressed chat: the LID, and the number beside it unless the network hides it.
        addressed = {"from": f"{lid}@lid"} if lid else {"from": phone_to_jid(sender)}
        if lid and not hide_phone:
            addressed["from_alt"] = phone_to_jid(sender)
        fields = {
            "id": message_id,
            **addressed,
            "name": name or "",
            "text": text or "",
            "ts": str(int(time.time() * 1000)),
        }
        if media is not None:
            try:
                data = base64.b64decode(media.data_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadSimMedia("`media.data_base64` is not base64") from exc
            # The customer's phone uploads the file to the media servers, then sends the message.
            token = f"in-{store.id}-{message_id}"
            await redis.set(sim_media_key(token), base64.b64encode(data).decode(), ex=SIM_MEDIA_TTL_SECONDS)
            fields.update(
                type=media.type,
                mime=media.mime,
                caption=media.caption or "",
                file_name=media.file_name or "",
                size=str(len(data)),
                voice_note="1" if media.voice_note else "",
                media=token,
                text=media.caption or "",
            )
        if from_me:
            fields["from_me"] = "1"
            if store.phone_number:
                fields["sender"] = phone_to_jid(store.phone_number)
        await self._xadd(redis, sim_inbound_stream(store.id), fields)
        return message_id

    async def outbound(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str, chat_jid: str | None
    ) -> list[OutboundMessage]:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        # The API's client decodes responses to str; redis-py's types cannot know that.
        entries: list[tuple[str, dict[str, str]]] = await redis.xrange(sim_outbound_stream(store.id))  # type: ignore[assignment]
        return [
            OutboundMessage(
                id=fields["id"],
                chat=fields["chat"],
                type=fields.get("type", "text"),
                text=fields.get("text", ""),
                timestamp=datetime.fromtimestamp(int(fields["ts"]) / 1000, UTC),
                media=_outbound_media(store.id, fields) if fields.get("media") else None,
            )
            for _entry_id, fields in entries
            if chat_jid is None or fields["chat"] == chat_jid
        ]

    async def outbound_media(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str, message_id: str
    ) -> tuple[bytes, str]:
        """The bytes of a media message the store sent, and their MIME type."""
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        entries: list[tuple[str, dict[str, str]]] = await redis.xrange(sim_outbound_stream(store.id))  # type: ignore[assignment]
        for _entry_id, fields in entries:
            if fields["id"] == message_id and fields.get("media"):
                raw = await redis.get(sim_media_key(fields["media"]))
                if raw is not None:
                    return base64.b64decode(raw), fields.get("mime") or "application/octet-stream"
        raise SimMediaNotFound(f"the store sent no media message {message_id} (or it expired)")

    async def fault(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str, kind: FaultKind
    ) -> None:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        await self._xadd(redis, sim_control_stream(store.id), {"kind": kind})

    async def _xadd(self, redis: Redis, stream: str, fields: dict[str, str]) -> None:
        entry: Any = fields  # redis-py types the fields mapping invariantly; a str -> str dict is valid
        await redis.xadd(stream, entry)


def _outbound_media(store_id: object, fields: dict[str, str]) -> SimOutboundMedia:
    return SimOutboundMedia(
        mime=fields.get("mime", ""),
        caption=fields.get("caption") or None,
        file_name=fields.get("file_name") or None,
        size=int(fields.get("size") or 0),
        sha256=fields.get("sha256", ""),
        url=f"/v1/sim/stores/{store_id}/outbound/{fields['id']}/media",
    )


sim = SimService()
