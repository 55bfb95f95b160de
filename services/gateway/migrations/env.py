"""Alembic environment of the gateway's database (tables in services/gateway/accounts.py).

:class:`~retina.services.gateway.accounts.AccountStore` upgrades to head when it opens. To write a
new revision after changing the tables::

    from alembic import command
    from retina.services.core.database import alembic_config
    from retina.services.gateway.accounts import MIGRATIONS_DIR
    command.revision(alembic_config("sqlite:////tmp/x.sqlite", MIGRATIONS_DIR), "add ...", autogenerate=True)
"""

from __future__ import annotations

from retina.services.core.database import run_alembic_env
from retina.services.gateway.accounts import VERSION_TABLE, metadata

run_alembic_env(metadata, VERSION_TABLE)
