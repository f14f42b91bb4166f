from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

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
