"""Who may call what inside the cluster: a token per role, checked on every gRPC call and NATS login.

Every process of the cluster acts as one **role**: ``scheduler``, ``worker``, ``incidents``,
``search``, ``gateway`` or ``operator`` (the local admin command line). Each role has its own
random token (``secrets.token_urlsafe(32)``, in ``<role>.token``, mode 0600). A client sends its
token as gRPC metadata ``authorization: Bearer <token>``; a server holds only the SHA-256 digest of
each role's token (the *auth file*, ``service-auth.json``: role → hex digest, not secret), finds the
caller's role by its digest and accepts the call when :data:`ACCESS` allows that role the method:
UNAUTHENTICATED for no token or an unknown one, PERMISSION_DENIED (naming role and method) for a
known role the method does not allow. grpc.health.v1 stays open to anyone (readiness probes). On
NATS the role is the user name and the token its password; the server holds bcrypt hashes and
per-role subject permissions (:func:`nats_config`).

Why a token per role, and not one shared secret or mutual TLS: one shared secret would let any
holder act as any service — a worker could act as the scheduler, assigning cameras or reading every
department's incidents. Mutual TLS would also name each caller, but needs a certificate authority
and certificate rotation that a city's operations team must run. Tokens are files (Kubernetes
Secrets, one per role, mounted only into that role's pods) and digests are public, so rotating a
role means replacing one token and one digest. On Kubernetes a service mesh (Linkerd, Istio) can
add mTLS underneath for encryption in transit without code changes.

``retina up`` creates the credentials under ``DATA_DIR/secrets`` (:func:`create_credentials`) and
passes each process ``--auth-file`` and only its own ``--token-file``; a service calls
:func:`configure` at start (it refuses to start without an auth file unless
``--allow-unauthenticated``), gives the result to ``start_grpc_server`` and opens every channel
with :func:`channel` / :func:`aio_channel` and :func:`own_token`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from retina.services.core.config import ConfigError

log = logging.getLogger(__name__)

ROLES = ("scheduler", "worker", "incidents", "search", "gateway", "operator")
AUTH_FILE = "service-auth.json"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
METADATA_KEY = "authorization"
SCHEME = "Bearer "

# -- who may call what: the one access table ------------------------------------------------------

_READERS = frozenset({"worker", "gateway", "operator", "search", "incidents", "scheduler"})
_ADMINS = frozenset({"gateway", "operator"})
_INCIDENT_READERS = frozenset({"gateway", "operator", "scheduler", "search"})


def _methods(service: str, roles: Iterable[str], *names: str) -> dict[str, frozenset[str]]:
    return {f"/retina.v1.{service}/{name}": frozenset(roles) for name in names}


ACCESS: Mapping[str, frozenset[str]] = {
    **_methods("RegistryService", _ADMINS, "CreateCamera", "UpdateCamera", "DeleteCamera"),
    **_methods("RegistryService", _READERS, "GetCamera", "ListCameras", "WatchCameras"),
    **_methods("RegistryService", {"worker"}, "ReportHealth"),
    # Video quality: ops confirm a camera's view; a worker stores the first clean view it took.
    **_methods("RegistryService", _ADMINS, "CaptureReference"),
    **_methods("RegistryService", {"worker"}, "SetReference"),
    **_methods("SchedulerService", {"worker"}, "RegisterWorker", "Heartbeat", "DrainWorker"),
    **_methods("SchedulerService", _ADMINS, "GetClusterStatus"),
    # operator too: ``retina assign`` gives a stand-alone worker its cameras directly.
    **_methods("WorkerService", {"scheduler", "operator"}, "AssignCamera", "ReleaseCamera"),
    **_methods("WorkerService", {"scheduler", *_ADMINS}, "GetStatus"),
    **_methods("WorkerService", _ADMINS, "CaptureFrame"),
    **_methods("WorkerService", {"scheduler", *_ADMINS}, "CaptureReference"),
    **_methods(
        "IncidentService", _INCIDENT_READERS, "ListIncidents", "GetIncident", "GetIncidentHistory", "GetMedia"
    ),
    **_methods("IncidentService", _ADMINS, "Dispatch", "GetDispatchStats"),
    **_methods("IncidentService", _ADMINS, "ListCases", "GetCase", "GetCaseHistory", "CaseStep"),
    **_methods("IncidentService", _ADMINS, "GetAssessment", "ReportCase"),
    **_methods("SearchService", _ADMINS, "Search", "GetIndexStats", "GetCrop", "SearchPlates"),
}
"""Full gRPC method name → the roles allowed to call it. A method not listed is refused to all."""


# -- credentials on disk ----------------------------------------------------------------------------


def digest(token: str) -> str:
    """The SHA-256 hex digest of a token: what servers hold."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_path(folder: Path, role: str) -> Path:
    """Where :func:`create_credentials` keeps ``role``'s token."""
    return folder / f"{role}.token"


