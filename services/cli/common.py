"""What the command modules share: default addresses, config loading, the global ``--log-level``,
and building a service's settings from its flags."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from retina.services.core.config import LoadedConfig, load_config, require_cameras
from retina.services.core.logs import setup_logging
from retina.services.core.ports import DEFAULT_PORTS, local_address
from retina.services.core.settings import SERVICES, ServiceSettings

WORKER_ADDRESS = local_address(DEFAULT_PORTS.worker_grpc)
SCHEDULER_ADDRESS = local_address(DEFAULT_PORTS.scheduler_grpc)
INCIDENTS_ADDRESS = local_address(DEFAULT_PORTS.incidents_grpc)
SEARCH_ADDRESS = local_address(DEFAULT_PORTS.search_grpc)

LISTEN_HELP = "address for gRPC and metrics (0.0.0.0 in a pod)"

DATA_DIR = "var"  # retina up's default --data-dir
OPERATOR_TOKEN_FILE = Path(DATA_DIR) / "secrets" / "operator.token"  # what client commands send by default


class Options:
    """Options given before the command (``retina --log-level DEBUG up ...``)."""

    log_level = "INFO"
    token_file: str | None = None  # the operator token client commands send (--token-file)


def load(path: str, *, cameras_required: bool = False) -> LoadedConfig:
    """Load a config; report rejected cameras on stderr and carry on with the others.

    ``cameras_required``: a file with no camera left to run is a ConfigError ("no cameras: ...").
    """
    loaded = load_config(path)
    for line in loaded.camera_errors:
        print(f"config error (camera skipped): {line}", file=sys.stderr)
    return require_cameras(loaded, path) if cameras_required else loaded


def start_logging(service: str) -> None:
    """JSON log lines on stderr for a long-running service, at the ``--log-level`` given."""
    setup_logging(service, Options.log_level)


S = TypeVar("S", bound=ServiceSettings)

_AUTH_FLAGS = {
    "auth_file": (str | None, None, "digests of the service tokens (service-auth.json): who may call"),
    "token_file": (str | None, None, "this service's own token file (sent on gRPC calls, NATS password)"),
    "allow_unauthenticated": (bool, False, "without --auth-file, accept every call (development only)"),
}


def with_auth_flags(command: Callable[..., int]) -> Callable[..., int]:
    """Give a service command ``--auth-file``, ``--token-file`` and ``--allow-unauthenticated``
    (settings of every service, read by :func:`service_settings` from the command's context)."""
    flags = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=value,
            annotation=Annotated[
                kind, typer.Option(ServiceSettings.flag(name), help=help_text, show_default=False)
            ],
        )
        for name, (kind, value, help_text) in _AUTH_FLAGS.items()
    ]

    @functools.wraps(command)
    def with_auth(*args: object, **values: object) -> int:
        return command(*args, **{k: v for k, v in values.items() if k not in _AUTH_FLAGS})

    signature = inspect.signature(command, eval_str=True)
    with_auth.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *flags])
    return with_auth


def given_flags(context: typer.Context) -> dict[str, Any]:
    """The options given on the command line (not those left at their defaults): the top layer of
    a service's settings, above its ``RETINA_<SERVICE>_*`` environment and its config file."""
    return {
        name: value
        for name, value in context.params.items()
        if (source := context.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    }


def service_settings(model: type[S], context: typer.Context, service: str) -> S:
    """Logging for a long-running service, and its settings: its config file (if any), then its
    ``RETINA_<SERVICE>_*`` environment, then its flags (see :mod:`retina.services.core.settings`)."""
    start_logging(service)
    return model.load(given_flags(context), read_config=lambda path: load(path).config)


def settings_from_args(argv: Sequence[str]) -> ServiceSettings:
    """Load the settings ``retina ARGV`` would run a service with (``ARGV`` starts with the
    service's command, e.g. ``worker`` or ``incidents serve``), without running it; environment
    variables apply as they would. Raises a usage error or ConfigError.

    How the manifests' test and ``retina up``'s test check that what they pass is accepted."""
    from typer.main import get_command

    from retina.services.cli import app

    command, context, name, args = get_command(app), None, "retina", list(argv)
    while hasattr(command, "resolve_command"):
        context = command.make_context(name, list(args), parent=context)
        rest = args[len(args) - len(context.args) - 1 :]  # as check_args: the group's options parsed
        name, command, args = command.resolve_command(context, rest)
    context = command.make_context(name, list(args), parent=context)
    path = context.command_path.split(" ", 1)[1]
    if path not in SERVICES:
        raise ValueError(f"retina {path} is not a service (services: {', '.join(SERVICES)})")
    return SERVICES[path].load(given_flags(context))
