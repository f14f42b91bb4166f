"""The `CurrentTenant` dependency every tenant-owned route declares.

PLACEHOLDER until authentication lands (users with sessions, API keys with scopes): there is no caller
identity yet, so every request acts for one tenant named "default", created on first use. The real dependency
will resolve the tenant from the caller's credentials and answer 401/403 instead; because every store route
already takes `CurrentTenant`, it replaces `get_current_tenant` here without touching any route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.repository import TenantRepository
from app.dependencies import SessionDep
from app.models import Tenant

DEFAULT_TENANT_NAME = "default"


async def get_current_tenant(session: SessionDep) -> Tenant:
    """The single "default" tenant (placeholder for real authentication, see the module docstring)."""
    repository = TenantRepository.from_session(session)
    tenant = await repository.get_oldest_by_name(DEFAULT_TENANT_NAME)
    if tenant is not None:
        return tenant
    # First use: two concurrent first requests must not create two tenants. The advisory lock lasts until
    # the request's transaction ends, so the second one waits, then finds the first one's committed row.
    await repository.lock_name(DEFAULT_TENANT_NAME)
    tenant = await repository.get_oldest_by_name(DEFAULT_TENANT_NAME)
    if tenant is None:
        tenant = await repository.create(name=DEFAULT_TENANT_NAME)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(get_current_tenant)]
