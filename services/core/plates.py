"""Chinese licence plates: find them (y5fu detector, four corners) and read them (CRNN, CTC, colour).

The pipeline, for one BGR image:

1. **detect**: letterbox to the detector's square input (grey 114 padding), RGB/255; each output
   row is ``cx, cy, w, h, objectness, 8 corner coordinates, [single-row, double-row]`` in
   letterboxed pixels; score = objectness × class score; non-maximum suppression; boxes and
   corners mapped back to the image;
2. **rectify**: the four corners are warped to an upright rectangle; a double-row plate (yellow
   truck plates) has its upper ~5/12 resized to the lower part's size and put beside it;
3. **read**: resized to 168×48, BGR, ``(x/255 − 0.588)/0.193``; the CRNN's 21 time steps are
   decoded greedily (best class per step, repeats collapsed, blanks dropped) and its colour head
   names the plate colour.

The models are configured paths (:class:`~retina.services.core.plates_config.PlatesConfig`);
nothing here needs them to import. The reader model is GPL-3.0 (see README, "Plates").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from retina.services.core.plates_config import PlatesConfig

ALPHABET = (
    "#京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新学警港澳挂使领民航危"
    "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ险品"
)  # index 0 is the CTC blank
COLOURS = ("black", "blue", "green", "white", "yellow")
READER_SIZE = (168, 48)  # width, height
READER_MEAN, READER_STD = 0.588, 0.193
LETTERBOX_PAD = 114
UPPER_ROW = 5 / 12  # a double-row plate's upper row, as a share of its height
LOWER_ROW_START = 1 / 3


class PlatesUnavailable(RuntimeError):
    """Plate features were asked for but cannot run: no model configured, or it cannot be loaded."""


class PlateImageError(ValueError):
    """An image that cannot be read; the message names the file."""


@dataclass(frozen=True)
class PlateDetection:
    """A plate found in an image: its box and four corners (image pixels, clockwise from top-left)."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    corners: tuple[tuple[float, float], ...]
    score: float
    double_row: bool

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class Plate:
    """A plate read: its text, colour, how sure the reader is (the mean of its characters'
    probabilities), and where it is."""

    text: str
    colour: str
    confidence: float
    detection: PlateDetection

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.detection.box

    def to_json(self) -> dict[str, Any]:
        return {
            "plate": self.text,
            "colour": self.colour,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "corners": [[round(x, 1), round(y, 1)] for x, y in self.detection.corners],
            "double_row": self.detection.double_row,
            "detection_score": round(self.detection.score, 4),
        }


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as BGR; :class:`PlateImageError` naming the file when it cannot be read."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise PlateImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise PlateImageError(f"{path}: not a readable image (JPEG, PNG, ...)")
    return image


def _session(path: str, what: str) -> Any:
    """An ONNX Runtime session on one CPU thread; :class:`PlatesUnavailable` naming the setting."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise PlatesUnavailable(f"plates.{what}: {path}: no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for a bad file
        raise PlatesUnavailable(f"plates.{what}: {path}: not a loadable ONNX model ({exc})") from None


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy non-maximum suppression."""
    order, keep = list(np.argsort(-scores)), []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if not order:
            break
        rest = np.array(order)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-6)
        order = [int(i) for i, o in zip(rest, overlap, strict=True) if o <= iou]
    return keep


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    sums, diffs = points.sum(axis=1), np.diff(points, axis=1).ravel()
    return np.array(
        [
            points[np.argmin(sums)],
            points[np.argmin(diffs)],
            points[np.argmax(sums)],
            points[np.argmax(diffs)],
        ],
        dtype=np.float32,
    )


class PlateDetector:
    """The y5fu plate detector (input size taken from the model: 320 or 640)."""

    def __init__(self, model: str, *, threshold: float = 0.5, nms_iou: float = 0.5) -> None:
        self.session = _session(model, "detector_model")
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else 640
        self.threshold, self.nms_iou = threshold, nms_iou

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        height, width = image.shape[:2]
        scale = min(self.size / height, self.size / width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (self.size - new_w) / 2, (self.size - new_h) / 2
        canvas = np.full((self.size, self.size, 3), LETTERBOX_PAD, dtype=np.uint8)
        left, top = round(pad_x - 0.1), round(pad_y - 0.1)
        canvas[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h))
        return canvas, scale, left, top

    def detect(self, image: np.ndarray) -> list[PlateDetection]:
        """The plates in a BGR image, best first."""
        canvas, scale, left, top = self._letterbox(image)
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        rows = self.session.run(None, {self.input_name: blob})[0][0]
        classes = rows[:, 13:15]
        scores = rows[:, 4] * classes.max(axis=1)
        rows, scores, classes = rows[scores > self.threshold], scores[scores > self.threshold], classes
        if not len(rows):
            return []
        double = rows[:, 13:15].argmax(axis=1) == 1
        offset = np.array([left, top], dtype=np.float32)
        centres, sizes = rows[:, 0:2], rows[:, 2:4]
        boxes = np.hstack([centres - sizes / 2, centres + sizes / 2])
        boxes = (boxes - np.tile(offset, 2)) / scale
        corners = (rows[:, 5:13].reshape(-1, 4, 2) - offset) / scale
        height, width = image.shape[:2]
        found = []
        for index in _nms(boxes, scores, self.nms_iou):
            x1, y1, x2, y2 = boxes[index]
            box = (
                int(max(0, np.floor(x1))), int(max(0, np.floor(y1))),
                int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2))),
            )  # fmt: skip
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            points = _order_corners(corners[index])
            found.append(
                PlateDetection(
                    box=box,
                    corners=tuple((float(x), float(y)) for x, y in points),
                    score=float(scores[index]),
                    double_row=bool(double[index]),
                )
            )
        return found


