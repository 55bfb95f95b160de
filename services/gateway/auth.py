"""Who is calling, and what they may see: identity from a session cookie or a bearer token, roles,
CSRF, and the department scope the server derives from the account (never from the request).

A browser logs in at ``POST /api/v1/auth/login`` and gets two cookies: ``retina_session``
(HTTP-only, Secure, SameSite=Strict: scripts cannot read it) and ``retina_csrf`` (readable by the
page). Every request that changes something with a session cookie must send the CSRF value back
in the ``X-CSRF-Token`` header. Machines send ``Authorization: Bearer rtk_…`` instead and need no
CSRF token (nothing is sent automatically by a browser for them).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import grpc
from fastapi import Depends, HTTPException, Request, status

from retina.services.gateway.accounts import AccountStore, User

SESSION_COOKIE = "retina_session"
CSRF_COOKIE = "retina_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    """The caller, as the gateway knows it from its own account records."""

    user: User
    via: str  # "session" or "token"
    credential_id: str = ""  # the API token's id, for the audit trail

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def department(self) -> str:
        return self.user.department

    def has(self, *roles: str) -> bool:
        return bool(self.user.roles & set(roles))

    def may_see(self, visible_to: list[str] | tuple[str, ...]) -> bool:
        """May this caller's department see something recorded as visible to ``visible_to``?"""
        return self.department in visible_to or "*" in visible_to


def accounts(request: Request) -> AccountStore:
    return request.app.state.accounts


def unauthenticated(
    detail: str = "log in, or send an API token as 'Authorization: Bearer …'",
) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def principal(request: Request) -> Principal:
    """The authenticated caller; 401 without valid credentials, 403 for a cookie request that
    changes something without the session's CSRF token."""
    store = accounts(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("the Authorization header must be 'Bearer <API token>'")
        found = store.token_user(token.strip())
        if found is None:
            raise unauthenticated("the API token is unknown, expired or revoked")
        user, record = found
        return Principal(user=user, via="token", credential_id=record.id)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise unauthenticated()
    session = store.session(cookie)
    if session is None:
        raise unauthenticated("the session has ended: log in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, session.csrf_token):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"missing or wrong {CSRF_HEADER} header: send the value of the {CSRF_COOKIE} cookie",
            )
    return Principal(user=session.user, via="session")


def require(*roles: str) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold one of ``roles`` (403 otherwise)."""

    async def dependency(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if not caller.has(*roles):
            needed, held = " or ".join(roles), ", ".join(sorted(caller.user.roles))
            raise HTTPException(403, f"this needs the role {needed}; {caller.name} has {held}")
        return caller

    return dependency


def not_found(what: str, key: str) -> HTTPException:
    """The answer for an unknown id and for an id outside the caller's scope alike."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key!r}")


async def fetch_or_not_found(call: Awaitable[T], what: str, key: str) -> T:
    """The answer of a backend call; the gateway's own 404 (:func:`not_found`) when the backend
    knows no such ``what``, so an unknown id reads exactly as one outside the caller's scope."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found(what, key) from None
        raise
