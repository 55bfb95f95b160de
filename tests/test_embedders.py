"""Embedders per family: OSNet (ONNX Runtime), OSNet + colour, and the features configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retina.services.core.config import ConfigError, DetectorConfig, FeaturesConfig
from retina.services.core.features import (
    ColourEmbedder,
    Embedder,
    FeatureRecord,
    OsnetColourEmbedder,
    OsnetEmbedder,
    available_embedders,
    make_embedder,
    make_family_embedders,
    utc,
)
from retina.services.worker.features import FeatureExtractor, FeatureJob

OSNET = Path(__file__).resolve().parents[2] / "shared" / "models" / "osnet_x0_25_msmt17_reid.onnx"
needs_osnet = pytest.mark.skipif(not OSNET.is_file(), reason="../shared/models has no OSNet model")


def test_builtin_embedders_are_listed() -> None:
    assert {"colour", "backbone_colour", "osnet", "osnet_colour"} <= set(available_embedders())


def test_default_is_colour_for_every_family() -> None:
    features = FeaturesConfig()
    assert [features.embedder_for(f) for f in ("person", "vehicle", "non_motor")] == ["colour"] * 3


def test_osnet_model_makes_osnet_colour_every_family_default() -> None:
    features = FeaturesConfig(osnet_model="/models/osnet.onnx")
    assert {features.embedder_for(f) for f in ("person", "vehicle", "non_motor")} == {"osnet_colour"}


def test_single_embedder_key_still_applies_to_every_family() -> None:
    features = FeaturesConfig(embedder="colour", osnet_model="/models/osnet.onnx")
    assert {features.embedder_for(f) for f in ("person", "vehicle", "non_motor")} == {"colour"}
    features = FeaturesConfig(embedders={"person": "osnet", "vehicle": "osnet", "non_motor": "osnet"})
    assert {features.embedder_for(f) for f in ("person", "vehicle", "non_motor")} == {"osnet"}


def test_families_with_different_embedders_are_refused_while_search_keeps_one_index() -> None:
    with pytest.raises(ValueError, match=r"embedders: every family must use the same embedder"):
        FeaturesConfig(embedder="osnet_colour", embedders={"person": "osnet"})


def test_unknown_family_embedder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"embedders\.vehicle: unknown"):
        FeaturesConfig(embedders={"vehicle": "nope"})
    with pytest.raises(ValueError):
        FeaturesConfig(embedders={"bird": "colour"})


@pytest.mark.parametrize("name", ["osnet", "osnet_colour"])
def test_missing_osnet_model_names_the_field(name: str, tmp_path: Path) -> None:
    for features in (
        FeaturesConfig(embedder=name),
        FeaturesConfig(embedder=name, osnet_model=str(tmp_path / "x")),
    ):
        with pytest.raises(ConfigError, match=r"features\.osnet_model"):
            make_embedder(features, DetectorConfig())


def test_broken_osnet_file_names_the_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match=r"features\.osnet_model"):
        make_embedder(FeaturesConfig(embedder="osnet", osnet_model=str(broken)), DetectorConfig())


@needs_osnet
def test_osnet_embeds_in_batches_the_same_as_one_by_one() -> None:
    embedder = OsnetEmbedder(str(OSNET), batch_size=3)
    rng = np.random.default_rng(0)
    crops = [
        rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(100, 40), (60, 60), (30, 90), (200, 80)]
    ]
    batched = embedder.embed(crops)
    single = np.vstack([embedder.embed([c]) for c in crops])
    assert batched.shape == (4, 512) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert embedder.embed([]).shape == (0, 512)
    assert embedder.key.startswith("osnet@")


@needs_osnet
def test_osnet_colour_weights_its_parts() -> None:
    osnet = OsnetEmbedder(str(OSNET))
    joined = OsnetColourEmbedder(osnet, colour_weight=0.3)
    crop = np.full((80, 40, 3), (20, 40, 200), np.uint8)
    vector = joined.embed([crop])[0]
    assert joined.dim == 512 + ColourEmbedder().dim
    assert np.isclose(np.sum(vector[512:] ** 2), 0.3, atol=1e-5)
    assert joined.key != osnet.key and "w0.3" in joined.key


@needs_osnet
def test_family_embedders_share_instances() -> None:
    features = FeaturesConfig(osnet_model=str(OSNET))
    embedders = make_family_embedders(features, DetectorConfig())
    assert embedders["person"] is embedders["vehicle"] is embedders["non_motor"]
    assert isinstance(embedders["vehicle"], OsnetColourEmbedder)


class _Fixed(Embedder):
    version = "1"

    def __init__(self, name: str, value: float):
        self.name, self.value, self.calls = name, value, []

    @property
    def dim(self) -> int:
        return 2

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        self.calls.append(len(crops))
        return np.tile(np.array([self.value, 1.0], np.float32), (len(crops), 1))


def _job(family: str, track_id: int, key: str) -> FeatureJob:
    class_name = {"person": "person", "vehicle": "car", "non_motor": "bicycle"}[family]
    record = FeatureRecord(
        id=f"cam1:1000:{track_id}", revision=0, crop_revision=0, camera_id="cam1", department="urban",
        track_id=track_id, family=family, class_name=class_name, first_seen=utc(1), last_seen=utc(2),
        embedder=key,
    )  # fmt: skip
    return FeatureJob(record, np.zeros((40, 20, 3), np.uint8))


def test_extractor_embeds_each_family_with_its_embedder() -> None:
    person, vehicle = _Fixed("p", 0.0), _Fixed("v", 5.0)
    received: list[FeatureRecord] = []
    extractor = FeatureExtractor(
        {"person": person, "vehicle": vehicle, "non_motor": vehicle}, received.extend
    )
    assert extractor.embedder_keys == {"person": "p@1", "vehicle": "v@1", "non_motor": "v@1"}
    jobs = [_job("person", 1, "p@1"), _job("vehicle", 2, "v@1"), _job("non_motor", 3, "v@1")]
    extractor._process(jobs)
    assert person.calls == [1] and vehicle.calls == [2]  # one batched call per embedder
    vectors = {r.family: r.embedding() for r in received}
    assert vectors["person"][0] == 0.0 and vectors["vehicle"][0] == 5.0 and vectors["non_motor"][0] == 5.0


def test_track_features_writes_the_family_key() -> None:
    from retina.services.core.config import CameraConfig
    from retina.services.worker.features import TrackFeatures

    camera = CameraConfig(id="cam1", url="rtsp://example/stream", department="urban")
    track = TrackFeatures(camera, FeaturesConfig(), {"person": "osnet@1", "vehicle": "osnet_colour@1"}, 2.0)
    from retina.services.worker.features import _Track

    state = _Track("cam1:1000:7", 7, 1.0, 2.0)
    state.classes["car"] += 1
    assert track._record(state, with_crop=False).record.embedder == "osnet_colour@1"
