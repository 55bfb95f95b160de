"""The dispatch loop and department scope.

* ``incidents.visible_to``: the departments that may see the incident, as ``,a,b,`` (``*``: all).
  Incidents stored before it were seen by their owning department only, and get ``,<department>,``.
* ``incidents.assignee``, ``due_at``, ``close_reason``, ``verify_due_at``: the loop's current facts
  (incidents closed before it keep no close reason).
* ``incident_events.snapshot_path`` and ``details_json``: the evidence an event brought and its
  facts (end reason, dwell), for the incident's history; NULL for events stored before.
* ``dispatch_history``: every step of the loop, with ``published_at`` set once JetStream has it.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT8 = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.add_column("incidents", sa.Column("visible_to", sa.Text(), nullable=True))
    op.execute("UPDATE incidents SET visible_to = ',' || department || ','")
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("visible_to", existing_type=sa.Text(), nullable=False)
        batch.add_column(sa.Column("assignee", sa.Text(), nullable=True))
        batch.add_column(sa.Column("due_at", FLOAT8, nullable=True))
        batch.add_column(sa.Column("close_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("verify_due_at", FLOAT8, nullable=True))
    op.create_index("incidents_by_dispatch_status", "incidents", ["dispatch_status", "started_at"])
    with op.batch_alter_table("incident_events") as batch:
        batch.add_column(sa.Column("snapshot_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("details_json", sa.Text(), nullable=True))
    op.create_index("incident_events_by_incident", "incident_events", ["incident_id"])
    op.create_table(
        "dispatch_history",
        sa.Column("incident_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", FLOAT8, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("media_path", sa.Text(), nullable=True),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("published_at", FLOAT8, nullable=True),
    )
    op.create_index("dispatch_history_to_publish", "dispatch_history", ["published_at", "at"])


def downgrade() -> None:
    op.drop_index("dispatch_history_to_publish", table_name="dispatch_history")
    op.drop_table("dispatch_history")
    op.drop_index("incident_events_by_incident", table_name="incident_events")
    with op.batch_alter_table("incident_events") as batch:
        batch.drop_column("details_json")
        batch.drop_column("snapshot_path")
    op.drop_index("incidents_by_dispatch_status", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        for column in ("verify_due_at", "close_reason", "due_at", "assignee", "visible_to"):
            batch.drop_column(column)
