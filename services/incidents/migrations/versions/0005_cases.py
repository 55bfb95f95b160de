"""City-management cases (案卷): ``cases``, ``case_incidents`` and ``case_history``.

Incidents stored before this revision belong to no case; cases are made from the incidents that
arrive after it (services/incidents/casebook.py).

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT8 = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column("category_name", sa.Text(), nullable=False),
        sa.Column("major_code", sa.Text(), nullable=False),
        sa.Column("major_name", sa.Text(), nullable=False),
        sa.Column("limit_working_hours", FLOAT8, nullable=True),
        sa.Column("limit_working_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("routed_by", sa.Text(), nullable=False),
        sa.Column("camera_id", sa.Text(), nullable=False),
        sa.Column("camera_department", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("grid_code", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("lat", FLOAT8, nullable=True),
        sa.Column("lon", FLOAT8, nullable=True),
        sa.Column("incident_scope", sa.Text(), nullable=False),
        sa.Column("visible_to", sa.Text(), nullable=False),
        sa.Column("opened_at", FLOAT8, nullable=False),
        sa.Column("first_seen_at", FLOAT8, nullable=False),
        sa.Column("last_seen_at", FLOAT8, nullable=False),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("recurrence_of", sa.Text(), nullable=True),
        sa.Column("recurrences", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", FLOAT8, nullable=True),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("due_at", FLOAT8, nullable=True),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("postponements", sa.Integer(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("pending_request", sa.Text(), nullable=True),
        sa.Column("pending_due_at", FLOAT8, nullable=True),
        sa.Column("pending_reason", sa.Text(), nullable=True),
        sa.Column("pending_by", sa.Text(), nullable=True),
        sa.Column("pending_at", FLOAT8, nullable=True),
        sa.Column("return_reason", sa.Text(), nullable=True),
        sa.Column("returned_by", sa.Text(), nullable=True),
        sa.Column("closed_at", FLOAT8, nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
    )
    op.create_index("cases_by_place", "cases", ["category_code", "camera_id", "zone", "last_seen_at"])
    op.create_index("cases_by_category", "cases", ["category_code", "last_seen_at"])
    op.create_index("cases_by_opening", "cases", ["opened_at"])
    op.create_index("cases_by_due", "cases", ["status", "due_at"])
    op.create_table(
        "case_incidents",
        sa.Column("incident_id", sa.Text(), primary_key=True),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("linked_at", FLOAT8, nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
    )
    op.create_index("case_incidents_by_case", "case_incidents", ["case_id", "linked_at"])
    op.create_table(
        "case_history",
        sa.Column("case_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", FLOAT8, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("visible_to", sa.Text(), nullable=False),
        sa.Column("due_at", FLOAT8, nullable=True),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("published_at", FLOAT8, nullable=True),
    )
    op.create_index("case_history_to_publish", "case_history", ["published_at", "at"])


def downgrade() -> None:
    op.drop_index("case_history_to_publish", table_name="case_history")
    op.drop_table("case_history")
    op.drop_index("case_incidents_by_case", table_name="case_incidents")
    op.drop_table("case_incidents")
    for index in ("cases_by_due", "cases_by_opening", "cases_by_category", "cases_by_place"):
        op.drop_index(index, table_name="cases")
    op.drop_table("cases")
