"""``retina incidents serve|list|close``: the incident store."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from retina.services.cli.common import INCIDENTS_ADDRESS, LISTEN_HELP, service_settings, with_auth_flags
from retina.services.core.settings import IncidentStoreSettings, default

app = typer.Typer(help="the incident store", no_args_is_help=True)


class StateFilter(StrEnum):
    any = ""
    open = "open"
    ended = "ended"


@app.command(
    epilog="Every option can also be set as an environment variable: RETINA_INCIDENTS_<OPTION>,"
    " e.g. RETINA_INCIDENTS_DATABASE_URL (the flag wins).",
)
@with_auth_flags
def serve(
    context: typer.Context,
    config: Annotated[
        str | None, typer.Option(help="cluster config (its nats.url); optional", show_default=False)
    ] = None,
    data_dir: Annotated[str, typer.Option()] = default(IncidentStoreSettings, "data_dir"),
    nats_url: Annotated[str, typer.Option()] = default(IncidentStoreSettings, "nats_url"),
    grpc_port: Annotated[int, typer.Option()] = default(IncidentStoreSettings, "grpc_port"),
    metrics_port: Annotated[int, typer.Option()] = default(IncidentStoreSettings, "metrics_port"),
    listen: Annotated[str, typer.Option(help=LISTEN_HELP)] = default(IncidentStoreSettings, "listen"),
    media_max_gb: Annotated[float, typer.Option(help="snapshots and clips kept, in GiB")] = default(
        IncidentStoreSettings, "media_max_gb"
    ),
    media_max_age_days: Annotated[float, typer.Option(help="media older than this is deleted")] = default(
        IncidentStoreSettings, "media_max_age_days"
    ),
    database_url: Annotated[
        str | None,
        typer.Option(
            help="postgresql+psycopg://user:password@host/db (or RETINA_INCIDENTS_DATABASE_URL;"
            " default: SQLite in --data-dir)",
        ),
    ] = None,
) -> int:
    """run the incident store service"""
    from retina.services.incidents.service import run_incident_store

    run_incident_store(service_settings(IncidentStoreSettings, context, "incidents"))
    return 0


@app.command("list")
def list_(
    address: Annotated[str, typer.Option()] = INCIDENTS_ADDRESS,
    camera: Annotated[str, typer.Option()] = "",
    state: Annotated[StateFilter, typer.Option(help="open or ended (default: both)")] = StateFilter.any,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
) -> int:
    """list incidents, newest first"""
    from google.protobuf import json_format

    from retina.services.cli.clients import list_incidents
    from retina.services.cli.output import console, show, table

    incidents = list_incidents(address, camera, state.value, limit)
    if as_json:
        for incident in incidents:
            data = json_format.MessageToDict(incident, preserving_proto_field_name=True)
            data.pop("message_json", None)
            print(json.dumps(data, ensure_ascii=False))
        return 0
    out = console()
    rows = table(
        out, "started", "state", "dispatch", "camera", "algorithm", "zone", "dwell", "id", right=("dwell",)
    )
    for incident in incidents:
        rows.add_row(
            f"{incident.started_at.ToDatetime():%Y-%m-%d %H:%M:%S}Z",
            incident.state,
            incident.dispatch_status,
            incident.camera_id,
            incident.algorithm,
            incident.zone,
            f"{incident.dwell_seconds:.1f}s",
            incident.id,
        )
    show(out, rows)
    return 0


class CloseReason(StrEnum):
    resolved = "resolved"
    false_alarm = "false_alarm"
    duplicate = "duplicate"
    other = "other"


@app.command()
def close(
    id: Annotated[str, typer.Argument()],
    by: Annotated[str, typer.Option(help="who closes it")],
    reason: Annotated[CloseReason, typer.Option(help="why it is closed")] = CloseReason.resolved,
    note: Annotated[str, typer.Option()] = "",
    address: Annotated[str, typer.Option()] = INCIDENTS_ADDRESS,
) -> int:
    """close an incident out (dispatcher): the dispatch loop's last step"""
    from retina.services.cli.clients import close_incident

    incident = close_incident(address, id, by, note, reason.value)
    print(
        f"closed {incident.id} ({incident.camera_id}, {incident.algorithm}) by {incident.closed_by}"
        f" ({incident.close_reason})"
    )
    return 0
