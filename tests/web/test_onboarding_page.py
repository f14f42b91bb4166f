"""The onboarding link page: opens without login, shows the QR code, and no QR code once revoked or used."""

from __future__ import annotations

import contextlib
import uuid

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.web.conftest import Owner, check_accessibility, database_url, log_in, screenshot
from tests.web.test_store_page import shown_code_is_current

pytestmark = pytest.mark.slow


def _link(owner: Owner, store_id: str) -> dict[str, str]:
    response = owner.http.post(f"/v1/stores/{store_id}/onboarding-links", json={})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_link_page_opens_without_login_and_ends_when_connected(
    browser: Browser, server: str, owner: Owner
) -> None:
    store_id = owner.store("Ferretería Norte")
    link = _link(owner, store_id)
    context = await browser.new_context()  # no cookie: nobody is signed in
    page = await context.new_page()
    await page.goto(link["url"] + "?lang=en")
    await expect(page.get_by_role("heading", name="Link Ferretería Norte's WhatsApp")).to_be_visible()
    await page.get_by_role("button", name="Link WhatsApp").click()
    await expect(page.locator("#qr-box")).to_be_visible()
    await shown_code_is_current(page, owner, store_id, "onboard-qr")
    await check_accessibility(page, "onboard")
    await screenshot(page, "onboard-linking")

    scanned = owner.http.post(f"/v1/sim/stores/{store_id}/scan", json={})
    assert scanned.status_code == 202, scanned.text
    await expect(page.get_by_text("Done! The store's WhatsApp is linked.")).to_be_visible(timeout=5000)
    await expect(page.locator("#qr")).to_be_hidden()
    await page.reload()  # used up: the page shows the outcome and never a code again
    await expect(page.get_by_text("Done! The store's WhatsApp is linked.")).to_be_visible()
    await expect(page.locator("#qr")).to_be_hidden()
    assert httpx.get(f"{server}/v1/onboarding/{link['url'].rsplit('/', 1)[1]}/qr").status_code == 404
    await context.close()


async def test_revoked_link_shows_no_qr(browser: Browser, server: str, owner: Owner) -> None:
    store_id = owner.store()
    link = _link(owner, store_id)
    assert owner.http.delete(f"/v1/stores/{store_id}/onboarding-links/{link['id']}").status_code == 204
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(link["url"] + "?lang=en")
    await expect(
        page.get_by_text("This link no longer works: it was revoked or already used.")
    ).to_be_visible()
    await expect(page.locator("#qr")).to_be_hidden()
    await expect(page.get_by_role("button", name="Link WhatsApp")).to_have_count(0)
    await check_accessibility(page, "onboard-gone")
    await screenshot(page, "onboard-revoked")
    await context.close()


async def test_owner_makes_and_revokes_links_on_the_store_page(
    browser: Browser, server: str, owner: Owner
) -> None:
    store_id = owner.store()
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_role("button", name="Create a link").click()
    url = page.locator("#link-url")
    await expect(url).to_contain_text("/onboard/")
    await expect(page.locator("#links li")).to_have_count(1)
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#links li")).to_have_count(0)
    token = ((await url.text_content()) or "").rsplit("/", 1)[1]
    assert httpx.get(f"{server}/v1/onboarding/{token}").status_code == 404
    await context.close()


async def _expire(server: str, link_id: str) -> None:
    """Time made controllable: the link's expiry moved into the past in the server's database."""
    connection = await asyncpg.connect(database_url(server))
    try:
        done = await connection.execute(
            "UPDATE onboarding_links SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(link_id),
        )
    finally:
        await connection.close()
    assert done == "UPDATE 1"


async def test_an_expired_link_says_so_and_shows_no_qr(browser: Browser, server: str, owner: Owner) -> None:
    store_id = owner.store("Verdulería Sur")
    link = _link(owner, store_id)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(link["url"] + "?lang=en")
    await expect(page.get_by_role("button", name="Link WhatsApp")).to_be_visible()
    await _expire(server, link["id"])
    # It expires while the page is open: the next step says so instead of showing a code. (The page may find
    # out first by itself: when its event stream drops, it asks the server again and hears 404; the button is
    # gone then, so the click is not insisted on. Seen on a slow machine.)
    expired = page.get_by_text("This link has expired. Ask whoever sent it for a new one.")
    with contextlib.suppress(PlaywrightTimeoutError):
        await page.get_by_role("button", name="Link WhatsApp").click(timeout=5000)
    await expect(expired).to_be_visible()
    await expect(page.locator("#qr")).to_be_hidden()
    await expect(page.get_by_role("button", name="Link WhatsApp")).to_have_count(0)
    await page.reload()
    await expect(expired).to_be_visible()
    await expect(page.locator("#qr")).to_be_hidden()
    token = link["url"].rsplit("/", 1)[1]
    assert httpx.get(f"{server}/v1/onboarding/{token}/qr").status_code == 404
    assert owner.http.get(f"/v1/stores/{store_id}").json()["desired_state"] == "unlinked"  # nothing started
    await check_accessibility(page, "onboard-expired")
    await screenshot(page, "onboard-expired")
    await context.close()
