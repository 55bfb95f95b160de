"""The GPU path on a node without a GPU: the engine cache (only the Ultralytics export, which needs
TensorRT and a GPU, is replaced), and the clean fallbacks to CPU inference and software decode."""

import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from retina.services.core.config import DetectorConfig, IngestConfig
from retina.services.worker import accelerate, ingest
from retina.services.worker.accelerate import EngineCache, accelerated, cache_key
from retina.services.worker.detector import Detector
from retina.services.worker.lanes import calibrate_batch

SHARED = Path("/work/shared")
PT_MODEL = SHARED / "models/yolov8n_coco_deq.pt"
VIDEO = SHARED / "videos/intersection.mp4"
no_gpu_here = pytest.mark.skipif(
    accelerate.cuda_available(), reason="checks the fallback of a node without CUDA"
)


@pytest.fixture
def model(tmp_path) -> Path:
    copy = tmp_path / "weights" / PT_MODEL.name
    copy.parent.mkdir()
    shutil.copyfile(PT_MODEL, copy)
    return copy


@pytest.fixture
def exports(monkeypatch) -> list[tuple]:
    """Ultralytics' TensorRT export replaced by one writing a file in its format (metadata header, then
    the engine bytes) where it would; each call is recorded."""
    calls = []

    def fake_export(model: Path, device: str, imgsz: int, half: bool, max_batch: int) -> Path:
        calls.append((model.name, device, imgsz, half, max_batch))
        meta = json.dumps({"imgsz": [imgsz, imgsz], "half": half, "batch": max_batch}).encode()
        out = model.with_suffix(".engine")
        out.write_bytes(len(meta).to_bytes(4, "little", signed=True) + meta + b"\x00engine")
        return out

    monkeypatch.setattr(accelerate, "export_engine", fake_export)
    return calls


def test_cache_key_changes_with_model_device_size_precision_and_batch(model, tmp_path):
    base = cache_key(model, "NVIDIA H200", 640, True, 8)
    assert base == cache_key(model, "NVIDIA H200", 640, True, 8)
    other_weights = tmp_path / "other.pt"
    other_weights.write_bytes(model.read_bytes() + b"\x00")
    variants = [
        cache_key(other_weights, "NVIDIA H200", 640, True, 8),
        cache_key(model, "NVIDIA L4", 640, True, 8),
        cache_key(model, "NVIDIA H200", 320, True, 8),
        cache_key(model, "NVIDIA H200", 640, False, 8),
        cache_key(model, "NVIDIA H200", 640, True, 16),
    ]
    assert len({base, *variants}) == 6


def test_an_engine_is_exported_once_per_key_and_reused(model, tmp_path, exports):
    cache = EngineCache(tmp_path / "engines")
    first = cache.engine_for(model, "cuda:0", "NVIDIA H200", 640, True, 8)
    second = cache.engine_for(model, "cuda:1", "NVIDIA H200", 640, True, 8)  # a second lane, same GPU model
    assert first == second and first.is_file() and first.parent == tmp_path / "engines"
    assert len(exports) == 1 and exports[0][1:] == ("cuda:0", 640, True, 8)
    assert not (model.parent / "yolov8n_coco_deq.engine").exists()  # the weights' folder stays clean
    assert cache.engine_for(model, "cuda:0", "NVIDIA H200", 320, True, 8) != first
    assert len(exports) == 2
    first.write_bytes(b"\x10\x00")  # truncated on disk: exported again, not loaded
    assert cache.engine_for(model, "cuda:0", "NVIDIA H200", 640, True, 8) == first
    assert len(exports) == 3 and accelerate.engine_is_sound(first)


def test_a_cuda_lane_with_tensorrt_loads_the_cached_engine(model, tmp_path, exports, monkeypatch):
    """The decision on a GPU node (CUDA presence and the GPU's name are what this node cannot give)."""
    monkeypatch.setattr(accelerate, "cuda_available", lambda: True)
    monkeypatch.setattr(accelerate, "device_name", lambda device: "NVIDIA H200")
    config = DetectorConfig(
        model=str(model), device="cuda:0", half=True, export="tensorrt", engine_cache_dir=str(tmp_path / "e")
    )
    path, used = accelerated(config, max_batch=4)
    again, _ = accelerated(config.model_copy(update={"device": "cuda:1"}), max_batch=4)
    assert path == again and path.endswith(".engine") and used.imgsz == 640 and len(exports) == 1
    assert accelerated(config.model_copy(update={"export": "none"}))[0] == str(model)  # today's behaviour


