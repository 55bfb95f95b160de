"""Redaction of evidence images: faces and licence plates blurred for roles that do not need them.

Dispatchers, supervisors and ops see the scene, not the passer-by or the plate; ``police`` and
``admin`` see originals (every such view is audited with ``original: true``, see
:mod:`retina.services.gateway.media`). A redacted image is computed once and cached under the
gateway's data dir, keyed by the stored path and the detectors in use.

- **Plates**: the y5fu plate detector (``plate_detector_model``), at a lower threshold than plate
  reading and with no minimum width: a false blur costs a little of the scene, a missed plate
  costs someone's privacy. Each plate's box, grown by a margin, is pixelated and blurred.
- **Faces**: a face detector (``face_detector_model``): YuNet (.onnx, run by OpenCV's
  FaceDetectorYN) or a Haar cascade (.xml, where the installed OpenCV has CascadeClassifier);
  default: OpenCV's bundled frontal-face cascade when it ships one (OpenCV 4; OpenCV 5 ships none).

Clips are re-encoded (H.264, PyAV) with every frame redacted the same way, once, and cached too.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from retina.services.core.plates import PlateDetector
from retina.services.core.settings import GatewaySettings

log = logging.getLogger(__name__)

ORIGINAL_ROLES = ("police", "admin")  # who sees evidence unredacted
PLATE_THRESHOLD = 0.25  # below plate reading's 0.5: blur what might be a plate
FACE_THRESHOLD = 0.6  # YuNet score
PLATE_MARGIN = 0.15  # a plate's box grows by this share of its size on each side
FACE_MARGIN = 0.2
JPEG_QUALITY = 90
CLIP_CRF = "23"  # x264 quality of redacted clips (lower: better and larger)
CACHE_VERSION = "1"  # change when the blurring changes: cached images are made again


@dataclass(frozen=True)
class Redacted:
    """A redacted image or clip and what was done to it (for a clip: the most faces and plates
    blurred in one frame)."""

    data: bytes
    faces: int
    plates: int


class FaceDetector:
    """Faces in a BGR image, by YuNet (.onnx) or a Haar cascade (.xml)."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.yunet: Any = None
        self.cascade: Any = None
        if model.suffix.lower() == ".onnx":
            self.yunet = cv2.FaceDetectorYN.create(str(model), "", (320, 320), FACE_THRESHOLD)
        elif hasattr(cv2, "CascadeClassifier"):
            self.cascade = cv2.CascadeClassifier(str(model))
            if self.cascade.empty():
                raise ValueError(f"face_detector_model: {model}: not a Haar cascade OpenCV can load")
        else:
            raise ValueError(
                f"face_detector_model: {model}: OpenCV {cv2.__version__} cannot run Haar cascades; give a"
                " YuNet .onnx model"
            )

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, width, height)."""
        height, width = image.shape[:2]
        if self.yunet is not None:
            self.yunet.setInputSize((width, height))
            _, faces = self.yunet.detect(image)
            return [] if faces is None else [tuple(int(v) for v in face[:4]) for face in faces]
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(16, 16))
        return [tuple(int(v) for v in box) for box in found]


def bundled_face_cascade() -> Path | None:
    """OpenCV's own frontal-face cascade, where the installed OpenCV ships one and can run it."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(folder) / "haarcascade_frontalface_default.xml" if folder else None
    return path if path and path.is_file() and hasattr(cv2, "CascadeClassifier") else None


