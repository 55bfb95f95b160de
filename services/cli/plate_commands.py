"""``retina plates read``: licence plates in photos (detector and reader from the ``plates`` section)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from retina.services.cli.common import load
from retina.services.core.plates_config import PlatesConfig

app = typer.Typer(help="licence plates (车牌识别): detect and read them in photos", no_args_is_help=True)


@app.command("read")
def read(
    images: Annotated[list[str], typer.Argument(help="photos (JPEG, PNG, ...)", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per plate: image, plate, colour, confidence, box")
    ] = False,
    detector: Annotated[
        str | None, typer.Option(help="plate detector (.onnx); default: plates.detector_model of --config")
    ] = None,
    reader: Annotated[
        str | None, typer.Option(help="plate reader (.onnx); default: plates.reader_model of --config")
    ] = None,
    config: Annotated[str | None, typer.Option(help="cluster config (its plates section)")] = None,
) -> int:
    """read the licence plates in IMAGES, one line per plate (exit 2: an image could not be read)"""
    from retina.services.core.plates import PlateImageError, PlateReader, PlatesUnavailable

    section = load(config).config.plates if config else PlatesConfig()
    overrides = {k: v for k, v in (("detector_model", detector), ("reader_model", reader)) if v}
    try:
        plate_reader = PlateReader(section.model_copy(update=overrides))
    except PlatesUnavailable as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    code = 0
    for image in images:
        try:
            plates = plate_reader.read_file(image)
        except PlateImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
            continue
        for plate in plates:
            if as_json:
                fields = plate.to_json()
                print(json.dumps({"image": image, **fields}, ensure_ascii=False), flush=True)
            else:
                print(f"{image}: {plate.text} {plate.colour} {plate.confidence:.2f} box={list(plate.box)}")
    return code
