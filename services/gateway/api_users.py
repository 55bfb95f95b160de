"""Users and API tokens for ``admin``: the same operations as ``retina users`` and ``retina tokens``.

Each change goes through the account store's audited operations (``user.add``, ``user.disable``,
``user.enable``, ``token.create``, ``token.revoke``; see :class:`AccountStore`), so the audit trail
reads the same whether an admin used the console or the CLI, except that the actor is the admin
instead of ``cli:<os user>``. A token's secret is shown once, in the answer that makes it; no
answer ever holds a password or a secret hash.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, Field

from retina.services.core.validation import TOKEN_PATTERN
from retina.services.gateway.accounts import ROLES, AccountError, AccountStore, ApiToken, User
from retina.services.gateway.auth import Principal, not_found, require
from retina.services.gateway.jsonify import iso_time

router = APIRouter(tags=["users"])
Admin = Annotated[Principal, Depends(require("admin"))]
UserName = Annotated[str, Path(pattern=TOKEN_PATTERN.pattern, description="the user's name")]
TokenId = Annotated[str, Path(pattern=TOKEN_PATTERN.pattern, description="the token's id")]


def _encodable(value: str) -> str:
    """``value`` if it is text that can be stored (UTF-8); a ValueError FastAPI answers with 422."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class NewUser(BaseModel):
    """A user who logs in with a password (the store checks every field)."""

    name: Text = Field(max_length=256, examples=["ana"])
    department: Text = Field(max_length=256, examples=["urban-management"])
    roles: list[Text] = Field(max_length=16, examples=[["dispatcher"]], description=", ".join(ROLES))
    password: Text = Field(max_length=1024, description="at least 10 characters")


class NewToken(BaseModel):
    """An API token acting as ``user``; without ``days`` it lives the gateway's ``token_days``."""

    user: Text = Field(max_length=256, examples=["camera-importer"])
    days: float | None = Field(default=None, description="more than 0, at most 3650")
    label: Text = Field(default="", max_length=200, description="what it is for")


def user_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "department": user.department,
        "roles": sorted(user.roles),
        "disabled": user.disabled,
        "source": user.source,
        "created_at": iso_time(user.created_at),
    }


def token_json(record: ApiToken) -> dict[str, Any]:
    return {
        "id": record.id,
        "user_name": record.user_name,
        "label": record.label,
        "created_at": iso_time(record.created_at),
        "expires_at": iso_time(record.expires_at),
        "revoked_at": iso_time(record.revoked_at),
        "last_used_at": iso_time(record.last_used_at),
    }


def refused(exc: AccountError, fields: dict[str, str]) -> HTTPException:
    """422 with the store's reason, its leading field renamed to the request's (``role`` → ``roles``)."""
    field, _, reason = str(exc).partition(": ")
    return HTTPException(422, f"{fields.get(field, field)}: {reason}" if reason else str(exc))


def store_of(request: Request) -> AccountStore:
    return request.app.state.accounts


@router.get("/users", summary="Every user with department, roles and state")
async def list_users(request: Request, caller: Admin) -> dict[str, Any]:
    return {"users": [user_json(u) for u in store_of(request).list_users()]}


@router.post("/users", status_code=201, summary="Add a user who logs in with a password")
async def add_user(request: Request, caller: Admin, body: NewUser) -> dict[str, Any]:
    try:
        user = await run_in_threadpool(  # argon2 takes ~50 ms
            store_of(request).add_user_by,
            caller.name, caller.department, body.name, body.department, body.roles, body.password,
        )  # fmt: skip
    except AccountError as exc:
        raise refused(exc, {"role": "roles"}) from None
    return user_json(user)


async def set_disabled(request: Request, caller: Principal, name: str, disabled: bool) -> dict[str, Any]:
    """Disable or enable ``name``: 404 for an unknown user; nobody disables themselves."""
    if disabled and name == caller.name:
        raise HTTPException(422, "name: you cannot disable yourself; ask another admin")
    try:
        user = store_of(request).set_disabled_by(caller.name, caller.department, name, disabled)
    except AccountError:
        raise not_found("user", name) from None
    return user_json(user)


@router.post("/users/{name}/disable", summary="Stop a user: sessions end at once, tokens stop working")
async def disable_user(request: Request, caller: Admin, name: UserName) -> dict[str, Any]:
    return await set_disabled(request, caller, name, True)


@router.post("/users/{name}/enable", summary="Let a disabled user log in again")
async def enable_user(request: Request, caller: Admin, name: UserName) -> dict[str, Any]:
    return await set_disabled(request, caller, name, False)


@router.get("/tokens", summary="Every API token (never the token itself)")
async def list_tokens(request: Request, caller: Admin) -> dict[str, Any]:
    return {"tokens": [token_json(t) for t in store_of(request).list_tokens()]}


@router.post("/tokens", status_code=201, summary="Make an API token; it is shown once, only its hash is kept")
async def create_token(request: Request, caller: Admin, body: NewToken) -> dict[str, Any]:
    days = request.app.state.settings.token_days if body.days is None else body.days
    try:
        token, record = store_of(request).create_token_by(
            caller.name, caller.department, body.user, days, body.label
        )
    except AccountError as exc:
        raise refused(exc, {"name": "user"}) from None
    return {"token": token, "record": token_json(record)}


@router.post(
    "/tokens/{token_id}/revoke",
    summary="Revoke a token at once",
    responses={409: {"description": "already revoked"}},
)
async def revoke_token(request: Request, caller: Admin, token_id: TokenId) -> dict[str, Any]:
    store = store_of(request)
    if store.get_token(token_id) is None:
        raise not_found("token", token_id)
    try:
        record = store.revoke_token_by(caller.name, caller.department, token_id)
    except AccountError as exc:  # revoked meanwhile, or before
        raise HTTPException(409, str(exc)) from None
    return token_json(record)
