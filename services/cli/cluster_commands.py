"""``retina up``, ``status``, ``assign`` and ``demo``: the cluster as a whole."""

from __future__ import annotations

import functools
import inspect
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from retina.services.cli.common import DATA_DIR, SCHEDULER_ADDRESS, WORKER_ADDRESS, load, start_logging
from retina.services.core.ports import ClusterPorts

if TYPE_CHECKING:
    from retina.v1 import scheduler_pb2

app = typer.Typer()
PANEL = "The cluster"


def with_port_flags(command: Callable[..., int]) -> Callable[..., int]:
    """Give ``command`` one option per port of :class:`ClusterPorts` (``--nats-port``, ...), after
    its own; it receives them together as its keyword argument ``ports``."""
    fields = ClusterPorts.single_fields()
    flags = [
        inspect.Parameter(
            port.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=port.default,
            annotation=Annotated[int, typer.Option(port.metadata["flag"], help=port.metadata["help"])],
        )
        for port in fields
    ]

    @functools.wraps(command)
    def with_ports(*args: object, **values: object) -> int:
        ports = ClusterPorts(**{port.name: values.pop(port.name) for port in fields})
        return command(*args, **values, ports=ports)

    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "ports"]
    with_ports.__signature__ = signature.replace(parameters=[*own, *flags])
    return with_ports


