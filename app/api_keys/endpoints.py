from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from app.api_keys.auth import ApiKeysRead, ApiKeysWrite
from app.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead
from app.api_keys.service import api_key as api_key_service
from app.dependencies import SessionDep, SettingsDep

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such key for this tenant"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
    responses={404: {"description": "No such store for this tenant (`store_id`)"}},
)
async def create_api_key(
    body: ApiKeyCreate, subject: ApiKeysWrite, session: SessionDep, settings: SettingsDep
) -> ApiKeyCreated:
    assert settings.secret_key
    key, whole = await api_key_service.create(
        session,
        settings.secret_key,
        subject=subject,
        name=body.name,
        scopes=body.scopes,
        store_id=body.store_id,
    )
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=whole)


@router.get("", summary="The tenant's live API keys, oldest first")
async def list_api_keys(subject: ApiKeysRead, session: SessionDep) -> ApiKeyList:
    keys = await api_key_service.list_keys(session, subject=subject)
    return ApiKeyList(items=[ApiKeyRead.model_validate(k) for k in keys])


@router.delete(
    "/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key: it stops working at once",
    responses=_NOT_FOUND,
)
async def revoke_api_key(api_key_id: str, subject: ApiKeysWrite, session: SessionDep) -> None:
    await api_key_service.revoke(session, subject=subject, key_id=api_key_id)
