"""Input checks shared by every entry point (gRPC, CLI, records), and the guard around gRPC servicers.

Checks run before any work and raise :class:`InvalidArgument`, whose text is ``field: problem``.
A bad value is never echoed back in full: :func:`quote` gives a short, truncated repr of it.

Servicers are registered through :func:`add_guarded` instead of the generated
``add_*Servicer_to_server(servicer, server)``::

    add_guarded(server, registry_pb2_grpc.add_RegistryServiceServicer_to_server, servicer)

so that every RPC answers:

* INVALID_ARGUMENT for a request that does not decode, and for an :class:`InvalidArgument`
  raised by the servicer (its text names the field);
* INTERNAL, with a log line carrying the traceback, for any other exception — never UNKNOWN.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

log = logging.getLogger(__name__)

# Camera ids, departments and incident ids become NATS subject tokens and file names.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN_RULE = "use 1-64 letters, digits, '-' or '_'"
QUOTE_LENGTH = 40
MAX_DEVICE_ID_LENGTH = 64  # "cuda:0", "cpu:1", ... as workers report and the scheduler assigns them
# The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


class InvalidArgument(ValueError):
    """A request field that cannot be accepted; ``str()`` is ``field: problem``."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def quote(value: Any, limit: int = QUOTE_LENGTH) -> str:
    """A repr of ``value`` short enough to put in an error message (long ones end in ``…``)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f", {len(value)} chars" if isinstance(value, str | bytes) else ""
    return f"{text[:limit]}…{size}"


def is_token(value: str) -> bool:
    """Whether ``value`` is a token: 1-64 letters, digits, '-' or '_' (nothing else, no newline)."""
    return TOKEN_PATTERN.fullmatch(value) is not None


def check_token(value: str, field: str, *, required: bool = True) -> str:
    """``value`` if it is a token (or empty and not ``required``); else InvalidArgument."""
    if not value and not required:
        return value
    if not is_token(value):
        raise InvalidArgument(field, f"{TOKEN_RULE} (got {quote(value)})")
    return value


def check_text(
    value: str, field: str, *, max_length: int, required: bool = False, single_line: bool = True
) -> str:
    """``value`` if it is at most ``max_length`` characters of printable text (newlines allowed
    unless ``single_line``), and not blank when ``required``; else InvalidArgument."""
    if len(value) > max_length:
        raise InvalidArgument(field, f"at most {max_length} characters (got {len(value)})")
    if required and not value.strip():
        raise InvalidArgument(field, "required")
    text = value if single_line else value.replace("\r\n", "").replace("\n", "")
    if not text.isprintable():
        what = "printable text on one line" if single_line else "printable text"
        raise InvalidArgument(field, f"{what} only (got {quote(value)})")
    return value


def check_number(
    value: float, field: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """``value`` if it is finite and within [minimum, maximum] (either bound optional)."""
    if not math.isfinite(value):
        raise InvalidArgument(field, f"must be a finite number (got {value!r})")
    if minimum is not None and value < minimum:
        raise InvalidArgument(field, f"must be at least {minimum:g} (got {value:g})")
    if maximum is not None and value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum:g} (got {value:g})")
    return value


def check_timestamp(stamp: Timestamp, field: str) -> float:
    """Epoch seconds of a valid protobuf Timestamp (years 1-9999, nanos 0..999,999,999)."""
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(field, f"seconds out of range (got {stamp.seconds})")
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidArgument(field, f"nanos must be 0 to 999999999 (got {stamp.nanos})")
    return stamp.seconds + stamp.nanos / 1e9


# ---------------------------------------------------------------------------------------------
# The guard around gRPC servicers
# ---------------------------------------------------------------------------------------------


def add_guarded(server: grpc.aio.Server, add_servicer: Callable[[Any, Any], None], servicer: Any) -> None:
    """Register ``servicer`` on ``server`` as the generated ``add_servicer`` would, each method
    guarded (see the module doc). Unary-unary and unary-stream methods are supported."""
    capture = _CapturingServer()
    add_servicer(servicer, capture)
    for service, handlers in capture.services.items():
        guarded = {name: _guard(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, guarded),))
        server.add_registered_method_handlers(service, guarded)


class _CapturingServer:
    """Stands in for the server the generated code registers on; keeps the method handlers."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.services[service] = dict(handlers)

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        """The same handlers as add_registered_method_handlers receives; nothing to keep."""


def _guard(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    decode = handler.request_deserializer
    if handler.request_streaming:
        raise TypeError(f"{method}: client-streaming methods are not supported by add_guarded")

    async def request_of(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return decode(raw) if decode is not None else raw
        except Exception as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request: does not decode ({quote(str(exc))})"
            )

    async def on_error(exc: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(exc, InvalidArgument):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.exception("unexpected error in %s", method, extra={"method": method})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the service log"
        )

    if handler.response_streaming:
        stream = handler.unary_stream

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await request_of(raw, context)
            try:
                async for response in stream(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await on_error(exc, context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=None, response_serializer=handler.response_serializer
        )

    unary = handler.unary_unary

    async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        request = await request_of(raw, context)
        try:
            return await unary(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await on_error(exc, context)

    return grpc.unary_unary_rpc_method_handler(
        unary_unary, request_deserializer=None, response_serializer=handler.response_serializer
    )
