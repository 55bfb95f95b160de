"""The scheduler service: the camera registry (一机一档), worker leases, and camera placement.

``retina scheduler serve`` runs :func:`run_scheduler`: one gRPC server hosting
``retina.v1.SchedulerService`` (:mod:`~retina.services.scheduler.scheduler_api`, over the
:class:`~retina.services.scheduler.reconcile.Scheduler` and its reconcile loop) and
``retina.v1.RegistryService`` (:mod:`~retina.services.scheduler.registry_api`, over the
:class:`~retina.services.scheduler.cameras.CameraRegistry`). The registry and the scheduler's
workers and assignments (:class:`~retina.services.scheduler.workers.WorkerStore`) share one
database (:mod:`~retina.services.scheduler.db`: SQLite, or PostgreSQL by URL).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc

from retina.services.core import service_auth
from retina.services.core.config import RetinaConfig
from retina.services.core.database import sqlite_url
from retina.services.core.metrics import serve_metrics
from retina.services.core.serving import run_until_signalled, start_grpc_server
from retina.services.core.settings import SchedulerSettings
from retina.services.core.validation import add_guarded
from retina.services.scheduler.cameras import CameraRegistry
from retina.services.scheduler.db import SchedulerDatabase
from retina.services.scheduler.reconcile import Scheduler
from retina.services.scheduler.registry_api import RegistryServicer
from retina.services.scheduler.scheduler_api import SchedulerServicer
from retina.services.scheduler.workers import WorkerStore
from retina.v1 import registry_pb2_grpc, scheduler_pb2_grpc

log = logging.getLogger(__name__)


def database_url(configured: str | None, data_dir: Path) -> str:
    """The configured database, or SQLite in the scheduler's data folder."""
    if configured:
        return configured
    data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(data_dir / "registry.sqlite")


def run_scheduler(settings: SchedulerSettings, config: RetinaConfig) -> None:
    """Entry point of ``retina scheduler serve``: serve until SIGTERM/SIGINT.

    ``settings``: ports, address, data folder, database URL; ``config``: the cluster configuration
    (its ``scheduler`` section and the cameras' ``defaults``).
    """
    listen, grpc_port, metrics_port = settings.listen, settings.grpc_port, settings.metrics_port
    auth = service_auth.configure(settings)

    async def main(stop: asyncio.Event) -> None:
        database = SchedulerDatabase(database_url(settings.database_url, settings.data_dir))
        registry = CameraRegistry(database)
        scheduler = Scheduler(registry, WorkerStore(database), config.scheduler, settings.incidents_address)
        loop = asyncio.get_running_loop()
        registry.add_listener(lambda _revision: loop.call_soon_threadsafe(scheduler.wake.set))
        registry_servicer = RegistryServicer(
            registry, config.defaults, capture_reference=scheduler.capture_reference
        )
        serve_metrics(metrics_port, listen)

        def register(server: grpc.aio.Server) -> None:
            add_guarded(
                server,
                scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
                SchedulerServicer(scheduler),
            )
            add_guarded(server, registry_pb2_grpc.add_RegistryServiceServicer_to_server, registry_servicer)

        server, _, port = await start_grpc_server(
            listen, grpc_port, register, "retina.v1.SchedulerService", auth=auth
        )
        log.info("scheduler serving", extra={"grpc_port": port})
        reconciling = asyncio.create_task(scheduler.run(stop))
        await stop.wait()
        log.info("scheduler stopping")
        registry_servicer.close()
        await server.stop(grace=2)
        await reconciling
        database.close()
        log.info("scheduler stopped")

    run_until_signalled(main)
