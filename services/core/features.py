"""Appearance features of tracked objects (schema ``retina.feature/1``) for search by image.

A worker publishes one :class:`FeatureRecord` per track when the track is established, again when a
clearly better crop appears, and a last time when the track ends (``last_seen``). Records carry the
crop JPEG and the embedding inline, so the ``FEATURES`` stream alone is enough to rebuild the search
index. Records of the same track share ``id``; ``crop_revision`` changes only when the crop (and so
the embedding) changes — records between two crop changes carry no crop, only times.

Embedders are plug-ins (entry-point group ``retina.embedders``): the worker embeds gallery crops and
the search service embeds query photos with the same one, named in every record.
"""

from __future__ import annotations

import base64
import logging
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import cv2
import numpy as np
from pydantic import BaseModel, Field, FiniteFloat, field_validator, model_validator

from retina.services.core.errors import ConfigError
from retina.services.core.plate_text import PlateFacts
from retina.services.core.validation import TOKEN_PATTERN

if TYPE_CHECKING:  # type hints only: config imports this module (for available_embedders)
    from retina.services.core.config import DetectorConfig, FeaturesConfig

log = logging.getLogger(__name__)

SCHEMA_ID = "retina.feature/1"
SUBJECT_PREFIX = "retina.features"
CROP_MAX_SIDE = 256  # stored crops are downscaled to this (pixels, longest side)

SearchFamily = Literal["person", "vehicle", "non_motor"]
# The families search indexes (retina.algorithms.sdk.frames.FAMILY_OF_CLASS says which class is which).
SEARCH_FAMILIES: tuple[SearchFamily, ...] = get_args(SearchFamily)

# Named colours a dispatcher can filter by. Hue ranges are OpenCV's (0-180).
COLOUR_NAMES = (
    "black", "white", "grey", "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown",
)  # fmt: skip

_TOKEN = TOKEN_PATTERN.pattern.removeprefix("^").removesuffix("$")
# A track key, ``<camera id>:<first seen, epoch ms>:<tracker id>`` (see :func:`track_key`). It names
# the track's crop file, so nothing but these characters may reach the search service's disk.
TRACK_KEY_PATTERN = re.compile(rf"^({_TOKEN}):(\d{{1,16}}):(\d{{1,18}})$")
SQLITE_INT_MAX = 2**63 - 1
MAX_EMBEDDING_BASE64 = 2**20  # 196,000 float32 values: far more than any embedder has
MAX_CROP_BASE64 = 4 * 2**20  # crops are JPEGs of at most CROP_MAX_SIDE px a side (tens of KB)


