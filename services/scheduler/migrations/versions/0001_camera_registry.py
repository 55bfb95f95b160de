"""The camera registry, its change log, and the scheduler's workers and assignments.

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


def upgrade() -> None:
    op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    # The single row holding the latest revision; every revisioned write locks and bumps it.
    state = sa.table("registry_state", sa.column("id", sa.Integer()), sa.column("revision", sa.BigInteger()))
    op.bulk_insert(state, [{"id": 1, "revision": 0}])

    op.create_table(
        "cameras",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("scene_type", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_cameras_department", "cameras", ["department"])
    op.create_index("ix_cameras_scene_type", "cameras", ["scene_type"])
    op.create_index("ix_cameras_enabled", "cameras", ["enabled"])

    op.create_table(
        "camera_algorithms",
        sa.Column(
            "camera_id", sa.String(64), sa.ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(128), primary_key=True),
    )
    op.create_index("ix_camera_algorithms_name", "camera_algorithms", ["name", "camera_id"])

    op.create_table(
        "camera_health",
        sa.Column(
            "camera_id", sa.String(64), sa.ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_frame_at", sa.Double(), nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "camera_changes",
        sa.Column("revision", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
    )

    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("decode_capacity", sa.Double(), nullable=False),
        sa.Column("model_key", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.Double(), nullable=False),
        sa.Column("last_heartbeat_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "assignments",
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_assignments_worker_id", "assignments", ["worker_id"])


def downgrade() -> None:
    for table in (
        "assignments",
        "workers",
        "camera_changes",
        "camera_health",
        "camera_algorithms",
        "cameras",
        "registry_state",
    ):
        op.drop_table(table)
