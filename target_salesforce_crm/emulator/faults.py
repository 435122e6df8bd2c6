"""Fault and limit settings, shared by the Python API, the CLI and the admin endpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

RATE_FIELDS = ("http_503_rate", "html_503_rate", "http_500_rate", "drop_rate", "lock_rate")
INT_FIELDS = ("latency_ms", "token_ttl_requests", "daily_api_limit", "initial_api_usage",
              "concurrency_limit")


@dataclass(slots=True)
class FaultSettings:
    """Everything that makes the emulated org misbehave or run out of room.

    Rates are probabilities per API request (per record for `lock_rate`); zero
    integers mean "off" except `daily_api_limit`, which is the org's allocation.
    """

    latency_ms: int = 0
    http_503_rate: float = 0.0
    html_503_rate: float = 0.0
    http_500_rate: float = 0.0
    drop_rate: float = 0.0
    lock_rate: float = 0.0
    token_ttl_requests: int = 0
    daily_api_limit: int = 100000
    initial_api_usage: int = 0
    concurrency_limit: int = 0
    random_seed: int | None = 0  # fixed by default so fault runs repeat; None = fresh entropy

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def update(self, values: dict[str, Any]) -> None:
        """Apply settings after checking every one, so a bad value changes nothing."""
        checked = {name: _check(name, value) for name, value in values.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, value: Any) -> Any:
    if name not in FaultSettings.names():
        raise ValueError(f"unknown fault setting: {name}")
    if name == "random_seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("random_seed must be an integer or null")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number")
    if name in RATE_FIELDS:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
        return float(value)
    if value != int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    if name == "daily_api_limit" and value < 1:
        raise ValueError("daily_api_limit must be at least 1")
    return int(value)
