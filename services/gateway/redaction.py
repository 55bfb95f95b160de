"""Redaction of evidence images: heads, faces and licence plates blurred for roles that do not need them.

Dispatchers, supervisors and ops see the scene, not the passer-by or the plate; ``police`` and
``admin`` see originals (every such view is audited with ``original: true``, see
:mod:`retina.services.gateway.media`). A redacted image is computed once and cached under the
gateway's data dir, keyed by the stored path and the detectors in use.

- **Heads**: the workers' own detector (``person_detector_model``, by default the cluster config's
  ``detector.model`` or ``RETINA_MODEL``, run on the CPU) finds people; the top of each person's box
  (:func:`head_region`) is blurred. It works wherever retina does: no face model is needed, and a
  head seen from behind or the side is covered as well as a face.
- **Faces** (optional): a YuNet face detector (``face_detector_model``, OpenCV's FaceDetectorYN)
  also blurs the faces it finds, e.g. of someone the person detector misses behind others.
- **Plates**: the y5fu plate detector (``plate_detector_model``), at a lower threshold than plate
  reading and with no minimum width: a false blur costs a little of the scene, a missed plate
  costs someone's privacy. Each plate's box, grown by a margin, is pixelated and blurred.

Clips are re-encoded (H.264, PyAV) with every frame redacted, once, and cached too: the detectors
run five times per second of video and each frame between is blurred where its neighbours found
something and along the path between (see :meth:`Redactor.redact_clip`).
What could not be checked is never hidden: a redacted response names what was blurred in
``X-Retina-Redacted`` and what was not checked, and why, in ``X-Retina-Redaction-Incomplete``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from prometheus_client import Histogram

from retina.services.core.plates import PlateDetector
from retina.services.core.settings import GatewaySettings

if TYPE_CHECKING:
    from retina.services.worker.detector import Detector

log = logging.getLogger(__name__)

ORIGINAL_ROLES = ("police", "admin")  # who sees evidence unredacted
PERSON_THRESHOLD = 0.1  # int8 detectors score half-hidden people 0.1-0.3: blur them all the same
PLATE_THRESHOLD = 0.25  # below plate reading's 0.5: blur what might be a plate
FACE_THRESHOLD = 0.6  # YuNet score
HEAD_SHARE = 0.25  # a head is within the top quarter of a person's box ...
HEAD_WIDTH_SHARE = 0.5  # ... or half its width when that is more (a box cut off below)
HEAD_MARGIN = 0.15  # a region grows by this share of its size on each side
PLATE_MARGIN = 0.15
FACE_MARGIN = 0.2
JPEG_QUALITY = 90
CLIP_CRF = "23"  # x264 quality of redacted clips (lower: better and larger)
CLIP_DETECT_SECONDS = 0.2  # clips: the detectors run on one frame in this many seconds of video
SPAN_REACH = 3.0  # an object moves at most this many of its sizes between two detected frames
CACHE_VERSION = "3"  # change when the blurring changes: cached images are made again

REDACTION_SECONDS = Histogram(
    "retina_gateway_redaction_seconds",
    "Time to redact one evidence file (first view; later views come from the cache)",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Redacted:
    """A redacted image or clip and what was blurred in it (for a clip: the most in one frame)."""

    data: bytes
    heads: int
    faces: int
    plates: int

    def counts(self) -> dict[str, int]:
        """What was blurred, by kind."""
        return {key: value for key, value in asdict(self).items() if key != "data"}


class FaceDetector:
    """Faces in a BGR image, by YuNet (OpenCV's FaceDetectorYN; the model is checked at settings load)."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.yunet = cv2.FaceDetectorYN.create(str(model), "", (320, 320), FACE_THRESHOLD)

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes (x1, y1, x2, y2)."""
        height, width = image.shape[:2]
        self.yunet.setInputSize((width, height))
        _, faces = self.yunet.detect(image)
        return [] if faces is None else [(f[0], f[1], f[0] + f[2], f[1] + f[3]) for f in faces[:, :4]]


class PersonDetector:
    """People in a BGR image, by the workers' detector (:class:`Detector`) on the CPU."""

    def __init__(self, settings: GatewaySettings) -> None:
        from retina.services.worker.detector import Detector  # imported late: Ultralytics is slow

        config = settings.cluster.detector.model_copy(
            update={"confidence": PERSON_THRESHOLD, "device": "cpu", "half": False}
            | ({"model": settings.person_detector_model} if settings.person_detector_model else {})
        )
        self.detector: Detector = Detector(config)
        self.model = self.detector.model_path
        self.person_classes = [i for i, family in self.detector.families.items() if family == "person"]

    @staticmethod
    def configured(settings: GatewaySettings) -> bool:
        """Whether there is a detector to run (the setting, the config's detector.model, RETINA_MODEL)."""
        return bool(settings.person_detector_model or settings.cluster.detector.model_path())

    def detect(self, image: np.ndarray) -> list[Box]:
        """The boxes of the people in ``image``."""
        found = self.detector.detect([image])[0]
        people = np.isin(found.cls, self.person_classes)
        return [tuple(float(v) for v in box) for box in found.xyxy[people]]  # type: ignore[misc]


def head_region(box: Box) -> Box:
    """The part of a person's box that holds the head: the box's full width (a head leans, a box is
    narrow), from its top down ``HEAD_SHARE`` of its height, or ``HEAD_WIDTH_SHARE`` of its width when
    that is more. A standing person's head is about 1/7 of the box (15-20% seen from above, with hair
    or a hat), a seated one's about 1/5 (the box is shorter, the head is not); the margin
    (``HEAD_MARGIN``) adds a little above and below. A box cut off below (a crowd, the frame's edge)
    is wide for its height, and the width term keeps such a head covered. Never below the box."""
    x1, y1, x2, y2 = box
    height = min(y2 - y1, max((y2 - y1) * HEAD_SHARE, (x2 - x1) * HEAD_WIDTH_SHARE))
    return x1, y1, x2, y1 + height


def grow(box: Box, margin: float) -> Box:
    """``box`` grown by ``margin`` of its width and height on each side."""
    x1, y1, x2, y2 = box
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    return x1 - grow_x, y1 - grow_y, x2 + grow_x, y2 + grow_y


def blur_region(image: np.ndarray, box: Box, margin: float = 0.0) -> None:
    """Make a region (grown by ``margin``) unrecognisable in place: coarse pixelation, then a
    Gaussian blur over it."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = grow(box, margin)
    x1, y1 = max(0, int(x1)), max(0, int(y1))
    x2, y2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    if x2 <= x1 or y2 <= y1:
        return
    region = image[y1:y2, x1:x2]
    block = max(4, min(x2 - x1, y2 - y1) // 3)
    small = cv2.resize(
        region, (max(1, (x2 - x1) // block), max(1, (y2 - y1) // block)), interpolation=cv2.INTER_AREA
    )
    coarse = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    kernel = block * 2 + 1
    image[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (kernel, kernel), 0)


def apply_regions(image: np.ndarray, regions: list[Box]) -> None:
    """Blur every region of ``regions`` in ``image``, in place."""
    for box in regions:
        blur_region(image, box)


def spans(before: list[Box], after: list[Box]) -> list[Box]:
    """The path of each object between two detected frames: for a region of ``before``, the box
    spanning it and the nearest region of ``after`` whose centre is within ``SPAN_REACH`` of its
    size (the same object, moved). Blurred in the frames between, with both ends."""
    joined = []
    for x1, y1, x2, y2 in before:
        centre, size = np.array([(x1 + x2) / 2, (y1 + y2) / 2]), max(x2 - x1, y2 - y1)
        nearest, distance = None, SPAN_REACH * size
        for box in after:
            d = float(np.hypot((box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1]))
            if d <= distance:
                nearest, distance = box, d
        if nearest is None:
            joined.append((x1, y1, x2, y2))
        else:
            nx1, ny1, nx2, ny2 = nearest
            joined.append((min(x1, nx1), min(y1, ny1), max(x2, nx2), max(y2, ny2)))
    return joined


@dataclass(frozen=True)
class Found:
    """What the detectors found in one frame: the regions to blur and (heads, faces, plates)."""

    regions: list[Box]
    counts: tuple[int, int, int]


class Redactor:
    """Blurs heads, faces and plates in evidence images and clips, caching each result under ``cache_dir``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.cache_dir = Path(settings.data_dir) / "redacted"
        self.people: PersonDetector | None = None
        self.faces: FaceDetector | None = None
        self.plates: PlateDetector | None = None
        self.incomplete: list[str] = []
        if PersonDetector.configured(settings):
            self.people = PersonDetector(settings)
        else:
            self.incomplete.append(
                "heads not checked: no person detector (set detector.model in the cluster config,"
                " RETINA_MODEL or person_detector_model)"
            )
        if settings.face_detector_model:
            self.faces = FaceDetector(settings.face_detector_model)
        if settings.plate_detector_model:
            self.plates = PlateDetector(str(settings.plate_detector_model), threshold=PLATE_THRESHOLD)
        else:
            self.incomplete.append("plates not checked: no plate detector (set plate_detector_model)")
        for line in self.incomplete:
            log.warning("evidence redaction is incomplete", extra={"reason": line})
        self.lock = threading.Lock()  # the detectors keep per-call state
        models = [
            self.people.model if self.people else "",
            str(settings.face_detector_model or ""),
            str(settings.plate_detector_model or ""),
            f"{CACHE_VERSION} {PERSON_THRESHOLD} {HEAD_SHARE} {HEAD_WIDTH_SHARE} {HEAD_MARGIN}",
        ]
        self.fingerprint = hashlib.sha256("\0".join(models).encode()).hexdigest()[:16]

    def cache_path(self, stored_path: str) -> Path:
        """Where the redacted image of ``stored_path`` is kept."""
        key = hashlib.sha256(f"{self.fingerprint}\0{stored_path}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.jpg"

    def redact(self, stored_path: str, data: bytes, cache: bool = True) -> Redacted:
        """The image ``data`` (stored at ``stored_path``) with heads, faces and plates blurred; from the
        cache when it was made before (``cache`` False: a live frame, redacted each time and never
        kept). ValueError when it is not a decodable image."""
        cached = self.cache_path(stored_path) if cache else None
        if cached is not None and (result := self._cached(cached)) is not None:
            return result
        started = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{stored_path}: not a decodable image")
        heads, faces, plates = self.blur(image)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError(f"{stored_path}: could not encode the redacted image")
        result = Redacted(encoded.tobytes(), heads, faces, plates)
        if cached is not None:
            self._store(cached, result)
        self._done("image", stored_path, result, started)
        return result

    def blur(self, image: np.ndarray) -> tuple[int, int, int]:
        """Blur the heads, faces and plates of a BGR image in place; return how many of each."""
        found = self.find(image)
        apply_regions(image, found.regions)
        return found.counts

    def find(self, image: np.ndarray) -> Found:
        """The regions of a BGR image to blur (heads, faces, plates, each grown by its margin)."""
        with self.lock:
            people = self.people.detect(image) if self.people else []
            faces = self.faces.detect(image) if self.faces else []
            plates = [d.box for d in self.plates.detect(image)] if self.plates else []
        regions = (
            [grow(head_region(box), HEAD_MARGIN) for box in people]
            + [grow(box, FACE_MARGIN) for box in faces]
            + [grow(box, PLATE_MARGIN) for box in plates]
        )
        return Found(regions, (len(people), len(faces), len(plates)))

    def redact_clip(self, stored_path: str, data: bytes) -> Redacted:
        """The clip ``data`` re-encoded (H.264 MP4) with every frame redacted; from the cache when it
        was made before. ValueError when it cannot be decoded.

        The detectors run on one frame every ``CLIP_DETECT_SECONDS`` (and on the last); each frame
        between two such frames is blurred where either found something, and across the path between
        the two places of one object (:func:`spans`), so a walking head or a passing plate is covered
        in the frames the detectors did not see."""
        import av

        cached = self.cache_path(stored_path).with_suffix(".mp4")
        if (result := self._cached(cached)) is not None:
            return result
        started = time.perf_counter()
        most = [0, 0, 0]
        output = io.BytesIO()
        try:
            with av.open(io.BytesIO(data)) as source, av.open(output, "w", format="mp4") as target:
                if not source.streams.video:
                    raise ValueError(f"{stored_path}: no video in the clip")
                video = source.streams.video[0]
                rate = video.average_rate or 25
                stride = max(1, round(float(rate) * CLIP_DETECT_SECONDS))
                stream = target.add_stream("libx264", rate=rate)
                stream.width, stream.height = video.codec_context.width, video.codec_context.height
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": CLIP_CRF, "preset": "veryfast"}
                previous: Found | None = None  # what the last detected frame held
                waiting: list[np.ndarray] = []  # frames since it, to blur once the next is detected

                def flush(upto: Found) -> None:
                    covering = upto.regions + (spans(previous.regions, upto.regions) if previous else [])
                    for image in waiting:
                        apply_regions(image, covering)
                        target.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
                    waiting.clear()

                for index, frame in enumerate(source.decode(video)):
                    image = frame.to_ndarray(format="bgr24")
                    waiting.append(image)
                    if index % stride == 0:
                        found = self.find(image)
                        most = [max(a, b) for a, b in zip(most, found.counts, strict=True)]
                        flush(found)
                        previous = found
                if waiting:  # the frames after the last detected one: detect the clip's last frame
                    found = self.find(waiting[-1])
                    most = [max(a, b) for a, b in zip(most, found.counts, strict=True)]
                    flush(found)
                target.mux(stream.encode(None))
        except av.FFmpegError as exc:
            raise ValueError(f"{stored_path}: not a decodable clip ({exc})") from None
        result = Redacted(output.getvalue(), *most)
        self._store(cached, result)
        self._done("clip", stored_path, result, started)
        return result

    @staticmethod
    def _cached(cached: Path) -> Redacted | None:
        """The cache entry at ``cached``, if it was made."""
        counts = cached.with_suffix(".counts")
        if not (cached.is_file() and counts.is_file()):
            return None
        heads, faces, plates = (int(v) for v in counts.read_text().split())
        return Redacted(cached.read_bytes(), heads, faces, plates)

    def _store(self, cached: Path, result: Redacted) -> None:
        """Write the cache entry atomically (another request may be making the same one)."""
        cached.parent.mkdir(parents=True, exist_ok=True)
        for target, payload in (
            (cached, result.data),
            (cached.with_suffix(".counts"), f"{result.heads} {result.faces} {result.plates}".encode()),
        ):
            handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".part")
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            os.replace(temporary, target)

    @staticmethod
    def _done(kind: str, stored_path: str, result: Redacted, started: float) -> None:
        seconds = time.perf_counter() - started
        REDACTION_SECONDS.labels(kind).observe(seconds)
        log.info(
            "evidence redacted",
            extra={"camera_id": stored_path.split("/", 1)[0], "file": stored_path, "kind": kind,
                   "seconds": round(seconds, 3), **result.counts()},
        )  # fmt: skip

    def summary(self, result: Redacted) -> dict[str, int]:
        """What was blurred, by kind, for the kinds that were checked (for the audit trail)."""
        checked = {"heads": self.people, "faces": self.faces, "plates": self.plates}
        return {kind: count for kind, count in result.counts().items() if checked[kind] is not None}

    def headers(self, result: Redacted) -> dict[str, str]:
        """The response headers saying what was blurred and what could not be checked."""
        done = ", ".join(f"{kind}={count}" for kind, count in self.summary(result).items())
        headers = {"X-Retina-Redacted": done or "none"}
        if self.incomplete:
            headers["X-Retina-Redaction-Incomplete"] = "; ".join(self.incomplete)
        return headers
