"""Alembic environment of the camera registry (services/scheduler/registry.py).

There is no alembic.ini: :class:`~services.scheduler.registry.CameraRegistry` builds the
configuration in code (:func:`~services.scheduler.registry.alembic_config`) and upgrades to head
when it opens, handing over its own connection in ``config.attributes["connection"]`` inside a
transaction that already holds SQLite's write lock. Given only ``sqlalchemy.url`` (e.g. to write a
new revision with autogenerate, or ``--sql`` output for a DBA), it connects by itself.
"""

from __future__ import annotations

from alembic import context
from retina.services.scheduler.registry import metadata
from sqlalchemy import Connection, create_engine, text

# Any constant works; it keeps two processes from migrating a PostgreSQL database at the same time.
POSTGRES_MIGRATION_LOCK = 0x7265_7469_6E61  # "retina"


def run_migrations(connection: Connection) -> None:
    """Upgrade over an open connection, in one transaction."""
    # render_as_batch: future ALTERs on SQLite are done by copying the table, which SQLite needs.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


main()
