"""schemathesis against the running app: every route of its OpenAPI document, authenticated, `--checks all`.

The real all-in-one server (`mostrador run`: API, session manager and worker, simulator driver) runs on this
test's PostgreSQL database and Redis number. The test signs a tenant up and makes, through the API, one of
each object a path names (a store linked through the simulator, with a conversation and a message, an API
key, an invite, an onboarding link), so that path parameters reach real objects (`schemathesis.toml`). Then
schemathesis runs as a subprocess with a fixed seed and `--max-examples`, and any failure fails the test
with schemathesis's own report: no 5xx, every answer documented and matching its schema, schema-valid
requests accepted and schema-violating ones refused, `Allow` on 405, auth not ignored.

Run it alone with `pytest tests/api/test_schemathesis.py` (about 2-3 minutes); `MOSTRADOR_FUZZ_EXAMPLES`
and `MOSTRADOR_FUZZ_SEED` change the budget and the seed.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from schemathesis.core.file_samples import FILE_SAMPLES
from sqlalchemy.ext.asyncio import AsyncEngine

from mostrador.embedded import free_port

# Two to three minutes on an idle development machine; a loaded one takes longer.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PASSWORD = "a long enough passphrase"
SEED = int(os.environ.get("MOSTRADOR_FUZZ_SEED", "20261206"))
MAX_EXAMPLES = int(os.environ.get("MOSTRADOR_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def server(
    database_url: str, redis_url: str, tmp_path: Path, engine: AsyncEngine, redis: Redis
) -> Iterator[str]:
    """`mostrador run` on the test database (migrated by the fixture) and Redis number; `engine` and `redis`
    are asked for so that both are emptied after the test."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
        "MOSTRADOR_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        # The hooks log in for each logout case; the fuzzer's own wrong logins count too.
        "MOSTRADOR_LOGIN_LIMIT_PER_ACCOUNT": "100000",
        "MOSTRADOR_LOGIN_LIMIT_PER_IP": "100000",
        # A webhook's host must not be a private address, which depends on DNS and no schema can state (a 422
        # `unsafe_url`, tested in tests/webhooks): lifted, so that a schema-valid URL is a valid one; the
        # run's own webhook points at a closed local port.
        "MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mostrador",
                "run",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _ready(base), 120, "mostrador run was not ready", lambda: _alive(log_path, proc))
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_every_route_conforms_to_the_openapi_document(server: str, tmp_path: Path) -> None:
    env = os.environ | _objects(server) | {"MOSTRADOR_FUZZ_BASE_URL": server, "PYTHONPATH": str(ROOT)}
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{server}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    # In tmp_path: schemathesis leaves its files (.schemathesis/) in its working directory.
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1100)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # A run that tested nothing would pass too: make sure it went over the document.
    assert "Tested:" in report and "No operations" not in report, report
    print(report[report.find("SUMMARY") :])  # with -rP / -s: how many operations and cases