def create_credentials(folder: Path) -> Path:
    """A token per role (``<role>.token``, mode 0600) and the auth file of their digests in
    ``folder``; tokens already there are kept. Returns the auth file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    digests = {}
    for role in ROLES:
        path = token_path(folder, role)
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(32) + "\n")
        digests[role] = digest(read_token(path))
    auth_file = folder / AUTH_FILE
    auth_file.write_text(json.dumps(digests, indent=2) + "\n")
    return auth_file


def read_token(path: Path) -> str:
    """The token in ``path``; ConfigError naming the file when it is missing or empty."""
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError([f"token file {path}: {exc.strerror or exc}"]) from None
    if not token:
        raise ConfigError([f"token file {path}: empty"])
    return token


def load_digests(path: Path) -> dict[str, str]:
    """The auth file: role → SHA-256 hex digest of its token; ConfigError naming what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([f"auth file {path}: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise ConfigError([f"auth file {path}: not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"auth file {path}: expected an object of role → digest"])
    problems = [f"auth file {path}: unknown role {role!r}" for role in data if role not in ROLES]
    problems += [
        f"auth file {path}: {role}: not a SHA-256 hex digest"
        for role, value in data.items()
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value))
    ]
    if problems:
        raise ConfigError(problems)
    return dict(data)


# -- the server side --------------------------------------------------------------------------------


class Authenticator:
    """Names a caller's role by its token's digest and decides each call by :data:`ACCESS`."""

    def __init__(self, digests: Mapping[str, str], access: Mapping[str, frozenset[str]] = ACCESS):
        self.digests = dict(digests)
        self.access = access

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        return cls(load_digests(path))

    def role_of(self, token: str) -> str | None:
        """The role whose token this is, or None."""
        presented = digest(token)
        return next((r for r, d in self.digests.items() if hmac.compare_digest(d, presented)), None)

    def refusal(
        self, method: str, metadata: Sequence[tuple[str, Any]] | None
    ) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may go ahead, else the status code and message to end it with."""
        if method.startswith(HEALTH_PREFIX):
            return None
        header = next((str(v) for k, v in metadata or () if k == METADATA_KEY), None)
        if header is None or not header.startswith(SCHEME):
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method}: no credentials (authorization: Bearer <token>)",
            )
        role = self.role_of(header[len(SCHEME) :].strip())
        if role is None:
            return grpc.StatusCode.UNAUTHENTICATED, f"{method}: unknown token"
        if role not in self.access.get(method, ()):
            return grpc.StatusCode.PERMISSION_DENIED, f"role {role} may not call {method}"
        return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Ends every call :class:`Authenticator` refuses before the request is even decoded."""

    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator

    async def intercept_service(self, continuation, handler_call_details):
        refusal = self.authenticator.refusal(
            handler_call_details.method, handler_call_details.invocation_metadata
        )
        handler = await continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler
        code, message = refusal
        log.warning("call refused", extra={"method": handler_call_details.method, "code": code.name})

        async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(code, message)

        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, handler.response_streaming)]
        return make(refuse, response_serializer=handler.response_serializer)


# -- the client side --------------------------------------------------------------------------------


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _CallDetails(_Details, grpc.ClientCallDetails):
    pass


def _with_token(metadata: Any, token: str) -> list[tuple[str, str]]:
    return [*(metadata or ()), (METADATA_KEY, SCHEME + token)]


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call of a synchronous channel."""

    def __init__(self, token: str):
        self.token = token

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            _with_token(details.metadata, self.token),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class _AioBearer:
    """Adds the bearer token to the call details of an asyncio channel."""

    def __init__(self, token: str):
        self.token = token

    async def _continue(self, continuation, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(
            details._replace(metadata=_with_token(details.metadata, self.token)), request
        )


class _AioUnaryUnary(_AioBearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await self._continue(continuation, client_call_details, request)


class _AioUnaryStream(_AioBearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await self._continue(continuation, client_call_details, request)


class _AioStreamUnary(_AioBearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await self._continue(continuation, client_call_details, request_iterator)


class _AioStreamStream(_AioBearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await self._continue(continuation, client_call_details, request_iterator)


def channel(address: str, token: str | None, options: list | None = None) -> grpc.Channel:
    """An insecure synchronous channel to ``address`` that sends ``token`` with every call (none
    when ``token`` is None: health checks, clusters allowing unauthenticated calls)."""
    plain = grpc.insecure_channel(address, options=options)
    return plain if token is None else grpc.intercept_channel(plain, _BearerInterceptor(token))


def aio_channel(address: str, token: str | None, options: list | None = None) -> grpc.aio.Channel:
    """As :func:`channel`, for grpc.aio."""
    if token is None:
        return grpc.aio.insecure_channel(address, options=options)
    kinds = (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    return grpc.aio.insecure_channel(address, options=options, interceptors=[kind(token) for kind in kinds])


# -- this process ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The role this process acts as and its token (None: it calls without credentials)."""

    role: str
    token: str | None = None


