"""API keys and the team from the dashboard; an invitee accepts in the page and can only look."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.web.conftest import PASSWORD, Owner, check_accessibility, log_in, new_email, screenshot

pytestmark = pytest.mark.slow


def test_keys_and_invites_from_the_dashboard(browser: Browser, server: str, owner: Owner) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server, owner.email)

    page.get_by_label("What the key is for").fill("Caja registradora")
    page.get_by_role("button", name="Create").nth(1).click()
    key = page.locator("#key-value")
    expect(key).to_have_text(re.compile(r"^mst_\w+_\w+$"))
    secret = key.text_content() or ""
    assert httpx.get(f"{server}/v1/stores", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    expect(page.locator("#keys li")).to_have_count(1)
    page.get_by_role("button", name=re.compile(r"^Revoke: Caja registradora")).click()
    expect(page.locator("#keys li")).to_have_count(0)
    assert httpx.get(f"{server}/v1/stores", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    email = new_email()
    page.get_by_label("Their email").fill(email)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    invite_url = page.locator("#invite-url")
    expect(invite_url).to_contain_text("/invite#")
    expect(page.locator("#invites li")).to_contain_text(email)
    check_accessibility(page, "dashboard-owner")
    screenshot(page, "dashboard-owner")
    url = invite_url.text_content() or ""
    context.close()

    invitee = browser.new_context()
    page = invitee.new_page()
    page.goto(url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Accept the invite").click()
    expect(page.locator("#accept-password-error")).not_to_be_empty()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Accept the invite").click()
    page.wait_for_url(f"{server}/app")
    expect(page.get_by_text("Read only: your role cannot change anything.")).to_be_visible()
    expect(page.locator("#keys-section")).to_be_visible()  # a viewer sees the keys' names ...
    expect(page.locator("#key-form")).to_be_hidden()  # ... and cannot make one
    expect(page.locator("#team-section")).to_be_hidden()
    check_accessibility(page, "dashboard-viewer")
    invitee.close()