def blur_region(image: np.ndarray, box: tuple[int, int, int, int], margin: float) -> None:
    """Make a region unrecognisable in place: coarse pixelation, then a Gaussian blur over it."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    x1, y1 = max(0, int(x1 - grow_x)), max(0, int(y1 - grow_y))
    x2, y2 = min(width, int(np.ceil(x2 + grow_x))), min(height, int(np.ceil(y2 + grow_y)))
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


class Redactor:
    """Blurs faces and plates in evidence images, caching each result under ``cache_dir``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.cache_dir = Path(settings.data_dir) / "redacted"
        self.plates: PlateDetector | None = None
        self.faces: FaceDetector | None = None
        self.incomplete: list[str] = []
        if settings.plate_detector_model:
            self.plates = PlateDetector(str(settings.plate_detector_model), threshold=PLATE_THRESHOLD)
        else:
            self.incomplete.append("plates not checked: no plate detector (set plate_detector_model)")
        face_model = settings.face_detector_model or bundled_face_cascade()
        if face_model:
            self.faces = FaceDetector(Path(face_model))
        else:
            self.incomplete.append(
                f"faces not checked: no face detector (OpenCV {cv2.__version__} bundles none;"
                " set face_detector_model)"
            )
        for line in self.incomplete:
            log.warning("evidence redaction is incomplete", extra={"reason": line})
        self.lock = threading.Lock()  # the face detector keeps per-image state
        models = [str(settings.plate_detector_model or ""), str(face_model or ""), CACHE_VERSION]
        self.fingerprint = hashlib.sha256("\0".join(models).encode()).hexdigest()[:16]

    def cache_path(self, stored_path: str) -> Path:
        """Where the redacted image of ``stored_path`` is kept."""
        key = hashlib.sha256(f"{self.fingerprint}\0{stored_path}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.jpg"

    def redact(self, stored_path: str, data: bytes) -> Redacted:
        """The image ``data`` (stored at ``stored_path``) with faces and plates blurred; from the cache
        when it was made before. ValueError when it is not a decodable image."""
        cached = self.cache_path(stored_path)
        counts = cached.with_suffix(".counts")
        if cached.is_file() and counts.is_file():
            faces, plates = (int(v) for v in counts.read_text().split())
            return Redacted(cached.read_bytes(), faces, plates)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{stored_path}: not a decodable image")
        faces, plates = self.blur(image)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError(f"{stored_path}: could not encode the redacted image")
        result = Redacted(encoded.tobytes(), faces, plates)
        self._store(cached, result)
        return result

    def blur(self, image: np.ndarray) -> tuple[int, int]:
        """Blur the faces and plates of a BGR image in place; return how many of each."""
        with self.lock:
            face_boxes = self.faces.detect(image) if self.faces else []
            plate_boxes = [d.box for d in self.plates.detect(image)] if self.plates else []
        for x, y, w, h in face_boxes:
            blur_region(image, (x, y, x + w, y + h), FACE_MARGIN)
        for box in plate_boxes:
            blur_region(image, box, PLATE_MARGIN)
        return len(face_boxes), len(plate_boxes)

    def redact_clip(self, stored_path: str, data: bytes) -> Redacted:
        """The clip ``data`` re-encoded (H.264 MP4) with every frame redacted; from the cache when it
        was made before. ValueError when it cannot be decoded."""
        import av

        cached = self.cache_path(stored_path).with_suffix(".mp4")
        counts = cached.with_suffix(".counts")
        if cached.is_file() and counts.is_file():
            faces, plates = (int(v) for v in counts.read_text().split())
            return Redacted(cached.read_bytes(), faces, plates)
        most_faces = most_plates = 0
        output = io.BytesIO()
        try:
            with av.open(io.BytesIO(data)) as source, av.open(output, "w", format="mp4") as target:
                if not source.streams.video:
                    raise ValueError(f"{stored_path}: no video in the clip")
                video = source.streams.video[0]
                stream = target.add_stream("libx264", rate=video.average_rate or 25)
                stream.width, stream.height = video.codec_context.width, video.codec_context.height
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": CLIP_CRF, "preset": "veryfast"}
                for frame in source.decode(video):
                    image = frame.to_ndarray(format="bgr24")
                    faces, plates = self.blur(image)
                    most_faces, most_plates = max(most_faces, faces), max(most_plates, plates)
                    target.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
                target.mux(stream.encode(None))
        except av.FFmpegError as exc:
            raise ValueError(f"{stored_path}: not a decodable clip ({exc})") from None
        result = Redacted(output.getvalue(), most_faces, most_plates)
        self._store(cached, result)
        return result

    def _store(self, cached: Path, result: Redacted) -> None:
        """Write the cache entry atomically (another request may be making the same one)."""
        cached.parent.mkdir(parents=True, exist_ok=True)
        for target, payload in (
            (cached, result.data),
            (cached.with_suffix(".counts"), f"{result.faces} {result.plates}".encode()),
        ):
            handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".part")
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            os.replace(temporary, target)

    def headers(self, result: Redacted) -> dict[str, str]:
        """The response headers saying what was blurred and what could not be checked."""
        done = [
            f"faces={result.faces}" if self.faces else "",
            f"plates={result.plates}" if self.plates else "",
        ]
        headers = {"X-Retina-Redacted": ", ".join(part for part in done if part) or "none"}
        if self.incomplete:
            headers["X-Retina-Redaction-Incomplete"] = "; ".join(self.incomplete)
        return headers
