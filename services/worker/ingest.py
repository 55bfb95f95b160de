"""Camera ingest: one decode thread per camera (PyAV), sampled to the analysis rate by timestamp.

A camera's thread opens the source, decodes every frame (H.264 needs them all), converts only the
frames due at ``analysis_fps`` (by stream timestamp) and hands them to a :class:`FrameBuffer`. On
any failure it reports the camera ``offline`` or ``stalled`` with a reason and reconnects with
exponential backoff and jitter; nothing it does can block another camera or the inference loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from retina.services.core.backoff import Backoff
from retina.services.core.config import CameraConfig, IngestConfig
from retina.services.core.health import CameraState
from retina.services.worker import metrics
from retina.services.worker.evidence import ClipCutter, ClipRequest
from retina.services.worker.quality import QualityMonitor, QualityReport, QualityStatus

log = logging.getLogger(__name__)

_hwaccel_failed: set[str] = set()  # hardware decoders that failed to start on this node (warned once)


def open_container(
    url: str, options: dict[str, str], timeout: tuple[float, float], hwaccel: str, camera_id: str = ""
) -> av.container.InputContainer:
    """Open ``url``; decode on the ``hwaccel`` device ('cuda': NVDEC) where FFmpeg and the node offer
    it, else in software. A source that opens in software after the hardware open failed proves the
    device at fault: that is warned once and the device is not tried again."""
    if hwaccel == "none" or hwaccel in _hwaccel_failed:
        return av.open(url, options=options, timeout=timeout)
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if hwaccel in hwdevices_available():
        try:
            return av.open(url, options=options, timeout=timeout, hwaccel=HWAccel(device_type=hwaccel))
        except Exception as exc:  # no device, no driver, no permission, or the source itself
            reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "this FFmpeg build has no such device type"
    container = av.open(url, options=options, timeout=timeout)  # raises when the source is at fault
    _hwaccel_failed.add(hwaccel)
    log.warning(
        "ingest.hwaccel %r is unavailable on this node (%s); decoding in software",
        hwaccel,
        reason,
        extra={"camera_id": camera_id},
    )
    return container


LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
# A live stream whose timestamps drift this far from the wall clock is re-based onto it.
MAX_LIVE_DRIFT_SECONDS = 5.0


class SourceStalled(Exception):
    """The source sent no frame for ``stall_seconds``, though its connection is still open."""

    def __init__(self, silent_seconds: float):
        super().__init__(f"no frame for {silent_seconds:.0f} s")
        self.silent_seconds = silent_seconds


@dataclass
class SampledFrame:
    camera_id: str
    timestamp: float  # seconds since the epoch, from stream timestamps
    image: np.ndarray  # BGR


@dataclass
class CameraHealth:
    """What the worker knows about one camera's source."""

    state: CameraState = CameraState.STARTING
    reason: str = "starting"
    since: float = field(default_factory=time.time)
    last_frame_at: float | None = None
    frames_decoded: int = 0
    frames_sampled: int = 0
    frames_analysed: int = 0
    frames_skipped: int = 0  # of those, analysed with re-used detections (nothing moved)
    reconnects: int = 0


StatusCallback = Callable[[str, CameraHealth], None]
# Called on the decode thread when a camera's video quality changes (see QualityMonitor.observe).
QualityCallback = Callable[[str, QualityReport], None]
NO_QUALITY = QualityStatus()


def skips_nonref_frames(ingest: IngestConfig, analysis_fps: float, stream: av.VideoStream) -> bool:
    """Whether to leave a stream's non-reference frames undecoded: only with B-frames (nothing else
    is non-reference in practice) and when a quarter of its frame rate still covers the sampling."""
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    return ingest.skip_nonref_frames and stream.codec_context.has_b_frames > 0 and 4 * analysis_fps <= rate


def is_live(url: str) -> bool:
    """Network sources are live (reconnect at their end); files end, or loop when asked."""
    return url.lower().startswith(LIVE_SCHEMES)


