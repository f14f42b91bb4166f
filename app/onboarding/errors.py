from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class OnboardingError(MostradorError):
    """Base of the onboarding domain's errors."""


class OnboardingLinkNotFound(OnboardingError, NotFound):
    code = "onboarding_link_not_found"

    def __init__(self, *, expired: bool = False) -> None:
        # One status and code for a guessed, expired, revoked or finished link. Only the holder of a real link's
        # token (256 random bits: never guessed) learns that it expired, so the page can say "ask for a new one".
        super().__init__(
            "this link does not work (expired, revoked, already used, or never existed)",
            details={"reason": "expired"} if expired else None,
        )
