"""The gateway's gRPC clients of the internal services, with its own service token on every call."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2_grpc

from retina.services.core import service_auth
from retina.v1 import (
    incidents_pb2_grpc,
    registry_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    search_pb2_grpc,
    worker_pb2_grpc,
)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # photo uploads to search and dispatch


class Backends:
    """Channels to the incident store, search and the scheduler (with the registry), opened once;
    a worker's channel is opened on demand (the scheduler says which worker holds a camera)."""

    def __init__(self, incidents: str, search: str, scheduler: str, token: str | None):
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        self._token = token
        self._options = options
        self.channels = {
            name: service_auth.aio_channel(address, token, options)
            for name, address in (("incidents", incidents), ("search", search), ("scheduler", scheduler))
        }
        self.incidents = incidents_pb2_grpc.IncidentServiceStub(self.channels["incidents"])
        self.search = search_pb2_grpc.SearchServiceStub(self.channels["search"])
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channels["scheduler"])
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self.channels["scheduler"])
        self.health = {name: health_pb2_grpc.HealthStub(channel) for name, channel in self.channels.items()}
        self._workers: dict[str, grpc.aio.Channel] = {}

    async def worker_of(self, camera_id: str) -> worker_pb2_grpc.WorkerServiceStub | None:
        """The worker analysing ``camera_id`` now, or None when it is not placed on a live worker."""
        status = await self.scheduler.GetClusterStatus(scheduler_pb2.GetClusterStatusRequest(), timeout=10)
        worker_id = next((a.worker_id for a in status.assignments if a.camera_id == camera_id), None)
        worker = next((w for w in status.workers if w.worker_id == worker_id and w.alive), None)
        if worker is None:
            return None
        if worker.address not in self._workers:
            self._workers[worker.address] = service_auth.aio_channel(
                worker.address, self._token, self._options
            )
        return worker_pb2_grpc.WorkerServiceStub(self._workers[worker.address])

    async def close(self) -> None:
        for channel in [*self.channels.values(), *self._workers.values()]:
            await channel.close()