_identity = Identity("operator")


def configure(settings: Any) -> Authenticator | None:
    """Check a service's ``auth_file``, ``token_file`` and ``allow_unauthenticated`` settings at
    start, make its token this process's own (:func:`own_token`, NATS login) and return what
    ``start_grpc_server`` checks calls with (None: every call accepted). ConfigError when the
    service may not start so."""
    global _identity
    role = settings.role
    if settings.auth_file is None:
        if not settings.allow_unauthenticated:
            raise ConfigError(
                [
                    f"auth_file: {settings.NAME} needs the digests of the service tokens: give "
                    f"{settings.flag('auth_file')} (and {settings.flag('token_file')}), or "
                    f"{settings.flag('allow_unauthenticated')} for development only"
                ]
            )
        log.warning(
            "UNAUTHENTICATED: every gRPC call is accepted from anyone (--allow-unauthenticated); "
            "never run a cluster this way outside development",
            extra={"role": role},
        )
        token = read_token(settings.token_file) if settings.token_file else None
        _identity = Identity(role, token)
        return None
    authenticator = Authenticator.from_file(settings.auth_file)
    if settings.token_file is None:
        raise ConfigError([f"token_file: required with auth_file: give {settings.flag('token_file')}"])
    token = read_token(settings.token_file)
    if authenticator.role_of(token) != role:
        raise ConfigError(
            [f"token_file: {settings.token_file} is not the {role} token of auth file {settings.auth_file}"]
        )
    _identity = Identity(role, token)
    log.info("service authentication on", extra={"role": role, "auth_file": str(settings.auth_file)})
    return authenticator


def identity() -> Identity:
    """This process's role and token (set by :func:`configure`; the command line is ``operator``)."""
    return _identity


def own_token() -> str | None:
    """This process's token, for the channels it opens."""
    return _identity.token


# -- NATS -----------------------------------------------------------------------------------------


def inbox_prefix(role: str) -> str:
    """The reply subjects of a role's NATS connections: only it may subscribe there."""
    return f"_INBOX.{role}"


def _js_stream(stream: str, *actions: str) -> list[str]:
    return [f"$JS.API.STREAM.{action}.{stream}" for action in actions]


def _durable_consumer(stream: str) -> list[str]:
    """What binding, fetching from and acking a durable pull consumer of ``stream`` needs."""
    return [
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"$JS.API.CONSUMER.CREATE.{stream}.*",
        f"$JS.API.CONSUMER.CREATE.{stream}.*.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
    ]


