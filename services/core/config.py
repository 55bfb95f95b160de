"""Typed cluster configuration (YAML), validated at load with messages an admin can act on.

Shape::

    detector: {model: /models/yolov8n.onnx}     # or RETINA_MODEL
    defaults: {analysis_fps: 2, timezone: Asia/Shanghai, department: urban-management}
    cameras:
      - id: cam-001
        url: rtsp://127.0.0.1:8554/cam1
        algorithms:
          - name: illegal_parking
            zones: [{name: curb, polygon: [[0, 0.6], [1, 0.6], [1, 1], [0, 1]]}]
            params: {dwell_seconds: 60}

Each camera is validated on its own: a broken camera is reported (``cameras[2].url: ...``) and
skipped, the others run. Errors in the cluster-wide sections stop the load.

Every model follows :class:`retina.algorithms.sdk.ConfigModel`'s rules: unknown keys are errors, numbers
must be finite, and every duration (``*_seconds``) is at most 7 days.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from retina.algorithms.sdk import (
    AlgorithmSpec,
    ConfigModel,
    error_location,
    error_message,
    validate_algorithm_params,
)
from retina.services.core.cases import GRID_CODE_PATTERN, GRID_CODE_RULE, CasesConfig
from retina.services.core.errors import ConfigError as ConfigError  # re-exported: raised by loaders
from retina.services.core.motion_config import MotionConfig, MotionOverride, check_motion, effective_motion
from retina.services.core.plates_config import PlatesConfig
from retina.services.core.ports import LOCAL_NATS_URL
from retina.services.core.quality import QualityConfig, QualityOverride, effective_quality
from retina.services.core.validation import TOKEN_PATTERN as TOKEN_PATTERN  # re-exported: the id rule
from retina.services.core.validation import TOKEN_RULE, is_token, quote
from retina.services.core.webhooks_config import Webhooks


class StrictModel(ConfigModel):
    """A section of the configuration (see :class:`retina.algorithms.sdk.ConfigModel` for the rules)."""


class GeoLocation(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


MODEL_ENV = "RETINA_MODEL"  # the detector's weights when the file names none


class DetectorConfig(StrictModel):
    """The shared detector. Thresholds are low on purpose: int8 models score parked cars 0.15–0.4."""

    model: str | None = Field(default=None, description="Path to the weights (.onnx or .pt); or RETINA_MODEL")
    imgsz: int | None = Field(default=None, ge=32, le=4096, description="Inference size; None: the model's")
    confidence: float = Field(default=0.1, gt=0, lt=1, description="Detections below this are dropped")
    device: str = Field(default="cpu", description="'cpu', 'cuda', 'cuda:0', ...")
    half: bool = Field(default=False, description="FP16 inference (GPU only)")
    export: Literal["none", "tensorrt"] = Field(
        default="none",
        description="'tensorrt': on a CUDA device a .pt model is exported once to a TensorRT engine (FP16"
        " when half) and cached in engine_cache_dir; 'none': the model runs as given",
    )
    engine_cache_dir: str = Field(
        default="var/engines",
        min_length=1,
        description="Exported engines, keyed by model hash, GPU name, input size, precision and versions",
    )
    family_nms_iou: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Of two boxes of one family (a car also seen as a truck) overlapping more than this"
        " IoU, only the more confident is kept; 1 keeps both",
    )

    def model_path(self) -> str | None:
        """The weights: ``model`` from the file, else the RETINA_MODEL environment variable (the one
        place it is read; see :mod:`retina.services.core.settings`), else None."""
        return self.model or os.environ.get(MODEL_ENV) or None

    def resolved_model(self) -> str:
        """The model path from the config or RETINA_MODEL; raises ConfigError when neither is set."""
        model = self.model_path()
        if not model:
            raise ConfigError(["detector.model: not set (give a weights path here or in RETINA_MODEL)"])
        return model

    @staticmethod
    def weights_problem(model: str) -> str | None:
        """Why ``model`` cannot load: a path (or an .onnx/.engine name) that is no file, or a name
        Ultralytics would download while YOLO_OFFLINE is set; None when it can."""
        if Path(model).is_file():
            return None
        if os.sep in model or Path(model).suffix in (".onnx", ".engine"):
            return f"no such file {model!r}"
        if os.environ.get("YOLO_OFFLINE"):
            return f"{model!r} is not a file and YOLO_OFFLINE is set"
        return None


class TrackerConfig(StrictModel):
    """ByteTrack settings. Scores are the detector's; lost time is in seconds, not frames."""

    high_threshold: float = Field(default=0.2, gt=0, lt=1)
    low_threshold: float = Field(default=0.1, gt=0, lt=1)
    new_track_threshold: float = Field(default=0.2, gt=0, lt=1)
    match_threshold: float = Field(default=0.8, gt=0, le=1)
    lost_seconds: float = Field(default=5.0, gt=0, description="Keep a lost track this long for re-matching")