def _objects(base: str) -> dict[str, str]:
    """Sign a tenant up and make one of each object that a path names; their ids, for schemathesis.toml."""
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        signed_up = _ok(
            anonymous.post(
                "/v1/auth/signup", json={"email": email, "password": PASSWORD, "business_name": "Kiosco"}
            )
        )
    token = signed_up["access_token"]
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        store_id = _ok(http.post("/v1/stores", json={"name": "Kiosco"}))["id"]
        # Linked through the simulator, and one customer message handled by the default bot: a conversation
        # and messages to read.
        _ok(http.post(f"/v1/stores/{store_id}/link"))
        _wait(lambda: http.get(f"/v1/stores/{store_id}/qr").status_code == 200, 60, "no QR code")
        _ok(http.post(f"/v1/sim/stores/{store_id}/scan", json={"phone": "+5491155550000"}))
        _wait(lambda: http.get(f"/v1/stores/{store_id}").json()["status"] == "connected", 60, "not connected")
        customer = {"from": "+5491166660000", "text": "hola", "name": "Cliente"}
        _ok(http.post(f"/v1/sim/stores/{store_id}/inbound", json=customer))
        _wait(lambda: _first(http, f"/v1/stores/{store_id}/messages") is not None, 60, "no message")
        # A photo from the customer: a message with media to download (`.../messages/{id}/media`).
        photo = {
            "type": "image",
            "mime": "image/png",
            "data_base64": base64.b64encode(FILE_SAMPLES["png"]).decode(),
        }
        photo_id = _ok(http.post(f"/v1/sim/stores/{store_id}/inbound", json=customer | {"media": photo}))[
            "id"
        ]
        _wait(lambda: _media_ready(http, store_id, photo_id) is not None, 60, "no downloaded photo")
        message = _media_ready(http, store_id, photo_id)
        conversation = _first(http, f"/v1/stores/{store_id}/conversations")
        assert message is not None and conversation is not None
        # An upload to send (a PNG), and a webhook (to a closed port) with a delivery: a replay of the last
        # hour queues the events above again.
        upload = _ok(
            http.post("/v1/uploads", content=FILE_SAMPLES["png"], headers={"Content-Type": "image/png"})
        )
        webhook = _ok(
            http.post(
                f"/v1/stores/{store_id}/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "events": ["message.received"]},
            )
        )
        hooks = f"/v1/stores/{store_id}/webhooks/{webhook['id']}"
        now = datetime.now(UTC)
        window = {
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(),
        }
        assert _ok(http.post(f"{hooks}/replay", json=window))["deliveries"] >= 1
        delivery = _first(http, f"{hooks}/deliveries")
        assert delivery is not None
        api_key = _ok(http.post("/v1/api-keys", json={"name": "fuzz"}))
        invite = _ok(http.post("/v1/invites", json={"email": f"viewer-{email}", "role": "viewer"}))
        # Two onboarding links: the fuzzer may revoke the first (DELETE), while the token routes use the second.
        link = _ok(http.post(f"/v1/stores/{store_id}/onboarding-links", json={}))
        onboarding = _ok(http.post(f"/v1/stores/{store_id}/onboarding-links", json={}))
        # A second user, whose tokens the logout cases end (a logout ends every token of its user).
        leaver = _ok(http.post("/v1/invites", json={"email": f"leaver-{email}", "role": "admin"}))
        _ok(http.post("/v1/invites/accept", json={"token": leaver["token"], "password": PASSWORD}))
        # A third user, whose role the fuzzer may change and whom it may remove (never the owner or the leaver).
        member = _ok(http.post("/v1/invites", json={"email": f"member-{email}", "role": "viewer"}))
        _ok(http.post("/v1/invites/accept", json={"token": member["token"], "password": PASSWORD}))
        member_id = next(
            m["id"] for m in _ok(http.get("/v1/users"))["items"] if m["email"] == f"member-{email}"
        )
    return {
        "MOSTRADOR_FUZZ_LEAVER_EMAIL": f"leaver-{email}",
        "MOSTRADOR_FUZZ_PASSWORD": PASSWORD,
        "MOSTRADOR_FUZZ_TOKEN": token,
        "MOSTRADOR_FUZZ_STORE_ID": store_id,
        "MOSTRADOR_FUZZ_MESSAGE_ID": str(message["id"]),
        "MOSTRADOR_FUZZ_CONVERSATION_ID": str(conversation["id"]),
        "MOSTRADOR_FUZZ_API_KEY_ID": str(api_key["id"]),
        "MOSTRADOR_FUZZ_INVITE_ID": str(invite["id"]),
        "MOSTRADOR_FUZZ_USER_ID": str(member_id),
        "MOSTRADOR_FUZZ_LINK_ID": str(link["id"]),
        "MOSTRADOR_FUZZ_UPLOAD_ID": str(upload["id"]),
        "MOSTRADOR_FUZZ_WEBHOOK_ID": str(webhook["id"]),
        "MOSTRADOR_FUZZ_DELIVERY_ID": str(delivery["id"]),
        "MOSTRADOR_FUZZ_ONBOARDING_TOKEN": onboarding["url"].rstrip("/").rsplit("/", 1)[-1],
    }


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def _first(http: httpx.Client, path: str) -> dict[str, Any] | None:
    items: list[dict[str, Any]] = _ok(http.get(path))["items"]
    return items[0] if items else None


def _media_ready(http: httpx.Client, store_id: str, whatsapp_id: str) -> dict[str, Any] | None:
    """The message of this WhatsApp id once its media is downloaded (its `media.download_url` is set)."""
    items: list[dict[str, Any]] = _ok(http.get(f"/v1/stores/{store_id}/messages"))["items"]
    for item in items:
        media = item.get("media")
        if item.get("whatsapp_id") == whatsapp_id and media and media.get("download_url"):
            return item
    return None


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(log_path: Path, proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]


def _wait(
    condition: Callable[[], bool], seconds: float, what: str, check: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if check is not None:
            check()
        assert time.monotonic() < deadline, f"{what} in {seconds} s"
        time.sleep(0.2)
