"""How many case transitions per second one webhook delivers, by how long its receiver takes to answer.

A webhook keeps one transition in flight (the next waits until the receiver acknowledged this one,
which keeps them in order), so its rate is bounded by the receiver's answer time. Measured with a
real nats-server, the gateway's deliverer (:func:`retina.services.gateway.webhooks.run_webhooks`)
and a local HTTP receiver that answers 200 after ``--delays-ms`` milliseconds: ``--transitions``
transitions are published first, then the time until the receiver has them all is taken. The
baseline, measured in the same run against the same receiver: the same number of signed-size POSTs
sent one after another straight from this process (no NATS, no retries) — the receiver's own limit.

Usage (about 30 s):
    python benchmarks/webhook_delivery.py [--transitions 500 --delays-ms 0,20,100]
    python benchmarks/webhook_delivery.py --smoke   # 40 transitions: checks it works
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from retina.services.core import bus
from retina.services.core.cases import CaseMessage
from retina.services.core.ports import free_port
from retina.services.core.processes import start_nats_server, stop_process
from retina.services.core.webhooks_config import WebhookConfig
from retina.services.gateway.webhooks import load_webhooks, run_webhooks


def start_receiver(delay: float) -> tuple[ThreadingHTTPServer, list[float]]:
    """A receiver answering 200 after ``delay`` seconds; the list gets the time of each POST."""
    received: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            received.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


async def measure(nats_url: str, secret_file: Path, name: str, delay: float, count: int) -> float:
    """Transitions per second delivered to a receiver answering after ``delay``."""
    server, received = start_receiver(delay)
    url = f"http://127.0.0.1:{server.server_address[1]}/cases"
    config = WebhookConfig(name=name, url=url, secret_file=str(secret_file))
    nc = await bus.connect(nats_url, "benchmark-publisher")
    js = nc.jetstream()
    await bus.ensure_case_stream(js)
    await js.purge_stream(bus.CASE_STREAM)
    for n in range(count):
        message = CaseMessage(
            case_id=f"{name}-case-{n}", seq=1, at=datetime.now(UTC), action="open", actor="system:cases",
            status="new", department="traffic", visible_to=["traffic"], category_code="05-05",
            category_name="机动车乱停放", camera_id="cam-1", zone="kerb", grid_code="420102001001",
        )  # fmt: skip
        await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
    await nc.close()
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(run_webhooks(load_webhooks([config]), nats_url, stop))
    while len(received) < count:
        await asyncio.sleep(0.01)
    elapsed = received[-1] - started
    stop.set()
    await task
    server.shutdown()
    server.server_close()
    return count / elapsed


def measure_direct(delay: float, count: int) -> float:
    """POSTs per second sent one after another straight to a receiver answering after ``delay``."""
    import httpx

    server, received = start_receiver(delay)
    url = f"http://127.0.0.1:{server.server_address[1]}/cases"
    body = b"x" * 600  # about a case transition's JSON
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            client.post(url, content=body).raise_for_status()
    elapsed = time.monotonic() - started
    server.shutdown()
    server.server_close()
    return len(received) / elapsed


async def main(transitions: int, delays_ms: list[float]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        secret_file = Path(folder) / "secret"
        secret_file.write_text(os.urandom(16).hex())
        port = free_port()
        nats = start_nats_server(port, Path(folder) / "nats")
        try:
            print(f"{transitions} transitions, one webhook; {platform.machine()}, {os.cpu_count()} CPU cores")
            print("| receiver answers in | direct POSTs/s (baseline) | webhook transitions/s | ratio |")
            print("|---|---|---|---|")
            for index, delay in enumerate(delays_ms):
                direct = measure_direct(delay / 1000, transitions)
                rate = await measure(
                    f"nats://127.0.0.1:{port}", secret_file, f"b{index}", delay / 1000, transitions
                )
                print(f"| {delay:g} ms | {direct:.0f} | {rate:.0f} | {rate / direct:.2f}x |", flush=True)
        finally:
            stop_process(nats, "nats")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=500)
    parser.add_argument("--delays-ms", default="0,20,100", help="receiver answer times, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="40 transitions, receivers at 0 and 20 ms")
    args = parser.parse_args()
    if args.smoke:
        args.transitions, args.delays_ms = 40, "0,20"
    asyncio.run(main(args.transitions, [float(d) for d in args.delays_ms.split(",")]))