class IngestConfig(StrictModel):
    """How sources are opened and watched."""

    open_timeout_seconds: float = Field(default=10.0, gt=0)
    stall_seconds: float = Field(default=10.0, gt=0, description="No frame for this long: reconnect")
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    skip_nonref_frames: bool = Field(
        default=True,
        description="Streams with B-frames: leave non-reference frames undecoded when the camera's"
        " analysis_fps is at most a quarter of the stream's (decode time roughly halves; the frames"
        " left still cover the sampling)",
    )
    hwaccel: Literal["none", "cuda"] = Field(
        default="none",
        description="'cuda': decode on the GPU (NVDEC) where FFmpeg and the node offer it, else software"
        " decode with one warning",
    )


class EvidenceConfig(StrictModel):
    """Evidence clips cut around the moment an incident opens (encoded packets, no re-encode)."""

    clip_before_seconds: float = Field(default=5.0, ge=0, le=60, description="Video kept before the alert")
    clip_after_seconds: float = Field(default=5.0, ge=0, le=60, description="Video recorded after the alert")

    @property
    def enabled(self) -> bool:
        return self.clip_before_seconds + self.clip_after_seconds > 0


# Embedders by family when features.osnet_model is set and nothing else is chosen: measured on real
# two-camera crops (README, "Search by image"). Non-motor riders keep colour until measured.
# With an OSNet model and nothing chosen, every family uses OSNet joined with colour: measured best
# on vehicles, and one embedder for all families keeps the search service's one index.
OSNET_DEFAULT = "osnet_colour"
FAMILIES = ("person", "vehicle", "non_motor")


class FeaturesConfig(StrictModel):
    """Per-track appearance features for search by image (see services/worker/features.py)."""

    enabled: bool = Field(default=True, description="Publish track features on retina.features.<camera>")
    embedder: str = Field(
        default="colour",
        description="Every family's embedder unless 'embedders' names one: 'colour', 'osnet',"
        " 'osnet_colour', 'backbone_colour', or a plug-in",
    )
    embedders: dict[Literal["person", "vehicle", "non_motor"], str] = Field(
        default_factory=dict,
        description="Embedder per family, e.g. {person: osnet, vehicle: osnet_colour}; a family left out"
        " gets 'embedder' if that is set, else osnet / osnet_colour when osnet_model is set, else colour",
    )
    osnet_model: str | None = Field(
        default=None, description="OSNet re-id model (.onnx) for the osnet and osnet_colour embedders"
    )
    osnet_batch: int = Field(default=32, ge=1, le=1024, description="Crops per OSNet inference")
    osnet_colour_weight: float = Field(default=0.3, ge=0, le=1, description="Share of colour in osnet_colour")
    backbone_model: str | None = Field(
        default=None, description="PyTorch .pt of the detector for backbone_colour; None: the detector's"
    )
    colour_weight: float = Field(default=0.5, ge=0, le=1, description="Share of colour in backbone_colour")
    min_track_seconds: float = Field(default=1.0, ge=0, description="Shorter tracks are not indexed")
    min_crop_pixels: int = Field(default=32, ge=8, description="Crops with a shorter side are not used")
    improve_factor: float = Field(default=1.5, gt=1, description="A new crop must be this much better")
    min_republish_seconds: float = Field(default=5.0, ge=0, description="Least time between two crops")
    refresh_seconds: float = Field(default=60.0, gt=0, description="Long tracks re-send their times")

    @model_validator(mode="after")
    def _known_embedder(self) -> FeaturesConfig:
        # Imported here to keep OpenCV out of importing the configuration; no cycle: features
        # imports this module for type hints only.
        from retina.services.core.features import available_embedders

        known = available_embedders()
        if self.embedder not in known:
            raise ValueError(
                f"embedder: unknown {quote(self.embedder)} (available: {', '.join(sorted(known))})"
            )
        for family, name in self.embedders.items():
            if name not in known:
                raise ValueError(
                    f"embedders.{family}: unknown {quote(name)} (available: {', '.join(sorted(known))})"
                )
        chosen = {family: self.embedder_for(family) for family in FAMILIES}
        if len(set(chosen.values())) > 1:  # the search service keeps one index, for one embedder
            listed = ", ".join(f"{family}={name}" for family, name in chosen.items())
            raise ValueError(
                f"embedders: every family must use the same embedder for now ({listed}); the search"
                " service keeps one index per embedder store — choose one, e.g. osnet_colour"
            )
        return self

    def embedder_for(self, family: str) -> str:
        """The embedder name of a search family (see ``embedders``)."""
        if family in self.embedders:
            return self.embedders[family]  # type: ignore[index]
        if "embedder" in self.model_fields_set or not self.osnet_model:
            return self.embedder
        return OSNET_DEFAULT


