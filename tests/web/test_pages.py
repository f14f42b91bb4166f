"""The pages without a browser: what the server renders (the activity chart), and who may see it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.kit.db import AsyncSessionMaker
from app.messages.schemas import DayCount, ReplyTimes, StoreStats
from app.models import Conversation, Message
from app.web.chart import DAYS, activity_chart
from tests.support import PASSWORD, insert_other_tenant_store, new_email, signup


@pytest.fixture
async def browser_like(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client with the page's cookie session, as a browser has after logging in."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as http:
        email = new_email()
        await signup(http, email=email)
        response = await http.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "cookie": True}
        )
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield http


async def _messages(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, days_ago: list[tuple[int, str]]
) -> None:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        chat = Conversation(store_id=store_id, chat_jid="5491100000000@s.whatsapp.net", bot_state={})
        session.add(chat)
        await session.flush()
        session.add_all(
            Message(
                store_id=store_id,
                conversation_id=chat.id,
                direction=direction,
                text="hola",
                status="handled" if direction == "in" else "sent",
                created_at=now - timedelta(days=ago),
            )
            for ago, direction in days_ago
        )


async def test_the_store_page_draws_the_last_30_days(
    browser_like: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = (await browser_like.post("/v1/stores", json={"name": "Kiosco"})).json()["id"]
    await _messages(
        sessionmaker, uuid.UUID(store_id), [(0, "in"), (0, "in"), (0, "out"), (3, "in"), (40, "in")]
    )
    page = await browser_like.get(f"/app/stores/{store_id}?lang=en")
    assert page.status_code == 200
    svg = re.search(r"<svg[^>]*>.*?</svg>", page.text, re.S)
    assert svg is not None, "no chart"
    assert 'role="img"' in svg.group(0) and "<title" in svg.group(0) and "<desc" in svg.group(0)
    # One pair of bars a day for 30 days; the message 40 days old is outside.
    assert len(re.findall(r'<rect class="bar-in"', svg.group(0))) == DAYS
    assert "Messages in: 3; out: 1" in page.text
    # The table alternative has the same figures, today's row included.
    today = datetime.now(UTC).date().isoformat()
    assert re.search(rf"<th scope=\"row\">{today}</th>\s*<td>2</td>\s*<td>1</td>", page.text)


async def test_another_tenants_store_page_is_not_found(
    browser_like: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    theirs = await insert_other_tenant_store(sessionmaker)
    page = await browser_like.get(f"/app/stores/{theirs}")
    assert page.status_code == 404
    assert str(theirs) not in page.text or "not found" in page.text.lower()


async def test_a_dead_session_goes_back_to_the_login(app: FastAPI) -> None:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="https://test") as http:
        http.cookies.set("mostrador_session", "not-a-token")
        page = await http.get(f"/app/stores/{uuid.uuid4()}")
        assert page.status_code == 303 and page.headers["location"] == "/"


def test_the_chart_fills_days_without_messages_and_scales_to_the_busiest() -> None:
    today = date(2026, 12, 6)
    stats = StoreStats(
        since=datetime(2026, 11, 6, tzinfo=UTC),
        until=datetime(2026, 12, 6, 12, tzinfo=UTC),
        days=[
            DayCount(day=today, inbound=10, outbound=5),
            DayCount(day=today - timedelta(days=29), inbound=0, outbound=2),
        ],
        inbound=10,
        outbound=7,
        active_conversations=1,
        reply_time=ReplyTimes(replied=0, median_seconds=None, p95_seconds=None),
        failed_sends=0,
        dead_letters=0,
    )
    chart = activity_chart(stats, today)
    assert [d.day for d in chart.days] == [today - timedelta(days=29 - i) for i in range(30)]
    assert (chart.inbound, chart.outbound, chart.peak) == (10, 7, 10)
    last = chart.days[-1]
    assert last.bar_in.y + last.bar_in.height == chart.baseline and last.bar_in.height > 0
    assert last.bar_out.height == pytest.approx(last.bar_in.height / 2, abs=0.1)
    assert all(d.bar_in.height == 0 for d in chart.days[:-1])
    assert chart.days[-1].labelled and chart.days[-8].labelled and not chart.days[-2].labelled


async def test_the_pages_are_not_in_the_api_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if not p.startswith(("/v1/", "/healthz", "/readyz"))]
    page = await client.get("/", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert page.status_code == 200 and "Create an account" in page.text
    assert (await client.get("/static/app.js")).status_code == 200
