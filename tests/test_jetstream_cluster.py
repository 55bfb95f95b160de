"""On a 3-node JetStream cluster (the production overlay), ops make the streams R3 once
(k8s/README.md); a service that starts afterwards and ensures its stream must keep that, not scale
it back to one replica. Three real nats-servers, clustered on this machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from retina.services.core import bus
from retina.services.core.ports import free_port
from retina.services.core.processes import start_nats_server, stop_process

NODES = 3


@pytest.fixture
def cluster(tmp_path: Path):
    """Three clustered nats-servers with JetStream; their client URLs."""
    clients = [free_port() for _ in range(NODES)]
    routes = [free_port() for _ in range(NODES)]
    processes = []
    try:
        for index in range(NODES):
            config = tmp_path / f"nats-{index}.conf"
            config.write_text(
                f"server_name: nats-{index}\n"
                "cluster {\n"
                f"  name: retina\n  listen: 127.0.0.1:{routes[index]}\n"
                f"  routes: [{', '.join(f'nats://127.0.0.1:{port}' for port in routes)}]\n"
                "}\n"
            )
            processes.append(start_nats_server(clients[index], tmp_path / f"js-{index}", config_file=config))
        yield [f"nats://127.0.0.1:{port}" for port in clients]
    finally:
        for index, process in enumerate(processes):
            stop_process(process, f"nats-{index}")


def test_ensuring_a_stream_keeps_the_replicas_ops_gave_it(cluster):
    async def run() -> tuple[int, int, list[str]]:
        nc = await nats.connect(cluster[0])
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while True:  # the cluster elects its JetStream meta leader first
            try:
                await js.add_stream(
                    StreamConfig(name=bus.INCIDENT_STREAM, subjects=[bus.INCIDENT_SUBJECTS], num_replicas=3)
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await bus.ensure_incident_stream(js)  # a service starting: updates the stream's settings
        info = await js.stream_info(bus.INCIDENT_STREAM)
        await bus.ensure_feature_stream(js)  # a stream it creates itself starts with one replica
        features = await js.stream_info(bus.FEATURE_STREAM)
        await nc.close()
        return info.config.num_replicas, features.config.num_replicas, info.config.subjects

    replicas, new_stream_replicas, subjects = asyncio.run(run())
    assert replicas == 3, "the update scaled the stream back"
    assert subjects == [bus.INCIDENT_SUBJECTS] and new_stream_replicas == 1