def test_a_failed_export_falls_back_to_the_pt_at_fp16(model, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(accelerate, "cuda_available", lambda: True)
    monkeypatch.setattr(accelerate, "device_name", lambda device: "NVIDIA H200")

    def no_tensorrt(*args):
        raise ModuleNotFoundError("No module named 'tensorrt'")

    monkeypatch.setattr(accelerate, "export_engine", no_tensorrt)
    config = DetectorConfig(
        model=str(model), device="cuda:0", half=False, export="tensorrt", engine_cache_dir=str(tmp_path / "e")
    )
    with caplog.at_level(logging.WARNING, logger=accelerate.__name__):
        path, used = accelerated(config, max_batch=4)
    assert path == str(model) and used.half and used.device == "cuda:0"
    assert "export of" in caplog.text and "tensorrt" in caplog.text
    assert not list((tmp_path / "e").glob("*.engine"))


@no_gpu_here
def test_cuda_asked_without_cuda_runs_on_the_cpu_and_detects(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(accelerate, "_warned", set())
    config = DetectorConfig(
        model=str(PT_MODEL),
        device="cuda:0",
        half=True,
        export="tensorrt",
        engine_cache_dir=str(tmp_path / "e"),
    )
    with caplog.at_level(logging.WARNING, logger=accelerate.__name__):
        detector = Detector(config, max_batch=2)
    assert (detector.config.device, detector.config.half, detector.model_path) == (
        "cpu",
        False,
        str(PT_MODEL),
    )
    assert "detector.device 'cuda:0': CUDA is not available" in caplog.text
    assert not (tmp_path / "e").exists()  # nothing exported on a CPU node
    with av.open(str(VIDEO)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    (found,) = detector.detect([frame])
    assert len(found) > 0 and {detector.names[int(c)] for c in found.cls} & {"car", "person", "truck", "bus"}


@no_gpu_here
def test_hwaccel_cuda_unavailable_decodes_in_software(monkeypatch, caplog):
    monkeypatch.setattr(ingest, "_hwaccel_failed", set())
    with caplog.at_level(logging.WARNING, logger=ingest.__name__):
        with ingest.open_container(str(VIDEO), {}, (10.0, 10.0), "cuda", "cam-1") as container:
            frames = [f.to_ndarray(format="bgr24") for f in itertools.islice(container.decode(video=0), 5)]
        with ingest.open_container(str(VIDEO), {}, (10.0, 10.0), "cuda", "cam-2"):
            pass
    assert len(frames) == 5 and frames[0].ndim == 3 and np.asarray(frames[0]).std() > 0
    assert caplog.text.count("ingest.hwaccel 'cuda' is unavailable") == 1  # once, not per camera
    with pytest.raises(FileNotFoundError):  # a missing source is still the source's fault
        ingest.open_container("/nonexistent/clip.mp4", {}, (1.0, 1.0), "cuda")


def test_gpu_settings_are_validated():
    with pytest.raises(ValidationError, match="export"):
        DetectorConfig(export="onnx")
    with pytest.raises(ValidationError, match="hwaccel"):
        IngestConfig(hwaccel="nvdec")
    assert DetectorConfig().export == "none" and IngestConfig().hwaccel == "none"


class _TimedDevice:
    """A device whose call costs ``fixed + per_frame * n`` seconds: the batch rule on known costs."""

    def __init__(self, fixed: float, per_frame: float):
        self.fixed, self.per_frame, self.sizes = fixed, per_frame, []

    def detect(self, images):
        self.sizes.append(len(images))
        time.sleep(self.fixed + self.per_frame * len(images))


def test_batch_calibration_takes_the_largest_batch_that_lowers_the_frame_cost():
    launch_bound = _TimedDevice(fixed=0.02, per_frame=0.001)  # a GPU: per-call overhead dominates
    assert calibrate_batch(launch_bound, 8, 0.4) == 8
    assert {1, 2, 4, 8} <= set(launch_bound.sizes)
    compute_bound = _TimedDevice(fixed=0.0, per_frame=0.1)  # a CPU: batching gains nothing
    assert calibrate_batch(compute_bound, 4, 0.2) == 1 and set(compute_bound.sizes) == {1, 2, 4}
    assert calibrate_batch(launch_bound, 6, 0.2) == 4  # powers of two up to max_batch


def test_batch_calibration_on_the_real_detector():
    detector = Detector(DetectorConfig(model=str(SHARED / "models/yolov8n_coco_int8.onnx")))
    assert calibrate_batch(detector, 4, 0.6) in (1, 2, 4)
