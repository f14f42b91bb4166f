from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from app.auth import oidc
from app.auth.csrf import CSRF_COOKIE, SESSION_COOKIE
from app.auth.schemas import LoginRequest, PasswordChange, SignupRequest, TokenRead
from app.auth.service import IssuedToken
from app.auth.service import auth as auth_service
from app.auth.tokens import TokenKind
from app.config import Environment, Settings
from app.dependencies import RedisDep, SessionDep, SettingsDep
from app.models import Tenant, User
from app.users.auth import CurrentUser

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Wrong email or password"}}


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant and its owner",
    responses={409: {"description": "An account with this email already exists"}},
)
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
    user, tenant = await auth_service.login(
        session, redis, settings, ip=ip, email=body.email, password=body.password
    )
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


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


@router.get(
    "/oidc/login",
    summary="Sign in with the OpenID Connect provider: redirects to it",
    response_class=RedirectResponse,
    status_code=status.HTTP_302_FOUND,
    responses={404: {"description": "No provider is set up (MOSTRADOR_OIDC_*)"}},
)
async def oidc_login(request: Request, settings: SettingsDep) -> RedirectResponse:
    url, state_cookie = await oidc.start(settings, _redirect_uri(request, settings))
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    response.set_cookie(
        oidc.STATE_COOKIE,
        state_cookie,
        max_age=oidc.STATE_TTL_SECONDS,
        path="/v1/auth/oidc",
        secure=settings.env is not Environment.development,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
    )
    return response


@router.get(
    "/oidc/callback",
    name="oidc_callback",
    summary="Where the provider sends the browser back: starts a cookie session",
    responses={
        401: {"description": "The sign-in did not verify"},
        404: {"description": "No provider is set up (MOSTRADOR_OIDC_*)"},
    },
)
async def oidc_callback(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Query(max_length=2048)],
    state: Annotated[str, Query(max_length=256)],
) -> TokenRead:
    identity = await oidc.finish(
        settings,
        _redirect_uri(request, settings),
        code=code,
        state=state,
        cookie=request.cookies.get(oidc.STATE_COOKIE),
    )
    user, tenant = await auth_service.sign_in_oidc(session, email=identity.email, name=identity.name)
    response.delete_cookie(oidc.STATE_COOKIE, path="/v1/auth/oidc")
    return _answer(response, settings, user, tenant, with_cookie=True)
