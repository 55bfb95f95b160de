"""The GPU path of the detector: CUDA availability, and TensorRT engines exported once and cached.

An engine is only valid for the GPU model, input size, precision and library versions it was built
with, so the cache key holds all of them plus a hash of the weights. Whatever fails (no CUDA, no
TensorRT, a failed export, a corrupt cached file) falls back to the ``.pt`` model: FP16 on a GPU,
FP32 on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from retina.services.core.config import DetectorConfig

log = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640  # Ultralytics' export size when detector.imgsz is not set
_lock = threading.Lock()  # lanes of one worker build their detectors one after another; be safe anyway
_warned: set[str] = set()


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False on a CPU-only torch)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a torch build without CUDA support
        return False


def usable_device(config: DetectorConfig) -> DetectorConfig:
    """``config`` itself, or, when it asks for CUDA on a node without it, a CPU copy at FP32 (with one
    warning per device naming the setting)."""
    if not config.device.startswith("cuda") or cuda_available():
        return config
    if config.device not in _warned:
        _warned.add(config.device)
        log.warning(
            "detector.device %r: CUDA is not available on this node; running on the CPU at FP32",
            config.device,
            extra={"device": config.device},
        )
    return config.model_copy(update={"device": "cpu", "half": False})


def device_name(device: str) -> str:
    """The GPU's product name (e.g. 'NVIDIA H200'): engines are specific to it."""
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def _versions() -> str:
    found = []
    for package in ("ultralytics", "torch", "tensorrt"):
        try:
            found.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}=none")
    return ",".join(found)


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(model: str | Path, gpu_name: str, imgsz: int, half: bool, max_batch: int) -> str:
    """What an engine depends on: the weights' content, the GPU, the input size, the precision, the
    largest batch and the versions of Ultralytics, torch and TensorRT."""
    parts = [file_hash(model), gpu_name, str(imgsz), "fp16" if half else "fp32", str(max_batch), _versions()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def engine_is_sound(path: Path) -> bool:
    """Whether ``path`` looks like an Ultralytics TensorRT engine: its metadata header (4-byte length,
    JSON) is whole and an engine follows it. Catches truncated and foreign files, not every fault."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(4), byteorder="little", signed=True)
            if not 0 < size < 1 << 20:
                return False
            json.loads(f.read(size).decode())
            return len(f.read(1)) == 1
    except (OSError, ValueError):
        return False


def export_engine(model: Path, device: str, imgsz: int, half: bool, max_batch: int) -> Path:
    """Export ``model`` to a TensorRT engine through Ultralytics (batches of 1 to ``max_batch``);
    returns the file it wrote."""
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    exported = yolo.export(
        format="engine", half=half, imgsz=imgsz, device=device, dynamic=True, batch=max_batch
    )
    return Path(exported)


class EngineCache:
    """TensorRT engines in one directory, one file per cache key."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path_for(self, model: str | Path, gpu_name: str, imgsz: int, half: bool, max_batch: int) -> Path:
        key = cache_key(model, gpu_name, imgsz, half, max_batch)
        return self.directory / f"{Path(model).stem}-{key}.engine"

    def engine_for(
        self, model: str | Path, device: str, gpu_name: str, imgsz: int, half: bool, max_batch: int
    ) -> Path | None:
        """The cached engine, exported now when missing or unsound; None (logged) when export fails."""
        with _lock:
            target = self.path_for(model, gpu_name, imgsz, half, max_batch)
            if target.is_file():
                if engine_is_sound(target):
                    return target
                log.warning("cached engine %s is corrupt; exporting again", target, extra={"device": device})
                target.unlink()
            started = time.monotonic()
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=self.directory) as work:
                    copy = Path(work) / Path(model).name  # Ultralytics writes next to the weights
                    shutil.copyfile(model, copy)
                    exported = export_engine(copy, device, imgsz, half, max_batch)
                    if not engine_is_sound(exported):
                        raise RuntimeError(f"export wrote no sound engine ({exported})")
                    exported.replace(target)  # atomic: a reader never sees half a file
            except Exception as exc:  # no TensorRT, out of memory, an unsupported layer, an unwritable dir
                log.warning(
                    "detector.export tensorrt: export of %s failed (%s: %s); using the .pt model",
                    model,
                    type(exc).__name__,
                    exc,
                    extra={"device": device},
                )
                return None
            log.info(
                "engine exported",
                extra={"engine": str(target), "device": device, "seconds": round(time.monotonic() - started)},
            )
            return target


def accelerated(config: DetectorConfig, max_batch: int = 8) -> tuple[str, DetectorConfig]:
    """The weights to load and the settings to run them with: a cached TensorRT engine when
    ``detector.export`` is 'tensorrt', the device is a usable GPU and the model a .pt; else the model as
    configured, on the CPU at FP32 when CUDA was asked for but is missing."""
    config = usable_device(config)
    model = config.resolved_model()
    if config.export == "none" or not config.device.startswith("cuda"):
        return model, config
    if Path(model).suffix != ".pt":
        log.warning("detector.export tensorrt: only a .pt model is exported; %s runs as given", model)
        return model, config
    imgsz = config.imgsz or DEFAULT_IMGSZ
    engine = EngineCache(config.engine_cache_dir).engine_for(
        model, config.device, device_name(config.device), imgsz, config.half, max_batch
    )
    if engine is None:
        return model, config.model_copy(update={"half": True})
    # the engine is built for one input size and precision: predict with exactly those
    return str(engine), config.model_copy(update={"imgsz": imgsz})