class FrameBuffer:
    """Frames handed from one decode thread to the inference loop.

    Live cameras keep only the newest frames (``drop_oldest``): a slow detector analyses fresh
    frames rather than falling behind. Files analysed as fast as possible block the decoder instead,
    so no frame of the file is skipped.
    """

    def __init__(self, camera_id: str, capacity: int, drop_oldest: bool, ready: threading.Event):
        self.camera_id = camera_id
        self.drop_oldest = drop_oldest
        self._frames: deque[SampledFrame] = deque()
        self._capacity = capacity
        self._space = threading.Condition()
        self._ready = ready
        self.ended = False  # set after the last frame of a source that has ended

    def put(self, frame: SampledFrame, stop: threading.Event) -> None:
        with self._space:
            if self.drop_oldest:
                while len(self._frames) >= self._capacity:
                    self._frames.popleft()
                    metrics.FRAMES_DROPPED.labels(self.camera_id).inc()
            else:
                while len(self._frames) >= self._capacity and not stop.is_set():
                    self._space.wait(0.2)
            self._frames.append(frame)
        self._ready.set()

    def get(self) -> SampledFrame | None:
        with self._space:
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._space.notify()
            return frame

    def mark_ended(self) -> None:
        self.ended = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._frames)


class _StreamClock:
    """Maps stream timestamps (pts) onto epoch seconds.

    Files start "now" and advance by their own timestamps, so a 10 s dwell on a file behaves as it
    would live. Live streams are re-based when their timestamps jump (reconnects, encoder resets).
    """

    def __init__(self, live: bool, realtime: bool, start_epoch: float | None = None):
        self.live = live
        self.realtime = realtime
        self.start_epoch = start_epoch
        self.base_epoch: float | None = None
        self.base_pts = 0.0
        self.last = 0.0

    def peek(self, pts_seconds: float) -> float | None:
        """The epoch time of a pts in the current segment, without moving the clock."""
        if self.base_epoch is None:
            return None
        return self.base_epoch + (pts_seconds - self.base_pts)

    def restart_segment(self, next_epoch: float | None = None) -> None:
        """A new session (reconnect) or a loop of the file: the next pts starts a new segment."""
        self.base_epoch = next_epoch

    def to_epoch(self, pts_seconds: float) -> float:
        now = time.time()
        if self.base_epoch is None:
            # Paced sources continue from "now"; files analysed flat out continue their own timeline.
            if self.last == 0.0 and self.start_epoch is not None:
                self.base_epoch = self.start_epoch
            else:
                self.base_epoch = max(now, self.last) if (self.realtime or self.last == 0.0) else self.last
            self.base_pts = pts_seconds
        t = self.base_epoch + (pts_seconds - self.base_pts)
        if self.live and abs(t - now) > MAX_LIVE_DRIFT_SECONDS:
            self.base_epoch, self.base_pts, t = now, pts_seconds, now
        elif self.live and t > now:
            # Never stamped after it arrived: the segment's first frame came late (buffered while the
            # stream was probed), so the base moves back to the earliest arrival seen.
            self.base_epoch, self.base_pts, t = now, pts_seconds, now
        if t < self.last:  # timestamps never go backwards for the algorithms
            self.base_epoch, self.base_pts, t = self.last, pts_seconds, self.last
        self.last = t
        return t


