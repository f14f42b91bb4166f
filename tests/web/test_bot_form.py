"""Choosing and configuring the store's bot in per-field forms: each validation error next to its field."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import Owner, check_accessibility, log_in, screenshot

pytestmark = pytest.mark.slow


async def test_menu_form_shows_errors_by_field_then_saves(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    kind = page.get_by_label("Kind of bot")
    await expect(kind).to_have_value("echo")
    await kind.select_option("menu")
    options = page.locator("#menu-options")
    await expect(options.get_by_role("group")).to_have_count(2)  # an example to start from
    first = options.get_by_role("group", name="Option 1")
    await expect(first.get_by_label("Title")).to_have_value("Horarios")
    save = page.get_by_role("button", name="Save")

    await save.click()  # a menu needs a greeting
    await expect(page.locator("#bot-greeting-error")).to_contain_text("required")
    await expect(page.get_by_label("Greeting")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Greeting")).to_be_focused()

    await page.get_by_label("Greeting").fill("¡Hola! Somos el Kiosco.")
    await first.get_by_label("Answer").fill("")  # option 1 now leads nowhere
    await (
        options.get_by_role("group", name="Option 2").get_by_label("Title").fill("")
    )  # and option 2 has no title
    await save.click()
    await expect(first.locator(".field-error").first).to_contain_text("needs an answer")
    second_title = options.get_by_role("group", name="Option 2").get_by_label("Title")
    await expect(second_title).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#bot-greeting-error")).to_be_empty()
    await screenshot(page, "bot-form-error")
    await check_accessibility(page, "bot-form-error")

    await first.get_by_label("Answer").fill("De 9 a 18.")
    await second_title.fill("Hablar con alguien")
    await page.get_by_role("button", name="Add an option").click()
    third = options.get_by_role("group", name="Option 3")
    await third.get_by_label("Title").fill("Envíos")
    await third.get_by_label("Keywords (comma-separated)").fill("envio, delivery")
    await third.get_by_label("Answer").fill("Enviamos a todo el barrio.")
    await save.click()
    await expect(page.locator("#bot-saved")).to_have_text("Saved. It applies from the next message.")
    bot = owner.http.get(f"/v1/stores/{store_id}/bot").json()
    assert bot["kind"] == "menu"
    assert bot["config"]["greeting"] == "¡Hola! Somos el Kiosco."
    assert [o["title"] for o in bot["config"]["options"]] == ["Horarios", "Hablar con alguien", "Envíos"]
    assert bot["config"]["options"][0]["answer"] == "De 9 a 18."
    assert bot["config"]["options"][1]["handoff"] is True
    assert bot["config"]["options"][2]["keywords"] == ["envio", "delivery"]


async def test_booking_and_orders_forms(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await page.get_by_label("Kind of bot").select_option("booking")
    service = page.locator("#booking-services").get_by_role("group", name="Service 1")
    await service.get_by_label("Duration (minutes)").fill("2")
    await page.get_by_label("Monday").fill("9-13")
    await page.get_by_role("button", name="Save").click()
    await expect(
        page.locator(f"#{await service.get_attribute('id')}-duration_minutes-error")
    ).to_contain_text("greater than or equal to 5")
    await expect(page.locator("#hours-mon-error")).to_contain_text("HH:MM")
    await expect(page.get_by_label("Monday")).to_have_attribute("aria-invalid", "true")
    await service.get_by_label("Duration (minutes)").fill("45")
    await page.get_by_label("Monday").fill("09:00-13:00, 16:00-20:00")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#bot-saved")).to_have_text("Saved. It applies from the next message.")
    config = owner.http.get(f"/v1/stores/{store_id}/bot").json()["config"]
    assert config["services"] == [{"name": "Corte", "duration_minutes": 45}]
    assert config["opening_hours"]["mon"] == [
        {"start": "09:00", "end": "13:00"},
        {"start": "16:00", "end": "20:00"},
    ]
    assert config["slot_minutes"] == 30  # kept, though the form has no field for it

    await page.get_by_label("Kind of bot").select_option("orders")
    item = page.locator("#orders-catalog").get_by_role("group", name="Product 1")
    await expect(item.get_by_label("Price")).to_have_value("500.00")
    await item.get_by_label("Price").fill("mucho")
    await page.get_by_role("button", name="Save").click()
    await expect(item.get_by_label("Price")).to_have_attribute("aria-invalid", "true")
    await item.get_by_label("Price").fill("650,50")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#bot-saved")).to_have_text("Saved. It applies from the next message.")
    catalog = owner.http.get(f"/v1/stores/{store_id}/bot").json()["config"]["catalog"]
    assert catalog[0]["price_cents"] == 65050
    await check_accessibility(page, "bot-form-orders")
