from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from app.auth.schemas import TokenRead
from app.auth.service import auth as auth_service
from app.auth.tokens import TokenKind
from app.dependencies import SessionDep, SettingsDep
from app.kit.pagination import CURSOR_PATTERN
from app.users.auth import CurrentUser, MembersRead, MembersWrite
from app.users.schemas import (
    InviteAccept,
    InviteCreate,
    InviteCreated,
    InviteList,
    InviteRead,
    MemberPage,
    MemberRead,
    MemberUpdate,
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


_MEMBER_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such user in this tenant"}}
_MEMBER_RULES: dict[int | str, dict[str, Any]] = {
    **_MEMBER_NOT_FOUND,
    403: {"description": "A missing scope, or an admin acting on an owner (only an owner may)"},
    409: {"description": "The tenant's last owner, or the caller's own membership"},
}


@router.get("/users", summary="The tenant's members, in the order they joined")
async def list_members(
    subject: MembersRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN)
    ] = None,
) -> MemberPage:
    members, next_cursor = await user_service.list_members(
        session, subject=subject, limit=limit, cursor=cursor
    )
    return MemberPage(items=[MemberRead.model_validate(m) for m in members], next_cursor=next_cursor)


@router.patch(
    # Only a UUID routes here, so `/users/me` is never taken for an id.
    "/users/{user_id:uuid}",
    summary="Change a member's role (a demoted member's sessions end)",
    responses=_MEMBER_RULES,
)
async def change_member_role(
    user_id: uuid.UUID, body: MemberUpdate, subject: MembersWrite, session: SessionDep
) -> MemberRead:
    member = await user_service.change_role(session, subject=subject, user_id=user_id, role=body.role)
    return MemberRead.model_validate(member)


@router.delete(
    "/users/{user_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member from the tenant (their sessions end at once)",
    responses=_MEMBER_RULES,
)
async def remove_member(user_id: uuid.UUID, subject: MembersWrite, session: SessionDep) -> None:
    await user_service.remove_member(session, subject=subject, user_id=user_id)


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