class SearchConfig(StrictModel):
    """The search service's FAISS index (see services/search)."""

    shard_hours: float = Field(default=24, gt=0, le=24 * 31, description="Time span of one index shard")
    retention_days: float = Field(
        default=30, gt=0, le=3650, description="Shards older than this are dropped (at most 10 years)"
    )
    exact_max_vectors: int = Field(
        default=200_000, ge=1000, description="A shard beyond this size switches to an approximate index"
    )
    approximate_index: Literal["hnsw", "ivf"] = Field(
        default="ivf", description="Index for big shards: ivf (8-bit codes, re-ranked exactly) or hnsw"
    )
    hnsw_m: int = Field(
        default=16, ge=4, le=128, description="HNSW links per vector: recall vs memory, build"
    )
    hnsw_ef_construction: int = Field(
        default=64, ge=8, description="HNSW build breadth: recall vs build time"
    )
    hnsw_ef_search: int = Field(default=256, ge=8, description="HNSW search breadth: recall vs latency")
    ivf_lists: int | None = Field(
        default=None, ge=16, le=65536, description="IVF lists; None: 4 × √(shard vectors), ≥ 39 vectors each"
    )
    ivf_nprobe: int = Field(default=768, ge=1, description="IVF lists visited: recall vs latency")
    rerank_factor: int = Field(
        default=4, ge=1, le=64, description="IVF candidates re-scored exactly, × k: recall vs latency"
    )
    exact_filtered_max_vectors: int = Field(
        default=50_000, ge=0, description="Filtered sets up to this size are scored exactly, not via IVF/HNSW"
    )
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0, le=200 * 1024 * 1024)
    max_image_side: int = Field(default=8000, gt=0)


class WorkerConfig(StrictModel):
    """How a worker uses its node: devices, batching, the budgets it reports to the scheduler."""

    devices: list[str] | Literal["auto"] = Field(
        default="auto", description="'auto' (every CUDA GPU, else CPU lanes) or ids: cuda:0, cpu:0, ..."
    )
    cpu_lanes: int = Field(default=1, ge=1, le=64, description="CPU lanes when no GPU (one model each)")
    max_batch: int = Field(default=8, ge=1, le=256, description="Most frames in one detector call")
    max_batch_wait_ms: float = Field(
        default=20, ge=0, le=1000, description="Wait this long for other cameras' frames to batch"
    )
    decode_capacity: float | None = Field(
        default=None, gt=0, description="Megapixel-frames/s this node decodes; None: 300 per CPU core"
    )
    calibration_seconds: float = Field(default=2.0, gt=0, le=60, description="Detector timing at start")
    calibrate_batch: bool = Field(
        default=False,
        description="At start, time batches of 1, 2, 4, ... up to max_batch on each device and batch up to"
        " the largest whose per-frame time still improves by 10%; False: max_batch everywhere",
    )
    capacity_fps: float | None = Field(
        default=None, gt=0, description="Report this capacity per device instead of measuring it"
    )

    @field_validator("devices")
    @classmethod
    def _device_ids(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            for device in value:
                if not re.fullmatch(r"(cuda|cpu):\d+", device):
                    raise ValueError(f"{quote(device)}: use cuda:N or cpu:N")
            if not value:
                raise ValueError("list at least one device, or 'auto'")
        return value


class SchedulerConfig(StrictModel):
    """The scheduler: leases, placement, its database."""

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgresql+psycopg://...); None: SQLite in its data dir"
    )
    heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)
    lease_seconds: float = Field(default=6.0, gt=0, le=600, description="A silent worker loses its cameras")
    camera_decode_cost: float = Field(
        default=52.0, gt=0, description="Megapixel-frames/s to decode one camera (1080p at 25 fps: 52)"
    )
    rebalance_threshold: float = Field(
        default=1.25, ge=1, description="Move cameras when the busiest device is this far over the mean"
    )

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> SchedulerConfig:
        if self.lease_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                f"lease_seconds: {self.lease_seconds:g} must be more than twice heartbeat_seconds "
                f"({self.heartbeat_seconds:g}), or one late heartbeat moves every camera"
            )
        return self


