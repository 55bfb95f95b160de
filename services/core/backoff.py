"""Exponential backoff with jitter: one helper for every retry loop (reconnects, restarts)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each spread by ±``jitter`` so that
    many clients retrying together do not stay in step. ``reset()`` after a success."""

    initial: float = 0.5
    maximum: float = 10.0
    jitter: float = 0.2
    attempts: int = 0

    def next_delay(self) -> float:
        """The delay before the next try (and count the try)."""
        base = min(self.initial * 2 ** min(self.attempts, 32), self.maximum)  # no overflow, ever
        self.attempts += 1
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self.attempts = 0
