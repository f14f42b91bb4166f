from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.changes.schemas import ChangeKind, ChangePage
from app.changes.service import changes as changes_service
from app.dependencies import SessionDep, StateDep
from app.stores.auth import MessagesRead

router = APIRouter(prefix="/v1/stores", tags=["changes"])

MAX_WAIT_SECONDS = 30

_DESCRIPTION = """\
Every change of the store, in the order a resuming reader can trust: each message created
(`message.created`) and each status change of a message (`message.status`: received, queued, handled, dead;
pending, sending, sent, delivered, read, failed), and, unless `kinds` leaves them out, the store's status
changes (`store.status`, with a `store` object) and chats handed to a person or back to the bot
(`conversation.bot_paused`, with a `conversation` object). Each item has its own `cursor`.

Store the page's `next_cursor` and pass it as `after` next time: you never miss a change and never see one
twice, even while many transactions commit out of order (the log is read in transaction order, below the
oldest transaction still running). `next_cursor` is returned on an empty page too: the position reached.
Without `after`, the feed starts at the store's first change; `after=now` starts at the current end.

`wait` (seconds, up to 30) long-polls: an empty page is answered as soon as a change commits (within about
`MOSTRADOR_CHANGES_POLL_INTERVAL_MS`), or empty when the time is up. A transaction left open anywhere on the
database server delays (never loses) the changes committed after it began.
"""


@router.get(
    "/{store_id}/changes",
    summary="The store's changes feed (messages created, status changes), resumable, with long-poll",
    description=_DESCRIPTION,
    responses={
        404: {"description": "No such store for this tenant"},
        422: {"description": "A cursor that this endpoint did not return, or a malformed parameter."},
    },
)
async def list_changes(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    state: StateDep,
    after: Annotated[
        str | None,
        Query(
            description="A `cursor` or `next_cursor` this endpoint returned (opaque), or `now` for only "
            "the changes that commit from now on. Omitted: from the store's first change.",
            pattern=r"^[A-Za-z0-9_-]{1,512}$",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Long-poll: seconds to wait for a change.")
    ] = 0,
    kinds: Annotated[
        list[ChangeKind] | None,
        Query(description="Only these kinds (repeat the parameter); all by default."),
    ] = None,
) -> ChangePage:
    assert state.settings.secret_key  # create_app always has one (generated in development)
    return await changes_service.page(
        session,
        state.changes_waiter,
        tenant=auth.tenant,
        secret_key=state.settings.secret_key,
        store_id=store_id,
        after=after,
        limit=limit,
        kinds=sorted(set(kinds)) if kinds else None,
        wait=wait,
    )
