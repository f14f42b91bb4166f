from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import Authenticator
from app.auth.scopes import Scope
from app.auth.subject import AuthSubject

# Keys are managed by users only: a key can never mint or revoke keys.
ApiKeysRead = Annotated[
    AuthSubject, Depends(Authenticator(required_scopes={Scope.api_keys_read}, users_only=True))
]
ApiKeysWrite = Annotated[
    AuthSubject, Depends(Authenticator(required_scopes={Scope.api_keys_write}, users_only=True))
]
