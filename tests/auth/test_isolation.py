"""The isolation walk: every route of the OpenAPI document, called by everyone who must get nothing.

Tenant A has two stores, a key and a viewer. Every route is called with A's real ids in its path by another
tenant's owner, by A's key limited to A's *other* store, by A's viewer (writes), and without credentials. A new
route joins the walk by itself; one with a path parameter or a body the walk does not know fails it until
`PATH_VALUES` / `BODIES` below learn them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message, Store, Tenant, Webhook, WebhookDelivery
from tests.support import ClientMaker, create_api_key, insert_user, login, post_store, signup

# Routes anyone may call (everything else must answer 401 without credentials).
PUBLIC = {
    ("POST", "/v1/auth/signup"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/invites/accept"),  # its token is the credential
    ("GET", "/v1/auth/oidc/login"),
    ("GET", "/v1/auth/oidc/callback"),  # the state cookie and the provider's code are the credential
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # aggregate counts; no label names a tenant or a store
}
# Routes about the caller itself, not about a tenant's objects: a stranger calling them acts on its own account.
SELF = {("POST", "/v1/auth/logout"), ("POST", "/v1/auth/password"), ("GET", "/v1/users/me")}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes whose credential is a link token in the path: with a guessed one, everybody gets a 404.
TOKEN_ROUTES = "/v1/onboarding/{token}"
GUESSED_TOKEN = "onb_" + "g" * 43

# A valid body for every route that takes one, so that a refusal is the auth's, not the validation's (422).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/stores"): {"name": "Intrusa"},
    ("POST", "/v1/stores/{store_id}/pairing-code"): {"phone": "+5491155550000"},
    ("PUT", "/v1/stores/{store_id}/bot"): {"kind": "echo", "config": {}},
    ("POST", "/v1/sim/stores/{store_id}/scan"): {"phone": "+5491155550000"},
    ("POST", "/v1/sim/stores/{store_id}/inbound"): {"from": "+5491100000000", "text": "hola"},
    ("POST", "/v1/sim/stores/{store_id}/fault"): {"kind": "disconnect"},
    ("POST", "/v1/api-keys"): {"name": "intrusa"},
    ("POST", "/v1/invites"): {"email": "intrusa@example.com", "role": "admin"},
    # An attempt to demote A's owner (checked at the end).
    ("PATCH", "/v1/users/{user_id}"): {"role": "viewer"},
    ("POST", "/v1/stores/{store_id}/onboarding-links"): {"expires_in": 3600},
    # The raw bytes of a file are the body; the walk's JSON body is refused (415) only after the auth.
    ("POST", "/v1/uploads"): {"not": "a file"},
    ("PATCH", "/v1/media/settings"): {"retention_days": 1},
    ("PATCH", "/v1/stores/{store_id}"): {"settings": {"handoff": {"auto_resume_minutes": 5}}},
    ("PATCH", "/v1/stores/{store_id}/conversations/{conversation_id}"): {"bot_paused": True},
    # To A's chat: a send that got through would pause it (checked at the end).
    ("POST", "/v1/stores/{store_id}/messages"): {"to": "+5491100000000", "text": "intrusa"},
    ("POST", "/v1/onboarding/{token}/pairing-code"): {"phone": "+5491155550000"},
    ("POST", "/v1/invites/accept"): {"token": "inv_guessed", "password": "12345678"},
    ("POST", "/v1/auth/signup"): {"email": "x@example.com", "password": "12345678", "business_name": "x"},
    ("POST", "/v1/auth/login"): {"email": "x@example.com", "password": "12345678"},
    ("POST", "/v1/auth/password"): {"current_password": "12345678", "new_password": "123456789"},
    ("POST", "/v1/stores/{store_id}/webhooks"): {
        "url": "https://hooks.example.com/in",
        "events": ["store.status"],
    },
    ("PATCH", "/v1/stores/{store_id}/webhooks/{webhook_id}"): {"url": "https://intrusa.example.com/x"},
    ("POST", "/v1/stores/{store_id}/webhooks/{webhook_id}/replay"): {
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-12-31T00:00:00Z",
    },
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    has_body: bool

    def url(self, values: dict[str, str]) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in values, (
                f"the walk has no value for {{{name}}} in {self.path}: add it to PATH_VALUES"
            )
            return values[name]

        return re.sub(r"\{(\w+)\}", fill, self.path)

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def routes(app: FastAPI) -> Iterator[Route]:
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            route = Route(method.upper(), path, "requestBody" in operation)
            if route.has_body:
                assert (route.method, path) in BODIES, f"the walk has no body for {method.upper()} {path}"
            yield route


async def call(http: AsyncClient, route: Route, values: dict[str, str]) -> tuple[int, str]:
    """Status and body; for an event stream only the status line and headers, then close."""
    body = BODIES.get((route.method, route.path)) if route.has_body else None
    async with http.stream(route.method, route.url(values), json=body) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response.status_code, ""
        return response.status_code, (await response.aread()).decode(errors="replace")


def assert_not_found(text: str, where: str) -> None:
    """An error body and nothing else (it may echo the id that was asked for, nothing of the object)."""
    body = json.loads(text)
    assert set(body) == {"error"} and body["error"]["code"].endswith("not_found"), (where, text)


async def test_the_isolation_walk(
    app: FastAPI, client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    # Tenant A: two stores, a key, a viewer, and its ids for every path parameter.
    me = (await client.get("/v1/users/me")).json()
    a1, a2 = await post_store(client, "A1"), await post_store(client, "A2")
    await client.put(f"/v1/stores/{a1}/bot", json={"kind": "echo", "config": {}})
    a_key = await create_api_key(client, name="A full key")
    a2_key = await create_api_key(client, name="A2 only", store_id=a2)
    invite = (await client.post("/v1/invites", json={"email": "colega@example.com", "role": "admin"})).json()
    link = (await client.post(f"/v1/stores/{a1}/onboarding-links", json={})).json()
    async with sessionmaker() as session, session.begin():
        chat = Conversation(
            store_id=uuid.UUID(a1),
            chat_jid="5491100000000@s.whatsapp.net",
            bot_state={},
            last_message_at=func.now(),
        )
        session.add(chat)
        await session.flush()
        conversation_id = str(chat.id)
        message = Message(
            store_id=chat.store_id,
            conversation_id=chat.id,
            direction="in",
            wa_id="A-secret-wa-id",
            sender_jid=chat.chat_jid,
            text="un secreto de A",
            status="handled",
            type="image",
            media={"state": "stored", "key": "stores/a/in/secret", "mimetype": "image/jpeg", "size": 9},
        )
        session.add(message)
        await session.flush()
        message_id = str(message.id)
        webhook = Webhook(
            tenant_id=uuid.UUID(me["tenant"]["id"]),
            store_id=chat.store_id,
            url="https://a-secret-receiver.example.com/hook",
            secret_encrypted="encrypted",
            events=["message.received"],
        )
        session.add(webhook)
        await session.flush()
        delivery = WebhookDelivery(
            webhook_id=webhook.id,
            store_id=chat.store_id,
            event_id=1,
            event="message.received",
            message_id="msg_a_secret",
            order_key=conversation_id,
            payload={"text": "un secreto de A"},
            status="succeeded",
            next_attempt_at=func.now(),
            give_up_at=func.now(),
        )
        session.add(delivery)
        await session.flush()
        webhook_id, delivery_id = str(webhook.id), str(delivery.id)
    values = {
        "store_id": a1,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "api_key_id": a_key["id"],
        "invite_id": invite["id"],
        "link_id": link["id"],
        "token": GUESSED_TOKEN,
        "webhook_id": webhook_id,
        "delivery_id": delivery_id,
        "user_id": me["id"],
    }
    secrets_of_a = {
        a1,
        a_key["id"],
        a_key["prefix"],
        me["tenant"]["id"],
        me["email"],
        invite["id"],
        link["id"],
        conversation_id,
        message_id,
        "A-secret-wa-id",
        "un secreto de A",
        webhook_id,
        delivery_id,
        "a-secret-receiver.example.com",
        "msg_a_secret",
        me["id"],
    }

    viewer = make_client(
        await login(
            make_client(), await insert_user(sessionmaker, tenant_id=me["tenant"]["id"], role="viewer")
        ),
        streaming=True,
    )
    stranger = make_client(await signup(make_client(), business_name="B"), streaming=True)
    limited = make_client(a2_key["key"], streaming=True)
    nobody = make_client(streaming=True)

    walked = 0
    for route in routes(app):
        walked += 1
        where = f"{route.method} {route.path}"
        key = (route.method, route.path)

        if route.path.startswith(TOKEN_ROUTES):
            for caller in (nobody, stranger, limited, viewer, client):
                status, text = await call(caller, route, values)
                assert status == 404, (where, status, text)
                assert_not_found(text, where)
            continue

        status, text = await call(nobody, route, values)
        if key not in PUBLIC:
            assert status == 401, (where, status, text)
            assert '"not_authenticated"' in text, where

        if key in PUBLIC or key in SELF:
            continue

        # Another tenant: A's objects do not exist for it; its own lists show none of A's.
        status, text = await call(stranger, route, values)
        assert status < 500, (where, status, text)
        if route.params:
            assert status == 404, (where, status, text)
            assert_not_found(text, where)
        else:
            assert not any(secret in text for secret in secrets_of_a), (where, text)

        # A's key limited to A2: A1 does not exist for it; key management is for users only (403).
        status, text = await call(limited, route, values)
        assert status < 500, (where, status, text)
        if "store_id" in route.params:
            assert status == 404, (where, status, text)
            assert_not_found(text, where)
        elif route.path.startswith(("/v1/api-keys", "/v1/invites", "/v1/users")):  # users only
            assert status == 403, (where, status, text)
        else:
            assert a1 not in text and a_key["prefix"] not in text, (where, text)

        # A's viewer reads, never writes.
        if route.method in WRITE_METHODS:
            status, text = await call(viewer, route, values)
            assert status == 403, (where, status, text)

    assert walked >= 20  # the document really was walked (stores, bot, orders, bookings, sim, keys, auth)

    # And nothing of A's changed: its store is still unlinked, its key still listed.
    async with sessionmaker() as session:
        store = await session.get(Store, uuid.UUID(a1))
        assert store is not None and store.desired_state == "unlinked" and store.name == "A1"
        assert store.settings == {}
        tenant = await session.get(Tenant, uuid.UUID(me["tenant"]["id"]))
        assert tenant is not None and tenant.media_retention_days is None  # nobody else set A's retention
        chat_now = await session.get(Conversation, uuid.UUID(conversation_id))
        assert chat_now is not None and chat_now.bot_paused is False
        assert await session.scalar(select(func.count()).select_from(Message)) == 1  # nothing sent
        webhook_now = await session.get(Webhook, uuid.UUID(webhook_id))
        assert webhook_now is not None and webhook_now.url == "https://a-secret-receiver.example.com/hook"
        assert webhook_now.enabled and webhook_now.secret_encrypted == "encrypted"
        delivery_now = await session.get(WebhookDelivery, uuid.UUID(delivery_id))
        assert delivery_now is not None and delivery_now.status == "succeeded"
    members = (await client.get("/v1/users")).json()["items"]
    assert [m["role"] for m in members] == ["owner", "viewer"] and members[0]["id"] == me["id"]
    keys = (await client.get("/v1/api-keys")).json()["items"]
    assert {k["id"] for k in keys} == {a_key["id"], a2_key["id"]}
    assert [i["id"] for i in (await client.get("/v1/invites")).json()["items"]] == [invite["id"]]
    links = (await client.get(f"/v1/stores/{a1}/onboarding-links")).json()["items"]
    assert [item["id"] for item in links] == [link["id"]]
