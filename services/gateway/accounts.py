"""The gateway's own database: users, browser sessions, API tokens, the login throttle, the audit trail.

SQLite in the gateway's data folder by default, PostgreSQL at city scale (``--database-url``); the
schema is owned by the Alembic migrations next to this file and upgraded when the store opens.

* Passwords are stored as argon2id hashes (argon2-cffi); a user logs in with name and password.
* A browser session is a random cookie value; only its SHA-256 is stored, with a CSRF token the
  page must echo in ``X-CSRF-Token`` on every change.
* An API token (``rtk_<id>_<secret>``) acts as the user it was made for, until it expires or is
  revoked; only the secret's SHA-256 is stored, so it is shown once, when it is made.
* Failed logins are counted per user name and per client address; past ``max_failures`` within the
  lock-out time, logins from that key wait (even with the right password).
* ``audit`` is append-only: the store has no call that changes or deletes a row, and the database
  refuses it too (a trigger, created by the migration).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    Column,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from retina.services.core.database import create_engine, migrate, sqlite_url, write_transaction
from retina.services.core.validation import is_token

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "gateway_alembic_version"  # its own, so it may share a PostgreSQL database

ROLES = ("dispatcher", "supervisor", "police", "ops", "admin")
"""dispatcher: incidents, the dispatch loop and cases; supervisor: decides cases' extension and
postponement requests (延期, 缓办); police: search by image; ops: cameras and the cluster; admin:
users, tokens and the audit trail."""

TOKEN_PREFIX = "rtk_"
MIN_PASSWORD_LENGTH = 10

metadata = MetaData()
Float8 = Double().with_variant(REAL(), "sqlite")
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")  # SQLite numbers only INTEGER PRIMARY KEYs

users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("roles", Text, nullable=False),  # comma-separated ROLES
    Column("password_hash", Text),  # NULL for single-sign-on users
    Column("disabled", Boolean, nullable=False),
    Column("source", String(16), nullable=False),  # "local" or "oidc"
    Column("created_at", Float8, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("label", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("created_at", Float8, nullable=False),
    Column("expires_at", Float8, nullable=False),
    Column("revoked_at", Float8),
    Column("last_used_at", Float8),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", Float8, nullable=False),
    Column("expires_at", Float8, nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", Text, primary_key=True),  # "user:<name>" or "address:<ip>"
    Column("failures", BigInteger, nullable=False),
    Column("first_at", Float8, nullable=False),
    Column("locked_until", Float8),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", SEQUENCE, Identity(), primary_key=True),
    Column("at", Float8, nullable=False),
    Column("actor", Text, nullable=False),  # user name, or "cli:<os user>", "system:<part>"
    Column("department", Text, nullable=False),
    Column("action", Text, nullable=False),  # e.g. search, media.view, dispatch.assign, user.add
    Column("target", Text, nullable=False),
    Column("outcome", Text, nullable=False),  # ok, refused, failed
    Column("details_json", Text, nullable=False),
    Index("audit_by_time", "at"),
    Index("audit_by_actor", "actor", "at"),
)


class AccountError(ValueError):
    """A user or token request that cannot be done; the message says why (and names the field)."""


@dataclass(frozen=True)
class User:
    name: str
    department: str
    roles: frozenset[str]
    disabled: bool
    source: str
    created_at: float


@dataclass(frozen=True)
class ApiToken:
    id: str
    user_name: str
    label: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: float


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    department: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]


def utc_text(epoch: float | None) -> str:
    """A time as the CLI shows it and the audit trail records it (``2030-01-31 12:00:00Z``; ``-``: none)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if epoch else "-"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(
        name=row.name,
        department=row.department,
        roles=frozenset(r for r in row.roles.split(",") if r),
        disabled=bool(row.disabled),
        source=row.source,
        created_at=row.created_at,
    )