class FeatureRecord(BaseModel):
    """One published appearance record of a track (message on ``retina.features.<camera_id>``)."""

    schema_id: Literal["retina.feature/1"] = Field(default=SCHEMA_ID, alias="schema")
    id: str = Field(
        pattern=TRACK_KEY_PATTERN.pattern,
        description="The track: camera id, first-seen time in ms, tracker id",
    )
    revision: int = Field(ge=0, le=SQLITE_INT_MAX, description="Grows by one with every record of the track")
    crop_revision: int = Field(
        ge=0, le=SQLITE_INT_MAX, description="Grows when the crop (and embedding) changes"
    )
    camera_id: str = Field(pattern=TOKEN_PATTERN.pattern)
    department: str = Field(pattern=TOKEN_PATTERN.pattern)
    shared_with: list[str] = Field(default_factory=list, max_length=256)
    track_id: int = Field(ge=0, le=SQLITE_INT_MAX)
    family: SearchFamily
    class_name: str = Field(pattern=r"^[A-Za-z0-9 _-]{1,64}$")
    first_seen: datetime
    last_seen: datetime
    ended: bool = Field(default=False, description="True on the track's last record")
    crop_seen_at: datetime | None = Field(default=None, description="When the crop was taken")
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None, description="Normalised box of the crop in its frame (x1, y1, x2, y2)"
    )
    crop_width: int = Field(default=0, ge=0, le=2**16)
    crop_height: int = Field(default=0, ge=0, le=2**16)
    quality: FiniteFloat = 0.0
    colours: list[str] = Field(
        default_factory=list, max_length=len(COLOUR_NAMES), description="Dominant colours, most first"
    )
    embedder: str = Field(
        min_length=1, max_length=128, description="name@version of the embedder that produced the embedding"
    )
    embedding_base64: str | None = Field(
        default=None, max_length=MAX_EMBEDDING_BASE64, description="float32 little-endian, L2-normalised"
    )
    crop_jpeg_base64: str | None = Field(default=None, max_length=MAX_CROP_BASE64)
    plate: PlateFacts | None = Field(
        default=None,
        description="The track's licence plate, voted over its reads (absent: none read, or older)",
    )

    model_config = {"populate_by_name": True}

    @field_validator("shared_with")
    @classmethod
    def _departments(cls, value: list[str]) -> list[str]:
        for department in value:
            if department != "*" and not TOKEN_PATTERN.fullmatch(department):
                raise ValueError(
                    f"{department[:64]!r}: a department is 1-64 letters, digits, '-' or '_' (or '*')"
                )
        return value

    @field_validator("colours")
    @classmethod
    def _colour_names(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in COLOUR_NAMES]
        if unknown:
            raise ValueError(f"{unknown[0][:32]!r} is not one of {', '.join(COLOUR_NAMES)}")
        return value

    @model_validator(mode="after")
    def _id_names_this_track(self) -> FeatureRecord:
        camera_id, _, tracker_id = self.id.split(":")
        if camera_id != self.camera_id or int(tracker_id) != self.track_id:
            raise ValueError(
                f"id: {self.id!r} is not a track of camera {self.camera_id!r} with track_id {self.track_id}"
                " (want <camera_id>:<first seen ms>:<track_id>)"
            )
        return self

    @property
    def msg_id(self) -> str:
        return f"{self.id}:{self.revision}"

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.camera_id}"

    def embedding(self) -> np.ndarray | None:
        if self.embedding_base64 is None:
            return None
        return np.frombuffer(base64.b64decode(self.embedding_base64, validate=True), dtype="<f4").copy()

    def crop_jpeg(self) -> bytes | None:
        return base64.b64decode(self.crop_jpeg_base64, validate=True) if self.crop_jpeg_base64 else None

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def track_key(camera_id: str, first_seen: float, track_id: int) -> str:
    """The stable id of a track: tracker ids restart with the worker, so the start time is part of it."""
    return f"{camera_id}:{round(first_seen * 1000)}:{track_id}"


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def encode_crop(crop: np.ndarray, quality: int = 85) -> bytes:
    """JPEG of a crop, downscaled so its longest side is at most :data:`CROP_MAX_SIDE`."""
    h, w = crop.shape[:2]
    scale = min(1.0, CROP_MAX_SIDE / max(h, w))
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


# -- crop quality and colours ----------------------------------------------------------------------


