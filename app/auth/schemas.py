from __future__ import annotations

from typing import Annotated, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints, WithJsonSchema

from app.kit.nul import NOT_BLANK
from app.kit.types import JsonBool

# email-validator refuses the special-use domains (`x@y.test`); the document's pattern says so.
_SPECIAL_USE = "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES)
# It also wants a dot in the domain (a globally deliverable one) and a top-level domain ending in a letter.
EMAIL_PATTERN = rf"^[^@\x00]+@(?!(?:[^@]*\.)?(?:{_SPECIAL_USE})\.?$)[^@\x00]+\.[^@\x00]*[A-Za-z]$"
Email = Annotated[
    EmailStr,
    AfterValidator(lambda value: value.strip().lower()),
    WithJsonSchema({"type": "string", "format": "email", "pattern": EMAIL_PATTERN}),
]
# Long passphrases welcome; the upper bound only keeps a request from making argon2 hash megabytes.
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
BusinessName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK
]


class SignupRequest(BaseModel):
    email: Email
    password: Password = Field(description="At least 8 characters.")
    business_name: BusinessName = Field(description="The tenant's name (1-200 characters).")


class LoginRequest(BaseModel):
    email: Email
    password: str = Field(max_length=256)
    cookie: JsonBool = Field(
        False,
        description="Also start a web-page session: an HttpOnly session cookie, and a CSRF token to send back "
        "in `X-CSRF-Token` on every state-changing request made with that cookie.",
    )


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=256)
    new_password: Password


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    csrf_token: str | None = Field(
        None, description="With `cookie: true` only: send it in `X-CSRF-Token` with the cookie."
    )
