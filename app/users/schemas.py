from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import Email, Password
from app.models import UserRole


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class MeRead(BaseModel):
    id: uuid.UUID
    email: str
    role: UserRole
    scopes: list[str]
    tenant: TenantRead


class InviteCreate(BaseModel):
    email: Email
    role: Literal[UserRole.admin, UserRole.viewer] = Field(description="`admin` or `viewer`.")


class InviteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: UserRole
    expires_at: datetime
    created_at: datetime


class InviteCreated(InviteRead):
    token: str = Field(description="Shown this once; only a hash is kept. The invitee sends it to /accept.")
    url: str = Field(description="The link to hand over (the web page reads the token from it).")


class InviteList(BaseModel):
    items: list[InviteRead]


class InviteAccept(BaseModel):
    token: str = Field(max_length=200)
    password: Password = Field(description="At least 8 characters.")


class MemberRead(BaseModel):
    """A user of the tenant. (Last sign-in is not recorded, so it is not shown.)"""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: UserRole
    created_at: datetime = Field(description="When the user joined (signed up or accepted an invite).")


class MemberPage(BaseModel):
    items: list[MemberRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: UserRole = Field(description="`owner`, `admin` or `viewer`. Only an owner may make an owner.")
