from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.errors import ApiKeyNotFound, ScopeNotGrantable
from app.api_keys.keys import generate_key, hash_key
from app.api_keys.repository import ApiKeyRepository
from app.auth.scopes import KEY_SCOPES, Scope
from app.auth.subject import AuthSubject
from app.models import ApiKey
from app.stores.service import store as store_service


class ApiKeyService:
    async def create(
        self,
        session: AsyncSession,
        secret_key: str,
        *,
        subject: AuthSubject,
        name: str,
        scopes: list[Scope] | None,
        store_id: uuid.UUID | None,
    ) -> tuple[ApiKey, str]:
        """A new key and the key itself (returned this once; only its hash is stored)."""
        chosen = set(KEY_SCOPES) if scopes is None else set(scopes)
        # Never more than a key may hold, nor more than its creator holds.
        refused = (chosen - KEY_SCOPES) | (chosen - subject.scopes)
        if refused:
            raise ScopeNotGrantable(sorted(str(s) for s in refused))
        if store_id is not None:
            # Another tenant's store is the same 404 as an unknown one.
            await store_service.get(session, tenant=subject.tenant, store_id=str(store_id))
        generated = generate_key()
        key = await ApiKeyRepository.for_tenant(session, subject.tenant.id).create(
            name=name,
            prefix=generated.prefix,
            key_hash=hash_key(secret_key, generated.whole),
            scopes=sorted(str(s) for s in chosen),
            store_id=store_id,
        )
        return key, generated.whole

    async def list_keys(self, session: AsyncSession, *, subject: AuthSubject) -> list[ApiKey]:
        return await ApiKeyRepository.for_tenant(session, subject.tenant.id).list_live()

    async def revoke(self, session: AsyncSession, *, subject: AuthSubject, key_id: str) -> None:
        repository = ApiKeyRepository.for_tenant(session, subject.tenant.id)
        try:
            key = await repository.get(uuid.UUID(key_id))
        except ValueError:
            key = None
        if key is None:
            raise ApiKeyNotFound(key_id)
        # Every request reads the key's row: revoked now, refused from the next request on.
        await repository.revoke(key, at=datetime.now(UTC))


api_key = ApiKeyService()
