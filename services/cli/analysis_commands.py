"""``retina validate``, ``analyze`` and ``eval``: work on a configuration or footage, no cluster needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from retina.services.cli.common import load
from retina.services.core.config import ConfigError

app = typer.Typer()
PANEL = "Analysis without a cluster"


@app.command(rich_help_panel=PANEL)
def analyze(
    source: Annotated[str, typer.Argument(help="file path or rtsp:// / http(s):// URL")],
    config: Annotated[str, typer.Option()],
    camera: Annotated[
        str | None, typer.Option(help="camera whose algorithms and zones apply (default: the first)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (live streams)")
    ] = None,
    media_dir: Annotated[str | None, typer.Option(help="write snapshot JPEGs here")] = None,
) -> int:
    """analyse one file or stream; print incident events as JSON lines"""
    from retina.services.cli.analyze import analyze as run_analysis

    loaded = load(config)
    cameras = loaded.config.cameras
    if camera:
        cameras = [c for c in cameras if c.id == camera]
        if not cameras:
            raise ConfigError([f"--camera: no valid camera {camera!r} in {config}"])
    if not cameras:
        raise ConfigError([f"{config}: no valid camera to take the algorithms and zones from"])
    return run_analysis(loaded.config, cameras[0], source, duration, Path(media_dir) if media_dir else None)


@app.command(rich_help_panel=PANEL)
def validate(config: Annotated[str, typer.Option()]) -> int:
    """check a configuration file"""
    loaded = load(config, cameras_required=True)
    print(f"{len(loaded.config.cameras)} camera(s) valid, {len(loaded.camera_errors)} error(s)")
    return 1 if loaded.camera_errors else 0


@app.command("eval", rich_help_panel=PANEL)
def eval_(
    scenes: Annotated[str, typer.Argument(help="scene file (YAML), e.g. examples/scenes.yaml")],
    work_dir: Annotated[str, typer.Option(help="where composed scene videos are written")] = "var/eval",
    model: Annotated[str | None, typer.Option(help="detector weights (overrides the scene file)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> int:
    """score algorithms on labelled, composed scenes (precision, recall, F1)"""
    from retina.services.cli.output import progress
    from retina.services.cli.scenes import evaluate, format_report

    with progress("composing and analysing the scenes"):
        report = evaluate(Path(scenes), Path(work_dir), {"model": model} if model else None)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
