"""`mostrador run` in production mode, end to end: the three processes' metrics move under a short load, the
logs are JSON lines that name the store and carry no secret and no customer's text, and SIGTERM ends it all
with exit code 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from mostrador.embedded import free_port
from tests.ops.helpers import Samples, families, free_port_pair, scrape, start, value, wait_status

pytestmark = pytest.mark.slow

SECRET_KEY = "ops-test-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "Membrillo-Secreto-4471"
MARKER = "ciruela7391"  # in every customer's text; must never reach the logs
CHATS, PER_CHAT = 4, 6


async def _wait_until(check: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_all_in_one_metrics_move_logs_stay_clean_and_sigterm_exits_0(
    database_url: str, redis_url: str, tmp_path: Path, engine: object, redis: object
) -> None:
    api_port, ops_port = free_port(), free_port_pair()
    api, sessions, worker = (
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{ops_port}",
        f"http://127.0.0.1:{ops_port + 1}",
    )
    log_path = tmp_path / "run.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MOSTRADOR_ENV": "production",
        "MOSTRADOR_SECRET_KEY": SECRET_KEY,
        "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
        "MOSTRADOR_LOG_LEVEL": "INFO",
        "MOSTRADOR_OPS_PORT": str(ops_port),
        "MOSTRADOR_SIM_RECEIPT_DELAY_MS": "50",
        "MOSTRADOR_SHUTDOWN_GRACE_SECONDS": "5",
    }
    proc = start(log_path, env, "run", "--port", str(api_port), "--data-dir", str(tmp_path))
    try:
        for url in (api, sessions, worker):
            await wait_status(f"{url}/readyz", 200, proc=proc)
        idle = {
            name: await scrape(url)
            for name, url in (("api", api), ("sessions", sessions), ("worker", worker))
        }
        _check_families(idle)

        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            secrets = await _sign_up_and_pair(http)
            store_id, key = secrets["store_id"], secrets["api_key"]
            keyed = {"Authorization": f"Bearer {key}"}
            for n in range(PER_CHAT):
                for chat in range(CHATS):
                    response = await http.post(
                        f"/v1/sim/stores/{store_id}/inbound",
                        json={"from": f"+5491155{chat:06d}", "text": f"{MARKER} pedido {chat}-{n}"},
                        headers=keyed,
                    )
                    assert response.status_code == 202, response.text
            total = CHATS * PER_CHAT

            async def replied() -> bool:
                response = await http.get(f"/v1/sim/stores/{store_id}/outbound", headers=keyed)
                return len(response.json()["items"]) >= total

            await _wait_until(replied, "every message answered")

        async def receipts_counted() -> bool:
            found = await scrape(sessions)
            return value(found, "mostrador_messages_total", direction="out", status="read") >= total

        await _wait_until(receipts_counted, "read receipts counted")
        moved = {
            name: await scrape(url)
            for name, url in (("api", api), ("sessions", sessions), ("worker", worker))
        }
        _check_moved(idle, moved, total)
    finally:
        proc.send_signal(signal.SIGTERM)  # what a service manager sends
        children = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
        asked = time.monotonic()
        code = proc.wait(60)
    stopped_in = time.monotonic() - asked
    assert code == 0, log_path.read_text()[-3000:]
    assert stopped_in < 5 + 10, stopped_in  # the grace, and then some for the embedded-free stop
    assert not [
        pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    _check_logs(log_path.read_text(), secrets, store_id)


def _check_families(scrapes: dict[str, Samples]) -> None:
    expected = {
        "api": {"mostrador_http_requests_total", "mostrador_http_request_seconds_count"},
        "sessions": {
            "mostrador_messages_total",
            "mostrador_stream_lag_entries",
            "mostrador_stream_pending_entries",
            "mostrador_sessions",
            "mostrador_reconnects_total",
            "mostrador_sends_paced_total",
            "mostrador_sends_failed_total",
        },
        "worker": {
            "mostrador_messages_total",
            "mostrador_stream_lag_entries",
            "mostrador_stream_pending_entries",
            "mostrador_handling_seconds_bucket",
            "mostrador_webhook_deliveries_total",
            "mostrador_dlq_entries",
        },
    }
    for name, found in scrapes.items():
        missing = expected[name] | {"process_resident_memory_bytes", "process_cpu_seconds_total"}
        assert not missing - families(found), (name, missing - families(found))
        # Bounded labels: no store id anywhere, a fixed set of statuses.
        assert not any(label == "store_id" for _, labels in found for label, _ in labels)


async def _sign_up_and_pair(http: httpx.AsyncClient) -> dict[str, str]:
    """A tenant signs up and logs in with a password, makes an API key, and links a store with it."""
    signup = await http.post(
        "/v1/auth/signup",
        json={"email": "ops@example.com", "password": PASSWORD, "business_name": "Verdulería"},
    )
    assert signup.status_code == 201, signup.text
    login = await http.post("/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    created = await http.post(
        "/v1/api-keys", json={"name": "ops"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    keyed = {"Authorization": f"Bearer {key}"}
    store = await http.post("/v1/stores", json={"name": "Verdulería Ops"}, headers=keyed)
    assert store.status_code == 201, store.text
    store_id = store.json()["id"]
    assert (await http.post(f"/v1/stores/{store_id}/link", headers=keyed)).status_code == 202

    async def qr_showing() -> bool:
        return (await http.get(f"/v1/stores/{store_id}/qr", headers=keyed)).status_code == 200

    await _wait_until(qr_showing, "a QR code")
    assert (await http.post(f"/v1/sim/stores/{store_id}/scan", json={}, headers=keyed)).status_code == 202

    async def connected() -> bool:
        return (await http.get(f"/v1/stores/{store_id}", headers=keyed)).json()["status"] == "connected"

    await _wait_until(connected, "the store connected")
    return {
        "store_id": store_id,
        "api_key": key,
        "access_token": token,
        "refresh_or_signup_token": signup.json()["access_token"],
    }


def _check_moved(idle: dict[str, Samples], moved: dict[str, Samples], total: int) -> None:
    def grew(process: str, name: str, **labels: str) -> float:
        return value(moved[process], name, **labels) - value(idle[process], name, **labels)

    lines = {
        "sessions in/received": grew(
            "sessions", "mostrador_messages_total", direction="in", status="received"
        ),
        "sessions out/sent": grew("sessions", "mostrador_messages_total", direction="out", status="sent"),
        "sessions out/delivered": grew(
            "sessions", "mostrador_messages_total", direction="out", status="delivered"
        ),
        "sessions out/read": grew("sessions", "mostrador_messages_total", direction="out", status="read"),
        "worker in/handled": grew("worker", "mostrador_messages_total", direction="in", status="handled"),
        "worker handling count": grew("worker", "mostrador_handling_seconds_count"),
        "api POST inbound 202": grew(
            "api",
            "mostrador_http_requests_total",
            method="POST",
            route="/v1/sim/stores/{store_id}/inbound",
            status="202",
        ),
    }
    print(
        json.dumps(
            {
                "metrics_moved": lines,
                "sessions_connected": value(moved["sessions"], "mostrador_sessions", status="connected"),
                "handling_seconds_sum": grew("worker", "mostrador_handling_seconds_sum"),
            }
        )
    )
    assert lines["sessions in/received"] == total
    assert lines["worker in/handled"] == total and lines["worker handling count"] == total
    assert lines["sessions out/sent"] == total
    assert lines["sessions out/delivered"] >= total and lines["sessions out/read"] >= total
    assert lines["api POST inbound 202"] == total
    assert value(moved["sessions"], "mostrador_sessions", status="connected") == 1
    # Everything was handled and sent: nothing is left pending on the streams.
    assert value(moved["worker"], "mostrador_stream_pending_entries", stream="messages") == 0
    assert value(moved["worker"], "mostrador_dlq_entries") == 0


def _check_logs(text: str, secrets: dict[str, str], store_id: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line[:300]}") from None
    leaked = [
        (name, line[:200])
        for line in lines
        for name, secret in [
            ("password", PASSWORD),
            ("secret key", SECRET_KEY),
            ("customer text", MARKER),
            *[(name, value) for name, value in secrets.items() if name != "store_id"],
        ]
        if secret in line
    ]
    assert not leaked, leaked
    # The lines about the store name it: the store's status changes and the requests on its routes.
    status_lines = [r for r in records if r.get("event") == "store status"]
    assert status_lines and all(r.get("store_id") == store_id for r in status_lines)
    store_requests = [
        r for r in records if r.get("event") == "request" and "{store_id}" in r.get("route", "")
    ]
    assert store_requests and all(r.get("store_id") == store_id for r in store_requests)
    assert all("level" in r and "timestamp" in r for r in records)
