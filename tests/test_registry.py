"""The camera registry (一机一档): the SQLite store, and its gRPC API through a real grpc.aio server."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from retina.services.core.config import CameraConfig, CameraDefaults, validate_camera
from retina.services.core.convert import (
    camera_state_from_proto,
    camera_state_name,
    camera_state_to_proto,
    camera_to_proto,
)
from retina.services.core.database import sqlite_url
from retina.services.core.health import CameraState
from retina.services.core.serving import start_grpc_server
from retina.services.core.validation import add_guarded
from retina.services.scheduler.camera_records import (
    CameraExists,
    CameraNotFound,
    ImportResult,
    RevisionConflict,
    StoredCameraInvalid,
)
from retina.services.scheduler.cameras import CameraRegistry
from retina.services.scheduler.db import SchedulerDatabase, metadata
from retina.services.scheduler.registry_api import RegistryServicer
from retina.services.scheduler.workers import WorkerStore
from retina.v1 import common_pb2, registry_pb2, registry_pb2_grpc, worker_pb2
from tests.conftest import Credentials

UPSERT = registry_pb2.CameraChange.KIND_UPSERT
DELETE = registry_pb2.CameraChange.KIND_DELETE
CURB = {"name": "curb", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}


def camera(camera_id: str, algorithms: tuple[str, ...] = ("illegal_parking",), **fields: Any) -> CameraConfig:
    """A valid camera running ``algorithms`` (each with one zone)."""
    raw = {
        "id": camera_id,
        "url": f"rtsp://127.0.0.1:8554/{camera_id}",
        "algorithms": [{"name": name, "zones": [CURB]} for name in algorithms],
        **fields,
    }
    return validate_camera(raw, "camera", CameraDefaults())


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "data" / "registry.sqlite")


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


def test_migrations_create_exactly_the_declared_tables(db_url: str):
    CameraRegistry(db_url).close()
    engine = create_engine(db_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


def test_create_get_update_delete(db_url: str):
    with CameraRegistry(db_url) as registry:
        created = registry.create(camera("cam-1", name="Main St"))
        assert (created.revision, created.enabled, created.health) == (1, True, None)
        assert registry.get("cam-1").camera == created.camera
        with pytest.raises(CameraExists, match="cam-1"):
            registry.create(camera("cam-1"))

        updated = registry.update(camera("cam-1", name="Main St / 5th Ave"), expected_revision=1)
        assert updated.revision == 2 and updated.camera.name == "Main St / 5th Ave"
        assert updated.created_at == created.created_at
        same = registry.update(camera("cam-1", name="Main St / 5th Ave"))
        assert same.revision == 2, "an update that changes nothing keeps the revision"
        assert registry.update(camera("cam-1", name="Main St / 5th Ave"), enabled=False).enabled is False
        with pytest.raises(RevisionConflict, match="'cam-1' is at revision 3, not 2"):
            registry.update(camera("cam-1", name="stale"), expected_revision=2)
        with pytest.raises(RevisionConflict):
            registry.delete("cam-1", expected_revision=1)
        with pytest.raises(CameraNotFound, match="cam-9"):
            registry.update(camera("cam-9"))

        registry.report_health("cam-1", "stalled", "no frame for 10 s", 1000.0, "worker-a")
        health = registry.get("cam-1").health
        assert (health.status, health.reason, health.last_frame_at, health.worker_id) == (
            "stalled",
            "no frame for 10 s",
            1000.0,
            "worker-a",
        )
        assert registry.get("cam-1").revision == 3, "health is not a change"
        with pytest.raises(ValueError, match="status"):
            registry.report_health("cam-1", "melted")

        assert registry.delete("cam-1") == 4
        with pytest.raises(CameraNotFound, match="cam-1"):
            registry.get("cam-1")
        with pytest.raises(CameraNotFound):
            registry.delete("cam-1")
        with pytest.raises(CameraNotFound):
            registry.report_health("cam-1", "online")
        recreated = registry.create(camera("cam-1", algorithms=("street_vending",)))
        assert recreated.health is None, "the old camera's health went with it"
        assert [r.camera_id for r in registry.list(algorithm="illegal_parking")] == []


def test_list_filters_and_pages(db_url: str):
    with CameraRegistry(db_url) as registry:
        registry.create(camera("cam_a", name="Market Gate", department="markets", scene_type="market"))
        registry.create(camera("cam-b", ("street_vending", "exposed_trash"), scene_type="market"))
        registry.create(camera("camxa", ("crowd_gathering",), name="Square"), enabled=False)
        registry.create(camera("road-1", scene_type="road"))

        def ids(**filters: Any) -> list[str]:
            return [record.camera_id for record in registry.list(**filters)]

        assert ids() == ["cam-b", "cam_a", "camxa", "road-1"]
        assert ids(department="markets") == ["cam_a"]
        assert ids(scene_type="market") == ["cam-b", "cam_a"]
        assert ids(algorithm="exposed_trash") == ["cam-b"]
        assert ids(algorithm="illegal_parking", scene_type="road") == ["road-1"]
        assert ids(enabled=False) == ["camxa"]
        assert ids(text="MARKET") == ["cam_a"], "name matches, case-insensitively"
        assert ids(text="m_a") == ["cam_a"], "'_' is a character, not a wildcard"
        assert ids(limit=2) == ["cam-b", "cam_a"]
        assert ids(limit=2, after_id="cam_a") == ["camxa", "road-1"]


def test_revisions_and_tombstones_survive_reopening(db_url: str):
    with CameraRegistry(db_url) as registry:
        registry.create(camera("cam-1"))
        registry.create(camera("cam-2"))
        registry.update(camera("cam-1", name="renamed"))
        registry.delete("cam-2")
        assert registry.current_revision() == 4
    with CameraRegistry(db_url) as registry:
        assert registry.current_revision() == 4
        assert registry.get("cam-1").revision == 3
        changes = registry.changes_since(1)
        assert [(c.kind, c.camera_id, c.revision) for c in changes] == [
            ("upsert", "cam-1", 3),
            ("delete", "cam-2", 4),
        ], "only the latest change of each camera, oldest first"
        assert changes[0].record.camera.name == "renamed" and changes[1].record is None
        assert [(c.kind, c.camera_id) for c in registry.changes_since(0)] == [("upsert", "cam-1")]
        assert registry.create(camera("cam-3")).revision == 5


def test_import_counts_created_updated_unchanged(db_url: str):
    with CameraRegistry(db_url) as registry:
        assert registry.import_cameras([camera("cam-1"), camera("cam-2")]) == ImportResult(2, 0, 0)
        registry.update(camera("cam-2"), enabled=False)
        revision = registry.current_revision()
        result = registry.import_cameras([camera("cam-1"), camera("cam-2", name="new"), camera("cam-3")])
        assert result == (1, 1, 1)
        assert registry.current_revision() == revision + 2, "the unchanged camera kept its revision"
        assert registry.get("cam-2").enabled is False, "an import keeps the enabled flag"
        with pytest.raises(ValueError, match="cam-1"):
            registry.import_cameras([camera("cam-1"), camera("cam-1")])


def test_workers_and_assignments_survive_reopening(db_url: str):
    devices = [{"device_id": "cuda:0", "capacity_fps": {"yolo@640": 300.0}, "memory_mb": 24000}]
    with WorkerStore(db_url) as store:
        store.save_worker("worker-a", "10.0.0.1:50061", devices, 120.0, "yolo@640", registered_at=100.0)
        store.save_worker("worker-b", "10.0.0.2:50061", [], 60.0)
        store.save_worker("worker-a", "10.0.0.1:50062", devices, 130.0, "yolo@640")
        assert store.remove_worker("worker-b") and not store.remove_worker("worker-b")
        store.set_assignments({"cam-1": ("worker-a", "cuda:0"), "cam-2": ("worker-a", "cuda:0")})
        first_time = store.assignment_times()["cam-1"]
        store.set_assignments({"cam-1": ("worker-a", "cuda:0"), "cam-3": ("worker-a", "cpu:0")})
    with WorkerStore(db_url) as store:
        (worker,) = store.load_workers()
        assert (worker.worker_id, worker.address, worker.devices, worker.decode_capacity) == (
            "worker-a",
            "10.0.0.1:50062",
            devices,
            130.0,
        )
        assert worker.model_key == "yolo@640" and worker.registered_at == 100.0, "re-saving kept it"
        assert store.load_assignments() == {
            "cam-1": ("worker-a", "cuda:0"),
            "cam-3": ("worker-a", "cpu:0"),
        }
        assert store.assignment_times()["cam-1"] == first_time, "an unmoved camera keeps its time"


def test_cameras_and_workers_share_one_database(db_url: str):
    with SchedulerDatabase(db_url) as database:
        registry, store = CameraRegistry(database), WorkerStore(database)
        registry.create(camera("cam-1"))
        store.set_assignments({"cam-1": ("worker-a", "cuda:0")})
        registry.close()  # the shared database stays open
        store.save_worker("worker-a", "10.0.0.1:50061", [], 60.0)
        assert [r.camera_id for r in registry.list()] == ["cam-1"]
    with CameraRegistry(db_url) as registry, WorkerStore(db_url) as store:
        assert registry.current_revision() == 1, "worker state is no camera change"
        assert [w.worker_id for w in store.load_workers()] == ["worker-a"]


def test_one_camera_state_for_worker_registry_and_wire():
    wire = set(worker_pb2.CameraState.values()) - {worker_pb2.CAMERA_STATE_UNSPECIFIED}
    assert {camera_state_to_proto(state) for state in CameraState} == wire
    for state in CameraState:
        assert camera_state_from_proto(camera_state_to_proto(state)) is state
        assert camera_state_name(camera_state_to_proto(state)) == state.value
    assert camera_state_from_proto(worker_pb2.CAMERA_STATE_UNSPECIFIED) is None
    assert camera_state_name(99) == "unknown"


def test_a_stored_camera_that_no_longer_validates_is_skipped(db_url: str, tmp_path: Path):
    with CameraRegistry(db_url) as registry:
        registry.create(camera("cam-1"))
        registry.create(camera("cam-2"))
        registry.create(camera("cam-3"))
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite") as db:  # e.g. a plug-in was uninstalled
        broken = camera("cam-2").model_dump_json().replace("illegal_parking", "retired_rule")
        db.execute("UPDATE cameras SET config_json = ? WHERE id = 'cam-2'", (broken,))
    with CameraRegistry(db_url) as registry:
        assert [r.camera_id for r in registry.list(limit=2)] == ["cam-1", "cam-3"]
        with pytest.raises(StoredCameraInvalid, match=r"cam-2.*retired_rule"):
            registry.get("cam-2")
        registry.update(camera("cam-2"))  # an operator can still repair it
        assert registry.get("cam-2").camera.algorithms[0].name == "illegal_parking"


# ---------------------------------------------------------------------------------------------
# The gRPC API
# ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    registry: CameraRegistry, credentials: Credentials, poll_seconds: float = 1.0
) -> AsyncIterator[tuple[registry_pb2_grpc.RegistryServiceStub, RegistryServicer, Callable[[str], Any]]]:
    """A real grpc.aio server with the registry service (checking service tokens), a client stub
    connected to it as ``operator``, and a function giving a stub as another role."""
    servicer = RegistryServicer(registry, poll_seconds=poll_seconds)
    server, _, port = await start_grpc_server(
        "127.0.0.1",
        0,
        lambda s: add_guarded(s, registry_pb2_grpc.add_RegistryServiceServicer_to_server, servicer),
        "retina.v1.RegistryService",
        auth=credentials.authenticator(),
    )
    channels = [credentials.aio_channel(f"127.0.0.1:{port}")]

    def stub_as(role: str) -> registry_pb2_grpc.RegistryServiceStub:
        channels.append(credentials.aio_channel(f"127.0.0.1:{port}", role))
        return registry_pb2_grpc.RegistryServiceStub(channels[-1])

    try:
        yield registry_pb2_grpc.RegistryServiceStub(channels[0]), servicer, stub_as
    finally:
        servicer.close()
        for channel in channels:
            await channel.close()
        await server.stop(grace=1)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def next_change(call: Any, timeout: float = 2.0) -> registry_pb2.CameraChange:
    change = await asyncio.wait_for(call.read(), timeout)
    assert change is not grpc.aio.EOF, "the watch stream ended"
    return change


def test_grpc_crud_and_errors(db_url: str, service_credentials: Credentials):
    async def main() -> None:
        async with serving(CameraRegistry(db_url), service_credentials) as (stub, _, stub_as):
            request = registry_pb2.CreateCameraRequest(camera=camera_to_proto(camera("cam-1", name="Gate")))
            created = await stub.CreateCamera(request)
            assert (created.camera.id, created.enabled, created.revision) == ("cam-1", True, 1)
            error = await rpc_error(stub.CreateCamera(request))
            assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "cam-1" in error.details()

            # Unset fields take the defaults, like a camera in the YAML configuration.
            minimal = common_pb2.Camera(id="cam-2", url="rtsp://h/2", scene_type="road")
            second = await stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=minimal, enabled=False))
            assert (second.camera.analysis_fps, second.camera.department, second.enabled) == (
                2.0,
                "urban-management",
                False,
            )

            bad_zone = common_pb2.Zone(
                name="z", polygon=[common_pb2.Point(x=0, y=0), common_pb2.Point(x=1, y=1)]
            )
            bad = common_pb2.Camera(
                id="cam-bad",
                url="rtsp://h/bad",
                algorithms=[common_pb2.AlgorithmSpec(name="illegal_parking", zones=[bad_zone])],
            )
            error = await rpc_error(stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=bad)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error.details() == "camera.algorithms[0].zones[0].polygon: needs at least 3 points"

            changed = camera_to_proto(camera("cam-1", name="Gate 2"))
            update = registry_pb2.UpdateCameraRequest(camera=changed, expected_revision=1)
            updated = await stub.UpdateCamera(update)
            assert (updated.camera.name, updated.revision, updated.enabled) == ("Gate 2", 3, True)
            error = await rpc_error(stub.UpdateCamera(update))
            assert error.code() == grpc.StatusCode.ABORTED and "'cam-1' is at revision 3" in error.details()
            missing = registry_pb2.UpdateCameraRequest(camera=camera_to_proto(camera("cam-9")))
            error = await rpc_error(stub.UpdateCamera(missing))
            assert error.code() == grpc.StatusCode.NOT_FOUND and "cam-9" in error.details()

            health = registry_pb2.CameraHealth(
                camera_id="cam-1", status=worker_pb2.CAMERA_STATE_ONLINE, worker_id="worker-a"
            )
            worker = stub_as("worker")  # health comes from workers only
            stored = await worker.ReportHealth(health)
            assert stored.status == worker_pb2.CAMERA_STATE_ONLINE and stored.updated_at.seconds > 0
            got = await stub.GetCamera(registry_pb2.GetCameraRequest(camera_id="cam-1"))
            assert (got.camera.name, got.health.worker_id) == ("Gate 2", "worker-a")
            error = await rpc_error(worker.ReportHealth(registry_pb2.CameraHealth(camera_id="cam-1")))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

            deleted = await stub.DeleteCamera(registry_pb2.DeleteCameraRequest(camera_id="cam-1"))
            assert deleted.revision == 4
            error = await rpc_error(stub.GetCamera(registry_pb2.GetCameraRequest(camera_id="cam-1")))
            assert error.code() == grpc.StatusCode.NOT_FOUND and "cam-1" in error.details()

    asyncio.run(main())


def test_grpc_list_filters_and_pages(db_url: str, service_credentials: Credentials):
    registry = CameraRegistry(db_url)
    for index in range(5):
        registry.create(camera(f"cam-{index}", scene_type="road" if index % 2 else "market"))
    registry.create(camera("plaza", ("crowd_gathering",), name="Central Plaza"), enabled=False)

    async def main() -> None:
        async with serving(registry, service_credentials) as (stub, _, _):
            ids: list[str] = []
            token = ""
            pages = 0
            while True:
                page = await stub.ListCameras(registry_pb2.ListCamerasRequest(page_size=2, page_token=token))
                ids += [record.camera.id for record in page.cameras]
                pages += 1
                token = page.next_page_token
                if not token:
                    break
            assert (ids, pages) == (["cam-0", "cam-1", "cam-2", "cam-3", "cam-4", "plaza"], 3)

            async def listed(**filters: Any) -> list[str]:
                reply = await stub.ListCameras(registry_pb2.ListCamerasRequest(**filters))
                return [record.camera.id for record in reply.cameras]

            assert await listed(scene_type="road") == ["cam-1", "cam-3"]
            assert await listed(algorithm="crowd_gathering") == ["plaza"]
            assert await listed(enabled=False) == ["plaza"]
            assert await listed(enabled=True, text="CAM-4") == ["cam-4"]
            assert await listed(text="central") == ["plaza"]
            assert await listed(department="parks") == []
            error = await rpc_error(stub.ListCameras(registry_pb2.ListCamerasRequest(page_size=5000)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in error.details()

    asyncio.run(main())


def test_watch_replays_the_state_then_streams_live_changes(db_url: str, service_credentials: Credentials):
    registry = CameraRegistry(db_url)
    registry.create(camera("cam-1"))
    registry.create(camera("cam-2"))

    async def main() -> None:
        # Polling is slowed down to a minute, so only the in-process notifier can deliver in time.
        async with serving(registry, service_credentials, poll_seconds=60) as (stub, _, _):
            watch = stub.WatchCameras(registry_pb2.WatchCamerasRequest(since_revision=0))
            initial = [await next_change(watch), await next_change(watch)]
            assert [(c.kind, c.record.camera.id, c.revision) for c in initial] == [
                (UPSERT, "cam-1", 1),
                (UPSERT, "cam-2", 2),
            ]

            started = time.monotonic()
            new = camera_to_proto(camera("cam-3", name="New"))
            await stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=new))
            change = await next_change(watch, timeout=1.5)
            assert (change.kind, change.record.camera.name, change.revision) == (UPSERT, "New", 3)

            await stub.DeleteCamera(registry_pb2.DeleteCameraRequest(camera_id="cam-1"))
            change = await next_change(watch, timeout=1.5)
            assert (change.kind, change.record.camera.id, change.revision) == (DELETE, "cam-1", 4)

            await asyncio.to_thread(registry.update, camera("cam-2", name="direct"))  # not through gRPC
            change = await next_change(watch, timeout=1.5)
            assert (change.kind, change.record.camera.name) == (UPSERT, "direct")
            assert time.monotonic() - started < 3
            watch.cancel()

            # Resuming from a revision replays only what came after it, deletions included.
            resumed = stub.WatchCameras(registry_pb2.WatchCamerasRequest(since_revision=2))
            replay = [await next_change(resumed) for _ in range(3)]
            assert [(c.kind, c.record.camera.id) for c in replay] == [
                (UPSERT, "cam-3"),
                (DELETE, "cam-1"),
                (UPSERT, "cam-2"),
            ]
            resumed.cancel()

            ahead = stub.WatchCameras(registry_pb2.WatchCamerasRequest(since_revision=99))
            error = await rpc_error(ahead.read())
            assert error.code() == grpc.StatusCode.OUT_OF_RANGE

    asyncio.run(main())


def test_watch_sees_another_process_writes_by_polling(db_url: str, service_credentials: Credentials):
    registry = CameraRegistry(db_url)
    other = CameraRegistry(db_url)  # another process sharing the database: no in-process notifier

    async def main() -> None:
        async with serving(registry, service_credentials, poll_seconds=0.2) as (stub, servicer, _):
            watch = stub.WatchCameras(registry_pb2.WatchCamerasRequest(since_revision=0))
            await asyncio.sleep(0.3)  # the watch has read the (empty) state
            await asyncio.to_thread(other.create, camera("cam-elsewhere"))
            change = await next_change(watch, timeout=2.0)
            assert (change.kind, change.record.camera.id, change.revision) == (UPSERT, "cam-elsewhere", 1)

            await asyncio.to_thread(other.delete, "cam-elsewhere")
            change = await next_change(watch, timeout=2.0)
            assert (change.kind, change.revision) == (DELETE, 2)

            servicer.close()  # the server is stopping: the stream ends cleanly
            assert await asyncio.wait_for(watch.read(), 2.0) is grpc.aio.EOF
            assert await watch.code() == grpc.StatusCode.OK

    asyncio.run(main())
    other.close()


def test_retina_up_imports_the_file_and_disables_cameras_it_no_longer_lists(
    db_url: str, service_credentials: Credentials
):
    from retina.services.cli.clients import import_cameras

    async def main() -> None:
        with CameraRegistry(db_url) as registry:
            servicer = RegistryServicer(registry)
            add = registry_pb2_grpc.add_RegistryServiceServicer_to_server
            server, _, port = await start_grpc_server(
                "127.0.0.1", 0, lambda s: add(servicer, s), "retina.v1.RegistryService",
                auth=service_credentials.authenticator(),
            )  # fmt: skip
            address = f"127.0.0.1:{port}"
            try:
                token = service_credentials.token("operator")
                cameras = [camera("cam-1"), camera("cam-2")]
                first = await asyncio.to_thread(import_cameras, address, cameras, token=token)
                assert first == (2, 0, 0)
                again = await asyncio.to_thread(
                    import_cameras,
                    address,
                    [camera("cam-1", name="renamed")],
                    disable_others=True,
                    token=token,
                )
                assert again == (0, 1, 0)
                assert registry.get("cam-2").enabled is False  # kept, with its history, but not run
                assert registry.get("cam-1").enabled and registry.get("cam-1").camera.name == "renamed"
            finally:
                servicer.close()
                await server.stop(grace=1)

    asyncio.run(main())
