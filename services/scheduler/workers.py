"""The scheduler's own state: the workers it knows and where each camera is placed.

Persisted in the scheduler's database (the ``workers`` and ``assignments`` tables, see
:mod:`~retina.services.scheduler.db`) so that a restarted scheduler keeps its workers and placement:
the workers keep analysing and simply heartbeat again. The live view of a worker (its lease and last
heartbeat) is the scheduler's :class:`~retina.services.scheduler.reconcile.WorkerState`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from retina.services.scheduler.db import SchedulerDatabase, assignments, open_database, upsert, workers


@dataclass(frozen=True)
class WorkerRecord:
    """A worker as stored (``devices`` is whatever JSON the scheduler stores)."""

    worker_id: str
    address: str
    devices: list[dict[str, Any]]
    decode_capacity: float
    model_key: str
    registered_at: float
    last_heartbeat_at: float


class WorkerStore:
    """The stored workers and assignments.

    ``database`` is an open :class:`~retina.services.scheduler.db.SchedulerDatabase` (shared with
    the camera registry; closing the store leaves it open) or a database URL, which the store opens
    and closes itself. Every method is one short transaction, safe from any thread.
    """

    def __init__(self, database: str | SchedulerDatabase):
        self._db, self._owns_db = open_database(database)

    def close(self) -> None:
        """Close the database connections (if the store opened the database)."""
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> WorkerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def save_worker(
        self,
        worker_id: str,
        address: str,
        devices: list[dict[str, Any]],
        decode_capacity: float,
        model_key: str = "",
        *,
        registered_at: float | None = None,
        last_heartbeat_at: float | None = None,
    ) -> WorkerRecord:
        """Insert or replace a worker (``devices``: any JSON-serialisable list of mappings).

        ``registered_at`` None keeps the stored registration time (now for a new worker);
        ``last_heartbeat_at`` None means now.
        """
        now = time.time()
        values = {
            "worker_id": worker_id,
            "address": address,
            "devices": devices,
            "decode_capacity": decode_capacity,
            "model_key": model_key,
            "registered_at": now if registered_at is None else registered_at,
            "last_heartbeat_at": now if last_heartbeat_at is None else last_heartbeat_at,
        }
        keep = {"registered_at"} if registered_at is None else set()
        with self._db.write() as connection:
            upsert(connection, workers, values, ["worker_id"], keep=keep)
            row = connection.execute(select(workers).where(workers.c.worker_id == worker_id)).one()
        return WorkerRecord(**row._asdict())

    def remove_worker(self, worker_id: str) -> bool:
        """Forget a worker; False if it was not stored. Its assignments are left to the caller."""
        with self._db.write() as connection:
            return connection.execute(delete(workers).where(workers.c.worker_id == worker_id)).rowcount > 0

    def load_workers(self) -> list[WorkerRecord]:
        """Every stored worker, ordered by id."""
        with self._db.read() as connection:
            rows = connection.execute(select(workers).order_by(workers.c.worker_id)).all()
        return [WorkerRecord(**row._asdict()) for row in rows]

    def set_assignments(self, placement: Mapping[str, tuple[str, str]]) -> None:
        """Replace every assignment with ``{camera_id: (worker_id, device_id)}`` in one transaction.

        A camera that stays on the same worker and device keeps its assignment time.
        """
        now = time.time()
        with self._db.write() as connection:
            current = {row.camera_id: row for row in connection.execute(select(assignments))}
            gone = [camera_id for camera_id in current if camera_id not in placement]
            if gone:
                connection.execute(delete(assignments).where(assignments.c.camera_id.in_(gone)))
            for camera_id, (worker_id, device_id) in placement.items():
                old = current.get(camera_id)
                if old is not None and (old.worker_id, old.device_id) == (worker_id, device_id):
                    continue
                values = {"worker_id": worker_id, "device_id": device_id, "assigned_at": now}
                if old is None:
                    connection.execute(insert(assignments).values(camera_id=camera_id, **values))
                else:
                    connection.execute(
                        update(assignments).where(assignments.c.camera_id == camera_id).values(**values)
                    )

    def load_assignments(self) -> dict[str, tuple[str, str]]:
        """Every stored assignment, ``{camera_id: (worker_id, device_id)}`` as set_assignments takes it."""
        with self._db.read() as connection:
            rows = connection.execute(select(assignments).order_by(assignments.c.camera_id)).all()
        return {row.camera_id: (row.worker_id, row.device_id) for row in rows}

    def assignment_times(self) -> dict[str, float]:
        """When each camera was placed where it is now (epoch seconds), by camera id."""
        with self._db.read() as connection:
            rows = connection.execute(select(assignments.c.camera_id, assignments.c.assigned_at)).all()
        return dict(rows)
