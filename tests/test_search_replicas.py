"""Search scales out for reads: replicas each read the whole FEATURES stream through their own
durable consumer (real nats-server with the roles' permissions, real search processes)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import cv2
import nats
import yaml

from retina.services.cli.clients import wait_until_serving
from retina.services.core import bus
from retina.services.core.features import FeatureRecord
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.services.search.service import REPLICA_CONSUMER_INACTIVE_SECONDS, consumer_name
from retina.v1 import search_pb2, search_pb2_grpc
from tests.conftest import Credentials, NatsServer
from tests.test_search import COLOURS_BGR, patch, record


def test_consumer_names():
    assert consumer_name("") == "search-index"  # retina up: the one shared consumer, as before
    assert consumer_name("retina-search-1") == "search-index-retina-search-1"
    assert consumer_name("host.example.org") == "search-index-host-example-org"  # no dots in a name
    assert consumer_name(None).startswith("search-index-")  # the host name


def publish(url: str, token: str, records: list[FeatureRecord]) -> None:
    async def main() -> None:
        nc = await bus.connect(url, "test-worker", user="worker", password=token)
        js = nc.jetstream()
        await bus.ensure_feature_stream(js)
        for r in records:
            await js.publish(r.subject, r.model_dump_json().encode(), headers={"Nats-Msg-Id": f"{r.id}:0"})
        await nc.close()

    asyncio.run(main())


def consumers(url: str, token: str) -> dict[str, float | None]:
    async def main() -> dict[str, float | None]:
        nc = await nats.connect(url, user="operator", password=token)
        infos = await nc.jetstream().consumers_info(bus.FEATURE_STREAM)
        await nc.close()
        return {info.name: info.config.inactive_threshold for info in infos}

    return asyncio.run(main())


def test_replicas_each_index_every_record_and_resume_from_their_own_consumer(
    tmp_path: Path, secured_nats: NatsServer, service_credentials: Credentials
):
    url = secured_nats.url
    config = tmp_path / "cluster.yaml"
    config.write_text(
        yaml.safe_dump({"nats": {"url": url}, "features": {"embedder": "colour"}, "cameras": []})
    )
    images = {name: patch(bgr, seed) for seed, (name, bgr) in enumerate(COLOURS_BGR.items())}
    records = {
        name: record("cam-a", i + 1, image, time.time() - 3600 + 60 * i)
        for i, (name, image) in enumerate(images.items())
    }
    first = [records[name] for name in ("red", "green", "blue")]
    publish(url, service_credentials.token("worker"), first)

    ports = {replica: (free_port(), free_port()) for replica in ("a", "b")}

    def args(replica: str) -> list[str]:
        grpc_port, metrics_port = ports[replica]
        return [
            "search", "serve", "--config", str(config), "--data-dir", str(tmp_path / f"search-{replica}"),
            "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), "--replica-id", replica,
            *service_credentials.flags("search"),
        ]  # fmt: skip

    def address(replica: str) -> str:
        return f"127.0.0.1:{ports[replica][0]}"

    def stats(replica: str) -> search_pb2.IndexStats:
        with service_credentials.channel(address(replica)) as channel:
            return search_pb2_grpc.SearchServiceStub(channel).GetIndexStats(search_pb2.GetIndexStatsRequest())

    def wait_for_tracks(replica: str, tracks: int) -> search_pb2.IndexStats:
        deadline = time.monotonic() + 30
        while (current := stats(replica)).tracks < tracks and time.monotonic() < deadline:
            time.sleep(0.2)
        assert current.tracks == tracks, replica
        return current

    def best(replica: str, image) -> str:
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        with service_credentials.channel(address(replica)) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            answer = stub.Search(search_pb2.SearchRequest(image=jpeg, k=3, department="urban"))
        return answer.matches[0].track_id

    processes = {r: start_python(args(r), log_file=tmp_path / f"search-{r}.log") for r in ports}
    try:
        for replica, process in processes.items():
            wait_until_serving(address(replica), 60, process)
        for replica in processes:  # each has the whole stream, not a share of it, once it serves
            assert stats(replica).tracks == 3 and stats(replica).records_applied == 3
            assert best(replica, images["green"]) == records["green"].id
        named = consumers(url, service_credentials.token("operator"))
        assert set(named) == {"search-index-a", "search-index-b"}
        assert all(t == REPLICA_CONSUMER_INACTIVE_SECONDS for t in named.values())

        # b goes away; a record arrives; b comes back and takes up its own consumer where it left off
        processes["b"].send_signal(signal.SIGTERM)
        assert processes["b"].wait(30) == 0
        publish(url, service_credentials.token("worker"), [records["yellow"]])
        wait_for_tracks("a", 4)
        processes["b"] = start_python(args("b"), log_file=tmp_path / "search-b-again.log")
        wait_until_serving(address("b"), 60, processes["b"])
        assert stats("b").tracks == 4  # it serves once caught up
        assert stats("b").records_applied == 1  # only the new one: no replay
        for replica in processes:
            assert best(replica, images["yellow"]) == records["yellow"].id
    finally:
        for replica, process in processes.items():
            stop_process(process, f"search-{replica}")
