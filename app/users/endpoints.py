from __future__ import annotations

from fastapi import APIRouter

from app.auth.endpoints import CurrentUser
from app.users.schemas import MeRead, TenantRead

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/me", summary="The signed-in user, its role and tenant")
async def me(subject: CurrentUser) -> MeRead:
    assert subject.user is not None
    return MeRead(
        id=subject.user.id,
        email=subject.user.email,
        role=subject.user.role,
        scopes=sorted(str(s) for s in subject.scopes),
        tenant=TenantRead.model_validate(subject.tenant),
    )
