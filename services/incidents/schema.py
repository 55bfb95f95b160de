"""What every table of the incident store is declared on: one :data:`metadata` (the Alembic
migrations in ``migrations/versions`` create exactly its tables; a test compares them) and the
floating-point column type.

The incidents' own tables are in :mod:`~retina.services.incidents.store`, the cases' in
:mod:`~retina.services.incidents.casebook`. Both scope rows by a ``visible_to`` column holding the
departments that may see them as ``,a,b,`` (``*``: every department), so a scope filter is a ``LIKE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import REAL, ColumnElement, Double, MetaData, or_

from retina.services.core.incident import ALL_DEPARTMENTS

metadata = MetaData()
# Floating point: DOUBLE PRECISION on PostgreSQL; on SQLite REAL, as the store has always declared it.
Float8 = Double().with_variant(REAL(), "sqlite")


def encode_departments(departments: Iterable[str]) -> str:
    """Departments as stored in a ``visible_to`` column: ``,a,b,`` (each one matched by ``%,a,%``)."""
    return "," + ",".join(departments) + ","


def decode_departments(stored: str) -> list[str]:
    """The departments of a stored ``visible_to`` value."""
    return [department for department in stored.split(",") if department]


def visible_clause(column: ColumnElement[str], visible_to: Sequence[str]) -> ColumnElement[bool]:
    """Rows whose ``visible_to`` ``column`` names any of ``visible_to`` or every department (``*``)."""
    patterns = [f",{department}," for department in (*visible_to, ALL_DEPARTMENTS)]
    return or_(*(column.contains(pattern, autoescape=True) for pattern in patterns))
