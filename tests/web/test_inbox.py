"""The conversation view as a small inbox: unanswered chats first, pause and resume the bot, a person's reply
that reaches the customer's (simulated) phone and pauses the bot; the activity chart; a ban said in words."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest
from playwright.async_api import Browser, Page, expect

from tests.web.conftest import Owner, check_accessibility, log_in, screenshot

pytestmark = pytest.mark.slow

ANA = "+5491155550100"  # the simulated phone panel's default customer
BETO = "+5491155550101"


async def until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Wait for a condition the API reports (a positive signal), not for a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)


def chat_of(owner: Owner, store_id: str, phone: str) -> dict[str, object]:
    items = owner.http.get(f"/v1/stores/{store_id}/conversations").json()["items"]
    return next(c for c in items if c["chat"] == phone)


def last_inbound_handled(owner: Owner, store_id: str, phone: str, text: str) -> bool:
    """The worker has decided on the customer's message (the bot answered it, or stayed quiet if paused)."""
    items = owner.http.get(
        f"/v1/stores/{store_id}/messages", params={"chat": phone, "direction": "in", "limit": 1}
    ).json()["items"]
    return bool(items) and items[0]["text"] == text and items[0]["status"] == "handled"


async def test_pause_resume_and_reply_from_the_inbox(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.connected_store("Almacén Inbox")
    owner.customer_writes(store_id, ANA, "hola", name="Ana")
    await until(lambda: "hola" in owner.phone_received(store_id, ANA), "the echo bot answers Ana")
    owner.customer_writes(store_id, BETO, "buenas", name="Beto")
    await until(lambda: "buenas" in owner.phone_received(store_id, BETO), "the echo bot answers Beto")

    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    chats = page.locator("#chat-list .chat-item")
    await expect(chats).to_have_count(2)
    await expect(chats.first).to_contain_text("Beto")  # newest activity first when all are answered

    await chats.filter(has_text="Ana").click()
    await expect(page.locator("#thread-title")).to_have_text("Ana")
    await expect(page.locator("#thread-messages .from-customer")).to_contain_text("hola")
    await expect(page.locator("#thread-bot")).to_have_text("The bot answers in this chat.")
    await page.get_by_role("button", name="Pause the bot").click()
    await expect(page.locator("#thread-bot")).to_have_text("Bot paused: you answer.")
    await expect(page.get_by_role("button", name="Resume the bot")).to_be_visible()
    assert chat_of(owner, store_id, ANA)["bot_paused"] is True

    # Paused: Ana's next message stays unanswered, and her chat goes first though Beto wrote after her.
    owner.customer_writes(store_id, ANA, "¿siguen ahí?")
    await until(lambda: last_inbound_handled(owner, store_id, ANA, "¿siguen ahí?"), "Ana's message handled")
    owner.customer_writes(store_id, BETO, "gracias")
    await until(lambda: "gracias" in owner.phone_received(store_id, BETO), "the echo bot answers Beto again")
    assert "¿siguen ahí?" not in owner.phone_received(store_id, ANA)  # decided (handled) and not answered
    await expect(chats.first).to_contain_text("Ana", timeout=5000)
    await expect(chats.first).to_contain_text("1 unanswered")
    await check_accessibility(page, "inbox-paused")
    await screenshot(page, "inbox-paused")

    # A person answers Ana from the page: it reaches her phone (the simulated one beside the QR too).
    await page.get_by_label("Your reply").fill("Sí, acá estamos. ¿Qué necesitás?")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.get_by_label("Your reply")).to_have_value("")
    await until(
        lambda: "Sí, acá estamos. ¿Qué necesitás?" in owner.phone_received(store_id, ANA), "Ana gets it"
    )
    await expect(page.locator("#sim-chat .from-store").last).to_have_text(
        "Sí, acá estamos. ¿Qué necesitás?", timeout=5000
    )
    await expect(page.locator("#thread-messages .from-store").last).to_contain_text("Sí, acá estamos")
    await expect(chats.filter(has_text="Ana")).not_to_contain_text("unanswered")

    # Resumed: the bot answers Ana again.
    await page.get_by_role("button", name="Resume the bot").click()
    await expect(page.locator("#thread-bot")).to_have_text("The bot answers in this chat.")
    assert chat_of(owner, store_id, ANA)["bot_paused"] is False
    owner.customer_writes(store_id, ANA, "chau")
    await until(lambda: "chau" in owner.phone_received(store_id, ANA), "the bot answers Ana after resuming")
    await expect(page.locator("#thread-messages .from-store").last).to_contain_text("chau", timeout=5000)


