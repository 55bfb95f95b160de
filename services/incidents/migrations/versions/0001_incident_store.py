"""The incident store as it was before migrations: incidents, their events, pending media.

A store created before migrations existed (raw SQLite, no version table) already has these tables,
perhaps without ``incidents.clip_path`` (stores made before evidence clips): it is adopted as it is,
with only what it lacks added, and then stamped with this revision.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT8 = sa.Double().with_variant(sa.REAL(), "sqlite")  # SQLite: REAL, as the raw schema declared it
# Tables made by the raw schema, and their primary keys: SQLite let those be NULL (unless declared
# NOT NULL); the store never wrote one, and they are made NOT NULL when such a store is adopted.
PRIMARY_KEYS = {"incidents": "id", "pending_media": "path", "incident_events": "msg_id"}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    if "incidents" not in existing:
        op.create_table(
            "incidents",
            sa.Column("id", sa.Text(), primary_key=True),
            sa.Column("camera_id", sa.Text(), nullable=False),
            sa.Column("camera_name", sa.Text(), nullable=False),
            sa.Column("department", sa.Text(), nullable=False),
            sa.Column("algorithm", sa.Text(), nullable=False),
            sa.Column("zone", sa.Text(), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.Column("started_at", FLOAT8, nullable=False),
            sa.Column("last_seen_at", FLOAT8, nullable=False),
            sa.Column("ended_at", FLOAT8, nullable=True),
            sa.Column("dwell_seconds", FLOAT8, nullable=False),
            sa.Column("confidence", FLOAT8, nullable=False),
            sa.Column("snapshot_path", sa.Text(), nullable=True),
            sa.Column("revision", sa.Integer(), nullable=False),
            sa.Column("end_reason", sa.Text(), nullable=True),
            sa.Column("dispatch_status", sa.Text(), nullable=False, server_default="new"),
            sa.Column("closed_by", sa.Text(), nullable=True),
            sa.Column("close_note", sa.Text(), nullable=True),
            sa.Column("closed_at", FLOAT8, nullable=True),
            sa.Column("message_json", sa.Text(), nullable=False),
            sa.Column("clip_path", sa.Text(), nullable=True),
        )
    for table, key in PRIMARY_KEYS.items():  # adopt a store made before migrations
        if table not in existing:
            continue
        columns = {column["name"]: column for column in inspector.get_columns(table)}
        add_clip_path = table == "incidents" and "clip_path" not in columns
        if add_clip_path or columns[key]["nullable"]:
            with op.batch_alter_table(table) as batch:
                if add_clip_path:  # stores made before evidence clips
                    batch.add_column(sa.Column("clip_path", sa.Text(), nullable=True))
                batch.alter_column(key, existing_type=sa.Text(), nullable=False)
    indexes = set()
    if "incidents" in existing:
        indexes = {index["name"] for index in inspector.get_indexes("incidents")}
    if "incidents_by_time" not in indexes:
        op.create_index("incidents_by_time", "incidents", ["started_at"])
    if "incidents_by_camera" not in indexes:
        op.create_index("incidents_by_camera", "incidents", ["camera_id", "started_at"])
    if "pending_media" not in existing:
        op.create_table(
            "pending_media",
            sa.Column("path", sa.Text(), primary_key=True),
            sa.Column("incident_id", sa.Text(), nullable=False),
            sa.Column("first_try", FLOAT8, nullable=False),
        )
    if "incident_events" not in existing:
        op.create_table(
            "incident_events",
            sa.Column("msg_id", sa.Text(), primary_key=True),
            sa.Column("incident_id", sa.Text(), nullable=False),
            sa.Column("event", sa.Text(), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=False),
            sa.Column("received_at", FLOAT8, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("incident_events")
    op.drop_table("pending_media")
    op.drop_index("incidents_by_camera", table_name="incidents")
    op.drop_index("incidents_by_time", table_name="incidents")
    op.drop_table("incidents")