def crop_quality(
    image: np.ndarray,
    bbox: tuple[float, float, float, float],
    others: list[tuple[float, float, float, float]],
    confidence: float,
) -> float:
    """How good a crop is for recognising the object: large, sharp, unoccluded, not cut by the frame.

    The score is comparable between crops of the same track only (it is not a probability).
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = _clip_box(bbox, w, h)
    area = (x2 - x1) * (y2 - y1)
    if area <= 0:
        return 0.0
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    sharpness_factor = sharpness / (sharpness + 100.0)  # saturates: 100 is a typical in-focus value
    occluded = max((_overlap_fraction((x1, y1, x2, y2), o) for o in others), default=0.0)
    touches_edge = x1 <= 1 or y1 <= 1 or x2 >= w - 1 or y2 >= h - 1
    edge_factor = 0.5 if touches_edge else 1.0
    return float(np.sqrt(area) * sharpness_factor * (1.0 - occluded) * edge_factor * confidence)


def _clip_box(bbox: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = bbox
    return max(0, int(x1)), max(0, int(y1)), min(w, round(x2)), min(h, round(y2))


def _overlap_fraction(box: tuple[int, int, int, int], other: tuple[float, float, float, float]) -> float:
    """Fraction of ``box`` covered by ``other``."""
    ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
    return ix * iy / area


def crop_of(image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = _clip_box(bbox, w, h)
    return image[y1:y2, x1:x2].copy()


def dominant_colours(crop: np.ndarray, min_share: float = 0.2, max_colours: int = 2) -> list[str]:
    """Named colours covering at least ``min_share`` of the crop's central region, most first."""
    h, w = crop.shape[:2]
    centre = crop[h // 6 : h - h // 6 or h, w // 6 : w - w // 6 or w]  # less background
    if centre.size == 0:
        return []
    hsv = cv2.cvtColor(centre, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.full(len(hsv), "", dtype=object)
    chromatic = (sat >= 60) & (val >= 50)
    names[val < 50] = "black"
    names[(~chromatic) & (val >= 50) & (val < 170)] = "grey"
    names[(~chromatic) & (val >= 170)] = "white"
    for name, low, high in (
        ("red", 0, 8), ("orange", 8, 20), ("yellow", 20, 34), ("green", 34, 80), ("cyan", 80, 100),
        ("blue", 100, 130), ("purple", 130, 150), ("pink", 150, 170), ("red", 170, 181),
    ):  # fmt: skip
        names[chromatic & (hue >= low) & (hue < high)] = name
    # Dark, weakly saturated oranges and reds read as brown.
    names[chromatic & (hue < 20) & (val < 140)] = "brown"
    values, counts = np.unique(names, return_counts=True)
    order = np.argsort(-counts)
    shares = [(str(values[i]), counts[i] / len(names)) for i in order]
    return [name for name, share in shares if share >= min_share][:max_colours]


# -- embedders -------------------------------------------------------------------------------------


class Embedder(ABC):
    """Turns object crops into L2-normalised vectors; similar objects get a high inner product."""

    name: str
    version: str

    @property
    def key(self) -> str:
        """``name@version``: records embedded with another key cannot be compared."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_config(cls, features: FeaturesConfig, detector: DetectorConfig) -> Embedder:
        """Build the embedder the configuration asks for (plug-ins override this to read their params)."""
        return cls()

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the vectors."""

    @abstractmethod
    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """One row per BGR crop, float32, L2-normalised."""


def normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


class ColourEmbedder(Embedder):
    """HSV colour histogram (8×8×4 bins, square-rooted): cheap, needs no model, strong on vehicles."""

    name = "colour"
    version = "1"
    BINS = (8, 8, 4)

    @property
    def dim(self) -> int:
        return int(np.prod(self.BINS))

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        rows = []
        for crop in crops:
            hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(self.BINS), [0, 180, 0, 256, 0, 256]).ravel()
            rows.append(np.sqrt(hist / max(float(hist.sum()), 1e-6)))
        return normalise_rows(np.array(rows, np.float32).reshape(len(crops), self.dim))


class BackboneColourEmbedder(Embedder):
    """The detector's own pooled backbone features (Ultralytics ``embed``) joined with the colour
    histogram. Needs the detector as a PyTorch ``.pt`` checkpoint; ``colour_weight`` sets the share of
    the colour part in the inner product."""

    name = "backbone_colour"
    version = "1"
    IMAGE_SIZE = 128

    @classmethod
    def from_config(cls, features: FeaturesConfig, detector: DetectorConfig) -> Embedder:
        model = features.backbone_model or detector.model_path() or ""
        if not model.endswith(".pt"):
            raise ConfigError(
                [
                    "features.backbone_model: the backbone_colour embedder needs the detector as a PyTorch"
                    f" .pt checkpoint (the detector is {model!r}); set it, or use features.embedder: colour"
                ]
            )
        if not Path(model).is_file():
            raise ConfigError([f"features.backbone_model: no such file {model!r}"])
        return cls(model, features.colour_weight, detector.device)

    def __init__(self, model_path: str, colour_weight: float = 0.5, device: str = "cpu"):
        from ultralytics import YOLO

        self._model = YOLO(model_path, task="detect")
        self._device = device
        self._colour = ColourEmbedder()
        self._colour_weight = colour_weight
        self._backbone_dim = int(self.backbone_features([np.zeros((32, 32, 3), np.uint8)]).shape[1])
        self.version = f"1-{self._backbone_dim}-w{colour_weight:g}"

    @property
    def dim(self) -> int:
        return self._backbone_dim + self._colour.dim

    def backbone_features(self, crops: list[np.ndarray]) -> np.ndarray:
        """The detector's pooled backbone features of each crop, L2-normalised (no colour part)."""
        size = self.IMAGE_SIZE
        batch = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]
        vectors = self._model.embed(batch, imgsz=size, device=self._device, verbose=False)
        return normalise_rows(np.stack([v.detach().cpu().numpy().ravel() for v in vectors]))

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        w = self._colour_weight
        parts = [np.sqrt(1 - w) * self.backbone_features(crops), np.sqrt(w) * self._colour.embed(crops)]
        return normalise_rows(np.hstack(parts))


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _osnet_model_path(features: FeaturesConfig, name: str) -> str:
    model = features.osnet_model
    if not model:
        raise ConfigError(
            [f"features.osnet_model: the {name} embedder needs the OSNet re-id model (an .onnx file); set it,"
             " or use the colour embedder"]
        )  # fmt: skip
    if not Path(model).is_file():
        raise ConfigError([f"features.osnet_model: no such file {model!r}"])
    return model


