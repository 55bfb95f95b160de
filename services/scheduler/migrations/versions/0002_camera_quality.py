"""Video quality: each camera's quality in its health record, and its reference view.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("camera_health", sa.Column("quality_json", sa.Text(), nullable=True))
    op.create_table(
        "camera_references",
        sa.Column(
            "camera_id", sa.String(64), sa.ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("captured_at", sa.Double(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("camera_references")
    with op.batch_alter_table("camera_health") as batch:  # SQLite rebuilds the table to drop a column
        batch.drop_column("quality_json")
