"""``retina worker`` and ``retina scheduler serve``: the long-running services a cluster is made of.

(``incidents serve`` and ``search serve`` are with their groups' other commands.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retina.services.cli.common import (
    DEFAULT_PORTS,
    INCIDENTS_ADDRESS,
    LISTEN_HELP,
    load,
    service_config,
    start_logging,
)

app = typer.Typer()
scheduler_app = typer.Typer(help="the scheduler and camera registry", no_args_is_help=True)
PANEL = "Services"


@app.command(rich_help_panel=PANEL)
def worker(
    config: Annotated[str, typer.Option()],
    data_dir: Annotated[str, typer.Option()] = "var/worker",
    nats_url: Annotated[str | None, typer.Option()] = None,
    grpc_port: Annotated[int, typer.Option()] = DEFAULT_PORTS.worker_grpc,
    metrics_port: Annotated[int, typer.Option()] = DEFAULT_PORTS.worker_metrics,
    worker_id: Annotated[str | None, typer.Option()] = None,
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = "127.0.0.1",
    scheduler: Annotated[
        str | None, typer.Option(help="scheduler address: register there and receive cameras from it")
    ] = None,
    advertise: Annotated[
        str | None, typer.Option(help="host:port the scheduler reaches this worker at (default: listen)")
    ] = None,
) -> int:
    """run an analysis worker (cameras are assigned over gRPC)"""
    from retina.services.worker.service import run_worker

    run_worker(
        service_config(config, nats_url, "worker"),
        Path(data_dir),
        listen,
        grpc_port,
        metrics_port,
        worker_id,
        scheduler,
        advertise,
    )
    return 0


@scheduler_app.command()
def serve(
    config: Annotated[
        str | None, typer.Option(help="cluster config (its scheduler section); defaults otherwise")
    ] = None,
    data_dir: Annotated[str, typer.Option()] = "var/scheduler",
    grpc_port: Annotated[int, typer.Option()] = DEFAULT_PORTS.scheduler_grpc,
    metrics_port: Annotated[int, typer.Option()] = DEFAULT_PORTS.scheduler_metrics,
    incidents_address: Annotated[
        str, typer.Option(help="open incidents of moved cameras")
    ] = INCIDENTS_ADDRESS,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="RETINA_DATABASE_URL",
            help="postgresql+psycopg://... (or RETINA_DATABASE_URL); default: SQLite in --data-dir",
        ),
    ] = None,
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = "127.0.0.1",
) -> int:
    """run the scheduler (registry, worker leases, placement)"""
    from retina.services.core.config import RetinaConfig
    from retina.services.scheduler.service import run_scheduler

    start_logging("scheduler")
    settings = load(config).config if config else RetinaConfig()
    if database_url:
        settings.scheduler.database_url = database_url
    run_scheduler(
        settings.scheduler,
        settings.defaults,
        Path(data_dir),
        listen,
        grpc_port,
        metrics_port,
        incidents_address or None,
    )
    return 0


app.add_typer(scheduler_app, name="scheduler", rich_help_panel=PANEL)