@app.command(rich_help_panel=PANEL)
@with_port_flags
def up(
    config: Annotated[str, typer.Option()],
    data_dir: Annotated[str, typer.Option(help="logs, data and secrets/ (the service tokens)")] = DATA_DIR,
    workers: Annotated[int, typer.Option(help="worker processes (worker i: --worker-port + i)")] = 1,
    *,
    ports: ClusterPorts,
) -> int:
    """run the whole cluster on this machine"""
    from retina.services.cli.cluster import LocalCluster
    from retina.services.cli.supervisor import ChildCannotStart
    from retina.services.core.metrics import serve_metrics
    from retina.services.core.ports import PortError
    from retina.services.gateway.webhooks import load_webhooks

    start_logging("retina-up")
    loaded = load(config, cameras_required=True)
    load_webhooks(loaded.config.webhooks)  # a webhook's secret file is checked before anything starts
    if workers < 1:
        print("error: --workers: must be at least 1", file=sys.stderr)
        return 2
    try:
        cluster = LocalCluster(Path(config).resolve(), Path(data_dir).resolve(), ports, workers)
        cluster.ports.check()
    except PortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve_metrics(cluster.ports.supervisor_metrics, "127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            cluster.start(loaded.config.cameras)
        except RuntimeError as exc:  # ChildCannotStart included
            print(f"error: the cluster did not start: {exc} (logs in {cluster.logs})", file=sys.stderr)
            return 1
        print(
            f"retina is up: console and API at {cluster.gateway_url}; internal services on 127.0.0.1 "
            f"(NATS {cluster.nats_url}, scheduler {cluster.scheduler_address}, "
            f"{workers} worker(s) from {cluster.worker_address}, "
            f"incidents {cluster.incidents_address}, search {cluster.search_address}); "
            f"logs in {cluster.logs}. Ctrl-C stops.",
            flush=True,
        )
        announce_first_admin(cluster.gateway_data_dir)
        while not stop.wait(1):
            try:
                cluster.supervise()
            except ChildCannotStart as exc:
                print(f"error: {exc}; stopping the cluster (logs in {cluster.logs})", file=sys.stderr)
                return 1
    finally:
        cluster.stop()
    return 0


def announce_first_admin(gateway_data_dir: Path) -> None:
    """On a new cluster, make the first admin and print its password, once."""
    from retina.services.gateway.accounts import AccountStore

    store = AccountStore(gateway_data_dir / "gateway.sqlite")
    try:
        password = store.create_first_admin()
    finally:
        store.close()
    if password:
        print(
            f"first admin: user 'admin', password {password} (shown only now; change it with "
            f"`retina users password admin --data-dir {gateway_data_dir}`)",
            flush=True,
        )


@app.command(rich_help_panel=PANEL)
def status(
    scheduler: Annotated[str, typer.Option(help="the scheduler's gRPC address")] = SCHEDULER_ADDRESS,
    worker: Annotated[
        str | None, typer.Option(help="show one worker's own view instead (its gRPC address)")
    ] = None,
) -> int:
    """workers, devices, assignments, camera health and load"""
    from retina.services.cli import clients
    from retina.services.cli.camera_commands import quality_summary
    from retina.services.cli.output import console, show, table
    from retina.services.core.convert import camera_state_name

    out = console()
    if worker:
        view = clients.worker_status(worker)
        print(f"worker {view.worker_id}  model={view.model}  outbox_pending={view.outbox_pending}")
        numbers = ("decoded", "analysed", "reconnects")
        cameras = table(out, "camera", "state", "device", *numbers, "reason", right=numbers, wrap=("reason",))
        for camera in view.cameras:
            cameras.add_row(
                camera.camera_id,
                camera_state_name(camera.state),
                camera.device_id,
                str(camera.frames_decoded),
                str(camera.frames_analysed),
                str(camera.reconnects),
                camera.reason,
            )
        show(out, cameras)
        return 0
    cluster = clients.cluster_status(scheduler)
    print(f"{len(cluster.workers)} worker(s); load max {cluster.max_load:.2f}, mean {cluster.mean_load:.2f}")
    for node in cluster.workers:
        print(f"worker {node.worker_id} at {node.address} {'alive' if node.alive else 'LEASE EXPIRED'}")
        numbers = ("load", "capacity fps", "analysed fps")
        devices = table(out, "device", *numbers, "cameras", right=numbers, wrap=("cameras",))
        for device in node.devices:
            devices.add_row(
                device.device_id,
                f"{device.load:.2f}",
                f"{device.capacity_fps:.1f}",
                f"{device.analysed_fps:.1f}",
                ",".join(device.camera_ids) or "-",
            )
        show(out, devices)
    if cluster.assignments or cluster.unplaced:
        print("cameras")
        print(quality_counts(cluster))
        placed = table(
            out, "camera", "worker", "device", "state", "quality", "reason", wrap=("quality", "reason")
        )
        for assignment in cluster.assignments:
            health = assignment.health if assignment.HasField("health") else None
            placed.add_row(
                assignment.camera_id,
                assignment.worker_id,
                assignment.device_id,
                camera_state_name(health.state) if health else "starting",
                quality_summary(health.quality if health and health.HasField("quality") else None),
                health.reason if health else "",
            )
        for camera_id, reason in sorted(cluster.unplaced.items()):
            placed.add_row(camera_id, "-", "-", "UNPLACED", "-", reason)
        show(out, placed)
    return 0


def quality_counts(cluster: scheduler_pb2.ClusterStatus) -> str:
    """One line counting the placed cameras per video-quality problem, and those whose rules are
    held: ``video quality: 1 scene_change (rules suspended: 1), 2 blur; 5 of 8 clean``."""
    from collections import Counter

    from retina.services.core.quality import PROBLEMS

    problems: Counter[str] = Counter()
    held: Counter[str] = Counter()
    clean = reported = 0
    for assignment in cluster.assignments:
        if not (assignment.HasField("health") and assignment.health.HasField("quality")):
            continue
        quality = assignment.health.quality
        reported += 1
        problems.update(quality.problems)
        if quality.rules:
            held[quality.rules] += 1
        clean += not quality.problems and not quality.rules
    order = {name: index for index, name in enumerate(PROBLEMS)}
    counts = [f"{problems[name]} {name}" for name in sorted(problems, key=lambda n: order.get(n, len(order)))]
    holds = [f"rules {hold}: {count}" for hold, count in sorted(held.items())]
    shown = ", ".join(counts) + (f" ({'; '.join(holds)})" if holds else "")
    return f"video quality: {shown or 'no problem'}; {clean} of {reported} reported clean"


@app.command(rich_help_panel=PANEL)
def assign(
    config: Annotated[str, typer.Option()],
    worker: Annotated[str, typer.Option(help="the worker's gRPC address")] = WORKER_ADDRESS,
    wait: Annotated[float, typer.Option(help="seconds to wait for the worker to serve")] = 120,
) -> int:
    """assign a configuration's cameras to a running worker"""
    from retina.services.cli.clients import assign_cameras, wait_until_serving

    loaded = load(config, cameras_required=True)
    wait_until_serving(worker, wait)
    assign_cameras(worker, loaded.config.cameras)
    print(f"assigned {len(loaded.config.cameras)} camera(s) to {worker}")
    return 1 if loaded.camera_errors else 0


@app.command(rich_help_panel=PANEL)
def demo(data_dir: Annotated[str, typer.Option()] = "var/demo") -> int:
    """start the cluster on a scene and print incidents as they arrive"""
    from retina.services.cli.demo import run_demo

    return run_demo(Path(data_dir))
