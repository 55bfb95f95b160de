"""``retina cameras import|list|quality|reference``: the camera registry (一机一档) on the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from retina.services.cli.common import SCHEDULER_ADDRESS, load

if TYPE_CHECKING:
    from retina.v1 import worker_pb2

app = typer.Typer(help="the camera registry (一机一档)", no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="YAML with a 'cameras' list (the configuration format)")],
    scheduler: Annotated[str, typer.Option()] = SCHEDULER_ADDRESS,
) -> int:
    """create or update the cameras of a YAML file in the registry"""
    from retina.services.cli.clients import import_cameras
    from retina.services.cli.output import progress

    loaded = load(file, cameras_required=True)
    cameras = loaded.config.cameras
    with progress("importing cameras", total=len(cameras)) as advance:
        created, updated, unchanged = import_cameras(scheduler, cameras, on_camera=advance)
    print(
        f"{created} created, {updated} updated, {unchanged} unchanged, {len(loaded.camera_errors)} rejected"
    )
    return 1 if loaded.camera_errors else 0


@app.command("list")
def list_(
    department: Annotated[str, typer.Option()] = "",
    scheduler: Annotated[str, typer.Option()] = SCHEDULER_ADDRESS,
) -> int:
    """cameras in the registry with their health"""
    from retina.services.cli.clients import list_cameras
    from retina.services.cli.output import console, show, table
    from retina.services.core.convert import camera_state_name

    out = console()
    cameras = table(
        out,
        "camera",
        "name",
        "department",
        "enabled",
        "health",
        "quality",
        "algorithms",
        "url",
        wrap=("name", "quality", "algorithms", "url"),
    )
    for record in list_cameras(scheduler, department):
        camera = record.camera
        cameras.add_row(
            camera.id,
            camera.name,
            camera.department,
            "on" if record.enabled else "off",
            camera_state_name(record.health.status) if record.HasField("health") else "unknown",
            quality_summary(record.health.quality if record.health.HasField("quality") else None),
            ",".join(a.name for a in camera.algorithms) or "-",
            camera.url,
        )
    show(out, cameras)
    return 0


def quality_summary(quality: worker_pb2.CameraQuality | None) -> str:
    """One cell for a camera's video quality: the rules' hold first ("moved: rules suspended"),
    then the other problems; "ok" for a clean picture, "-" when none was reported."""
    from retina.services.core.quality import RULE_HOLD_NOTES

    if quality is None:
        return "-"
    told = {note: check for check, note in RULE_HOLD_NOTES.items()}.get(quality.note)  # in the note
    shown = [quality.note] if quality.note else []
    shown += [problem for problem in quality.problems if problem != told]
    return ", ".join(shown) or "ok"


@app.command("quality")
def quality(
    camera_id: Annotated[str, typer.Argument(help="the camera's id")],
    scheduler: Annotated[str, typer.Option()] = SCHEDULER_ADDRESS,
) -> int:
    """a camera's video-quality scores, thresholds and problems"""
    from retina.services.cli.clients import get_camera
    from retina.services.cli.output import console, show, table
    from retina.services.core.quality import CHECKS

    record = get_camera(scheduler, camera_id)
    if not (record.HasField("health") and record.health.HasField("quality")):
        print(f"{camera_id}: no video quality reported yet (not placed, starting, or the monitor is off)")
        return 0
    report = record.health.quality
    print(
        f"{camera_id}: {quality_summary(report)}; sampled {_time(report, 'sampled_at')}, "
        f"reference view {_time(report, 'reference_at') if report.HasField('reference_at') else 'none yet'}"
    )
    out = console()
    numbers = ("score", "enter", "leave")
    checks = table(out, "check", *numbers, "state", "since", right=numbers)
    order = {name: index for index, name in enumerate(CHECKS)}
    for check in sorted(report.checks, key=lambda c: order.get(c.name, len(order))):
        checks.add_row(
            check.name,
            f"{check.score:.3g}",
            f"{check.enter:g}",
            f"{check.leave:g}",
            "PROBLEM" if check.problem else "ok",
            _time(check, "since") if check.problem else "",
        )
    show(out, checks)
    if "no_signal" in report.problems:
        print("no_signal: the camera is offline or stalled (see its health)")
    return 0


def _time(message: object, field: str) -> str:
    """A Timestamp field as ISO time in UTC, or "-" when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return "-"
    return getattr(message, field).ToDatetime().isoformat(timespec="seconds") + "Z"


@app.command("reference")
def reference(
    camera_id: Annotated[str, typer.Argument(help="the camera's id")],
    save: Annotated[Path | None, typer.Option(help="also write the reference view (PNG) here")] = None,
    scheduler: Annotated[str, typer.Option()] = SCHEDULER_ADDRESS,
) -> int:
    """take the camera's current view as its reference view (confirms a moved camera: its rules resume)"""
    from retina.services.cli.clients import capture_reference

    taken = capture_reference(scheduler, camera_id)
    if save is not None:
        save.write_bytes(taken.image)
    where = f"; saved to {save}" if save is not None else ""
    print(
        f"{camera_id}: reference view taken by worker {taken.worker_id} at {_time(taken, 'captured_at')}; "
        f"its rules judge this view now{where}"
    )
    return 0
