"""The simulated network hands a device's undelivered messages to its next connection, also across processes.

A connection closed while its driver's blocking read is in flight must not leave a message in that read: the
read would take it (delivered to the device, so pending) and drop it, after the next connection, in another
process, had already replayed what was pending. Seen as one message never saved in the SIGKILL reliability
test, after the stores' first hand-over between the two session managers.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from redis.asyncio import Redis

from app.config import Settings
from app.contracts import sim_device_key, sim_inbound_stream
from sessions.drivers.base import Connected, Event, InboundBatch
from sessions.drivers.simulator import SimulatorDriver

DEVICE = "5491100000001:11@s.whatsapp.net"
CUSTOMER = "5491122223333@s.whatsapp.net"


async def test_a_message_sent_during_a_hand_over_reaches_the_next_connection(
    settings: Settings, redis_url: str, redis: Redis
) -> None:
    store_id = uuid.uuid4()
    await redis.set(
        sim_device_key(DEVICE), json.dumps({"store_id": str(store_id), "phone": "+5491100000001"})
    )
    # Two drivers: two session managers' views of the one network.
    old, new = SimulatorDriver(settings, redis_url), SimulatorDriver(settings, redis_url)
    await old.start()
    await new.start()
    received: list[str] = []
    connected = asyncio.Event()

    async def on_new_event(event: Event) -> None:
        if isinstance(event, Connected):
            connected.set()
        if isinstance(event, InboundBatch):
            received.extend(message.text or "" for message in event.messages)

    async def ignore(event: Event) -> None:
        return None

    try:
        for round_ in range(5):
            first = old.connection(store_id, ignore)
            await first.start(device_jid=DEVICE)
            await asyncio.sleep(0.05)  # the old driver's blocking read now names this device's queue
            await first.stop()  # handed over: the old process stops its connection, then the new one starts
            connected.clear()
            second = new.connection(store_id, on_new_event)
            await second.start(device_jid=DEVICE)
            await asyncio.wait_for(connected.wait(), 5)
            text = f"sent during hand-over {round_}"
            fields = {"id": f"H{round_}", "from": CUSTOMER, "name": "", "text": text, "ts": "1764300000000"}
            await redis.xadd(sim_inbound_stream(store_id), fields)  # type: ignore[arg-type]
            for _ in range(100):
                if text in received:
                    break
                await asyncio.sleep(0.05)
            assert text in received, f"round {round_}: the message stayed with the closed connection's read"
            await second.stop()
    finally:
        await old.close()
        await new.close()
