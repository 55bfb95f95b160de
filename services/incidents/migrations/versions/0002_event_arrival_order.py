"""incident_events.seq: the order events arrived in, on every database.

SQLite kept it implicitly (rowid); PostgreSQL has nothing like it. Existing events keep their order:
SQLite copies it from rowid, PostgreSQL numbers the rows as the identity column is added.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("incident_events", sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False))
    else:  # SQLite: the store writes MAX(seq) + 1 under its write lock
        op.add_column("incident_events", sa.Column("seq", sa.BigInteger(), nullable=True))
        op.execute("UPDATE incident_events SET seq = rowid")
        with op.batch_alter_table("incident_events") as batch:
            batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
    op.create_index("incident_events_by_arrival", "incident_events", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("incident_events_by_arrival", table_name="incident_events")
    with op.batch_alter_table("incident_events") as batch:
        batch.drop_column("seq")
