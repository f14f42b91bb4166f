from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import Authenticator
from app.auth.scopes import Scope
from app.auth.subject import AuthSubject

# Any signed-in user (any role), never an API key: the routes about the caller's own account.
CurrentUser = Annotated[AuthSubject, Depends(Authenticator(users_only=True))]
MembersWrite = Annotated[
    AuthSubject, Depends(Authenticator(required_scopes={Scope.members_write}, users_only=True))
]
# The member list: every signed-in user of the tenant may see who else is in it (a viewer too); no API key.
MembersRead = CurrentUser
