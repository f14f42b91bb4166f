"""The web page in a real headless Chromium (Debian's, at /usr/bin/chromium: `./dev test` installs it) against
a real all-in-one server (`python -m mostrador run`, simulator driver, its own embedded PostgreSQL and Redis
under a temporary directory)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from mostrador import as_root
from mostrador.embedded import free_port

CHROMIUM = Path(os.environ.get("MOSTRADOR_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
PASSWORD = "a long enough passphrase"
# Short codes, so that the expired-QR test waits seconds, not minutes: 2 codes, then the pairing times out.
QR_FIRST_SECONDS = 20
QR_NEXT_SECONDS = 6
# Each running server's data dir, to reach its embedded PostgreSQL (tests that move time in the database).
SERVER_DATA: dict[str, Path] = {}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    # Playwright's async API: its sync API keeps an event loop running in the main thread, which breaks every
    # pytest-asyncio fixture and test after it in the same run.
    assert CHROMIUM.exists(), f"the browser tests need Chromium at {CHROMIUM}: ./dev test installs it"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="mostrador-web-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
        "MOSTRADOR_SIM_QR_FIRST_SECONDS": str(QR_FIRST_SECONDS),
        "MOSTRADOR_SIM_QR_NEXT_SECONDS": str(QR_NEXT_SECONDS),
        "MOSTRADOR_SIM_QR_COUNT": "2",
    }
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mostrador", "run", "--port", str(port), "--data-dir", str(root / "data")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mostrador run was not ready in 120 s"
            time.sleep(0.2)
        SERVER_DATA[base] = root / "data"
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        for data_dir in root.iterdir():
            if data_dir.is_dir():
                as_root.remove_data(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def database_url(server: str) -> str:
    """The server's embedded PostgreSQL (its port is in postmaster.pid; it trusts local connections)."""
    pid_file = SERVER_DATA[server] / "postgres" / "postmaster.pid"
    port = pid_file.read_text().splitlines()[3].strip()
    return f"postgresql://postgres@127.0.0.1:{port}/mostrador"


class Owner:
    """A tenant signed up through the API, for the tests that do not test the sign-up form."""

    def __init__(self, base: str, email: str, token: str) -> None:
        self.base, self.email = base, email
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20)

    def store(self, name: str = "Kiosco") -> str:
        response = self.http.post("/v1/stores", json={"name": name})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def current_qr(self, store_id: str) -> str | None:
        response = self.http.get(f"/v1/stores/{store_id}/qr")
        return str(response.json()["code"]) if response.status_code == 200 else None

    def connected_store(self, name: str = "Kiosco") -> str:
        """A store linked through the API and the simulated phone's scan."""
        store_id = self.store(name)
        assert self.http.post(f"/v1/stores/{store_id}/link").status_code in (200, 202)
        deadline = time.monotonic() + 20
        while self.current_qr(store_id) is None:
            assert time.monotonic() < deadline, "no QR code in 20 s"
            time.sleep(0.1)
        assert self.http.post(f"/v1/sim/stores/{store_id}/scan", json={}).status_code == 202
        while self.http.get(f"/v1/stores/{store_id}").json()["status"] != "connected":
            assert time.monotonic() < deadline, "not connected in 20 s"
            time.sleep(0.1)
        return store_id

    def customer_writes(self, store_id: str, phone: str, text: str, name: str | None = None) -> None:
        body = {"from": phone, "text": text} | ({"name": name} if name else {})
        response = self.http.post(f"/v1/sim/stores/{store_id}/inbound", json=body)
        assert response.status_code == 202, response.text

    def phone_received(self, store_id: str, phone: str) -> list[str]:
        """What the simulated customer's phone got from the store."""
        response = self.http.get(f"/v1/sim/stores/{store_id}/outbound", params={"chat": phone})
        assert response.status_code == 200, response.text
        return [str(m["text"]) for m in response.json()["items"]]


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def owner(server: str) -> Iterator[Owner]:
    email = new_email()
    response = httpx.post(
        f"{server}/v1/auth/signup", json={"email": email, "password": PASSWORD, "business_name": "Kiosco"}
    )
    assert response.status_code == 201, response.text
    owner = Owner(server, email, response.json()["access_token"])
    yield owner
    owner.http.close()


async def log_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    """Through the page's own form, as a person would."""
    await page.goto(f"{base}/?lang=en")
    await page.get_by_label("Email").first.fill(email)
    await page.locator("#login-password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/app")


async def check_accessibility(page: Page, name: str) -> None:
    """axe-core (from npm, installed by ./dev into .tools/axe) in the page: no serious or critical violation."""
    assert AXE.exists(), f"axe-core is missing at {AXE}: ./dev test installs it"
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: " + "; ".join(bad)


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
