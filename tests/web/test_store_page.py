"""The store owner's page in Chromium: sign up, create a store, link it by QR with the simulated phone, chat."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.web.conftest import (
    PASSWORD,
    SCREENSHOTS,
    Owner,
    check_accessibility,
    log_in,
    new_email,
    screenshot,
)

pytestmark = pytest.mark.slow


async def decode_qr(page: Page, name: str) -> str:
    """What the QR code on screen says, read from a screenshot of it by zxing-cpp (not by segno, which drew it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.locator("#qr").screenshot(path=str(path))
    found = zxingcpp.read_barcodes(Image.open(path))
    assert found, f"no QR code in {path}"
    return str(found[0].text)


async def shown_code_is_current(page: Page, owner: Owner, store_id: str, name: str) -> None:
    """The code the page shows is the one the API says is current; codes rotate, so a decode that straddles a
    rotation is tried again (the image must then follow the new code by itself)."""
    deadline = time.monotonic() + 15
    while True:
        before = owner.current_qr(store_id)
        await page.wait_for_function(
            "() => document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0"
        )
        decoded = await decode_qr(page, name)
        after = owner.current_qr(store_id)
        if before == after == decoded:
            return
        assert time.monotonic() < deadline, f"the page shows {decoded!r}, the API {before!r} then {after!r}"
        await asyncio.sleep(0.5)


async def test_sign_up_create_link_and_chat(page: Page, server: str) -> None:
    await page.goto(f"{server}/?lang=en")
    await check_accessibility(page, "home")
    await screenshot(page, "home")
    email = new_email()
    await page.get_by_label("Business name").fill("Panadería Sol")
    await page.locator("#signup-email").fill(email)
    await page.locator("#signup-password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_url(f"{server}/app")
    await expect(page.get_by_role("heading", name="Your stores")).to_be_visible()
    await check_accessibility(page, "dashboard")

    await page.get_by_label("Store name").fill("Sucursal Centro")
    await page.get_by_role("button", name="Create", exact=True).click()
    await page.wait_for_url(re.compile(r"/app/stores/[0-9a-f-]{36}$"))
    store_id = page.url.rsplit("/", 1)[1]
    await expect(page.get_by_role("heading", name="Sucursal Centro")).to_be_visible()
    await expect(page.locator("#status-badge")).to_have_text("Not linked")

    token = httpx.post(f"{server}/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    owner = Owner(server, email, token["access_token"])
    await page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    await page.get_by_role("button", name="Link WhatsApp").click()
    await expect(page.locator("#qr-box")).to_be_visible()
    await expect(page.get_by_text("WhatsApp → Linked devices → Link a device")).to_be_visible()
    await expect(page.locator("#countdown")).to_have_text(re.compile(r"The code changes in \d+ s"))
    await shown_code_is_current(page, owner, store_id, "qr")
    await check_accessibility(page, "store-linking")
    await screenshot(page, "store-linking")

    await page.get_by_role("button", name="Scan with the simulated phone").click()
    await expect(page.locator("#connected")).to_have_text(
        re.compile(r"Connected as \+54 9 11 \d{4}-\d{4}"), timeout=5000
    )
    await expect(page.locator("#qr-box")).to_be_hidden()
    await expect(page.locator("#status-badge")).to_have_text("Connected")
    assert await page.evaluate("window.__sameDocument") is True

    await page.get_by_label("Message", exact=True).fill("hola, ¿tienen medialunas?")
    await page.get_by_role("button", name="Send").click()
    conversations = page.locator("#conversations")
    await expect(conversations.locator(".from-customer")).to_contain_text(
        "hola, ¿tienen medialunas?", timeout=10000
    )
    # The echo bot (a new store's) answers in the simulated phone's chat and in the conversation view.
    await expect(page.locator("#sim-chat .from-store")).to_contain_text("medialunas", timeout=10000)
    await expect(conversations.locator(".from-store")).to_contain_text("medialunas", timeout=10000)
    await check_accessibility(page, "store-connected")
    await screenshot(page, "store-connected")

    await page.goto(f"{server}/app")
    await expect(page.locator(f'[data-store-id="{store_id}"] .badge')).to_have_text("Connected")
    owner.http.close()


async def test_pairing_code_instead_of_qr(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_role("button", name="Link WhatsApp").click()
    await page.get_by_text("Use phone number instead").click()
    await page.get_by_label("WhatsApp number (with country code)").fill("12")
    await page.get_by_role("button", name="Get a code").click()
    error = page.locator("#pairing-phone-error")
    await expect(error).to_contain_text("international format")  # next to the field, the API's own words
    await expect(page.locator("#pairing-phone")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("WhatsApp number (with country code)").fill("+54 9 11 5555-0101")
    await page.get_by_role("button", name="Get a code").click()
    await expect(page.locator("#pairing-code")).to_have_text(re.compile(r"^[0-9A-F]{8}$"), timeout=20000)
    await screenshot(page, "pairing-code")


async def test_expired_qr_then_retry(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_role("button", name="Link WhatsApp").click()
    await expect(page.locator("#qr-box")).to_be_visible()
    # The simulator's two codes last 20 + 6 s here; then the pairing times out.
    problem = page.locator("#problem-text")
    await expect(problem).to_have_text(
        "The code expired before it was scanned. Ask for a new one.", timeout=60000
    )
    await expect(page.locator("#qr-box")).to_be_hidden()
    await screenshot(page, "qr-expired")
    await page.get_by_role("button", name="Try again").click()
    await expect(page.locator("#qr-box")).to_be_visible(timeout=10000)
    await expect(page.locator("#problem")).to_be_hidden()
    await shown_code_is_current(page, owner, store_id, "qr-after-retry")


async def test_logout_from_the_phone_is_shown(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_role("button", name="Link WhatsApp").click()
    await expect(page.locator("#qr-box")).to_be_visible()
    await page.wait_for_function("() => document.getElementById('qr').naturalWidth > 0")
    await page.get_by_role("button", name="Scan with the simulated phone").click()
    await expect(page.locator("#connected")).to_be_visible(timeout=5000)
    await page.get_by_role("button", name="Log out from the phone").click()
    await expect(page.locator("#problem-text")).to_have_text(
        "WhatsApp was logged out from the phone. Link it again.", timeout=10000
    )
    await expect(page.locator("#connected")).to_be_hidden()
    await expect(page.get_by_role("button", name="Try again")).to_be_visible()
    await screenshot(page, "logged-out")


async def test_a_viewer_cannot_change_anything(browser: Browser, server: str, owner: Owner) -> None:
    store_id = owner.store("Solo lectura")
    email = new_email()
    invite = owner.http.post("/v1/invites", json={"email": email, "role": "viewer"})
    assert invite.status_code == 201, invite.text
    accepted = httpx.post(
        f"{server}/v1/invites/accept", json={"token": invite.json()["token"], "password": PASSWORD}
    )
    assert accepted.status_code in (200, 201), accepted.text

    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, email)
    await expect(page.get_by_text("Read only: your role cannot change anything.")).to_be_visible()
    await expect(page.get_by_role("button", name="Create", exact=True)).to_be_hidden()
    await page.goto(f"{server}/app/stores/{store_id}")
    await expect(page.get_by_role("heading", name="Solo lectura")).to_be_visible()
    await expect(page.get_by_text("Read only: your role cannot change anything.")).to_be_visible()
    for name in ("Link WhatsApp", "Scan with the simulated phone", "Send"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)
    # Not only hidden: the API refuses the viewer's write even with the session's CSRF token.
    status = await page.evaluate(
        """async (id) => (await fetch(`/v1/stores/${id}/link`, {method: 'POST', credentials: 'same-origin',
             headers: {'X-CSRF-Token': decodeURIComponent(document.cookie.match(/mostrador_csrf=([^;]+)/)[1])}}))
             .status""",
        store_id,
    )
    assert status == 403
    await check_accessibility(page, "store-viewer")
    await context.close()


async def test_spanish_by_accept_language_and_switch(browser: Browser, server: str) -> None:
    context = await browser.new_context(
        locale="es-AR", extra_http_headers={"Accept-Language": "es-AR,es;q=0.9"}
    )
    page = await context.new_page()
    await page.goto(server)
    await expect(page.get_by_role("heading", name="Crear una cuenta")).to_be_visible()
    assert await page.locator("html").get_attribute("lang") == "es"
    await check_accessibility(page, "home-es")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await page.goto(server)  # the choice is remembered
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await context.close()


async def test_usable_at_360_px(browser: Browser, server: str, owner: Owner) -> None:
    store_id = owner.store("Kiosco de la esquina con un nombre largo")
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_role("button", name="Link WhatsApp").click()
    await expect(page.locator("#qr-box")).to_be_visible()
    await page.wait_for_function("() => document.getElementById('qr').naturalWidth > 0")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing overflows sideways
    box = await page.locator("#qr").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    await screenshot(page, "store-360px")
    # Keyboard: on a fresh page the first Tab reaches the skip link, and it moves focus to the content.
    await page.reload()
    await expect(page.get_by_role("heading", name="Kiosco de la esquina con un nombre largo")).to_be_visible()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await context.close()
