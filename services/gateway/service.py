"""``retina gateway serve``: the HTTP front door (uvicorn), the verifier, live events, the case
webhooks; until SIGTERM.

On SIGTERM it stops taking requests, lets the ones in flight finish (up to 10 s: a dispatch step
is one gRPC call, committed in the incident store or not at all), lets each webhook finish the POST
in hand (up to 10 s; one cut short is handed back to NATS and sent again), closes live-event
streams, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path

import uvicorn

from retina.services.core import service_auth
from retina.services.core.metrics import serve_metrics
from retina.services.core.serving import run_until_signalled
from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.api_session import configure_oidc
from retina.services.gateway.app import GatewayState, create_app
from retina.services.gateway.backends import Backends
from retina.services.gateway.events import EventSource
from retina.services.gateway.verifier import run_verifier
from retina.services.gateway.webhooks import load_webhooks, run_webhooks

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 10


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service's stop event ends it."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def open_accounts(settings: GatewaySettings) -> AccountStore:
    """The gateway's account store (the database URL, or SQLite in the data folder)."""
    return AccountStore(settings.database_url or Path(settings.data_dir) / "gateway.sqlite")


def session_secret(data_dir: Path) -> str:
    """The key signing single sign-on state cookies (made once, kept in the data folder)."""
    path = Path(data_dir) / "oidc-state.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def run_gateway(settings: GatewaySettings) -> None:
    """Entry point of ``retina gateway serve``."""
    service_auth.configure(settings)
    webhooks = load_webhooks(settings.cluster.webhooks)  # a secret file missing stops the start

    async def main(stop: asyncio.Event) -> None:
        accounts = open_accounts(settings)
        backends = Backends(
            settings.incidents_address or "", settings.search_address, settings.scheduler_address,
            service_auth.own_token(),
        )  # fmt: skip
        events = EventSource()
        app = create_app(GatewayState(settings, accounts, backends, events))
        configure_oidc(app, settings, settings.oidc_state_secret or session_secret(settings.data_dir))
        serve_metrics(settings.metrics_port, settings.listen)
        config = uvicorn.Config(
            app,
            host=settings.listen,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
            ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        )
        server = _Server(config)
        tasks = [
            asyncio.create_task(events.start(settings.nats_url, stop)),
            asyncio.create_task(run_verifier(backends, stop)),
        ]
        delivering = asyncio.create_task(run_webhooks(webhooks, settings.nats_url, stop))
        serving = asyncio.create_task(server.serve())
        log.info("gateway serving", extra={"http_port": settings.http_port, "listen": settings.listen})
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([serving, stopped], return_when=asyncio.FIRST_COMPLETED)
        log.info("gateway stopping")
        events.stopping.set()
        server.should_exit = True
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, timeout=SHUTDOWN_GRACE_SECONDS + 5)
        with contextlib.suppress(Exception):  # past the grace, the POST in hand is cut and handed back
            await asyncio.wait_for(delivering, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await events.close()
        await backends.close()
        accounts.close()
        log.info("gateway stopped")

    run_until_signalled(main)
