"""The gRPC calls the command line makes, in one place: one short function per call.

Each function opens its own channel, waits at most a few seconds and lets ``grpc.RpcError``
through; ``retina`` turns that into ``error: CODE: details`` and exit code 1.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from types import SimpleNamespace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retina.services.core.config import CameraConfig
from retina.services.core.convert import camera_to_proto
from retina.v1 import (
    incidents_pb2,
    incidents_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds for one call to a service on the cluster's network
PAGE_SIZE = 1000


# -- any service: grpc.health.v1 -------------------------------------------------------------------


def is_serving(address: str, timeout: float = 1.0) -> bool:
    """One grpc.health.v1 check: True when the server at ``address`` reports SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def wait_until_serving(address: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Wait until a gRPC server reports SERVING; RuntimeError if ``process`` exits first or on time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service at {address} exited with code {process.returncode} while starting")
        if is_serving(address):
            return
        time.sleep(0.3)
    raise RuntimeError(f"service at {address} not serving after {timeout:.0f} s")


# -- the scheduler: camera registry and cluster status ---------------------------------------------


def _registry_pages(
    stub: registry_pb2_grpc.RegistryServiceStub, **request: object
) -> list[registry_pb2.CameraRecord]:
    """Every record ListCameras answers for ``request`` (department, enabled), page by page."""
    records, page_token = [], ""
    while True:
        reply = stub.ListCameras(
            registry_pb2.ListCamerasRequest(**request, page_size=PAGE_SIZE, page_token=page_token),
            timeout=TIMEOUT,
        )
        records += reply.cameras
        page_token = reply.next_page_token
        if not page_token:
            return records


def list_cameras(scheduler_address: str, department: str = "") -> list[registry_pb2.CameraRecord]:
    """The registry's cameras (of one ``department``, or all), with their health."""
    with grpc.insecure_channel(scheduler_address) as channel:
        return _registry_pages(registry_pb2_grpc.RegistryServiceStub(channel), department=department)


def import_cameras(
    scheduler_address: str,
    cameras: list[CameraConfig],
    disable_others: bool = False,
    on_camera: Callable[[], None] | None = None,
) -> tuple[int, int, int]:
    """Create or update cameras in the registry; return (created, updated, unchanged).

    ``disable_others`` (``retina up``: the file is the truth) disables registered cameras the file
    no longer lists; their records and history stay. ``on_camera`` is called after each camera
    (a progress bar).
    """
    created = updated = unchanged = 0
    with grpc.insecure_channel(scheduler_address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        if disable_others:
            listed = {camera.id for camera in cameras}
            for record in _registry_pages(stub, enabled=True):
                if record.camera.id not in listed:
                    stub.UpdateCamera(
                        registry_pb2.UpdateCameraRequest(camera=record.camera, enabled=False), timeout=TIMEOUT
                    )
                    log.info(
                        "camera not in the file any more: disabled", extra={"camera_id": record.camera.id}
                    )
        for camera in cameras:
            message = camera_to_proto(camera)
            try:
                stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=message), timeout=TIMEOUT)
                created += 1
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                current = stub.GetCamera(registry_pb2.GetCameraRequest(camera_id=camera.id), timeout=TIMEOUT)
                if current.camera == message and current.enabled:
                    unchanged += 1
                else:
                    stub.UpdateCamera(
                        registry_pb2.UpdateCameraRequest(camera=message, enabled=True), timeout=TIMEOUT
                    )
                    updated += 1
            if on_camera is not None:
                on_camera()
    return created, updated, unchanged


def cluster_status(scheduler_address: str) -> scheduler_pb2.ClusterStatus:
    """Workers, devices, assignments and unplaced cameras, as the scheduler sees them."""
    with grpc.insecure_channel(scheduler_address) as channel:
        return scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
            scheduler_pb2.GetClusterStatusRequest(), timeout=TIMEOUT
        )


# -- one worker, directly ------------------------------------------------------------------------


def worker_status(worker_address: str) -> worker_pb2.WorkerStatus:
    """One worker's own view: its model, outbox and cameras."""
    with grpc.insecure_channel(worker_address) as channel:
        return worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(
            worker_pb2.GetStatusRequest(), timeout=TIMEOUT
        )


def assign_cameras(worker_address: str, cameras: list[CameraConfig]) -> None:
    """Assign cameras to one worker directly over gRPC (``retina assign``, without a scheduler)."""
    with grpc.insecure_channel(worker_address) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        for camera in cameras:
            stub.AssignCamera(worker_pb2.AssignCameraRequest(camera=camera_to_proto(camera)), timeout=30)
            log.info("camera assigned", extra={"camera_id": camera.id, "worker": worker_address})


# -- the incident store --------------------------------------------------------------------------


def list_incidents(
    address: str, camera_id: str = "", state: str = "", limit: int = 50
) -> list[incidents_pb2.Incident]:
    """Incidents, newest first (of one camera and/or state, or all)."""
    with grpc.insecure_channel(address) as channel:
        reply = incidents_pb2_grpc.IncidentServiceStub(channel).ListIncidents(
            incidents_pb2.ListIncidentsRequest(camera_id=camera_id, state=state, limit=limit), timeout=TIMEOUT
        )
    return list(reply.incidents)


def close_incident(address: str, incident_id: str, closed_by: str, note: str = "") -> incidents_pb2.Incident:
    """Close an incident out (a dispatcher's decision); return it as closed."""
    with grpc.insecure_channel(address) as channel:
        return incidents_pb2_grpc.IncidentServiceStub(channel).CloseIncident(
            incidents_pb2.CloseIncidentRequest(id=incident_id, closed_by=closed_by, note=note),
            timeout=TIMEOUT,
        )


# -- search --------------------------------------------------------------------------------------


def search(query: SimpleNamespace) -> search_pb2.SearchResponse:
    """``retina search query``: the flags' values are checked, sent, and every failure becomes one
    QueryError line naming the flag (services/search/client.py)."""
    from retina.services.search.client import search as checked_search

    return checked_search(query)


def search_by_incident(
    address: str, incident_id: str, department: str, k: int = 5
) -> search_pb2.SearchResponse:
    """Tracks that look like the object of incident ``incident_id``, best first."""
    with grpc.insecure_channel(address) as channel:
        return search_pb2_grpc.SearchServiceStub(channel).Search(
            search_pb2.SearchRequest(incident_id=incident_id, k=k, department=department), timeout=30
        )
