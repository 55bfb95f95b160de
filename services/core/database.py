"""SQL databases of the services (camera registry, incident store): engines and Alembic migrations.

A service's database is a SQLAlchemy URL: a SQLite file by default (:func:`sqlite_url`), or
PostgreSQL (``postgresql+psycopg://user:pw@host/db``, with the ``postgres`` extra). Each service
owns an Alembic migrations folder; :func:`migrate` upgrades the database to its newest revision
when the service opens it, so a newer retina can open an older database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, MetaData, event, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any constant works; it keeps two processes from migrating a PostgreSQL database at the same time.
POSTGRES_MIGRATION_LOCK = 0x7265_7469_6E61  # "retina"


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file (``sqlite:////abs/path/registry.sqlite``)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def create_engine(database_url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE for writes) or PostgreSQL.

    A connection with the execution option ``retina_write=True`` (see :func:`write_transaction`)
    takes SQLite's write lock when its transaction begins. The folder of a SQLite file is created.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return sa_create_engine(url, pool_pre_ping=True)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://")
    if not url.database or url.database == ":memory:":
        raise ValueError("a SQLite database must be a file (sqlite:////path/name.sqlite), not :memory:")
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa_create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so sqlite3 must not start transactions on its own.
        dbapi_connection.isolation_level = None
        for pragma in (
            "journal_mode=WAL",  # readers never block the writer, and the other way round
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "foreign_keys=ON",  # e.g. deleting a camera cascades to its algorithms and health
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write transaction takes SQLite's write lock up front: a deferred one that reads first
        # could not upgrade once another process had written, and would fail instead of waiting.
        immediate = connection.get_execution_options().get("retina_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
    with engine.connect() as connection:
        connection.execution_options(retina_write=True)
        with connection.begin():
            yield connection


def alembic_config(database_url: str, migrations_dir: Path) -> AlembicConfig:
    """An Alembic configuration for one service's migrations, built in code (no alembic.ini).

    Also the way to write a new migration after changing a service's tables::

        from alembic import command
        command.revision(alembic_config("sqlite:////tmp/x.sqlite", MIGRATIONS_DIR), "add ...",
                         autogenerate=True)
    """
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(engine: Engine, database_url: str, migrations_dir: Path) -> None:
    """Upgrade the database to the newest migration, in one write transaction.

    The migrations' env.py gets the connection in ``config.attributes["connection"]`` (see
    :func:`run_alembic_env`).
    """
    config = alembic_config(database_url, migrations_dir)
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def run_alembic_env(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of a service's migrations/env.py.

    Inside :func:`migrate` it upgrades over the connection handed over (already in a transaction
    that holds SQLite's write lock; on PostgreSQL it takes an advisory lock first). Given only
    ``sqlalchemy.url`` (e.g. to write a new revision with autogenerate, or ``--sql`` output for a
    DBA), it connects by itself. ``version_table`` lets services share one PostgreSQL database;
    autogenerate then also looks only at the service's own tables.
    """
    from alembic import context  # populated only while Alembic runs an env.py

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": version_table,
        "include_name": include_name,
        # Future ALTERs on SQLite are done by copying the table, which SQLite needs.
        "render_as_batch": True,
    }

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": POSTGRES_MIGRATION_LOCK})
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = sa_create_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()
