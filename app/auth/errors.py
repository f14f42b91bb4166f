from __future__ import annotations

from typing import Any

from app.kit.errors import MostradorError


class AuthError(MostradorError):
    """Base of the auth domain's errors."""


class NotAuthenticated(AuthError):
    status_code = 401
    code = "not_authenticated"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only

    def __init__(self, message: str = "missing, invalid or expired credentials") -> None:
        super().__init__(message)


class InvalidCredentials(AuthError):
    status_code = 401
    code = "invalid_credentials"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only

    def __init__(self) -> None:
        # One message for an unknown email and a wrong password: the answer must not tell which.
        super().__init__("wrong email or password")


class MissingScope(AuthError):
    status_code = 403
    code = "forbidden"

    def __init__(self, missing: set[str]) -> None:
        super().__init__(
            "these credentials may not do this", details={"missing_scopes": sorted(str(s) for s in missing)}
        )


class CsrfFailed(AuthError):
    status_code = 403
    code = "csrf_failed"

    def __init__(self) -> None:
        super().__init__(
            "a request authenticated by the session cookie must carry the CSRF token in the X-CSRF-Token header"
        )


class EmailTaken(AuthError):
    status_code = 409
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("an account with this email already exists; log in instead")


class TooManyAttempts(AuthError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int, *, details: Any = None) -> None:
        super().__init__(f"too many login attempts; retry in {retry_after} s", details=details)
        self.headers = {"Retry-After": str(retry_after)}


class WrongPassword(AuthError):
    status_code = 403
    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__("the current password is wrong")


class UsersOnly(AuthError):
    status_code = 403
    code = "forbidden"

    def __init__(self) -> None:
        super().__init__("only a user may do this, not an API key")


class StoreLimited(AuthError):
    status_code = 403
    code = "forbidden"

    def __init__(self) -> None:
        super().__init__("this API key is limited to one store")


class OidcNotConfigured(AuthError):
    status_code = 404
    code = "oidc_not_configured"

    def __init__(self) -> None:
        super().__init__("sign-in with an OpenID Connect provider is not set up (MOSTRADOR_OIDC_*)")


class OidcFailed(AuthError):
    status_code = 401
    code = "oidc_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
