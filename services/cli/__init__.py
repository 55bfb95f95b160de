"""The ``retina`` command line: run the cluster, its services, one-off analysis and queries."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from retina.services.core.config import ConfigError, LoadedConfig, RetinaConfig, load_config, require_cameras
from retina.services.core.logs import setup_logging
from retina.services.core.ports import ClusterPorts

DEFAULT_PORTS = ClusterPorts()
WORKER_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.worker_grpc}"
SCHEDULER_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.scheduler_grpc}"
INCIDENTS_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.incidents_grpc}"
SEARCH_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.search_grpc}"


def _load(path: str, *, cameras_required: bool = False) -> LoadedConfig:
    """Load a config; report rejected cameras on stderr and carry on with the others.

    ``cameras_required``: a file with no camera left to run is a ConfigError ("no cameras: ...").
    """
    loaded = load_config(path)
    for line in loaded.camera_errors:
        print(f"config error (camera skipped): {line}", file=sys.stderr)
    return require_cameras(loaded, path) if cameras_required else loaded


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args.config, cameras_required=True)
    print(f"{len(loaded.config.cameras)} camera(s) valid, {len(loaded.camera_errors)} error(s)")
    return 1 if loaded.camera_errors else 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from retina.services.cli.analyze import analyze

    loaded = _load(args.config)
    cameras = loaded.config.cameras
    if args.camera:
        cameras = [c for c in cameras if c.id == args.camera]
        if not cameras:
            raise ConfigError([f"--camera: no valid camera {args.camera!r} in {args.config}"])
    if not cameras:
        raise ConfigError([f"{args.config}: no valid camera to take the algorithms and zones from"])
    media_dir = Path(args.media_dir) if args.media_dir else None
    return analyze(loaded.config, cameras[0], args.source, args.duration, media_dir)


def _service_config(args: argparse.Namespace, service: str) -> RetinaConfig:
    """Logging for a long-running service, and its config with ``--nats-url`` applied."""
    setup_logging(service, args.log_level)
    config = _load(args.config).config
    if args.nats_url:
        config.nats.url = args.nats_url
    return config


def cmd_worker(args: argparse.Namespace) -> int:
    from retina.services.worker.service import run_worker

    config = _service_config(args, "worker")
    run_worker(
        config,
        Path(args.data_dir),
        args.listen,
        args.grpc_port,
        args.metrics_port,
        args.worker_id,
        args.scheduler,
        args.advertise,
    )
    return 0


def cmd_incidents_serve(args: argparse.Namespace) -> int:
    from retina.services.incidents.service import run_incident_store

    setup_logging("incidents", args.log_level)
    run_incident_store(
        Path(args.data_dir),
        args.nats_url,
        args.listen,
        args.grpc_port,
        args.metrics_port,
        media_max_bytes=int(args.media_max_gb * 1024**3),
        media_max_age_seconds=args.media_max_age_days * 24 * 3600,
    )
    return 0


def cmd_search_serve(args: argparse.Namespace) -> int:
    from retina.services.search.service import run_search_service

    config = _service_config(args, "search")
    run_search_service(
        config,
        Path(args.data_dir),
        args.listen,
        args.grpc_port,
        args.http_port,
        args.metrics_port,
        args.incidents_address or None,
    )
    return 0


def cmd_search_rebuild(args: argparse.Namespace) -> int:
    from retina.services.search.engine import SearchEngine

    setup_logging("search", args.log_level)
    engine = SearchEngine(Path(args.data_dir), _load(args.config).config)
    vectors = engine.rebuild()
    tracks, _ = engine.store.counts()
    print(f"rebuilt the index from the feature store: {tracks} tracks, {vectors} vectors")
    return 0


def cmd_search_query(args: argparse.Namespace) -> int:
    from retina.services.search.client import QueryError, search

    try:
        reply = search(args)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not reply.matches:
        print("no match (nothing similar on the cameras this department may search)")
    for rank, match in enumerate(reply.matches, 1):
        print(
            f"{rank:2}. score={match.score:.3f}  {match.camera_id:12} {match.family:9} "
            f"{match.first_seen.ToDatetime():%Y-%m-%d %H:%M:%S}Z..{match.last_seen.ToDatetime():%H:%M:%S}Z  "
            f"{','.join(match.colours):12} {match.track_id}  {match.crop_url}"
        )
    return 0


def cmd_incidents_list(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format
    from retina.v1 import incidents_pb2, incidents_pb2_grpc

    with grpc.insecure_channel(args.address) as channel:
        reply = incidents_pb2_grpc.IncidentServiceStub(channel).ListIncidents(
            incidents_pb2.ListIncidentsRequest(camera_id=args.camera, state=args.state, limit=args.limit),
            timeout=10,
        )
    for incident in reply.incidents:
        if args.json:
            data = json_format.MessageToDict(incident, preserving_proto_field_name=True)
            data.pop("message_json", None)
            print(json.dumps(data, ensure_ascii=False))
        else:
            print(
                f"{incident.started_at.ToDatetime():%Y-%m-%d %H:%M:%S}Z  {incident.state:6}  "
                f"{incident.dispatch_status:6}  {incident.camera_id:12} {incident.algorithm:16} "
                f"zone={incident.zone:10} dwell={incident.dwell_seconds:6.1f}s  {incident.id}"
            )
    return 0


def cmd_incidents_close(args: argparse.Namespace) -> int:
    import grpc
    from retina.v1 import incidents_pb2, incidents_pb2_grpc

    with grpc.insecure_channel(args.address) as channel:
        incident = incidents_pb2_grpc.IncidentServiceStub(channel).CloseIncident(
            incidents_pb2.CloseIncidentRequest(id=args.id, closed_by=args.by, note=args.note), timeout=10
        )
    print(f"closed {incident.id} ({incident.camera_id}, {incident.algorithm}) by {incident.closed_by}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import grpc
    from retina.v1 import scheduler_pb2, scheduler_pb2_grpc, worker_pb2, worker_pb2_grpc

    def state_name(state: int) -> str:
        return worker_pb2.CameraState.Name(state).removeprefix("CAMERA_STATE_").lower()

    if args.worker:
        with grpc.insecure_channel(args.worker) as channel:
            status = worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(
                worker_pb2.GetStatusRequest(), timeout=10
            )
        print(f"worker {status.worker_id}  model={status.model}  outbox_pending={status.outbox_pending}")
        for camera in status.cameras:
            print(
                f"  {camera.camera_id:14} {state_name(camera.state):8} {camera.device_id:7} "
                f"decoded={camera.frames_decoded:<7} analysed={camera.frames_analysed:<6} "
                f"reconnects={camera.reconnects:<3} {camera.reason}"
            )
        return 0
    with grpc.insecure_channel(args.scheduler) as channel:
        cluster = scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
            scheduler_pb2.GetClusterStatusRequest(), timeout=10
        )
    print(f"{len(cluster.workers)} worker(s); load max {cluster.max_load:.2f}, mean {cluster.mean_load:.2f}")
    for worker in cluster.workers:
        print(f"worker {worker.worker_id} at {worker.address} {'alive' if worker.alive else 'LEASE EXPIRED'}")
        for device in worker.devices:
            print(
                f"  {device.device_id:8} load={device.load:.2f} capacity={device.capacity_fps:.1f} fps "
                f"analysed={device.analysed_fps:.1f} fps cameras={','.join(device.camera_ids) or '-'}"
            )
    for assignment in cluster.assignments:
        health = assignment.health
        state = state_name(health.state) if assignment.HasField("health") else "starting"
        print(
            f"  {assignment.camera_id:14} → {assignment.worker_id}/{assignment.device_id:7} {state:8} "
            f"{health.reason if assignment.HasField('health') else ''}"
        )
    for camera_id, reason in sorted(cluster.unplaced.items()):
        print(f"  {camera_id:14} UNPLACED: {reason}")
    return 0


def cmd_scheduler_serve(args: argparse.Namespace) -> int:
    from retina.services.scheduler.service import run_scheduler

    setup_logging("scheduler", args.log_level)
    config = _load(args.config).config if args.config else RetinaConfig()
    if args.database_url:
        config.scheduler.database_url = args.database_url
    run_scheduler(
        config.scheduler,
        config.defaults,
        Path(args.data_dir),
        args.listen,
        args.grpc_port,
        args.metrics_port,
        args.incidents_address or None,
    )
    return 0


def cmd_cameras_import(args: argparse.Namespace) -> int:
    from retina.services.cli.cluster import import_cameras

    loaded = _load(args.file, cameras_required=True)
    created, updated, unchanged = import_cameras(args.scheduler, loaded.config.cameras)
    print(
        f"{created} created, {updated} updated, {unchanged} unchanged, {len(loaded.camera_errors)} rejected"
    )
    return 1 if loaded.camera_errors else 0


def cmd_cameras_list(args: argparse.Namespace) -> int:
    import grpc
    from retina.services.core.convert import camera_state_name
    from retina.v1 import registry_pb2, registry_pb2_grpc

    records, page_token = [], ""
    with grpc.insecure_channel(args.scheduler) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        while True:
            reply = stub.ListCameras(
                registry_pb2.ListCamerasRequest(
                    department=args.department, page_size=1000, page_token=page_token
                ),
                timeout=10,
            )
            records += reply.cameras
            page_token = reply.next_page_token
            if not page_token:
                break
    for record in records:
        camera = record.camera
        algorithms = ",".join(a.name for a in camera.algorithms) or "-"
        health = camera_state_name(record.health.status) if record.HasField("health") else "unknown"
        enabled = "on " if record.enabled else "off"
        print(
            f"{camera.id:14} {camera.name[:24]:24} {camera.department:18} {enabled} "
            f"{health:8} {algorithms}  {camera.url}"
        )
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    from retina.services.cli.cluster import assign_cameras, wait_until_serving

    loaded = _load(args.config, cameras_required=True)
    wait_until_serving(args.worker, args.wait)
    assign_cameras(args.worker, loaded.config.cameras)
    print(f"assigned {len(loaded.config.cameras)} camera(s) to {args.worker}")
    return 1 if loaded.camera_errors else 0


def cmd_up(args: argparse.Namespace) -> int:
    from retina.services.cli.cluster import LocalCluster
    from retina.services.cli.supervisor import ChildCannotStart
    from retina.services.core.metrics import serve_metrics
    from retina.services.core.ports import PortError

    setup_logging("retina-up", args.log_level)
    loaded = _load(args.config, cameras_required=True)
    if args.workers < 1:
        print("error: --workers: must be at least 1", file=sys.stderr)
        return 2
    ports = ClusterPorts(**{f.name: getattr(args, f.name) for f in ClusterPorts.single_fields()})
    try:
        data_dir = Path(args.data_dir).resolve()
        cluster = LocalCluster(Path(args.config).resolve(), data_dir, ports, args.workers)
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
            f"retina is up: NATS {cluster.nats_url}, scheduler {cluster.scheduler_address}, "
            f"{args.workers} worker(s) from {cluster.worker_address}, "
            f"incidents {cluster.incidents_address}, search {cluster.search_address}; "
            f"logs in {cluster.logs}. Ctrl-C stops.",
            flush=True,
        )
        while not stop.wait(1):
            try:
                cluster.supervise()
            except ChildCannotStart as exc:
                print(f"error: {exc}; stopping the cluster (logs in {cluster.logs})", file=sys.stderr)
                return 1
    finally:
        cluster.stop()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from retina.services.cli.scenes import evaluate, format_report

    overrides = {"model": args.model} if args.model else None
    report = evaluate(Path(args.scenes), Path(args.work_dir), overrides)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from retina.services.cli.demo import run_demo

    return run_demo(Path(args.data_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retina", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("RETINA_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run the whole cluster on this machine")
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", default="var")
    for port in ClusterPorts.single_fields():
        p.add_argument(port.metadata["flag"], dest=port.name, type=int, default=port.default,
                       help=f"{port.metadata['help']} (default {port.default})")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="worker processes (worker i: --worker-port + i)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("analyze", help="analyse one file or stream; print incident events as JSON lines")
    p.add_argument("source", help="file path or rtsp:// / http(s):// URL")
    p.add_argument("--config", required=True)
    p.add_argument("--camera", help="camera whose algorithms and zones apply (default: the first)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (live streams)")
    p.add_argument("--media-dir", help="write snapshot JPEGs here")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("validate", help="check a configuration file")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("worker", help="run an analysis worker (cameras are assigned over gRPC)")
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", default="var/worker")
    p.add_argument("--nats-url")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS.worker_grpc)
    p.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS.worker_metrics)
    p.add_argument("--worker-id")
    p.add_argument("--listen", default="127.0.0.1", help="address for gRPC and metrics (0.0.0.0 in a pod)")
    p.add_argument("--scheduler", help="scheduler address: register there and receive cameras from it")
    p.add_argument("--advertise", help="host:port the scheduler reaches this worker at (default: listen)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("assign", help="assign a configuration's cameras to a running worker")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", default=WORKER_ADDRESS, help="the worker's gRPC address")
    p.add_argument("--wait", type=float, default=120, help="seconds to wait for the worker to serve")
    p.set_defaults(func=cmd_assign)

    p = sub.add_parser("status", help="workers, devices, assignments, camera health and load")
    p.add_argument("--scheduler", default=SCHEDULER_ADDRESS, help="the scheduler's gRPC address")
    p.add_argument("--worker", help="show one worker's own view instead (its gRPC address)")
    p.set_defaults(func=cmd_status)

    scheduler = sub.add_parser("scheduler", help="the scheduler and camera registry").add_subparsers(
        dest="action", required=True
    )
    p = scheduler.add_parser("serve", help="run the scheduler (registry, worker leases, placement)")
    p.add_argument("--config", help="cluster config (its scheduler section); defaults otherwise")
    p.add_argument("--data-dir", default="var/scheduler")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS.scheduler_grpc)
    p.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS.scheduler_metrics)
    p.add_argument("--incidents-address", default=INCIDENTS_ADDRESS, help="open incidents of moved cameras")
    p.add_argument(
        "--database-url",
        default=os.environ.get("RETINA_DATABASE_URL"),
        help="postgresql+psycopg://... (or RETINA_DATABASE_URL); default: SQLite in --data-dir",
    )
    p.add_argument("--listen", default="127.0.0.1", help="address for gRPC and metrics (0.0.0.0 in a pod)")
    p.set_defaults(func=cmd_scheduler_serve)

    cameras = sub.add_parser("cameras", help="the camera registry (一机一档)").add_subparsers(
        dest="action", required=True
    )
    p = cameras.add_parser("import", help="create or update the cameras of a YAML file in the registry")
    p.add_argument("file", help="YAML with a 'cameras' list (the configuration format)")
    p.add_argument("--scheduler", default=SCHEDULER_ADDRESS)
    p.set_defaults(func=cmd_cameras_import)
    p = cameras.add_parser("list", help="cameras in the registry with their health")
    p.add_argument("--department", default="")
    p.add_argument("--scheduler", default=SCHEDULER_ADDRESS)
    p.set_defaults(func=cmd_cameras_list)

    incidents = sub.add_parser("incidents", help="the incident store").add_subparsers(
        dest="action", required=True
    )
    p = incidents.add_parser("serve", help="run the incident store service")
    p.add_argument("--data-dir", default="var/incidents")
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS.incidents_grpc)
    p.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS.incidents_metrics)
    p.add_argument("--listen", default="127.0.0.1", help="address for gRPC and metrics (0.0.0.0 in a pod)")
    p.add_argument("--media-max-gb", type=float, default=50, help="snapshots and clips kept, in GiB")
    p.add_argument("--media-max-age-days", type=float, default=30, help="media older than this is deleted")
    p.set_defaults(func=cmd_incidents_serve)
    p = incidents.add_parser("list", help="list incidents, newest first")
    p.add_argument("--address", default=INCIDENTS_ADDRESS)
    p.add_argument("--camera", default="")
    p.add_argument("--state", default="", choices=["", "open", "ended"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_incidents_list)
    p = incidents.add_parser("close", help="close an incident out (dispatcher)")
    p.add_argument("id")
    p.add_argument("--by", required=True, help="who closes it")
    p.add_argument("--note", default="")
    p.add_argument("--address", default=INCIDENTS_ADDRESS)
    p.set_defaults(func=cmd_incidents_close)

    search = sub.add_parser("search", help="search by image (以图搜图)").add_subparsers(
        dest="action", required=True
    )
    p = search.add_parser("serve", help="run the search service (FEATURES stream → FAISS index, gRPC)")
    p.add_argument("--config", required=True, help="the cluster config (its features and search sections)")
    p.add_argument("--data-dir", default="var/search")
    p.add_argument("--nats-url")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS.search_grpc)
    p.add_argument(
        "--http-port", type=int, default=DEFAULT_PORTS.search_http, help="signed crop URLs are served here"
    )
    p.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS.search_metrics)
    p.add_argument("--incidents-address", default=INCIDENTS_ADDRESS, help="for searches by incident id")
    p.add_argument("--listen", default="127.0.0.1", help="address for gRPC, crops and metrics")
    p.set_defaults(func=cmd_search_serve)
    p = search.add_parser("rebuild", help="rebuild the index files from the feature store (service stopped)")
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", default="var/search")
    p.set_defaults(func=cmd_search_rebuild)
    p = search.add_parser("query", help="find where a person or vehicle appeared")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="a photo (JPEG, PNG...) of the person or vehicle")
    query.add_argument("--incident", help="the object of this incident")
    query.add_argument("--track", help="a track id from an earlier result")
    p.add_argument("--region", help="x1,y1,x2,y2: the part of the photo showing the object (0-1)")
    p.add_argument("--department", required=True, help="who searches (results follow sharing scopes)")
    p.add_argument("-k", type=int, default=10, help="results wanted (1-100)")
    p.add_argument("--camera", action="append", default=[], help="only this camera (repeatable)")
    p.add_argument("--family", action="append", default=[], choices=["person", "vehicle", "non_motor"])
    p.add_argument("--colour", action="append", default=[], help="e.g. white, red (repeatable)")
    p.add_argument("--since", help="ISO time, e.g. 2026-11-22T08:00:00 (UTC unless it has an offset)")
    p.add_argument("--until", help="ISO time (UTC unless it has an offset)")
    p.add_argument("--address", default=SEARCH_ADDRESS)
    p.set_defaults(func=cmd_search_query)

    p = sub.add_parser("eval", help="score algorithms on labelled, composed scenes (precision, recall, F1)")
    p.add_argument("scenes", help="scene file (YAML), e.g. examples/scenes.yaml")
    p.add_argument("--work-dir", default="var/eval", help="where composed scene videos are written")
    p.add_argument("--model", help="detector weights (overrides the scene file)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="start the cluster on a scene and print incidents as they arrive")
    p.add_argument("--data-dir", default="var/demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
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
