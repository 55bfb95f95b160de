"""Shared fixtures: real nats-server, real GStreamer RTSP server, the shared footage and model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

from retina.services.core import service_auth
from retina.services.core.ports import free_port
from retina.services.core.processes import start_nats_server, stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RETINA_SHARED_DIR", REPO.parent / "shared"))
MODEL = SHARED / "models" / "yolov8n_coco_int8.onnx"
VIDEOS = SHARED / "videos"
DEBIAN_PYTHON = "/usr/bin/python3"


def footage(name: str) -> Path:
    """A clip from ../shared/videos; the test is skipped (with the reason) where it is absent."""
    path = VIDEOS / name
    if not path.exists() or not MODEL.exists():
        pytest.skip(f"shared footage or model missing ({path}, {MODEL})")
    return path


@pytest.fixture
def model_path() -> Path:
    if not MODEL.exists():
        pytest.skip(f"shared model missing: {MODEL}")
    return MODEL


class NatsServer:
    """A real nats-server with JetStream that a test may stop and start again on the same port
    (with ``config_file``: users and permissions, see service_auth.nats_config)."""

    def __init__(self, store_dir: Path, config_file: Path | None = None):
        self.port = free_port()
        self.store_dir = store_dir
        self.config_file = config_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_nats_server(self.port, self.store_dir, config_file=self.config_file)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, "nats")
            self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


class Credentials:
    """A token per role and the auth file of their digests in ``folder``, as ``retina up`` makes
    them (service_auth.create_credentials)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.auth_file = service_auth.create_credentials(folder)

    def token_file(self, role: str) -> Path:
        return service_auth.token_path(self.folder, role)

    def token(self, role: str) -> str:
        return service_auth.read_token(self.token_file(role))

    def flags(self, role: str) -> list[str]:
        """What a service acting as ``role`` is started with: ``--auth-file ... --token-file ...``."""
        return ["--auth-file", str(self.auth_file), "--token-file", str(self.token_file(role))]

    def authenticator(self) -> service_auth.Authenticator:
        return service_auth.Authenticator.from_file(self.auth_file)

    def channel(self, address: str, role: str = "operator", options: list | None = None) -> grpc.Channel:
        return service_auth.channel(address, self.token(role), options)

    def aio_channel(
        self, address: str, role: str = "operator", options: list | None = None
    ) -> grpc.aio.Channel:
        return service_auth.aio_channel(address, self.token(role), options)

    def entitled_channel(self, address: str, options: list | None = None) -> EntitledChannel:
        """A client allowed every RPC (see :class:`EntitledChannel`)."""
        return EntitledChannel(self, address, options)

    def nats_config(self, webhooks: Sequence[str] = ()) -> Path:
        """The nats-server users of these roles (cheap bcrypt: tests start many servers); the
        gateway may use the consumers of ``webhooks``."""
        path = self.folder / "nats.conf"
        path.write_text(service_auth.nats_config(self.folder, rounds=4, webhooks=webhooks))
        return path


class EntitledChannel:
    """A client allowed every RPC: each method is called over a channel carrying the token of a role
    the access table allows it (operator where it may), so tests reach what lies behind the check."""

    def __init__(self, credentials: Credentials, address: str, options: list | None = None):
        self.credentials, self.address, self.options = credentials, address, options
        self.channels: dict[str, grpc.Channel] = {}

    def _for(self, method: str) -> grpc.Channel:
        allowed = service_auth.ACCESS.get(method, frozenset({"operator"}))
        role = "operator" if "operator" in allowed else min(allowed)
        if role not in self.channels:
            self.channels[role] = self.credentials.channel(self.address, role, self.options)
        return self.channels[role]

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).unary_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).unary_stream(method, *args, **kwargs)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def __enter__(self) -> EntitledChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@pytest.fixture
def service_credentials(tmp_path: Path) -> Credentials:
    """Role tokens and the auth file under ``tmp_path/secrets``: start services with
    ``service_credentials.flags(role)`` and call them with ``service_credentials.channel(address)``."""
    return Credentials(tmp_path / "secrets")


@pytest.fixture
def secured_nats(tmp_path: Path, service_credentials: Credentials) -> Iterator[NatsServer]:
    """A nats-server that knows only the roles' users, with their permissions (as ``retina up``)."""
    server = NatsServer(tmp_path / "nats", service_credentials.nats_config())
    server.start()
    yield server
    server.stop()


class RtspServer:
    """Debian's GStreamer RTSP server serving files at rtsp://127.0.0.1:PORT/<mount>."""

    def __init__(self, mounts: dict[str, Path]):
        self.port = free_port()
        self.mounts = mounts
        self.process: subprocess.Popen | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self) -> None:
        args = [DEBIAN_PYTHON, str(REPO / "tests" / "rtsp_server.py"), str(self.port)]
        args += [f"/{name}={path}" for name, path in self.mounts.items()]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()
        if "READY" not in line:
            raise RuntimeError(f"RTSP server did not start: {line}{self.process.stdout.read()}")
        wait_for_port(self.port, 10)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def rtsp_server_factory() -> Iterator:
    servers: list[RtspServer] = []

    def make(mounts: dict[str, Path]) -> RtspServer:
        probe = subprocess.run(
            [DEBIAN_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
        )
        if probe.returncode != 0:
            pytest.fail(
                "GStreamer RTSP server missing: run `make setup` as root (scripts/bootstrap-system.sh)"
            )
        server = RtspServer(mounts)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


def python_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "retina.services.cli", *args]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true (a service not answering yet counts as false); return the
    seconds it took, or fail naming ``what``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except grpc.RpcError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# A throwaway PostgreSQL server, and store tests run on SQLite and on PostgreSQL (tests/postgres.py).
from tests.postgres import postgres_server, postgres_url, store_database  # noqa: E402, F401
