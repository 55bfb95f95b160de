"""``retina analyze SOURCE``: the worker's pipeline on one file or stream, incidents as JSON lines.

Files run as fast as the machine allows (time comes from the stream's timestamps) and the command
exits 0 at their end; live streams run for ``--duration`` seconds. Exit code 1 means the source
could not be read at all; the reason, naming the camera, is on stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from retina.services.core.config import CameraConfig, RetinaConfig
from retina.services.worker.detector import Detector
from retina.services.worker.ingest import CameraHealth, CameraState
from retina.services.worker.pipeline import Analyzer
from retina.services.worker.sinks import JsonLinesSink

LOCAL_MEDIA_BUCKET = "local"


def analyze(
    config: RetinaConfig,
    camera: CameraConfig,
    source: str,
    duration: float | None,
    media_dir: Path | None,
    out=sys.stdout,
) -> int:
    """Run one camera's pipeline over ``source``; print every incident event; return an exit code."""
    camera = camera.model_copy(update={"url": source})
    health: dict[str, CameraHealth] = {}
    delivered = threading.Event()
    evidence = config.evidence if media_dir is not None else None
    sink = JsonLinesSink(
        out,
        media_dir,
        evidence=evidence,
        request_clip=lambda *request: analyzer.request_clip(*request),
        media_bucket=LOCAL_MEDIA_BUCKET,
    )

    def on_status(camera_id: str, state: CameraHealth) -> None:
        health[camera_id] = state
        if state.state == CameraState.ONLINE:
            delivered.set()
        elif state.state in (CameraState.OFFLINE, CameraState.STALLED):
            print(f"camera {camera_id}: {state.state.value}: {state.reason}", file=sys.stderr)

    analyzer = Analyzer(
        Detector(config.detector),
        config.tracker,
        config.ingest,
        sink.deliver,
        on_status,
        realtime=False,
        retry_files=False,
        max_batch=1,
        evidence=evidence,
        quality=config.quality,  # problems are logged and carried in each incident's camera_quality
        plates=config.plates,  # plates read on vehicle tracks, carried in incidents
        motion=config.motion,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,), name="analysis")
    loop.start()
    analyzer.assign(camera)
    deadline = time.monotonic() + duration if duration else None
    try:
        while not analyzer.all_finished():
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        analyzer.release(camera.id, reason="end_of_stream")
        stop.set()
        loop.join()
        sink.close(timeout=None)  # every event written before the exit code
    if not delivered.is_set():
        reason = health.get(camera.id).reason if camera.id in health else "no frames"
        print(f"camera {camera.id}: no frames analysed from {source}: {reason}", file=sys.stderr)
        return 1
    return 0
