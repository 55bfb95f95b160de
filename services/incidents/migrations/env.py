"""Alembic environment of the incident store (services/incidents/store.py).

There is no alembic.ini: :class:`~retina.services.incidents.store.IncidentStore` upgrades to head
when it opens (:func:`retina.services.core.database.migrate`), handing over its own connection.
To write a new revision after changing the tables in store.py::

    from alembic import command
    from retina.services.core.database import alembic_config
    from retina.services.incidents.store import MIGRATIONS_DIR
    command.revision(alembic_config("sqlite:////tmp/x.sqlite", MIGRATIONS_DIR), "add ...", autogenerate=True)

The version table is ``incidents_alembic_version``, so the store may share a PostgreSQL database
with the camera registry.
"""

from __future__ import annotations

from retina.services.core.database import run_alembic_env
from retina.services.incidents.store import VERSION_TABLE, metadata

run_alembic_env(metadata, VERSION_TABLE)