class NatsConfig(StrictModel):
    url: str = LOCAL_NATS_URL


class CameraDefaults(StrictModel):
    """Values a camera inherits when it does not set them itself."""

    analysis_fps: float = Field(default=2.0, gt=0, le=30)
    timezone: str = "UTC"
    department: str = "urban-management"


class CameraConfig(StrictModel):
    id: str
    name: str = Field(default="", max_length=256)
    url: str = Field(max_length=4096)
    department: str = Field(default="urban-management", description="The owning department")
    shared_with: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Other departments that may receive its incidents and search its features; '*': all",
    )
    scene_type: str = Field(
        default="", max_length=128, description="Free-form scene label (road, market, square...)"
    )
    grid_code: str = Field(
        default="", max_length=32, description="The unit grid (单元网格) it watches: routes its cases"
    )
    address: str = Field(default="", max_length=256, description="Street address its cases carry")
    location: GeoLocation | None = None
    timezone: str = Field(default="UTC", max_length=64)
    analysis_fps: float = Field(default=2.0, gt=0, le=30)
    loop: bool = Field(default=False, description="File sources only: replay the file at its end")
    algorithms: list[AlgorithmSpec] = Field(default_factory=list)
    quality: QualityOverride | None = Field(
        default=None, description="Video-quality thresholds of this camera over the 'quality' section"
    )
    motion: MotionOverride | None = Field(
        default=None, description="Motion-gate settings of this camera over the 'motion' section"
    )

    @field_validator("id", "department")
    @classmethod
    def _token(cls, value: str) -> str:
        if not is_token(value):
            raise ValueError(f"{TOKEN_RULE} (it becomes a NATS subject token)")
        return value

    @field_validator("shared_with")
    @classmethod
    def _departments(cls, value: list[str]) -> list[str]:
        for department in value:
            if department != "*" and not is_token(department):
                raise ValueError(
                    f"{quote(department)}: a department is 1-64 letters, digits, '-' or '_' (or '*')"
                )
        return sorted(set(value))

    def visible_to(self, department: str) -> bool:
        """May ``department`` receive this camera's incidents and search its features?"""
        return department == self.department or department in self.shared_with or "*" in self.shared_with

    @field_validator("name", "scene_type", "address")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text on one line (no control characters)")
        return value

    @field_validator("grid_code")
    @classmethod
    def _grid_code(cls, value: str) -> str:
        if value and not GRID_CODE_PATTERN.fullmatch(value):
            raise ValueError(GRID_CODE_RULE)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not value.isprintable():
            raise ValueError("must be printable text on one line (no control characters)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown timezone {quote(value)} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @model_validator(mode="after")
    def _algorithm_params(self) -> CameraConfig:
        names = [a.name for a in self.algorithms]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"algorithm listed twice: {', '.join(sorted(duplicates))}")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RetinaConfig(StrictModel):
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    nats: NatsConfig = Field(default_factory=NatsConfig)
    defaults: CameraDefaults = Field(default_factory=CameraDefaults)
    cameras: list[CameraConfig] = Field(default_factory=list)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    webhooks: Webhooks = Field(default_factory=list)


@dataclass
class LoadedConfig:
    """A loaded configuration: the valid cameras, and one error line per rejected camera."""

    config: RetinaConfig
    camera_errors: list[str] = field(default_factory=list)


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """Turn a pydantic error into ``cameras[0].algorithms[0].zones[0].polygon: message`` lines."""
    lines = []
    for item in error.errors():
        path = error_location(item["loc"], prefix)
        message = error_message(item)
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        lines.append(f"{path}: {message}")
    return lines


