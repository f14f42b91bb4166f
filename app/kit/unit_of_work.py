"""One request, one transaction, and the side effects that must follow its commit.

Services never commit: they `flush()` and return. The request's session dependency (`app/dependencies.py`)
commits once, when the endpoint has returned and before the response is sent, and rolls back when it raised.

A side effect that another process must see only once the change is committed (a `stores:changed`
publication makes the session manager read the row) is registered during the request with
`after_commit(session, hook)`. The hooks run after the commit succeeded, in the order they were registered;
a rollback drops them, so a failed request notifies nobody. Polar queues its background jobs the same way.

`commit(session)` is the one explicit way to commit before the end of the request, for a route that must
let another process act on its change while the request still runs (`POST /pairing-code` waits for the
session manager to answer the change it just made). It also runs the hooks registered so far. Services call
it only there, and say why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

AfterCommitHook = Callable[[], Awaitable[object]]
_HOOKS = "mostrador.after_commit"


def after_commit(session: AsyncSession, hook: AfterCommitHook) -> None:
    """Run `hook` once the session's current transaction is committed; never if it is rolled back."""
    session.info.setdefault(_HOOKS, []).append(hook)


def pending_hooks(session: AsyncSession) -> int:
    """How many hooks wait for the next commit."""
    return len(session.info.get(_HOOKS, ()))


async def commit(session: AsyncSession) -> None:
    """Commit, then run the hooks registered since the last commit."""
    await session.commit()
    hooks: list[AfterCommitHook] = session.info.pop(_HOOKS, [])
    for hook in hooks:
        try:
            await hook()
        except Exception:
            # The change is committed and stays so: failing the request now would tell the client it was not.
            # Every hook is a nudge that a periodic sweep repeats (the session manager reconciles every store
            # on its own clock), so a lost one costs latency, not correctness.
            log.warning("after-commit hook failed", hook=repr(hook), exc_info=True)


async def rollback(session: AsyncSession) -> None:
    """Roll back and drop the hooks of the transaction."""
    session.info.pop(_HOOKS, None)
    await session.rollback()
