"""The pages (HTML, not API: kept out of the OpenAPI document). They read and write through the JSON API from
the browser; only the store page's activity chart is drawn here, from the same service as `GET .../stats`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.auth.csrf import SESSION_COOKIE
from app.auth.dependencies import authenticate
from app.auth.errors import NotAuthenticated
from app.auth.scopes import Scope
from app.config import WhatsAppDriver
from app.dependencies import RedisDep, SessionDep, SettingsDep
from app.messages.service import message as message_service
from app.web import i18n
from app.web.chart import activity_chart

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: Any) -> Response:
    lang = i18n.language(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"lang": lang, "t": i18n.MESSAGES[lang], "other_lang": i18n.other_language(lang), **context},
    )
    if request.query_params.get("lang") == lang:
        response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", path="/")
    return response


def _signed_in(request: Request) -> bool:
    # Only whether to show the page or the login: every read and write the page makes is checked by the API.
    return SESSION_COOKIE in request.cookies


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    if _signed_in(request) and "lang" not in request.query_params:
        return RedirectResponse("/app", status_code=303)
    return _page(request, "home.html")


@router.get("/app", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    if not _signed_in(request):
        return RedirectResponse("/", status_code=303)
    return _page(request, "dashboard.html")


@router.get("/app/stores/{store_id}", response_class=HTMLResponse)
async def store_page(
    store_id: str, request: Request, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    if not _signed_in(request):
        return RedirectResponse("/", status_code=303)
    try:
        auth = await authenticate(session, settings, None, request.cookies.get(SESSION_COOKIE))
    except NotAuthenticated:  # an expired or revoked session: log in again
        return RedirectResponse("/", status_code=303)
    chart = None
    if Scope.messages_read in auth.scopes:
        # The last 30 days of the same figures as GET /v1/stores/{id}/stats (404 for another tenant's store).
        stats = await message_service.stats(
            session, redis, tenant=auth.tenant, store_id=store_id, since=None, until=None
        )
        chart = activity_chart(stats, stats.until.date())
    simulator = settings.whatsapp_driver is WhatsAppDriver.simulator
    return _page(request, "store.html", store_id=store_id, simulator=simulator, chart=chart)


@router.get("/onboard/{token}", response_class=HTMLResponse)
async def onboarding_page(token: str, request: Request) -> Response:
    # No login: the token in the path is the credential; the page asks the /v1/onboarding API what it may show.
    response = _page(request, "onboard.html", token=token)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak to other sites
    return response


@router.get("/invite", response_class=HTMLResponse)
async def invite_page(request: Request) -> Response:
    # The invite's token is in the URL's fragment: the browser never sends it here, the page's script reads it.
    return _page(request, "invite.html")