class OsnetEmbedder(Embedder):
    """OSNet re-identification features (ONNX Runtime, batched): 256×128 RGB crops, ImageNet
    normalisation as torchreid does. Trained on persons; still far better than colour on vehicles."""

    name = "osnet"
    HEIGHT, WIDTH = 256, 128

    @classmethod
    def from_config(cls, features: FeaturesConfig, detector: DetectorConfig) -> Embedder:
        return cls(_osnet_model_path(features, cls.name), batch_size=features.osnet_batch)

    def __init__(self, model_path: str, batch_size: int = 32, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a truncated or foreign file: say which setting names it
            raise ConfigError(
                [f"features.osnet_model: {model_path!r} is not a usable ONNX model ({exc})"]
            ) from None
        self._input = self._session.get_inputs()[0].name
        self.batch_size = max(1, batch_size)
        self._dim = int(self._raw(np.zeros((1, 3, self.HEIGHT, self.WIDTH), np.float32)).shape[1])
        self.version = f"1-{Path(model_path).stem}-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: batch})[0]
        return np.asarray(out, np.float32).reshape(len(batch), -1)

    def preprocess(self, crops: list[np.ndarray]) -> np.ndarray:
        rows = []
        for crop in crops:
            rgb = cv2.cvtColor(cv2.resize(crop, (self.WIDTH, self.HEIGHT), interpolation=cv2.INTER_LINEAR),
                               cv2.COLOR_BGR2RGB)  # fmt: skip
            rows.append(((rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
        return np.ascontiguousarray(np.stack(rows), np.float32)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self._raw(self.preprocess(crops[i : i + self.batch_size]))
            for i in range(0, len(crops), self.batch_size)
        ]
        return normalise_rows(np.vstack(parts))


class OsnetColourEmbedder(Embedder):
    """OSNet features joined with the colour histogram: ``colour_weight`` is the colour part's share
    of the inner product (``features.osnet_colour_weight``)."""

    name = "osnet_colour"

    @classmethod
    def from_config(cls, features: FeaturesConfig, detector: DetectorConfig) -> Embedder:
        osnet = OsnetEmbedder(_osnet_model_path(features, cls.name), batch_size=features.osnet_batch)
        return cls(osnet, features.osnet_colour_weight)

    def __init__(self, osnet: OsnetEmbedder, colour_weight: float = 0.3):
        self._osnet = osnet
        self._colour = ColourEmbedder()
        self._colour_weight = colour_weight
        self.version = f"1-{osnet.version}-w{colour_weight:g}"

    @property
    def dim(self) -> int:
        return self._osnet.dim + self._colour.dim

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        w = self._colour_weight
        parts = [np.sqrt(1 - w) * self._osnet.embed(crops), np.sqrt(w) * self._colour.embed(crops)]
        return normalise_rows(np.hstack(parts))


def make_embedder(
    features: FeaturesConfig, detector: DetectorConfig, family: SearchFamily | None = None
) -> Embedder:
    """The embedder configured for ``family`` (None: the ``features.embedder`` one); raises
    ConfigError naming ``features.*`` when it cannot be built."""
    name = features.embedder if family is None else features.embedder_for(family)
    return available_embedders()[name].from_config(features, detector)


def make_family_embedders(features: FeaturesConfig, detector: DetectorConfig) -> dict[SearchFamily, Embedder]:
    """One embedder per search family; families configured with the same embedder share one instance."""
    built: dict[str, Embedder] = {}
    chosen: dict[SearchFamily, Embedder] = {}
    for family in SEARCH_FAMILIES:
        name = features.embedder_for(family)
        if name not in built:
            built[name] = available_embedders()[name].from_config(features, detector)
        chosen[family] = built[name]
    return chosen


def available_embedders() -> dict[str, type[Embedder]]:
    """Built-in embedders plus those installed under the ``retina.embedders`` entry-point group."""
    found: dict[str, type[Embedder]] = {
        "colour": ColourEmbedder,
        "backbone_colour": BackboneColourEmbedder,
        "osnet": OsnetEmbedder,
        "osnet_colour": OsnetColourEmbedder,
    }
    for entry in entry_points(group="retina.embedders"):
        try:
            found[entry.name] = entry.load()
        except Exception:
            log.exception("embedder plug-in failed to load", extra={"embedder": entry.name})
    return found
