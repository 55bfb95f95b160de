"""Keeps the child processes of ``retina up`` running.

A child that exits is restarted after a backoff (1 s, 2 s, 4 s … up to 30 s) and the others keep
running. A child that keeps exiting before it is ready (its ``ready`` check passes, or it has run
for ``stable_seconds``) — ``max_failures`` times in a row — cannot start at all; the supervisor then
gives up with the reason (its exit code and the last line of its log), and only then does the
cluster stop. A child that was ready when it died starts counting afresh.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

from retina.services.core.backoff import Backoff

log = logging.getLogger(__name__)

RESTARTS = Counter("retina_up_restarts_total", "Child processes restarted after they exited", ["process"])
RUNNING = Gauge("retina_up_process_running", "1 while the child process runs", ["process"])


class ChildCannotStart(RuntimeError):
    """A child exited ``max_failures`` times in a row without staying up; the message says why."""


@dataclass
class Child:
    """One supervised process: how to start it, its log, and its restart bookkeeping."""

    name: str
    start: Callable[[], subprocess.Popen]
    log_file: Path | None
    ready_check: Callable[[], bool] | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready: bool = False
    failures: int = 0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


class Supervisor:
    """Starts children and restarts those that exit; ``check()`` is called once a second."""

    def __init__(
        self,
        max_failures: int = 5,
        stable_seconds: float = 30.0,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
    ):
        self.max_failures = max_failures
        self.stable_seconds = stable_seconds
        self.first_delay, self.max_delay = first_delay, max_delay
        self.children: dict[str, Child] = {}

    def start(
        self,
        name: str,
        start: Callable[[], subprocess.Popen],
        log_file: Path | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """Start a child now and supervise it from then on; ``ready()`` says it is serving."""
        backoff = Backoff(self.first_delay, self.max_delay, jitter=0.1)
        child = Child(name, start, log_file, ready, backoff=backoff)
        self.children[name] = child
        self._launch(child)

    def forget(self, name: str) -> subprocess.Popen | None:
        """Stop supervising ``name`` (it is being stopped on purpose); return its process."""
        child = self.children.pop(name, None)
        if child is None:
            return None
        RUNNING.labels(name).set(0)
        return child.process

    def process(self, name: str) -> subprocess.Popen | None:
        child = self.children.get(name)
        return child.process if child else None

    def check(self, now: float | None = None) -> list[str]:
        """Restart children whose backoff is over; schedule a restart for those that exited.

        Returns the names restarted in this call; raises ChildCannotStart when one gave up.
        """
        now = time.monotonic() if now is None else now
        restarted = []
        for child in list(self.children.values()):
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    RESTARTS.labels(child.name).inc()
                    log.warning(
                        "restarting", extra={"service_process": child.name, "attempt": child.failures}
                    )
                    self._launch(child)
                    restarted.append(child.name)
                continue
            code = child.process.poll() if child.process is not None else "did not start"
            if code is None:
                if not child.ready and self._is_ready(child, now):
                    child.ready = True
                    child.failures = 0
                    child.backoff.reset()
                continue
            RUNNING.labels(child.name).set(0)
            child.failures = 1 if child.ready else child.failures + 1
            last_line = _last_line(child.log_file)
            if child.failures >= self.max_failures:
                raise ChildCannotStart(
                    f"{child.name} exited {child.failures} times in a row (last exit code {code})"
                    + (f"; its log ends: {last_line}" if last_line else "")
                )
            delay = child.backoff.next_delay()
            child.restart_at = now + delay
            log.error(
                "process exited; restarting it",
                extra={
                    "service_process": child.name,
                    "exit_code": code,
                    "restart_in_seconds": round(delay, 1),
                    "failures_in_a_row": child.failures,
                    "log_ends": last_line,
                },
            )
        return restarted

    def _is_ready(self, child: Child, now: float) -> bool:
        if now - child.started_at >= self.stable_seconds:
            return True
        try:
            return child.ready_check is not None and child.ready_check()
        except Exception:  # not answering yet
            return False

    def _launch(self, child: Child) -> None:
        child.started_at = time.monotonic()
        child.ready = False
        try:
            child.process = child.start()
        except (OSError, RuntimeError) as exc:  # counted as an exit by the next check()
            child.process = None
            log.error("process did not start", extra={"service_process": child.name, "error": str(exc)})
            return
        RUNNING.labels(child.name).set(1)


def _last_line(path: Path | None, limit: int = 300) -> str:
    """The last non-empty line of a log file, shortened (for the reason a child could not start)."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
