"""``retina cameras import|list``: the camera registry (一机一档) on the scheduler."""

from __future__ import annotations

from typing import Annotated

import typer

from retina.services.cli.common import SCHEDULER_ADDRESS, load

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
        "algorithms",
        "url",
        wrap=("name", "algorithms", "url"),
    )
    for record in list_cameras(scheduler, department):
        camera = record.camera
        cameras.add_row(
            camera.id,
            camera.name,
            camera.department,
            "on" if record.enabled else "off",
            camera_state_name(record.health.status) if record.HasField("health") else "unknown",
            ",".join(a.name for a in camera.algorithms) or "-",
            camera.url,
        )
    show(out, cameras)
    return 0
