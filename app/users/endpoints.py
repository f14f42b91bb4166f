from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, status

from app.auth.schemas import TokenRead
from app.auth.service import auth as auth_service
from app.auth.tokens import TokenKind
from app.dependencies import SessionDep, SettingsDep
from app.users.auth import CurrentUser, MembersWrite
from app.users.schemas import (
    InviteAccept,
    InviteCreate,
    InviteCreated,
    InviteList,
    InviteRead,
    MeRead,
    TenantRead,
)
from app.users.service import user as user_service

router = APIRouter(prefix="/v1", tags=["users"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such live invite"}}


@router.get("/users/me", summary="The signed-in user, its role and tenant")
async def me(subject: CurrentUser) -> MeRead:
    assert subject.user is not None
    return MeRead(
        id=subject.user.id,
        email=subject.user.email,
        role=subject.user.role,
        scopes=sorted(str(s) for s in subject.scopes),
        tenant=TenantRead.model_validate(subject.tenant),
    )


@router.post(
    "/invites",
    status_code=status.HTTP_201_CREATED,
    summary="Invite someone into the tenant (a single-use link, shown once)",
    responses={409: {"description": "A user with this email exists"}},
)
async def create_invite(
    body: InviteCreate, subject: MembersWrite, session: SessionDep, settings: SettingsDep, request: Request
) -> InviteCreated:
    assert settings.secret_key
    invite, token = await user_service.invite(
        session, settings.secret_key, subject=subject, email=body.email, role=body.role
    )
    url = f"{str(request.base_url).rstrip('/')}/invite#{token}"  # a fragment never reaches server logs
    return InviteCreated(**InviteRead.model_validate(invite).model_dump(), token=token, url=url)


@router.get("/invites", summary="The tenant's pending invites")
async def list_invites(subject: MembersWrite, session: SessionDep) -> InviteList:
    invites = await user_service.list_invites(session, subject=subject)
    return InviteList(items=[InviteRead.model_validate(i) for i in invites])


@router.delete(
    # Only a UUID routes here: else `/invites/accept` matched this route too, and a 405 on it named DELETE.
    "/invites/{invite_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invite",
    responses=_NOT_FOUND,
)
async def revoke_invite(invite_id: uuid.UUID, subject: MembersWrite, session: SessionDep) -> None:
    await user_service.revoke_invite(session, subject=subject, invite_id=str(invite_id))


@router.post(
    "/invites/accept",
    status_code=status.HTTP_201_CREATED,
    summary="Accept an invite: set a password, join the tenant, get an access token",
    responses={**_NOT_FOUND, 409: {"description": "A user with this email exists"}},
)
async def accept_invite(body: InviteAccept, session: SessionDep, settings: SettingsDep) -> TokenRead:
    assert settings.secret_key
    user, tenant = await user_service.accept_invite(
        session, settings.secret_key, token=body.token, password=body.password
    )
    issued = auth_service.issue(settings, user, tenant, kind=TokenKind.access)
    return TokenRead(access_token=issued.token, expires_in=issued.ttl_seconds)
