"""API keys and the team from the dashboard; an invitee accepts in the page and can only look."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.web.conftest import PASSWORD, Owner, check_accessibility, log_in, new_email, screenshot

pytestmark = pytest.mark.slow


async def test_keys_and_invites_from_the_dashboard(browser: Browser, server: str, owner: Owner) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, owner.email)

    await page.get_by_label("What the key is for").fill("Caja registradora")
    await page.get_by_role("button", name="Create a key").click()
    key = page.locator("#key-value")
    await expect(key).to_have_text(re.compile(r"^mst_[0-9a-f]+_[\w-]+$"))
    secret = (await key.text_content()) or ""
    assert httpx.get(f"{server}/v1/stores", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    await expect(page.locator("#keys li")).to_have_count(1)
    await page.get_by_role("button", name=re.compile(r"^Revoke: Caja registradora")).click()
    await expect(page.locator("#keys li")).to_have_count(0)
    assert httpx.get(f"{server}/v1/stores", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    email = new_email()
    await page.get_by_label("Their email").fill(email)
    await page.get_by_label("Role").select_option("viewer")
    await page.get_by_role("button", name="Invite").click()
    invite_url = page.locator("#invite-url")
    await expect(invite_url).to_contain_text("/invite#")
    await expect(page.locator("#invites li")).to_contain_text(email)
    await check_accessibility(page, "dashboard-owner")
    await screenshot(page, "dashboard-owner")
    url = (await invite_url.text_content()) or ""
    await context.close()

    invitee = await browser.new_context()
    page = await invitee.new_page()
    await page.goto(url)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill("short")
    await page.get_by_role("button", name="Accept the invite").click()
    await expect(page.locator("#accept-password-error")).not_to_be_empty()
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Accept the invite").click()
    await page.wait_for_url(f"{server}/app")
    await expect(page.get_by_text("Read only: your role cannot change anything.")).to_be_visible()
    await expect(page.locator("#keys-section")).to_be_visible()  # a viewer sees the keys' names ...
    await expect(page.locator("#key-form")).to_be_hidden()  # ... and cannot make one
    await expect(page.locator("#team-section")).to_be_hidden()
    await check_accessibility(page, "dashboard-viewer")
    await invitee.close()