class CameraSource:
    """Decodes one camera in its own thread and feeds sampled frames to a FrameBuffer."""

    def __init__(
        self,
        camera: CameraConfig,
        ingest: IngestConfig,
        buffer: FrameBuffer,
        on_status: StatusCallback,
        *,
        realtime: bool,
        retry_files: bool,
        file_start_epoch: float | None = None,
        clip_ring_seconds: float = 0.0,
        quality: QualityMonitor | None = None,
        on_quality: QualityCallback | None = None,
    ):
        self.camera = camera
        self.ingest = ingest
        self.buffer = buffer
        self.on_status = on_status
        self.live = is_live(camera.url)
        self.realtime = realtime or self.live
        self.retry_files = retry_files
        self.health = CameraHealth()
        self.latest: SampledFrame | None = None  # the newest frame decoded for analysis (CaptureFrame)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera.id}", daemon=True)
        self._clock = _StreamClock(self.live, self.realtime, None if self.live else file_start_epoch)
        self._log_extra = {"camera_id": camera.id}
        self.clips = ClipCutter(clip_ring_seconds) if clip_ring_seconds > 0 else None
        self.quality = quality  # the camera's video-quality monitor, fed on this thread
        self.on_quality = on_quality
        self._packets = self._decode_errors = 0  # since the last quality sample

    def start(self) -> None:
        self._set_state(CameraState.STARTING, "connecting")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def request_clip(self, request: ClipRequest) -> None:
        """Ask the decode thread for an evidence clip (answered through ``request.on_ready``)."""
        if self.clips is None:
            request.on_ready(request, None, "evidence clips are disabled")
        else:
            self.clips.request(request)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def quality_status(self) -> QualityStatus:
        """The camera's quality problems and whether its rules are held (read by the analysis thread)."""
        return self.quality.status if self.quality is not None else NO_QUALITY

    def _observe_quality(self, frame: SampledFrame) -> None:
        """Diagnose a sampled frame when a quality sample is due; a failing check never stops decoding."""
        monitor = self.quality
        if monitor is None or not monitor.due(frame.timestamp):
            return
        errors, packets = self._decode_errors, self._packets
        self._decode_errors = self._packets = 0
        try:
            report = monitor.observe(frame.image, frame.timestamp, errors, packets)
        except Exception:
            log.exception("quality check failed on a frame", extra=self._log_extra)
            return
        self._report_quality(report)

    def _report_quality(self, report: QualityReport | None) -> None:
        if report is not None and self.on_quality is not None:
            try:
                self.on_quality(self.camera.id, report)
            except Exception:
                log.exception("quality report could not be handed on", extra=self._log_extra)

    # -- state ------------------------------------------------------------------------------

    def _set_state(self, state: CameraState, reason: str) -> None:
        changed = state != self.health.state or reason != self.health.reason
        self.health.state, self.health.reason = state, reason
        if changed:
            self.health.since = time.time()
            metrics.CAMERA_STATE.labels(self.camera.id).state(state.value)
            level = logging.INFO if state in (CameraState.ONLINE, CameraState.STARTING) else logging.WARNING
            log.log(level, f"camera {state.value}: {reason}", extra={**self._log_extra, "state": state.value})
            self.on_status(self.camera.id, self.health)
            if self.quality is not None and state != CameraState.STOPPED:
                signal = state not in (CameraState.OFFLINE, CameraState.STALLED)
                self._report_quality(self.quality.set_signal(signal, time.time()))

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(self.ingest.backoff_initial_seconds, self.ingest.backoff_max_seconds)
        while not self._stop.is_set():
            outcome = self._session()
            if self._stop.is_set():
                break
            if outcome == "eof" and not self.live:
                if self.camera.loop:
                    self._clock.restart_segment()
                    backoff.reset()
                    continue
                self._set_state(CameraState.STOPPED, "end of file")
                break
            if outcome == "ok_then_failed":
                backoff.reset()
            if not self.live and not self.retry_files:
                break
            delay = backoff.next_delay()
            self.health.reconnects += 1
            metrics.RECONNECTS.labels(self.camera.id).inc()
            log.info("reconnecting", extra={**self._log_extra, "delay_seconds": round(delay, 2)})
            self._stop.wait(delay)
        if self._stop.is_set():
            self._set_state(CameraState.STOPPED, "released")
        if self.quality is not None:
            self.quality.close()
        self.buffer.mark_ended()

    def _open(self) -> av.container.InputContainer:
        url = self.camera.url
        if not self.live and not Path(url).exists():
            raise FileNotFoundError(f"no such file: {url}")
        options = {"rtsp_transport": "tcp"} if url.lower().startswith(("rtsp://", "rtsps://")) else {}
        timeout = (self.ingest.open_timeout_seconds, self.ingest.stall_seconds)
        return open_container(url, options, timeout, self.ingest.hwaccel, self.camera.id)

    def _session(self) -> str:
        """One connection: returns 'eof', 'failed' (never delivered a frame) or 'ok_then_failed'.

        Stalls are timed here, from the last decoded frame, not by the read timeout alone: when a
        read times out, FFmpeg's RTSP demuxer still hands over the packet it was assembling, and
        the next read gets a fresh timeout, so the timeout by itself reports a frozen camera only
        after twice ``stall_seconds``.
        """
        delivered = False
        try:
            container = self._open()
        except Exception as exc:  # any open failure is a camera problem, never the worker's
            self._set_state(CameraState.OFFLINE, f"cannot open {self.camera.url}: {_describe(exc)}")
            return "failed"
        self._clock.restart_segment()
        progress_at = time.monotonic()  # the last frame decoded (and handed on), or the session start
        try:
            if not container.streams.video:
                self._set_state(CameraState.OFFLINE, "source has no video stream")
                return "failed"
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's threads: 2.5x one thread a stream, 12 streams here
            if skips_nonref_frames(self.ingest, self.camera.analysis_fps, stream):
                stream.codec_context.skip_frame = "NONREF"
            interval = 1.0 / self.camera.analysis_fps
            next_due: float | None = None
            if self.clips is not None:
                self.clips.ring.clear()  # a new session: packets of the old one cannot be remuxed with it
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return "eof"
                silent_for = time.monotonic() - progress_at
                if silent_for >= self.ingest.stall_seconds:
                    raise SourceStalled(silent_for)
                self._packets += 1
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    metrics.DECODE_ERRORS.labels(self.camera.id).inc()
                    self._decode_errors += 1
                    continue
                self._keep_for_clips(packet, stream)
                for frame in frames:
                    self.health.frames_decoded += 1
                    metrics.FRAMES_DECODED.labels(self.camera.id).inc()
                    pts = frame.time if frame.time is not None else self.health.frames_decoded / 25.0
                    t = self._clock.to_epoch(pts)
                    if not delivered:
                        delivered = True
                        self._set_state(CameraState.ONLINE, "receiving frames")
                    self.health.last_frame_at = time.time()
                    if next_due is not None and t + 1e-3 < next_due:
                        continue
                    next_due = (
                        t + interval if next_due is None or next_due + interval <= t else next_due + interval
                    )
                    if self.realtime and not self.live:  # a file standing in for a camera
                        delay = t - time.time()
                        if delay > 0 and self._stop.wait(delay):
                            return "eof"
                    self.health.frames_sampled += 1
                    sampled = SampledFrame(self.camera.id, t, frame.to_ndarray(format="bgr24"))
                    self.latest = sampled  # a reference, never a copy: frames are not written to
                    self._observe_quality(sampled)
                    self.buffer.put(sampled, self._stop)
                if frames:  # after pacing and handing on: time spent here is not the source's
                    progress_at = time.monotonic()
            if self.live:
                self._set_state(CameraState.OFFLINE, "stream ended")
                return "ok_then_failed" if delivered else "failed"
            if not delivered:
                self._set_state(CameraState.OFFLINE, f"no decodable video in {self.camera.url}")
                return "failed"
            return "eof"
        except Exception as exc:
            silent_for = time.monotonic() - progress_at
            if isinstance(exc, SourceStalled) or silent_for >= self.ingest.stall_seconds * 0.9:
                self._set_state(CameraState.STALLED, f"no frame for {silent_for:.0f} s")
            else:
                self._set_state(CameraState.OFFLINE, f"stream error: {_describe(exc)}")
            return "ok_then_failed" if delivered else "failed"
        finally:
            if self.clips is not None and container.streams.video:
                try:
                    self.clips.serve(self._clock.last, container.streams.video[0], flush=True)
                except Exception:
                    log.exception("evidence clips could not be served", extra=self._log_extra)
            container.close()

    def _keep_for_clips(self, packet: av.Packet, stream) -> None:
        if self.clips is None or packet.pts is None:
            return
        t = self._clock.peek(float(packet.pts * packet.time_base))
        if t is None:
            return
        self.clips.ring.add(t, packet)
        self.clips.serve(self._clock.last, stream)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]
