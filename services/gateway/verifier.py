"""Automatic verification (核查): after an incident is handled, the platform looks at the scene again.

An incident handled with ``verify_seconds`` > 0 waits in ``verifying`` until its ``verify_due_at``.
Then the verifier asks the incident store whether the same camera's rule still has an incident
open in the same zone (the rule itself decides whether the violation is there, with its own dwell
and hysteresis), and takes the camera's current frame from the worker analysing it:

* still there → ``verify`` with outcome ``present``: the incident is reopened, with the fresh
  frame as evidence (if the camera gives none, the open incident is the evidence);
* gone → ``verify`` with outcome ``clear``, with the frame of the clear scene as evidence. Without
  a frame (camera offline, not placed) nothing is decided: it is tried again on the next pass, and
  a dispatcher can verify by hand meanwhile.

Steps are sent with ``expected_status="verifying"``, so a person who acts first wins, and several
gateway replicas never verify one incident twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from prometheus_client import Counter

from retina.services.core.serving import pause
from retina.services.gateway.backends import Backends
from retina.v1 import incidents_pb2, worker_pb2

log = logging.getLogger(__name__)
PASS_SECONDS = 2.0
ACTOR = "system:verifier"
VERIFIED = Counter("retina_gateway_verifications_total", "Automatic verifications decided", ["outcome"])
POSTPONED = Counter(
    "retina_gateway_verifications_postponed_total",
    "Verifications postponed: no frame of the camera",
    ["reason"],
)


async def capture(backends: Backends, camera_id: str, zone: str) -> tuple[bytes, str]:
    """The camera's current frame with the zone drawn, or (b"", why not)."""
    try:
        worker = await backends.worker_of(camera_id)
        if worker is None:
            return b"", "the camera is not analysed by a live worker"
        frame = await worker.CaptureFrame(
            worker_pb2.CaptureFrameRequest(camera_id=camera_id, zone=zone), timeout=10
        )
        return frame.jpeg, ""
    except grpc.aio.AioRpcError as exc:
        return b"", f"{exc.code().name}: {exc.details()}"


async def verify_one(backends: Backends, incident: incidents_pb2.Incident) -> str | None:
    """Decide one due incident; the outcome sent ("present"/"clear"), or None when postponed."""
    extra = {"camera_id": incident.camera_id, "incident_id": incident.id, "zone": incident.zone}
    still_open = await backends.incidents.ListIncidents(
        incidents_pb2.ListIncidentsRequest(
            camera_id=incident.camera_id,
            algorithm=incident.algorithm,
            zone=incident.zone,
            state="open",
            limit=10,
        ),
        timeout=10,
    )
    frame, why_not = await capture(backends, incident.camera_id, incident.zone)
    if still_open.incidents:
        outcome = "present"
        ids = ", ".join(i.id for i in still_open.incidents)
        note = f"still there after handling: {incident.algorithm} open in zone {incident.zone!r} ({ids})"
        if not frame:
            note += f"; no current frame ({why_not})"
    elif frame:
        outcome, note = "clear", f"zone {incident.zone!r} clear: no {incident.algorithm} incident open"
    else:
        POSTPONED.labels("no_frame").inc()
        log.warning("verification postponed: no frame of the camera", extra={**extra, "reason": why_not})
        return None
    step = incidents_pb2.DispatchRequest(
        id=incident.id, action="verify", actor=ACTOR, outcome=outcome, note=note, photo=frame,
        expected_status="verifying",
    )  # fmt: skip
    try:
        await backends.incidents.Dispatch(step, timeout=30)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # a person acted first
            log.info("verification skipped: the incident moved on", extra=extra)
            return None
        raise
    VERIFIED.labels(outcome).inc()
    log.info(f"verified automatically: {outcome}", extra=extra)
    return outcome


async def run_verifier(backends: Backends, stop: asyncio.Event) -> None:
    """Every couple of seconds, decide the incidents whose verification is due, until ``stop``."""
    while not stop.is_set():
        try:
            waiting = await backends.incidents.ListIncidents(
                incidents_pb2.ListIncidentsRequest(dispatch_status="verifying", limit=1000), timeout=10
            )
            now = time.time()
            for incident in waiting.incidents:
                if (
                    incident.HasField("verify_due_at")
                    and incident.verify_due_at.ToMicroseconds() / 1e6 <= now
                ):
                    await verify_one(backends, incident)
        except grpc.aio.AioRpcError as exc:  # a service restarting: the next pass tries again
            log.warning("verification pass failed", extra={"error": f"{exc.code().name}: {exc.details()}"})
        except Exception:
            log.exception("verification pass failed")
        await pause(stop, PASS_SECONDS)
