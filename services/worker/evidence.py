"""Evidence clips: a per-camera ring of encoded packets, cut into MP4 clips without re-encoding.

Each decode thread keeps the last few seconds of its camera's packets. When an incident opens,
the worker asks for a clip from ``before`` seconds ahead of the alert to ``after`` seconds past
it; the decode thread cuts it once the stream has reached the end time (or at once if the stream
ends first), starting at the keyframe before the start so the clip plays from its first frame.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av

from retina.services.core.config import EvidenceConfig

log = logging.getLogger(__name__)


def clip_window(evidence: EvidenceConfig, moment: float) -> tuple[float, float]:
    """The evidence clip's stream-time window around ``moment`` (when the incident opened)."""
    return moment - evidence.clip_before_seconds, moment + evidence.clip_after_seconds


@dataclass
class ClipRequest:
    camera_id: str
    incident_id: str
    start: float  # epoch seconds (stream time)
    end: float
    on_ready: Callable[[ClipRequest, bytes | None, str], None]  # (request, MP4 or None, reason)


class PacketRing:
    """The last ``seconds`` of encoded packets, always starting at a keyframe."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._packets: deque[tuple[float, av.Packet]] = deque()

    def add(self, t: float, packet: av.Packet) -> None:
        if packet.size == 0:
            return
        self._packets.append((t, packet))
        if t - self._packets[0][0] > 4 * self.seconds:  # a stream with rare or no keyframes
            while self._packets and t - self._packets[0][0] > self.seconds:
                self._packets.popleft()
        elif packet.is_keyframe:
            # Drop whole GOPs that ended before the window: keep from the newest keyframe before it.
            horizon = t - self.seconds
            keyframes = [i for i, (pt, p) in enumerate(self._packets) if p.is_keyframe and pt <= horizon]
            for _ in range(keyframes[-1] if keyframes else 0):
                self._packets.popleft()

    def cut(self, start: float, end: float) -> list[av.Packet]:
        """Packets from the last keyframe at or before ``start`` (or the first held) up to ``end``."""
        items = list(self._packets)
        first = 0
        for i, (t, packet) in enumerate(items):
            if packet.is_keyframe and t <= start:
                first = i
        while first < len(items) and not items[first][1].is_keyframe:
            first += 1
        return [packet for t, packet in items[first:] if t <= end]

    def clear(self) -> None:
        self._packets.clear()


def write_mp4(packets: list[av.Packet], template: av.video.stream.VideoStream) -> bytes:
    """Remux packets of ``template``'s stream into an in-memory MP4 (no re-encoding)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream_from_template(template)
        first_dts = next((p.dts for p in packets if p.dts is not None), 0)
        for packet in packets:
            if packet.dts is None:
                continue
            packet.dts -= first_dts
            if packet.pts is not None:
                packet.pts -= first_dts
            packet.stream = stream
            output.mux(packet)
    return buffer.getvalue()


class ClipCutter:
    """Pending clip requests of one camera, served by its decode thread."""

    def __init__(self, ring_seconds: float):
        self.ring = PacketRing(ring_seconds)
        self._pending: list[ClipRequest] = []
        self._lock = threading.Lock()

    def request(self, request: ClipRequest) -> None:
        with self._lock:
            self._pending.append(request)

    def serve(self, now: float, template: av.video.stream.VideoStream, *, flush: bool = False) -> None:
        """Cut every clip whose end the stream has reached (all of them when ``flush``)."""
        with self._lock:
            due = [r for r in self._pending if flush or r.end <= now]
            self._pending = [r for r in self._pending if r not in due]
        for request in due:
            packets = self.ring.cut(request.start, request.end)
            if not packets:
                request.on_ready(request, None, "no video held for that time")
                continue
            try:
                # Packets are remuxed in place; hand the writer copies so the ring keeps its own.
                data = write_mp4([_copy(p) for p in packets], template)
            except Exception as exc:  # a broken stream must not stop the camera
                extra = {"camera_id": request.camera_id, "error": str(exc)}
                log.warning("clip could not be written", extra=extra)
                request.on_ready(request, None, f"clip could not be written: {exc}")
                continue
            request.on_ready(request, data, "ok")


def _copy(packet: av.Packet) -> av.Packet:
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy
