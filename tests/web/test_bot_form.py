"""Choosing and configuring the store's bot: validation errors next to their field, then saved."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import Owner, check_accessibility, log_in, screenshot

pytestmark = pytest.mark.slow


async def test_bot_form_shows_errors_by_field_then_saves(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    kind = page.get_by_label("Kind of bot")
    await expect(kind).to_have_value("echo")
    await kind.select_option("menu")
    details = page.get_by_label("Options, services or catalog (JSON)")
    await expect(details).to_have_value(re.compile("Horarios"))  # an example to start from
    save = page.get_by_role("button", name="Save")

    await save.click()  # a menu needs a greeting
    await expect(page.locator("#bot-greeting-error")).to_contain_text("required")
    await expect(page.get_by_label("Greeting")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Greeting")).to_be_focused()

    await page.get_by_label("Greeting").fill("¡Hola! Somos el Kiosco.")
    await details.fill("{not json")
    await save.click()
    await expect(page.locator("#bot-details-error")).to_contain_text("Not valid JSON")

    await details.fill(json.dumps({"options": [{"title": "Horarios"}]}))  # leads nowhere
    await save.click()
    await expect(page.locator("#bot-details-error")).to_contain_text("options.0")
    await expect(page.locator("#bot-greeting-error")).to_be_empty()
    await screenshot(page, "bot-form-error")
    await check_accessibility(page, "bot-form-error")

    await details.fill(json.dumps({"options": [{"title": "Horarios", "answer": "De 9 a 18."}]}))
    await save.click()
    await expect(page.locator("#bot-saved")).to_have_text("Saved. It applies from the next message.")
    bot = owner.http.get(f"/v1/stores/{store_id}/bot").json()
    assert bot["kind"] == "menu"
    assert bot["config"]["greeting"] == "¡Hola! Somos el Kiosco."
    assert bot["config"]["options"][0]["answer"] == "De 9 a 18."
