"""Bounded exponential backoff with full jitter."""

from __future__ import annotations

import random
import time

MAX_ATTEMPTS = 8
BASE_SECONDS = 0.5
CAP_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 120.0


class Backoff:
    """One retry budget: ``sleep()`` waits before the next attempt, False once it is spent."""

    def __init__(
        self,
        attempts: int = MAX_ATTEMPTS,
        base: float = BASE_SECONDS,
        cap: float = CAP_SECONDS,
    ) -> None:
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.used = 0

    def sleep(self, retry_after: float | None = None) -> bool:
        if self.used >= self.attempts:
            return False
        self.used += 1
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
        else:
            delay = random.uniform(0, min(self.cap, self.base * 2 ** (self.used - 1)))
        time.sleep(delay)
        return True


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None when absent or a date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None
