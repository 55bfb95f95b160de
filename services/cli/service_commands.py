"""``retina worker`` and ``retina scheduler serve``: the long-running services a cluster is made of.

(``incidents serve`` and ``search serve`` are with their groups' other commands.)
"""

from __future__ import annotations

from typing import Annotated

import typer

from retina.services.cli.common import LISTEN_HELP, service_settings, with_auth_flags
from retina.services.core.settings import SchedulerSettings, WorkerSettings, default

app = typer.Typer()
scheduler_app = typer.Typer(help="the scheduler and camera registry", no_args_is_help=True)
PANEL = "Services"
ENV_HELP = "Every option can also be set as an environment variable:"


@app.command(
    rich_help_panel=PANEL,
    epilog=f"{ENV_HELP} RETINA_WORKER_<OPTION>, e.g. RETINA_WORKER_GRPC_PORT (the flag wins).",
)
@with_auth_flags
def worker(
    context: typer.Context,
    config: Annotated[
        str | None, typer.Option(help="the cluster config (required)", show_default=False)
    ] = None,
    data_dir: Annotated[str, typer.Option()] = default(WorkerSettings, "data_dir"),
    nats_url: Annotated[str | None, typer.Option(help="default: nats.url of the config")] = None,
    grpc_port: Annotated[int, typer.Option()] = default(WorkerSettings, "grpc_port"),
    metrics_port: Annotated[int, typer.Option()] = default(WorkerSettings, "metrics_port"),
    worker_id: Annotated[str | None, typer.Option()] = None,
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = default(WorkerSettings, "listen"),
    scheduler: Annotated[
        str | None, typer.Option(help="scheduler address: register there and receive cameras from it")
    ] = None,
    advertise: Annotated[
        str | None, typer.Option(help="host:port the scheduler reaches this worker at (default: listen)")
    ] = None,
) -> int:
    """run an analysis worker (cameras are assigned over gRPC)"""
    from retina.services.worker.service import run_worker

    settings = service_settings(WorkerSettings, context, "worker")
    run_worker(settings, settings.cluster)
    return 0


@scheduler_app.command(
    epilog=f"{ENV_HELP} RETINA_SCHEDULER_<OPTION>, e.g. RETINA_SCHEDULER_DATABASE_URL (the flag wins).",
)
@with_auth_flags
def serve(
    context: typer.Context,
    config: Annotated[
        str | None, typer.Option(help="cluster config (its scheduler section); defaults otherwise")
    ] = None,
    data_dir: Annotated[str, typer.Option()] = default(SchedulerSettings, "data_dir"),
    grpc_port: Annotated[int, typer.Option()] = default(SchedulerSettings, "grpc_port"),
    metrics_port: Annotated[int, typer.Option()] = default(SchedulerSettings, "metrics_port"),
    incidents_address: Annotated[str, typer.Option(help="open incidents of moved cameras")] = default(
        SchedulerSettings, "incidents_address"
    ),
    database_url: Annotated[
        str | None,
        typer.Option(
            help="postgresql+psycopg://... (or RETINA_SCHEDULER_DATABASE_URL, or scheduler.database_url"
            " in the config); default: SQLite in --data-dir",
        ),
    ] = None,
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = default(SchedulerSettings, "listen"),
) -> int:
    """run the scheduler (registry, worker leases, placement)"""
    from retina.services.scheduler.service import run_scheduler

    settings = service_settings(SchedulerSettings, context, "scheduler")
    run_scheduler(settings, settings.cluster)
    return 0


app.add_typer(scheduler_app, name="scheduler", rich_help_panel=PANEL)
