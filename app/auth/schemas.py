from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints

Email = Annotated[EmailStr, AfterValidator(lambda value: value.strip().lower())]
# Long passphrases welcome; the upper bound only keeps a request from making argon2 hash megabytes.
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
BusinessName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SignupRequest(BaseModel):
    email: Email
    password: Password = Field(description="At least 8 characters.")
    business_name: BusinessName = Field(description="The tenant's name (1-200 characters).")


class LoginRequest(BaseModel):
    email: Email
    password: str = Field(max_length=256)
    cookie: bool = Field(
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
