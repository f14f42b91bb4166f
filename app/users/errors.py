from __future__ import annotations

from app.kit.errors import Conflict, MostradorError, NotFound


class UserError(MostradorError):
    """Base of the users domain's errors."""


class InviteNotFound(UserError, NotFound):
    code = "invite_not_found"

    def __init__(self) -> None:
        # One answer for unknown, expired, revoked and used invites: a guesser learns nothing.
        super().__init__("invite not found, expired or already used")


class AlreadyMember(UserError, Conflict):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("a user with this email already exists")
