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
    file: Annotated[
        str,
        typer.Argument(
            help="scene file (composed scenes, e.g. examples/scenes.yaml) or truth file for real clips "
            "(it has 'clips', e.g. examples/real_clips.yaml)"
        ),
    ],
    work_dir: Annotated[str, typer.Option(help="where composed scene videos are written")] = "var/eval",
    videos: Annotated[
        str | None, typer.Option(help="folder of the real clips (overrides the truth file's 'videos')")
    ] = None,
    clip: Annotated[
        list[str] | None, typer.Option(help="only this clip of a truth file (repeatable)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="detector weights (overrides the file)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> int:
    """score algorithms on labelled scenes or real clips (precision, recall, F1, start error)"""
    from retina.services.cli.output import progress
    from retina.services.cli.real_eval import evaluate_real, format_real_report, is_truth_file, read_yaml
    from retina.services.cli.scenes import evaluate, format_report

    overrides = {"model": model} if model else None
    if is_truth_file(read_yaml(Path(file))):
        with progress("analysing the real clips"):
            report = evaluate_real(Path(file), Path(videos) if videos else None, overrides, clip)
        print(json.dumps(report, indent=2) if as_json else format_real_report(report))
        return 0
    if clip or videos:
        raise ConfigError([f"--clip, --videos: only for a truth file of real clips; {file} has no 'clips'"])
    with progress("composing and analysing the scenes"):
        report = evaluate(Path(file), Path(work_dir), overrides)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
