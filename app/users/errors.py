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


class MemberNotFound(UserError, NotFound):
    code = "user_not_found"

    def __init__(self, user_id: object) -> None:
        # The same answer for another tenant's user as for an id nobody has.
        super().__init__(f"no user {user_id} in this tenant")


class LastOwner(UserError, Conflict):
    code = "last_owner"

    def __init__(self) -> None:
        super().__init__(
            "this is the tenant's only owner: make another member owner first, then change or remove this one"
        )


class OwnSelf(UserError, Conflict):
    code = "own_membership"

    def __init__(self) -> None:
        super().__init__("you cannot change your own role or remove yourself; ask another owner or admin")


class OwnersOnly(UserError):
    status_code = 403
    code = "owners_only"

    def __init__(self) -> None:
        super().__init__("only an owner may make an owner, or change or remove one")
