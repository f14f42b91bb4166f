"""Who may do what to stores (and to what belongs to a store: bot, orders, bookings)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import Authenticator
from app.auth.scopes import Scope
from app.auth.subject import AuthSubject

StoresRead = Annotated[AuthSubject, Depends(Authenticator(required_scopes={Scope.stores_read}))]
StoresWrite = Annotated[AuthSubject, Depends(Authenticator(required_scopes={Scope.stores_write}))]
MessagesRead = Annotated[AuthSubject, Depends(Authenticator(required_scopes={Scope.messages_read}))]
MessagesSend = Annotated[AuthSubject, Depends(Authenticator(required_scopes={Scope.messages_send}))]
# Tenant-wide: a key limited to one store may not create others.
StoresCreate = Annotated[
    AuthSubject, Depends(Authenticator(required_scopes={Scope.stores_write}, tenant_wide=True))
]
