"""``retina gateway serve``, ``retina users``, ``retina tokens`` and ``retina audit``.

Users, tokens and the audit trail live in the gateway's database; these commands open it directly
(like a database's own admin tool), so they work on the machine that holds it, with or without a
running gateway: ``--data-dir`` (default ``var/gateway``, where ``retina up`` keeps it) or
``--database-url`` / ``RETINA_GATEWAY_DATABASE_URL``. Every change is written to the audit trail as
``cli:<operating-system user>``.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from retina.services.cli.common import LISTEN_HELP, service_settings, with_auth_flags
from retina.services.core.settings import GatewaySettings, default

if TYPE_CHECKING:
    from retina.services.gateway.accounts import AccountStore

gateway_app = typer.Typer(help="the authenticated HTTP gateway (REST API, live events)", no_args_is_help=True)
users_app = typer.Typer(help="people and machines that use the gateway", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for machines (bearer tokens that expire)", no_args_is_help=True)
audit_app = typer.Typer(help="the append-only audit trail", no_args_is_help=True)

DataDir = Annotated[str, typer.Option(help="the gateway's data folder")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(envvar="RETINA_GATEWAY_DATABASE_URL", help="the gateway's database (default: SQLite)"),
]
DEFAULT_DATA_DIR = default(GatewaySettings, "data_dir")


@gateway_app.command(
    epilog="Every option can also be set as an environment variable: RETINA_GATEWAY_<OPTION>,"
    " e.g. RETINA_GATEWAY_HTTP_PORT (the flag wins).",
)
@with_auth_flags
def serve(
    context: typer.Context,
    config: Annotated[
        str | None, typer.Option(help="cluster config (nats.url, plate and detector models, webhooks)")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    nats_url: Annotated[str, typer.Option()] = default(GatewaySettings, "nats_url"),
    http_port: Annotated[int, typer.Option()] = default(GatewaySettings, "http_port"),
    metrics_port: Annotated[int, typer.Option()] = default(GatewaySettings, "metrics_port"),
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = default(GatewaySettings, "listen"),
    incidents_address: Annotated[str, typer.Option()] = default(GatewaySettings, "incidents_address"),
    search_address: Annotated[str, typer.Option()] = default(GatewaySettings, "search_address"),
    scheduler_address: Annotated[str, typer.Option()] = default(GatewaySettings, "scheduler_address"),
    verify_seconds: Annotated[
        float, typer.Option(help="after 'handle', watch the scene this long, then verify (0: by hand)")
    ] = default(GatewaySettings, "verify_seconds"),
    cookie_secure: Annotated[
        bool, typer.Option(help="session cookies only over HTTPS (http://localhost counts as secure)")
    ] = default(GatewaySettings, "cookie_secure"),
    tls_cert_file: Annotated[str | None, typer.Option(help="serve HTTPS with this certificate")] = None,
    tls_key_file: Annotated[str | None, typer.Option(help="the certificate's key")] = None,
    session_hours: Annotated[float, typer.Option()] = default(GatewaySettings, "session_hours"),
    token_days: Annotated[float, typer.Option(help="default lifetime of API tokens")] = default(
        GatewaySettings, "token_days"
    ),
    login_max_failures: Annotated[int, typer.Option()] = default(GatewaySettings, "login_max_failures"),
    login_lockout_seconds: Annotated[float, typer.Option()] = default(
        GatewaySettings, "login_lockout_seconds"
    ),
    max_upload_mb: Annotated[float, typer.Option()] = default(GatewaySettings, "max_upload_mb"),
    oidc_issuer: Annotated[str | None, typer.Option(help="single sign-on: the OIDC issuer URL")] = None,
    oidc_client_id: Annotated[str | None, typer.Option()] = None,
    oidc_client_secret: Annotated[
        str | None,
        typer.Option(help="better set as RETINA_GATEWAY_OIDC_CLIENT_SECRET (flags are visible in ps)"),
    ] = None,
    oidc_department_claim: Annotated[str, typer.Option()] = default(GatewaySettings, "oidc_department_claim"),
    oidc_role_claim: Annotated[str, typer.Option()] = default(GatewaySettings, "oidc_role_claim"),
    oidc_state_secret: Annotated[
        str | None,
        typer.Option(help="better set as RETINA_GATEWAY_OIDC_STATE_SECRET (same on every replica)"),
    ] = None,
    map_tile_url: Annotated[
        str | None, typer.Option(help="the console map's tile server ({z}/{x}/{y}); none: no background")
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(help="proxies trusted to name the client in X-Forwarded-For (login throttle, audit)"),
    ] = default(GatewaySettings, "forwarded_allow_ips"),
    redact_evidence: Annotated[
        bool, typer.Option(help="blur faces and plates in evidence images and clips but for police, admin")
    ] = default(GatewaySettings, "redact_evidence"),
    plate_detector_model: Annotated[
        str | None, typer.Option(help="plate detector (.onnx) for redaction; none: plates not blurred")
    ] = None,
    person_detector_model: Annotated[
        str | None,
        typer.Option(help="detector of the people whose heads are blurred (default: detector.model)"),
    ] = None,
    face_detector_model: Annotated[
        str | None, typer.Option(help="YuNet face detector (.onnx): blur the faces it finds too")
    ] = None,
) -> int:
    """run the gateway: REST API under /api/v1, live events, automatic verification"""
    from retina.services.gateway.service import run_gateway

    run_gateway(service_settings(GatewaySettings, context, "gateway"))
    return 0


@contextmanager
def _accounts(data_dir: str, database_url: str | None) -> Iterator[AccountStore]:
    """The gateway's account store, closed afterwards; a refused change (AccountError) is printed
    as ``error: field: why`` and the command exits 2."""
    from retina.services.gateway.accounts import AccountError
    from retina.services.gateway.service import open_accounts

    flags = {"data_dir": data_dir, **({"database_url": database_url} if database_url else {})}
    store = open_accounts(GatewaySettings.load(flags))
    try:
        yield store
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    finally:
        store.close()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _when(epoch: float | None) -> str:
    from retina.services.gateway.accounts import utc_text

    return utc_text(epoch)


def read_password(password_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice at a hidden prompt."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def users_add(
    name: str,
    department: Annotated[str, typer.Option(help="the user's department (what they may see)")],
    role: Annotated[
        list[str], typer.Option(help="dispatcher, supervisor, police, ops or admin (repeat for several)")
    ],
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> int:
    """add a user who logs in with a password"""
    with _accounts(data_dir, database_url) as store:
        user = store.add_user_by(_actor(), "", name, department, role, read_password(password_stdin))
    print(f"added {name} ({department}: {', '.join(sorted(user.roles))})")
    return 0


@users_app.command("list")
def users_list(data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> int:
    """every user with department, roles and state"""
    from retina.services.cli.output import console, show, table

    with _accounts(data_dir, database_url) as store:
        out = console()
        grid = table(out, "name", "department", "roles", "state", "login", "created")
        for user in store.list_users():
            state = "disabled" if user.disabled else "active"
            grid.add_row(
                user.name,
                user.department,
                ",".join(sorted(user.roles)),
                state,
                user.source,
                _when(user.created_at),
            )
    show(out, grid)
    return 0


def _set_disabled(name: str, disabled: bool, data_dir: str, database_url: str | None) -> int:
    with _accounts(data_dir, database_url) as store:
        store.set_disabled_by(_actor(), "", name, disabled)
    print(
        f"{name} {'disabled: their sessions ended and their tokens stop working' if disabled else 'enabled'}"
    )
    return 0


@users_app.command("disable")
def users_disable(name: str, data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> int:
    """stop a user: sessions end at once, tokens stop working"""
    return _set_disabled(name, True, data_dir, database_url)


@users_app.command("enable")
def users_enable(name: str, data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> int:
    """let a disabled user log in again"""
    return _set_disabled(name, False, data_dir, database_url)


@users_app.command("password")
def users_password(
    name: str,
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> int:
    """set a user's password (their sessions end)"""
    with _accounts(data_dir, database_url) as store:
        store.set_password(name, read_password(password_stdin))
        store.audit(_actor(), "", "user.password", name)
    print(f"password of {name} changed")
    return 0


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="the user the token acts as (make one per machine)")],
    days: Annotated[float, typer.Option(help="it expires after this many days")] = default(
        GatewaySettings, "token_days"
    ),
    label: Annotated[str, typer.Option(help="what it is for")] = "",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> int:
    """make an API token; it is printed once, only its hash is kept"""
    with _accounts(data_dir, database_url) as store:
        token, record = store.create_token_by(_actor(), "", name, days, label)
    print(token)
    print(
        f"token {record.id} for {name}, expires {_when(record.expires_at)}; it is not shown again",
        file=sys.stderr,
    )
    return 0


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id (retina tokens list)")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> int:
    """revoke a token at once"""
    with _accounts(data_dir, database_url) as store:
        record = store.revoke_token_by(_actor(), "", token_id)
    print(f"token {token_id} of {record.user_name} revoked")
    return 0


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> int:
    """every token: id, user, expiry, state (never the token itself)"""
    import time

    from retina.services.cli.output import console, show, table

    with _accounts(data_dir, database_url) as store:
        out = console()
        grid = table(out, "id", "user", "label", "created", "expires", "last used", "state")
        now = time.time()
        for token in store.list_tokens():
            state = "revoked" if token.revoked_at else "expired" if token.expires_at <= now else "active"
            grid.add_row(
                token.id, token.user_name, token.label, _when(token.created_at), _when(token.expires_at),
                _when(token.last_used_at), state,
            )  # fmt: skip
    show(out, grid)
    return 0


@audit_app.command("list")
def audit_list(
    actor: Annotated[str, typer.Option(help="only this user")] = "",
    action: Annotated[
        str, typer.Option(help="only this action (search, media.view, ...; 'dispatch.': all steps)")
    ] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> int:
    """who did what, newest first"""
    from retina.services.cli.output import console, show, table

    with _accounts(data_dir, database_url) as store:
        entries = store.audit_entries(actor=actor, action=action, limit=limit)
    if as_json:
        for entry in entries:
            print(json.dumps(entry.__dict__, ensure_ascii=False))
        return 0
    out = console()
    grid = table(
        out, "when", "who", "department", "action", "target", "outcome", "details", wrap=("details",)
    )
    for entry in entries:
        details = json.dumps(entry.details, ensure_ascii=False)
        grid.add_row(
            _when(entry.at), entry.actor, entry.department, entry.action, entry.target, entry.outcome, details
        )
    show(out, grid)
    return 0
