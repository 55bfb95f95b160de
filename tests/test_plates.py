"""Licence plates: the real y5fu detector and CRNN reader on real photos (../shared, skipped without)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from retina.services.core.config import ConfigError, load_config
from retina.services.core.plates import PlateImageError, PlateReader, PlatesUnavailable, read_image
from retina.services.core.plates_config import PlatesConfig
from tests.conftest import SHARED, python_cli

PLATE_MODELS = SHARED / "models" / "plates"
PLATE_PHOTOS = SHARED / "images" / "plates"
DETECTORS = {size: PLATE_MODELS / f"plate_detect_y5fu_{size}.onnx" for size in (320, 640)}
READER = PLATE_MODELS / "plate_read_colour_crnn.onnx"
NOT_A_PLATE = Path(__import__("ultralytics").__file__).parent / "assets" / "zidane.jpg"

# Every plate in ../shared/images/plates (README there), with its colour.
EXPECTED = {
    "single_blue.jpg": [("浙B2V9L7", "blue"), ("辽DU4356", "blue")],
    "single_green.jpg": [("沪AF71017", "green")],
    "single_yellow.jpg": [("皖K66666", "yellow")],
    "shi_lin_guan.jpg": [("沪A1707领", "black")],
    "hongkang1.jpg": [("粤ZR066港", "black")],
    "hlpr_a.jpg": [("粤ZP560港", "black")],
}


def plates_config(size: int = 640) -> PlatesConfig:
    if not DETECTORS[size].exists() or not READER.exists():
        pytest.skip(f"shared plate models missing ({PLATE_MODELS})")
    return PlatesConfig(detector_model=str(DETECTORS[size]), reader_model=str(READER))


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(plates_config(640))


@pytest.mark.parametrize("size", [320, 640])
def test_every_plate_is_read_exactly(size: int) -> None:
    reader = PlateReader(plates_config(size))
    for name, expected in EXPECTED.items():
        plates = reader.read_file(PLATE_PHOTOS / name)
        assert [(p.text, p.colour) for p in plates] == expected, name
        for plate in plates:
            x1, y1, x2, y2 = plate.box
            assert x2 - x1 >= reader.config.min_width and y2 > y1
            assert len(plate.detection.corners) == 4 and plate.confidence > 0.9


def test_a_photo_without_plates_gives_none(reader: PlateReader) -> None:
    assert reader.read_file(NOT_A_PLATE) == []


def test_min_width_drops_small_plates() -> None:
    reader = PlateReader(plates_config(640).model_copy(update={"min_width": 60}))
    assert [p.text for p in reader.read_file(PLATE_PHOTOS / "single_blue.jpg")] == ["浙B2V9L7"]


def test_unreadable_images_are_named(tmp_path: Path, reader: PlateReader) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(PlateImageError, match=r"corrupt\.jpg: not a readable image"):
        reader.read_file(corrupt)
    with pytest.raises(PlateImageError, match=r"missing\.jpg: cannot read"):
        read_image(tmp_path / "missing.jpg")


def test_without_models_plates_are_off_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(PlatesUnavailable, match="no plate detector configured"):
        PlateReader(PlatesConfig())
    with pytest.raises(PlatesUnavailable, match=r"plates.detector_model: .*nothing.onnx: no such file"):
        PlateReader(PlatesConfig(detector_model=str(tmp_path / "nothing.onnx"), reader_model="x.onnx"))


def test_config_section_is_validated_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"plates": {"detector_model": "models/d.onnx", "min_width": 40}}))
    plates = load_config(config).config.plates
    assert plates.detector_model == str(tmp_path / "models" / "d.onnx") and plates.min_width == 40
    assert plates.reader_model is None and plates.enabled
    config.write_text(yaml.safe_dump({"plates": {"min_width": 0, "detectr_model": "d.onnx"}}))
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert any(line.startswith("plates.min_width:") for line in error.value.errors)
    assert any(line.startswith("plates.detectr_model: unknown field") for line in error.value.errors)


def test_cli_prints_one_json_object_per_plate_and_names_a_corrupt_file(tmp_path: Path) -> None:
    plates = plates_config(640)
    config = tmp_path / "retina.yaml"
    config.write_text(yaml.safe_dump({"plates": {"detector_model": plates.detector_model}}))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    photos = [str(PLATE_PHOTOS / "single_blue.jpg"), str(corrupt), str(PLATE_PHOTOS / "single_green.jpg")]
    args = ["plates", "read", *photos, "--json", "--config", str(config), "--reader", str(READER)]
    done = subprocess.run(python_cli(*args), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"error: {corrupt}: not a readable image" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["image"], line["plate"], line["colour"]) for line in lines] == [
        (photos[0], "浙B2V9L7", "blue"),
        (photos[0], "辽DU4356", "blue"),
        (photos[2], "沪AF71017", "green"),
    ]
    for line in lines:
        assert {"image", "plate", "colour", "confidence", "box"} <= set(line)
        assert len(line["box"]) == 4 and all(isinstance(v, int) for v in line["box"])
        assert 0 < line["confidence"] <= 1


def test_cli_without_models_says_so() -> None:
    done = subprocess.run(
        python_cli("plates", "read", str(NOT_A_PLATE)), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "config error: plate reading is off: no plate detector configured" in done.stderr
