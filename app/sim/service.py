"""The simulator's controls: entries on the streams the session manager's simulator driver reads.

They are tenant-scoped like the stores they act on, so one tenant cannot scan, message or break another's.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import (
    phone_to_jid,
    sim_control_stream,
    sim_inbound_stream,
    sim_outbound_stream,
    sim_pairing_key,
)
from app.kit.errors import Conflict
from app.models import Tenant
from app.sim.schemas import FaultKind, OutboundMessage
from app.stores.service import store as store_service


class NoQrToScan(Conflict):
    code = "no_qr_to_scan"


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
        text: str,
        message_id: str | None,
        name: str | None,
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
            "text": text,
            "ts": str(int(time.time() * 1000)),
        }
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
                text=fields.get("text", ""),
                timestamp=datetime.fromtimestamp(int(fields["ts"]) / 1000, UTC),
            )
            for _entry_id, fields in entries
            if chat_jid is None or fields["chat"] == chat_jid
        ]

    async def fault(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str, kind: FaultKind
    ) -> None:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        await self._xadd(redis, sim_control_stream(store.id), {"kind": kind})

    async def _xadd(self, redis: Redis, stream: str, fields: dict[str, str]) -> None:
        entry: Any = fields  # redis-py types the fields mapping invariantly; a str -> str dict is valid
        await redis.xadd(stream, entry)


sim = SimService()