def check_roles(roles: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The roles as a set; AccountError naming a role that does not exist."""
    if not roles:
        raise AccountError(f"role: give at least one of {', '.join(ROLES)}")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise AccountError(f"role: {', '.join(unknown)} is not a role (roles: {', '.join(ROLES)})")
    return frozenset(roles)


def check_password(password: str) -> None:
    """AccountError unless the password is long enough to resist guessing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")


class AccountStore:
    """Users, sessions, tokens, the throttle and the audit trail on SQLite or PostgreSQL (thread-safe)."""

    def __init__(self, database: str | Path):
        self.database_url = (
            database if isinstance(database, str) and "://" in database else sqlite_url(database)
        )
        self._engine = create_engine(self.database_url)
        self._lock = threading.Lock()
        self._hasher = PasswordHasher()
        try:
            migrate(self._engine, self.database_url, MIGRATIONS_DIR)
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    # -- users --------------------------------------------------------------------------------------

    def add_user(
        self, name: str, department: str, roles: list[str] | tuple[str, ...], password: str | None
    ) -> User:
        """Create a local user (or, with ``password=None``, one that logs in only by single sign-on)."""
        if not is_token(name):
            raise AccountError("name: 1-64 letters, digits, '-' or '_'")
        if not is_token(department):
            raise AccountError("department: 1-64 letters, digits, '-' or '_'")
        role_set = check_roles(roles)
        if password is not None:
            check_password(password)
        row = {
            "name": name,
            "department": department,
            "roles": ",".join(sorted(role_set)),
            "password_hash": self._hasher.hash(password) if password is not None else None,
            "disabled": False,
            "source": "local" if password is not None else "oidc",
            "created_at": time.time(),
        }
        with self._lock, write_transaction(self._engine) as connection:
            if connection.execute(select(users.c.name).where(users.c.name == name)).first():
                raise AccountError(f"name: a user {name!r} already exists")
            connection.execute(insert(users).values(**row))
        return self.get_user(name)  # type: ignore[return-value]

    def create_first_admin(self, name: str = "admin", department: str = "platform") -> str | None:
        """On an empty database, create the first ``admin`` with a random password and return that
        password (to be shown once); None when users exist already."""
        if self.count_users():
            return None
        password = secrets.token_urlsafe(15)
        try:
            self.add_user(name, department, ["admin"], password)
        except AccountError:  # another process made the first user meanwhile
            return None
        self.audit("system:retina-up", "", "user.add", name, user_department=department, roles=["admin"])
        return password

    def upsert_sso_user(self, name: str, department: str, roles: list[str]) -> User:
        """The single-sign-on user ``name`` with the department and roles its identity provider gave."""
        if not is_token(name):
            raise AccountError(
                "name: the identity provider's user name is not 1-64 letters, digits, '-' or '_'"
            )
        if not is_token(department):
            raise AccountError(
                "department: the identity provider's department is not 1-64 letters, digits, '-' or '_'"
            )
        role_set = check_roles(roles)
        with self._lock, write_transaction(self._engine) as connection:
            existing = connection.execute(select(users).where(users.c.name == name)).first()
            values = {"department": department, "roles": ",".join(sorted(role_set))}
            if existing is None:
                row = {"name": name, "password_hash": None, "disabled": False, "source": "oidc"}
                connection.execute(insert(users).values(**row, **values, created_at=time.time()))
            elif existing.source != "oidc":
                raise AccountError(f"name: {name!r} is a local user; single sign-on cannot take it over")
            else:
                connection.execute(update(users).where(users.c.name == name).values(**values))
        return self.get_user(name)  # type: ignore[return-value]

    def get_user(self, name: str) -> User | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.name == name)).first()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(users).order_by(users.c.name)).all()
        return [_user(row) for row in rows]

    def count_users(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(users)).scalar_one()

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        """Disable (or enable again) a user; a disabled user's sessions end at once."""
        with self._lock, write_transaction(self._engine) as connection:
            done = connection.execute(update(users).where(users.c.name == name).values(disabled=disabled))
            if done.rowcount == 0:
                raise AccountError(f"name: no user {name!r}")
            if disabled:
                connection.execute(delete(sessions).where(sessions.c.user_name == name))
        return self.get_user(name)  # type: ignore[return-value]

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        with self._lock, write_transaction(self._engine) as connection:
            values = {"password_hash": self._hasher.hash(password), "source": "local"}
            done = connection.execute(update(users).where(users.c.name == name).values(**values))
            if done.rowcount == 0:
                raise AccountError(f"name: no user {name!r}")
            connection.execute(delete(sessions).where(sessions.c.user_name == name))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the name and password match an enabled local user, else None (the same
        time is spent for an unknown name, so names cannot be probed by timing)."""
        with self._engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.name == name)).first()
        stored = row.password_hash if row is not None and row.password_hash else None
        try:
            if stored is None:
                self._hasher.verify(_DUMMY_HASH, password)
                return None
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        user = _user(row)
        return None if user.disabled else user

    # -- sessions -----------------------------------------------------------------------------------

    def create_session(self, user: User, lifetime_seconds: float) -> tuple[str, Session]:
        """A new browser session: (cookie value, session). Only the value's hash is stored."""
        value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        row = {
            "id_hash": _sha256(value),
            "user_name": user.name,
            "csrf_token": csrf,
            "created_at": now,
            "expires_at": now + lifetime_seconds,
        }
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(delete(sessions).where(sessions.c.expires_at < now))
            connection.execute(insert(sessions).values(**row))
        return value, Session(user=user, csrf_token=csrf, expires_at=row["expires_at"])

    def session(self, value: str) -> Session | None:
        """The live session of a cookie value (None when unknown, expired, or its user is disabled)."""
        query = (
            select(users, sessions.c.csrf_token, sessions.c.expires_at)
            .join(users, users.c.name == sessions.c.user_name)
            .where(sessions.c.id_hash == _sha256(value))
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None or row.expires_at <= time.time() or row.disabled:
            return None
        return Session(user=_user(row), csrf_token=row.csrf_token, expires_at=row.expires_at)

    def end_session(self, value: str) -> None:
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(delete(sessions).where(sessions.c.id_hash == _sha256(value)))

    # -- API tokens ---------------------------------------------------------------------------------

    def create_token(self, user_name: str, days: float, label: str = "") -> tuple[str, ApiToken]:
        """A new API token acting as ``user_name`` for ``days``: (the token, shown once; its record)."""
        if self.get_user(user_name) is None:
            raise AccountError(f"name: no user {user_name!r}")
        if not 0 < days <= 3650:
            raise AccountError(f"days: use more than 0 and at most 3650, got {days}")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = time.time()
        row = {
            "id": token_id,
            "user_name": user_name,
            "label": label,
            "secret_hash": _sha256(secret),
            "created_at": now,
            "expires_at": now + days * 86400,
            "revoked_at": None,
            "last_used_at": None,
        }
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(insert(api_tokens).values(**row))
        record = ApiToken(**{k: v for k, v in row.items() if k != "secret_hash"})
        return f"{TOKEN_PREFIX}{token_id}_{secret}", record

    def token_user(self, token: str) -> tuple[User, ApiToken] | None:
        """The user a bearer token acts for, if it is well formed, known, unexpired, unrevoked, and
        its user enabled; else None."""
        if not token.startswith(TOKEN_PREFIX) or token.count("_") < 2:
            return None
        token_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
        with self._engine.connect() as connection:
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
            return None
        now = time.time()
        if row.revoked_at is not None or row.expires_at <= now:
            return None
        user = self.get_user(row.user_name)
        if user is None or user.disabled:
            return None
        if row.last_used_at is None or now - row.last_used_at > 60:  # at most one write a minute
            with self._lock, write_transaction(self._engine) as connection:
                connection.execute(
                    update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
                )
        record = ApiToken(**{k: getattr(row, k) for k in ApiToken.__dataclass_fields__})
        return user, record

    def revoke_token(self, token_id: str) -> ApiToken:
        with self._lock, write_transaction(self._engine) as connection:
            done = connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise AccountError(f"token: no token {token_id!r} (see `retina tokens list`)")
        if done.rowcount == 0:
            raise AccountError(f"token: {token_id!r} was already revoked")
        return ApiToken(**{k: getattr(row, k) for k in ApiToken.__dataclass_fields__})

    def list_tokens(self) -> list[ApiToken]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(api_tokens).order_by(api_tokens.c.created_at)).all()
        return [ApiToken(**{k: getattr(row, k) for k in ApiToken.__dataclass_fields__}) for row in rows]

    # -- administration: each change with its audit entry (the CLI and the REST API alike) --------

    def add_user_by(
        self,
        actor: str,
        actor_department: str,
        name: str,
        department: str,
        roles: list[str] | tuple[str, ...],
        password: str | None,
    ) -> User:
        """:meth:`add_user`, audited as ``user.add`` by ``actor`` (AccountError: nothing is done)."""
        user = self.add_user(name, department, roles, password)
        self.audit(
            actor, actor_department, "user.add", name, user_department=department, roles=sorted(user.roles)
        )
        return user

    def set_disabled_by(self, actor: str, actor_department: str, name: str, disabled: bool) -> User:
        """:meth:`set_disabled`, audited as ``user.disable`` or ``user.enable`` by ``actor``."""
        user = self.set_disabled(name, disabled)
        self.audit(actor, actor_department, "user.disable" if disabled else "user.enable", name)
        return user

    def create_token_by(
        self, actor: str, actor_department: str, user_name: str, days: float, label: str = ""
    ) -> tuple[str, ApiToken]:
        """:meth:`create_token`, audited as ``token.create`` by ``actor`` (never with the token)."""
        token, record = self.create_token(user_name, days, label)
        self.audit(
            actor, actor_department, "token.create", record.id,
            user=user_name, expires_at=utc_text(record.expires_at), label=label,
        )  # fmt: skip
        return token, record

    def revoke_token_by(self, actor: str, actor_department: str, token_id: str) -> ApiToken:
        """:meth:`revoke_token`, audited as ``token.revoke`` by ``actor``."""
        record = self.revoke_token(token_id)
        self.audit(actor, actor_department, "token.revoke", token_id, user=record.user_name)
        return record

    def get_token(self, token_id: str) -> ApiToken | None:
        """The record of the API token ``token_id`` (never its secret), or None."""
        with self._engine.connect() as connection:
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return ApiToken(**{k: getattr(row, k) for k in ApiToken.__dataclass_fields__}) if row else None

    # -- login throttle -----------------------------------------------------------------------------

    def locked_for(self, keys: list[str]) -> float:
        """Seconds until a login for any of ``keys`` may be tried again (0: now)."""
        now = time.time()
        with self._engine.connect() as connection:
            rows = connection.execute(select(login_failures).where(login_failures.c.key.in_(keys))).all()
        return max([0.0] + [row.locked_until - now for row in rows if row.locked_until])

    def record_failure(self, keys: list[str], max_failures: int, lockout_seconds: float) -> None:
        """Count a failed login against each key; a key reaching ``max_failures`` within
        ``lockout_seconds`` is locked for ``lockout_seconds``."""
        now = time.time()
        with self._lock, write_transaction(self._engine) as connection:
            for key in keys:
                row = connection.execute(select(login_failures).where(login_failures.c.key == key)).first()
                if row is None or now - row.first_at > lockout_seconds:
                    connection.execute(delete(login_failures).where(login_failures.c.key == key))
                    failures = 1
                    connection.execute(
                        insert(login_failures).values(key=key, failures=1, first_at=now, locked_until=None)
                    )
                else:
                    failures = row.failures + 1
                    connection.execute(
                        update(login_failures).where(login_failures.c.key == key).values(failures=failures)
                    )
                if failures >= max_failures:
                    connection.execute(
                        update(login_failures)
                        .where(login_failures.c.key == key)
                        .values(locked_until=now + lockout_seconds, failures=0, first_at=now)
                    )

    def clear_failures(self, keys: list[str]) -> None:
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(delete(login_failures).where(login_failures.c.key.in_(keys)))

    # -- audit --------------------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        department: str,
        action: str,
        target: str = "",
        outcome: str = "ok",
        **details: Any,
    ) -> None:
        """Append one entry to the audit trail."""
        row = {
            "at": time.time(),
            "actor": actor,
            "department": department,
            "action": action,
            "target": target,
            "outcome": outcome,
            "details_json": json.dumps(details, sort_keys=True, default=str),
        }
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(insert(audit).values(**row))

    def audit_entries(
        self,
        *,
        actor: str = "",
        department: str = "",
        action: str = "",
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Audit entries matching every given filter, newest first."""
        query = select(audit)
        for column, value in ((audit.c.actor, actor), (audit.c.department, department)):
            if value:
                query = query.where(column == value)
        if action:  # "search" also matches nothing else; "dispatch." matches every dispatch step
            query = query.where(
                audit.c.action.startswith(action) if action.endswith(".") else audit.c.action == action
            )
        if since is not None:
            query = query.where(audit.c.at >= since)
        if until is not None:
            query = query.where(audit.c.at < until)
        query = query.order_by(audit.c.seq.desc()).limit(max(1, min(limit, 1000))).offset(max(0, offset))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            AuditEntry(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                department=row.department,
                action=row.action,
                target=row.target,
                outcome=row.outcome,
                details=json.loads(row.details_json),
            )
            for row in rows
        ]


_DUMMY_HASH = PasswordHasher().hash("retina: no such user")
