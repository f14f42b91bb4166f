from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from app.dependencies import RedisDep, SessionDep, StateDep
from app.media.endpoints import StorageDep
from app.messages.schemas import MessageRead
from app.sending.schemas import IDEMPOTENCY_KEY_PATTERN, SendMessage
from app.sending.service import sending as sending_service
from app.stores.auth import MessagesSend

router = APIRouter(prefix="/v1/stores", tags=["messages"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such store for this tenant, or no such upload (`upload_not_found`)"},
    409: {"description": "The store is not connected to WhatsApp (`store_not_connected`, with its status)."},
    422: {
        "description": "An invalid body (a number that is no valid phone number, an empty or too long text), "
        "an Idempotency-Key already used with another body for this store (`idempotency_key_reused`), or media "
        "that cannot be sent (`media_url_refused`: a URL that is not http(s), points at a private address, "
        "fails or times out; `invalid_media`: empty or not of its declared type)."
    },
    413: {"description": "The media is larger than WhatsApp's limit for its type (`media_too_large`)."},
    415: {"description": "A MIME type WhatsApp does not accept for the media's type."},
}


@router.post(
    "/{store_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a text, or an image, video, audio or document, to a customer",
    description="The message is accepted `pending` and sent by the store's session through its outbox: paced by "
    "the store's rate limits, after any earlier reply of the chat still waiting. Follow it with `GET "
    ".../messages/{message_id}` or the changes feed. A reply sent here pauses the bot in that chat unless "
    "`pause_bot` is false. With an `Idempotency-Key`, a retry with the same body returns the same message "
    "(202, `Idempotent-Replayed: true`) and sends nothing new.",
    responses=_ERRORS,
)
async def send_message(
    store_id: str,
    body: SendMessage,
    auth: MessagesSend,
    session: SessionDep,
    redis: RedisDep,
    state: StateDep,
    storage: StorageDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Any unique string (a UUID) of 1-255 printable characters, remembered per store for "
            "`MOSTRADOR_IDEMPOTENCY_KEY_HOURS` (24 h by default).",
        ),
    ] = None,
) -> MessageRead:
    sent = await sending_service.send(
        session,
        redis,
        tenant=auth.tenant,
        store_id=store_id,
        request=body,
        idempotency_key=idempotency_key,
        key_hours=state.settings.idempotency_key_hours,
        storage=storage,
        settings=state.settings,
    )
    if sent.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return sent.message
