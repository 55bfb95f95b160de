"""The gRPC calls the command line makes, in one place: one short function per call.

Each function opens its own channel, waits at most a few seconds and lets ``grpc.RpcError``
through; ``retina`` turns that into ``error: CODE: details`` and exit code 1. Every call carries
the ``operator`` token (:func:`operator_token`).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retina.services.cli.common import OPERATOR_TOKEN_FILE, Options
from retina.services.core import service_auth
from retina.services.core.config import CameraConfig, ConfigError
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


# -- credentials -----------------------------------------------------------------------------------


def operator_token(token_file: str | Path | None = None) -> str:
    """The token client commands send: ``token_file``, else ``retina --token-file`` (or
    RETINA_TOKEN_FILE), else the one ``retina up`` created under its default data folder."""
    path = Path(token_file or Options.token_file or OPERATOR_TOKEN_FILE)
    if not path.is_file():
        problem = f"operator token: no file {path}: run retina up first, or pass --token-file"
        raise ConfigError([problem + " (or set RETINA_TOKEN_FILE)"])
    return service_auth.read_token(path)


def _channel(address: str, token: str | None = None) -> grpc.Channel:
    """A channel to ``address`` whose calls carry ``token`` (default: :func:`operator_token`)."""
    return service_auth.channel(address, token or operator_token())


# -- any service: grpc.health.v1 -------------------------------------------------------------------


def is_serving(address: str, timeout: float = 1.0) -> bool:
    """One grpc.health.v1 check (open to anyone): True when the server at ``address`` reports SERVING."""
    with service_auth.channel(address, None) as channel:
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
    with _channel(scheduler_address) as channel:
        return _registry_pages(registry_pb2_grpc.RegistryServiceStub(channel), department=department)


def get_camera(scheduler_address: str, camera_id: str) -> registry_pb2.CameraRecord:
    """One camera of the registry, with its health (and video quality)."""
    with _channel(scheduler_address) as channel:
        return registry_pb2_grpc.RegistryServiceStub(channel).GetCamera(
            registry_pb2.GetCameraRequest(camera_id=camera_id), timeout=TIMEOUT
        )


def capture_reference(scheduler_address: str, camera_id: str) -> worker_pb2.QualityReference:
    """Take the camera's current view as its reference view (its worker captures it, the registry
    stores it): a moved camera's rules resume."""
    with _channel(scheduler_address) as channel:
        return registry_pb2_grpc.RegistryServiceStub(channel).CaptureReference(
            worker_pb2.CaptureReferenceRequest(camera_id=camera_id), timeout=30
        )


def import_cameras(
    scheduler_address: str,
    cameras: list[CameraConfig],
    disable_others: bool = False,
    on_camera: Callable[[], None] | None = None,
    token: str | None = None,
) -> tuple[int, int, int]:
    """Create or update cameras in the registry; return (created, updated, unchanged).

    ``disable_others`` (``retina up``: the file is the truth) disables registered cameras the file
    no longer lists; their records and history stay. ``on_camera`` is called after each camera
    (a progress bar). ``token``: the operator token (default: :func:`operator_token`).
    """
    created = updated = unchanged = 0
    with _channel(scheduler_address, token) as channel:
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
    with _channel(scheduler_address) as channel:
        return scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
            scheduler_pb2.GetClusterStatusRequest(), timeout=TIMEOUT
        )


# -- one worker, directly ------------------------------------------------------------------------


def worker_status(worker_address: str) -> worker_pb2.WorkerStatus:
    """One worker's own view: its model, outbox and cameras."""
    with _channel(worker_address) as channel:
        return worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(
            worker_pb2.GetStatusRequest(), timeout=TIMEOUT
        )


def assign_cameras(worker_address: str, cameras: list[CameraConfig], token: str | None = None) -> None:
    """Assign cameras to one worker directly over gRPC (``retina assign``, without a scheduler);
    ``token``: the operator token (default: :func:`operator_token`)."""
    with _channel(worker_address, token) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        for camera in cameras:
            stub.AssignCamera(worker_pb2.AssignCameraRequest(camera=camera_to_proto(camera)), timeout=30)
            log.info("camera assigned", extra={"camera_id": camera.id, "worker": worker_address})


# -- the incident store --------------------------------------------------------------------------


def list_incidents(
    address: str, camera_id: str = "", state: str = "", limit: int = 50
) -> list[incidents_pb2.Incident]:
    """Incidents, newest first (of one camera and/or state, or all)."""
    with _channel(address) as channel:
        reply = incidents_pb2_grpc.IncidentServiceStub(channel).ListIncidents(
            incidents_pb2.ListIncidentsRequest(camera_id=camera_id, state=state, limit=limit), timeout=TIMEOUT
        )
    return list(reply.incidents)


def close_incident(
    address: str, incident_id: str, closed_by: str, note: str = "", reason: str = "resolved"
) -> incidents_pb2.Incident:
    """Close an incident out (the dispatch step ``close``, a dispatcher's decision with a reason:
    resolved, false_alarm, duplicate, other); return it as closed."""
    with _channel(address) as channel:
        return incidents_pb2_grpc.IncidentServiceStub(channel).Dispatch(
            incidents_pb2.DispatchRequest(
                id=incident_id, action="close", actor=closed_by, note=note, reason=reason
            ),
            timeout=TIMEOUT,
        )


# -- search --------------------------------------------------------------------------------------


def search(query: SimpleNamespace) -> search_pb2.SearchResponse:
    """``retina search query``: the flags' values are checked, sent, and every failure becomes one
    QueryError line naming the flag (services/search/client.py)."""
    from retina.services.search.client import search as checked_search

    return checked_search(query, operator_token)


def search_by_incident(
    address: str, incident_id: str, department: str, k: int = 5
) -> search_pb2.SearchResponse:
    """Tracks that look like the object of incident ``incident_id``, best first."""
    with _channel(address) as channel:
        return search_pb2_grpc.SearchServiceStub(channel).Search(
            search_pb2.SearchRequest(incident_id=incident_id, k=k, department=department), timeout=30
        )