def rectify(image: np.ndarray, detection: PlateDetection) -> np.ndarray:
    """The plate warped upright to the reader's 168×48; a double-row plate's rows side by side."""
    points = np.array(detection.corners, dtype=np.float32)
    top_left, top_right, bottom_right, bottom_left = points
    width = max(np.linalg.norm(top_right - top_left), np.linalg.norm(bottom_right - bottom_left))
    height = max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right))
    width, height = max(round(float(width)), 8), max(round(float(height)), 4)
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float32)
    plate = cv2.warpPerspective(image, cv2.getPerspectiveTransform(points, target), (width, height))
    if detection.double_row:
        upper = plate[: max(1, int(UPPER_ROW * height))]
        lower = plate[int(LOWER_ROW_START * height) :]
        upper = cv2.resize(upper, (lower.shape[1], lower.shape[0]))
        plate = np.hstack([upper, lower])
    return cv2.resize(plate, READER_SIZE)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class PlateRecognizer:
    """The CRNN plate reader with its colour head."""

    def __init__(self, model: str) -> None:
        self.session = _session(model, "reader_model")
        self.input_name = self.session.get_inputs()[0].name

    def read(self, plates: list[np.ndarray]) -> list[tuple[str, str, float]]:
        """(text, colour, confidence) for each rectified 168×48 BGR plate."""
        if not plates:
            return []
        batch = np.stack(plates).astype(np.float32)
        batch = ((batch / 255.0 - READER_MEAN) / READER_STD).transpose(0, 3, 1, 2)
        logits, colour_logits = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
        results = []
        for steps, colour in zip(_softmax(logits), _softmax(colour_logits), strict=True):
            best = steps.argmax(axis=1)
            text, probabilities, previous = [], [], 0
            for step, index in enumerate(best):
                if index != 0 and index != previous:
                    text.append(ALPHABET[index])
                    probabilities.append(float(steps[step, index]))
                previous = index
            confidence = float(np.mean(probabilities)) if probabilities else 0.0
            results.append(("".join(text), COLOURS[int(colour.argmax())], confidence))
        return results


class PlateReader:
    """Detects and reads the plates in an image (see the module's docstring)."""

    def __init__(self, config: PlatesConfig) -> None:
        if not config.detector_model:
            raise PlatesUnavailable(
                "plate reading is off: no plate detector configured"
                " (set plates.detector_model in the cluster config, or --detector)"
            )
        if not config.reader_model:
            raise PlatesUnavailable(
                "plate reading is off: no plate reader configured"
                " (set plates.reader_model in the cluster config, or --reader)"
            )
        self.config = config
        self.detector = PlateDetector(
            config.detector_model, threshold=config.detection_threshold, nms_iou=config.nms_iou
        )
        self.recognizer = PlateRecognizer(config.reader_model)

    def read(self, image: np.ndarray) -> list[Plate]:
        """The plates at least ``min_width`` wide read in a BGR image, left to right; readings
        below ``read_threshold`` (or empty) are dropped."""
        detections = [d for d in self.detector.detect(image) if d.width >= self.config.min_width]
        readings = self.recognizer.read([rectify(image, d) for d in detections])
        plates = [
            Plate(text=text, colour=colour, confidence=confidence, detection=detection)
            for detection, (text, colour, confidence) in zip(detections, readings, strict=True)
            if text and confidence >= self.config.read_threshold
        ]
        return sorted(plates, key=lambda plate: plate.box[0])

    def read_file(self, path: str | Path) -> list[Plate]:
        """:meth:`read` on an image file; :class:`PlateImageError` naming it when it is unreadable."""
        return self.read(read_image(path))
