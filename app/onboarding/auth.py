from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.dependencies import SessionDep, SettingsDep
from app.onboarding.service import OnboardingAccess
from app.onboarding.service import onboarding as onboarding_service


async def get_onboarding_access(token: str, session: SessionDep, settings: SettingsDep) -> OnboardingAccess:
    """The `{token}` of the path is the credential: it reaches one store (404 for anything else)."""
    assert settings.secret_key
    return await onboarding_service.open(session, settings.secret_key, token)


OnboardingLinkAccess = Annotated[OnboardingAccess, Depends(get_onboarding_access)]