def _ephemeral_consumer(stream: str) -> list[str]:
    """What an ordered (ephemeral, unacknowledged) consumer of ``stream`` needs."""
    return [
        "$JS.API.STREAM.NAMES",
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _media_reader(bucket_stream: str) -> list[str]:
    return [
        *_js_stream(bucket_stream, "INFO", "CREATE", "MSG.GET"),
        f"$JS.API.DIRECT.GET.{bucket_stream}",
        f"$JS.API.DIRECT.GET.{bucket_stream}.>",
        *_ephemeral_consumer(bucket_stream),
    ]


def _webhook_consumers(stream: str, webhooks: Iterable[str]) -> list[str]:
    """The gateway's webhook consumers on ``stream`` (``webhook-<name>``), by name: no other."""
    from retina.services.core.webhooks_config import consumer_name

    allowed = [f"$JS.API.STREAM.INFO.{stream}"] if webhooks else []
    for consumer in map(consumer_name, webhooks):
        allowed += [
            f"$JS.API.CONSUMER.{action}.{stream}.{consumer}"
            for action in ("INFO", "CREATE", "DURABLE.CREATE", "MSG.NEXT")
        ]
        allowed += [f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>", f"$JS.ACK.{stream}.{consumer}.>"]
    return allowed


def nats_permissions(webhooks: Iterable[str] = ()) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Role → the subjects it may publish to and subscribe to (``allow``; all else is refused) and
    those refused even so (``deny``). Only operator may delete streams or consumers (search only
    the FEATURES consumers, to replay the stream); only workers publish incidents and features.
    ``webhooks``: the names of the configured webhooks, whose CASES consumers the gateway uses."""
    from retina.services.core import bus

    webhooks = list(webhooks)
    media = f"OBJ_{bus.MEDIA_BUCKET}"
    incidents, features, dispatch = bus.INCIDENT_STREAM, bus.FEATURE_STREAM, bus.DISPATCH_STREAM
    cases = bus.CASE_STREAM
    publish = {
        "worker": [
            "retina.incidents.>",
            "retina.features.>",
            "retina.cameras.>",
            f"$O.{bus.MEDIA_BUCKET}.C.>",
            f"$O.{bus.MEDIA_BUCKET}.M.>",
            *_js_stream(incidents, "INFO", "CREATE"),
            *_js_stream(features, "INFO", "CREATE"),
            *_js_stream(dispatch, "INFO", "CREATE"),  # bus.ensure_all: every stream exists
            *_js_stream(media, "INFO", "CREATE", "MSG.GET", "PURGE"),  # a re-put replaces old chunks
            f"$JS.API.DIRECT.GET.{media}",
            f"$JS.API.DIRECT.GET.{media}.>",
        ],
        "incidents": [
            *_js_stream(incidents, "INFO", "CREATE", "UPDATE"),
            *_durable_consumer(incidents),
            *_media_reader(media),
            "retina.dispatch.>",
            *_js_stream(dispatch, "INFO", "CREATE", "UPDATE"),
            bus.CASE_SUBJECTS,
            *_js_stream(cases, "INFO", "CREATE", "UPDATE"),
        ],
        "search": [
            *_js_stream(features, "INFO", "CREATE", "UPDATE"),
            *_durable_consumer(features),
            f"$JS.API.CONSUMER.DELETE.{features}.*",
            *_media_reader(media),
        ],
        "gateway": [
            *_ephemeral_consumer(incidents),
            *_ephemeral_consumer(dispatch),
            *_webhook_consumers(cases, webhooks),
        ],
        "operator": [">"],
    }
    subscribe = {
        "gateway": ["retina.incidents.>", "retina.dispatch.>", "retina.cameras.>"],
        "operator": [">"],
    }
    # Events come only from their producers, even the administrator's.
    deny = {
        "operator": [bus.INCIDENT_SUBJECTS, bus.FEATURE_SUBJECTS, bus.DISPATCH_SUBJECTS, bus.CASE_SUBJECTS]
    }
    return {
        role: {
            "publish": {"allow": sorted(set(subjects))} | ({"deny": deny[role]} if role in deny else {}),
            "subscribe": {"allow": [f"{inbox_prefix(role)}.>", *subscribe.get(role, [])]},
        }
        for role, subjects in publish.items()
    }


def nats_config(folder: Path, rounds: int = 11, webhooks: Iterable[str] = ()) -> str:
    """A nats-server configuration block: one user per role with a NATS connection (name = role,
    password = bcrypt hash of the role's token in ``folder``) and its :func:`nats_permissions`
    (``webhooks``: the configured webhooks' names). Anonymous connections are refused."""
    import bcrypt

    users = []
    for role, permissions in nats_permissions(webhooks).items():
        token = read_token(token_path(folder, role))
        hashed = bcrypt.hashpw(token.encode(), bcrypt.gensalt(rounds, prefix=b"2a")).decode()
        users.append(
            {
                "user": role,
                "password": hashed,
                "permissions": permissions,
            }
        )
    # JSON is valid nats-server configuration syntax.
    return "authorization: " + json.dumps({"users": users}, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m retina.services.core.service_auth FOLDER [WEBHOOK ...]``: the credentials of a
    cluster outside ``retina up`` (Kubernetes): the role tokens, the auth file and
    ``nats-auth.conf`` (letting the gateway use the named webhooks' consumers)."""
    import sys

    from retina.services.core.validation import is_token

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not all(map(is_token, args[1:])):
        print("usage: python -m retina.services.core.service_auth FOLDER [WEBHOOK ...]", file=sys.stderr)
        return 2
    folder = Path(args[0])
    auth_file = create_credentials(folder)
    (folder / "nats-auth.conf").write_text(nats_config(folder, webhooks=args[1:]))
    print(f"tokens in {folder}/<role>.token, digests in {auth_file}, NATS users in {folder}/nats-auth.conf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
