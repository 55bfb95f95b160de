"""The ``retina`` command line: run the cluster, its services, one-off analysis and queries.

One module per command group (``*_commands.py``); the gRPC calls they make are in ``clients.py``,
tables and progress bars in ``output.py``. Exit codes: 0 done, 1 failed (a service answered with
an error: ``error: CODE: details``), 2 wrong usage or configuration (``config error: ...``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from retina.services.cli import (
    analysis_commands,
    camera_commands,
    cluster_commands,
    gateway_commands,
    incident_commands,
    plate_commands,
    search_commands,
    service_commands,
)
from retina.services.cli.common import Options
from retina.services.core.config import ConfigError

QUERIES = "Registry, incidents and search"


def exit_code(code: int | None, **_options: object) -> None:
    """Every command returns its exit code; this makes it the process's (``retina`` exits with it)."""
    raise typer.Exit(code or 0)


app = typer.Typer(
    name="retina",
    help="The retina command line: run the cluster, its services, one-off analysis and queries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    result_callback=exit_code,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cluster_commands.app)
app.add_typer(analysis_commands.app)
app.add_typer(service_commands.app)
app.add_typer(camera_commands.app, name="cameras", rich_help_panel=QUERIES)
app.add_typer(incident_commands.app, name="incidents", rich_help_panel=QUERIES)
app.add_typer(search_commands.app, name="search", rich_help_panel=QUERIES)
app.add_typer(plate_commands.app, name="plates", rich_help_panel=analysis_commands.PANEL)
app.add_typer(gateway_commands.gateway_app, name="gateway", rich_help_panel="Services")
ACCESS = "Users and access"
app.add_typer(gateway_commands.users_app, name="users", rich_help_panel=ACCESS)
app.add_typer(gateway_commands.tokens_app, name="tokens", rich_help_panel=ACCESS)
app.add_typer(gateway_commands.audit_app, name="audit", rich_help_panel=ACCESS)


@app.callback()
def options(
    log_level: Annotated[str, typer.Option(envvar="RETINA_LOG_LEVEL", help="log level of services")] = "INFO",
    token_file: Annotated[
        str | None,
        typer.Option(
            envvar="RETINA_TOKEN_FILE",
            help="the operator token that client commands send (default: var/secrets/operator.token,"
            " made by retina up)",
            show_default=False,
        ),
    ] = None,
) -> None:
    Options.log_level = log_level
    Options.token_file = token_file


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``retina ARGV`` (default: the process's arguments); return the exit code.

    Typer reports wrong usage itself (exit code 2); a configuration error or a service's gRPC error
    becomes lines on stderr and exit code 2 or 1, never a traceback.
    """
    from typer.main import get_command

    try:
        get_command(app).main(args=argv, prog_name="retina")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        import grpc

        if isinstance(exc, grpc.RpcError):
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        raise
    return 0


def check_args(argv: Sequence[str]) -> None:
    """Parse ``retina ARGV`` as :func:`main` would, without running the command: raise a usage error
    for an unknown command, an unknown or missing flag or a malformed value (the manifests' test)."""
    from typer.main import get_command

    command, context, name, args = get_command(app), None, "retina", list(argv)
    while True:
        context = command.make_context(name, list(args), parent=context)
        if not hasattr(command, "resolve_command"):
            return
        rest = args[len(args) - len(context.args) - 1 :]  # a group parses its options, then the command
        name, command, args = command.resolve_command(context, rest)