async def test_a_persons_reply_pauses_the_bot(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.connected_store()
    owner.customer_writes(store_id, BETO, "¿tienen pan?", name="Beto")
    await until(lambda: "¿tienen pan?" in owner.phone_received(store_id, BETO), "the echo bot answers")
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await expect(page.locator("#thread-title")).to_have_text("Beto")  # the only chat opens by itself
    await expect(page.locator("#thread-bot")).to_have_text("The bot answers in this chat.")
    await page.get_by_label("Your reply").fill("Sí, recién salido del horno.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator("#thread-bot")).to_have_text("Bot paused: you answer.", timeout=5000)
    assert chat_of(owner, store_id, BETO)["bot_paused"] is True
    await until(
        lambda: "Sí, recién salido del horno." in owner.phone_received(store_id, BETO), "Beto gets it"
    )
    owner.customer_writes(store_id, BETO, "genial")
    await until(lambda: last_inbound_handled(owner, store_id, BETO, "genial"), "Beto's message handled")
    assert "genial" not in owner.phone_received(store_id, BETO)  # the bot stayed quiet
    await expect(page.locator("#chat-list .chat-item").first).to_contain_text("1 unanswered", timeout=5000)

    # An empty reply is refused next to the box, in the API's words.
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator("#reply-text-error")).not_to_be_empty()
    await expect(page.get_by_label("Your reply")).to_have_attribute("aria-invalid", "true")


async def test_the_store_page_charts_the_last_30_days(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.connected_store()
    for text in ("uno", "dos", "tres"):
        owner.customer_writes(store_id, ANA, text)
    await until(lambda: "tres" in owner.phone_received(store_id, ANA), "three answers")
    await until(lambda: len(owner.phone_received(store_id, ANA)) == 3, "three answers")
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    chart = page.get_by_role("img", name="Activity in the last 30 days")
    await expect(chart).to_be_visible()
    await expect(page.locator("#activity-summary")).to_have_text("Messages in: 3; out: 3")
    assert await page.locator(".chart rect.bar-in").count() == 30
    assert float(await page.locator(".chart rect.bar-in").last.get_attribute("height") or 0) > 0
    await page.get_by_text("Show the figures as a table").click()
    today = await page.evaluate("new Date().toISOString().slice(0, 10)")
    await expect(page.get_by_role("row", name=re.compile(today))).to_contain_text("3")
    await check_accessibility(page, "store-chart")
    await screenshot(page, "store-chart")


async def test_inbox_and_chart_at_360_px(browser: Browser, server: str, owner: Owner) -> None:
    store_id = owner.connected_store("Kiosco de la esquina con un nombre largo")
    owner.customer_writes(store_id, ANA, "hola, quería saber si tienen facturas de manteca", name="Ana María")
    await until(lambda: len(owner.phone_received(store_id, ANA)) == 1, "the echo bot answers")
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await expect(page.locator("#thread-messages .from-store")).to_have_count(1)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing overflows sideways
    await page.locator("#conversations").scroll_into_view_if_needed()
    await screenshot(page, "store-connected-360px")
    await check_accessibility(page, "store-connected-360px")
    await context.close()


async def test_a_ban_is_said_in_words(page: Page, server: str, owner: Owner) -> None:
    store_id = owner.connected_store()
    await log_in(page, server, owner.email)
    await page.goto(f"{server}/app/stores/{store_id}")
    await expect(page.locator("#connected")).to_be_visible()
    assert owner.http.post(f"/v1/sim/stores/{store_id}/fault", json={"kind": "ban"}).status_code == 202
    await expect(page.locator("#problem-text")).to_have_text(
        "WhatsApp has banned this number for a while (it happens after many identical messages or reports). "
        "Wait until the ban is lifted, then link it again.",
        timeout=10000,
    )
    await expect(page.locator("#connected")).to_be_hidden()
    await expect(page.get_by_role("button", name="Try again")).to_be_visible()
    store = owner.http.get(f"/v1/stores/{store_id}").json()
    assert (store["status"], store["status_reason_code"]) == ("error", "banned")
    await page.reload()  # from the store's row, not only from the live event
    await expect(page.locator("#problem-text")).to_contain_text("banned this number")
    await check_accessibility(page, "store-banned")
    await screenshot(page, "store-banned")
