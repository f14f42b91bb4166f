from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from app.auth.csrf import CSRF_COOKIE, SESSION_COOKIE
from app.auth.dependencies import Authenticator
from app.auth.schemas import LoginRequest, PasswordChange, SignupRequest, TokenRead
from app.auth.service import IssuedToken
from app.auth.service import auth as auth_service
from app.auth.subject import AuthSubject
from app.auth.tokens import TokenKind
from app.config import Environment, Settings
from app.dependencies import RedisDep, SessionDep, SettingsDep
from app.models import Tenant, User

router = APIRouter(prefix="/v1/auth", tags=["auth"])

CurrentUser = Annotated[AuthSubject, Depends(Authenticator(users_only=True))]
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Wrong email or password"}}


@router.post("/signup", status_code=status.HTTP_201_CREATED, summary="Create a tenant and its owner")
async def signup(body: SignupRequest, session: SessionDep, settings: SettingsDep) -> TokenRead:
    _, issued = await auth_service.signup(
        session, settings, email=body.email, password=body.password, business_name=body.business_name
    )
    return TokenRead(access_token=issued.token, expires_in=issued.ttl_seconds)


@router.post(
    "/login",
    summary="Log in: an access token, and optionally a web-page session cookie",
    responses={**_UNAUTHORIZED, 429: {"description": "Too many attempts; see Retry-After"}},
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> TokenRead:
    ip = request.client.host if request.client else "unknown"
    user = await auth_service.login(session, redis, settings, ip=ip, email=body.email, password=body.password)
    tenant = await session.get_one(Tenant, user.tenant_id)
    return _answer(response, settings, user, tenant, with_cookie=body.cookie)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out: every token and session of this user stops working",
)
async def logout(subject: CurrentUser, session: SessionDep, response: Response) -> None:
    assert subject.user is not None
    await auth_service.logout(session, subject.user)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post(
    "/password",
    summary="Change the password: every other token and session stops working",
    responses={403: {"description": "The current password is wrong"}},
)
async def change_password(
    body: PasswordChange, subject: CurrentUser, session: SessionDep, settings: SettingsDep, response: Response
) -> TokenRead:
    assert subject.user is not None
    issued = await auth_service.change_password(
        session, settings, subject.user, subject.tenant, current=body.current_password, new=body.new_password
    )
    if subject.by_cookie:
        _set_session_cookie(
            response,
            settings,
            auth_service.issue(settings, subject.user, subject.tenant, kind=TokenKind.session),
        )
    return TokenRead(access_token=issued.token, expires_in=issued.ttl_seconds)


def _answer(
    response: Response, settings: Settings, user: User, tenant: Tenant, *, with_cookie: bool
) -> TokenRead:
    issued = auth_service.issue(settings, user, tenant, kind=TokenKind.access)
    csrf = None
    if with_cookie:
        csrf = _set_session_cookie(
            response, settings, auth_service.issue(settings, user, tenant, kind=TokenKind.session)
        )
    return TokenRead(access_token=issued.token, expires_in=issued.ttl_seconds, csrf_token=csrf)


def _set_session_cookie(response: Response, settings: Settings, session_token: IssuedToken) -> str | None:
    secure = settings.env is not Environment.development  # plain http://localhost only in development
    response.set_cookie(
        SESSION_COOKIE,
        session_token.token,
        max_age=session_token.ttl_seconds,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    # Readable by the page's script (that is the point of it); worthless without the HttpOnly cookie.
    response.set_cookie(
        CSRF_COOKIE,
        session_token.csrf_token or "",
        max_age=session_token.ttl_seconds,
        path="/",
        secure=secure,
        httponly=False,
        samesite="lax",
    )
    return session_token.csrf_token
