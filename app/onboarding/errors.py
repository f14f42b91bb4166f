from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class OnboardingError(MostradorError):
    """Base of the onboarding domain's errors."""


class OnboardingLinkNotFound(OnboardingError, NotFound):
    code = "onboarding_link_not_found"

    def __init__(self) -> None:
        # One answer for a guessed, expired, revoked or finished link: a guesser learns nothing.
        super().__init__("this link does not work (expired, revoked, already used, or never existed)")