def validate_camera(raw: Any, prefix: str, defaults: CameraDefaults) -> CameraConfig:
    """Validate one camera entry (applying defaults); raises ConfigError naming the camera's fields."""
    if not isinstance(raw, dict):
        raise ConfigError([f"{prefix}: expected a mapping with at least 'id' and 'url'"])
    merged = {**defaults.model_dump(), **raw}
    try:
        camera = CameraConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix)) from None
    errors: list[str] = []
    for a_index, spec in enumerate(camera.algorithms):
        errors += [f"{prefix}.algorithms[{a_index}].{line}" for line in validate_algorithm_params(spec)]
    if errors:
        raise ConfigError(errors)
    return camera


def parse_config(data: Any, source: str = "config") -> LoadedConfig:
    """Validate a parsed YAML document. Bad cameras are collected in ``camera_errors`` and skipped."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: expected a mapping with a 'cameras' list"])
    raw_cameras = data.get("cameras", [])
    if not isinstance(raw_cameras, list):
        raise ConfigError(["cameras: expected a list of cameras"])
    try:
        config = RetinaConfig.model_validate({**data, "cameras": []})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None

    camera_errors: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_cameras):
        try:
            camera = validate_camera(raw, f"cameras[{index}]", config.defaults)
        except ConfigError as exc:
            camera_errors += exc.errors
            continue
        if camera.id in seen:
            camera_errors.append(f"cameras[{index}].id: duplicate camera id {camera.id!r}")
            continue
        try:  # the camera's quality thresholds must hold together with the section's
            effective_quality(config.quality, camera.quality, f"cameras[{index}].quality")
        except ConfigError as exc:
            camera_errors += exc.errors
            continue
        problem = check_motion(effective_motion(config.motion, camera.motion), config.tracker.lost_seconds)
        if problem:
            camera_errors.append(f"cameras[{index}].motion.floor_fps: {problem}")
            continue
        seen.add(camera.id)
        config.cameras.append(camera)
    return LoadedConfig(config=config, camera_errors=camera_errors)


def require_cameras(loaded: LoadedConfig, source: str) -> LoadedConfig:
    """``loaded`` if it has a camera to run, else ConfigError ``no cameras: ...`` naming ``source``.

    For the commands that run the file's cameras (``retina validate``, ``retina up``); a service's
    own configuration (worker, scheduler) may well list none.
    """
    if loaded.config.cameras:
        return loaded
    if loaded.camera_errors:
        raise ConfigError([f"no cameras: every camera in {source} was rejected (see the errors above)"])
    raise ConfigError([f"no cameras: {source} lists none (add a 'cameras:' list of at least one camera)"])


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: nested too deeply to be a configuration"]) from None
    _resolve_files_read_at_validation(data, path.resolve().parent)
    loaded = parse_config(data, source=str(path))
    _resolve_relative_paths(loaded.config, path.resolve().parent)
    return loaded


def _resolve_files_read_at_validation(data: Any, base: Path) -> None:
    """Make the paths of files that validation itself reads (``cases.categories_file``) relative to
    the configuration file, before it runs."""
    cases = data.get("cases") if isinstance(data, dict) else None
    name = cases.get("categories_file") if isinstance(cases, dict) else None
    if isinstance(name, str) and name and _is_relative_file(name):
        cases["categories_file"] = os.path.abspath(base / name)


def _resolve_relative_paths(config: RetinaConfig, base: Path) -> None:
    """File paths in a config file are relative to the file, not to where retina was started."""
    if config.detector.model and _is_relative_file(config.detector.model):
        candidate = base / config.detector.model
        if candidate.exists():
            config.detector.model = os.path.abspath(candidate)
    if config.features.backbone_model and _is_relative_file(config.features.backbone_model):
        config.features.backbone_model = os.path.abspath(base / config.features.backbone_model)
    if config.features.osnet_model and _is_relative_file(config.features.osnet_model):
        config.features.osnet_model = os.path.abspath(base / config.features.osnet_model)
    for name in ("detector_model", "reader_model"):
        value = getattr(config.plates, name)
        if value and _is_relative_file(value):
            setattr(config.plates, name, os.path.abspath(base / value))
    for webhook in config.webhooks:
        if _is_relative_file(webhook.secret_file):
            webhook.secret_file = os.path.abspath(base / webhook.secret_file)
    for camera in config.cameras:
        if _is_relative_file(camera.url):
            camera.url = os.path.abspath(base / camera.url)


def _is_relative_file(value: str) -> bool:
    return "://" not in value and not Path(value).is_absolute()
