"""Alembic environment of the scheduler's database (tables in services/scheduler/db.py).

There is no alembic.ini: :class:`~retina.services.scheduler.db.SchedulerDatabase` upgrades to head
when it opens (:func:`retina.services.core.database.migrate`), handing over its own connection
inside a transaction that already holds SQLite's write lock. To write a new revision after
changing the tables in db.py::

    from alembic import command
    from retina.services.core.database import alembic_config
    from retina.services.scheduler.db import MIGRATIONS_DIR
    command.revision(alembic_config("sqlite:////tmp/x.sqlite", MIGRATIONS_DIR), "add ...", autogenerate=True)

Its version table is Alembic's default, ``alembic_version``, as in every database made so far.
"""

from __future__ import annotations

from retina.services.core.database import run_alembic_env
from retina.services.scheduler.db import metadata

run_alembic_env(metadata)
