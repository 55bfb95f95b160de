"""Logging in and out: name and password, or the city's single sign-on (OIDC), into a session cookie.

Failed logins are counted per user name and per client address; after ``login_max_failures``
within ``login_lockout_seconds`` that name or address gets 429 until the lock-out ends, even with
the right password. With ``oidc_issuer`` set, ``/auth/oidc/login`` sends the browser to the
identity provider and ``/auth/oidc/callback`` makes the session; the department and role come
from the claims named by ``oidc_department_claim`` and ``oidc_role_claim``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountError, AccountStore, User
from retina.services.gateway.api_users import user_json
from retina.services.gateway.auth import CSRF_COOKIE, SESSION_COOKIE, Principal, principal

log = logging.getLogger(__name__)
router = APIRouter(tags=["session"])
Caller = Annotated[Principal, Depends(principal)]


class LoginBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def start_session(request: Request, response: Response, user: User, via: str = "password") -> dict[str, Any]:
    """Create a session for ``user`` and set its cookies on ``response``; the body of a login
    (``via``: how the user proved who they are, for the audit trail)."""
    settings: GatewaySettings = request.app.state.settings
    lifetime = settings.session_hours * 3600
    value, session = request.app.state.accounts.create_session(user, lifetime)
    secure, max_age = settings.cookie_secure, int(lifetime)
    response.set_cookie(
        SESSION_COOKIE, value, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf_token,
        max_age=max_age,
        httponly=False,
        secure=secure,
        samesite="strict",
        path="/",
    )
    request.app.state.accounts.audit(user.name, user.department, "login", user.name, via=via)
    return {"user": user_json(user), "csrf_token": session.csrf_token}


@router.post(
    "/auth/login",
    summary="Log in with name and password; sets the session cookies",
    responses={401: {"description": "wrong name or password"}, 429: {"description": "too many failures"}},
)
async def login(request: Request, response: Response, body: LoginBody) -> dict[str, Any]:
    store: AccountStore = request.app.state.accounts
    settings: GatewaySettings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    keys = [f"user:{body.name}", f"address:{address}"]
    wait = store.locked_for(keys)
    if wait > 0:
        store.audit(body.name, "", "login", body.name, "refused", reason="throttled", address=address)
        raise HTTPException(
            429,
            f"too many failed logins: try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await run_in_threadpool(store.authenticate, body.name, body.password)  # argon2 takes ~50 ms
    if user is None:
        store.record_failure(keys, settings.login_max_failures, settings.login_lockout_seconds)
        store.audit(
            body.name, "", "login", body.name, "refused", reason="wrong name or password", address=address
        )
        raise HTTPException(401, "wrong name or password")
    store.clear_failures(keys)
    return start_session(request, response, user)


@router.post("/auth/logout", summary="End this browser session")
async def logout(request: Request, response: Response, caller: Caller) -> dict[str, str]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        request.app.state.accounts.end_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"status": "logged out"}


@router.get("/auth/me", summary="Who the caller is: name, department, roles")
async def me(caller: Caller) -> dict[str, Any]:
    return {**user_json(caller.user), "via": caller.via}


# -- single sign-on ----------------------------------------------------------------------------------


def oidc_client(request: Request) -> Any:
    client = getattr(request.app.state, "oidc", None)
    if client is None:
        raise HTTPException(404, "single sign-on is not configured (set oidc_issuer, oidc_client_id)")
    return client


@router.get(
    "/auth/oidc/login", summary="Log in through the city's single sign-on", response_class=RedirectResponse
)
async def oidc_login(request: Request) -> Any:
    client = oidc_client(request)
    return await client.authorize_redirect(request, str(request.url_for("oidc_callback")))


@router.get("/auth/oidc/callback", summary="Where the identity provider sends the browser back")
async def oidc_callback(request: Request) -> Any:
    client = oidc_client(request)
    settings: GatewaySettings = request.app.state.settings
    try:
        # Authlib checks the issuer but not the audience unless asked: the ID token must name us.
        issuer = (await client.load_server_metadata())["issuer"]
        claims_options = {"iss": {"values": [issuer]}, "aud": {"values": [settings.oidc_client_id]}}
        token = await client.authorize_access_token(request, claims_options=claims_options)
    except Exception as exc:  # Authlib raises its own errors for a bad state, code or signature
        log.warning("single sign-on failed", extra={"error": str(exc)[:300]})
        raise HTTPException(401, "single sign-on failed: log in again") from None
    claims = token.get("userinfo") or {}
    name = claims.get("preferred_username") or claims.get("sub")
    department = claims.get(settings.oidc_department_claim)
    roles = claims.get(settings.oidc_role_claim)
    roles = [roles] if isinstance(roles, str) else list(roles or [])
    store: AccountStore = request.app.state.accounts

    def refuse(why: str) -> HTTPException:
        store.audit(
            str(name or "?"),
            str(department or ""),
            "login",
            str(name or ""),
            "refused",
            via="oidc",
            reason=why,
        )
        return HTTPException(403, why)

    if not name or not department:
        raise refuse(f"the identity provider gave no user name or no {settings.oidc_department_claim!r}")
    try:
        user = store.upsert_sso_user(str(name), str(department), roles)
    except AccountError as exc:
        raise refuse(f"single sign-on: {exc}") from None
    if user.disabled:
        raise refuse(f"{user.name} is disabled")
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, user, via="oidc")
    return response


def configure_oidc(app: Any, settings: GatewaySettings, session_secret: str) -> None:
    """Register the OIDC client when single sign-on is configured (Authlib; state in a signed cookie)."""
    if not settings.oidc_issuer:
        return
    from authlib.integrations.starlette_client import OAuth
    from starlette.middleware.sessions import SessionMiddleware

    oauth = OAuth()
    oauth.register(
        "sso",
        server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        client_kwargs={"scope": "openid profile"},
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie="retina_oidc",
        https_only=settings.cookie_secure,
    )
    app.state.oidc = oauth.sso
