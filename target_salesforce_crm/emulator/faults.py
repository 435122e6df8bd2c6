"""Fault and limit settings, shared by the Python API, the CLI and the admin endpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .ids import parse_id

RATE_FIELDS = ("http_503_rate", "html_503_rate", "http_500_rate", "drop_rate", "lock_rate")
INT_FIELDS = ("latency_ms", "token_ttl_requests", "daily_api_limit", "initial_api_usage",
              "concurrency_limit")
BULK_INT_FIELDS = ("bulk_rows_per_second", "bulk_fail_after_batches", "bulk_batches_remaining")
BULK_BOOL_FIELDS = ("bulk_shuffle_results",)
BULK_BATCH_ALLOCATION = 15000  # DailyBulkApiBatches Max, shared by Bulk API 1.0 and 2.0


@dataclass(slots=True)
class FaultSettings:
    """Everything that makes the emulated org misbehave or run out of room.

    Rates are probabilities per API request (per record for `lock_rate`); zero
    integers mean "off" except `daily_api_limit`, which is the org's allocation.
    The rest are deterministic: `poison_values` (a collections body with a string
    field value containing one of them is refused whole with a 400), `lock_forever_ids`
    (records always UNABLE_TO_LOCK_ROW), `storage_full_after` (record writes left
    before every write fails STORAGE_LIMIT_EXCEEDED; None = no limit), `request_error_code`
    (every collections call is refused whole with a 400 of that code, its message quoting
    the first record's first text value, as Salesforce's messages may), and the token
    response's `instance_url` override and `omit_access_token`. The `bulk_*` settings
    steer Bulk API 2.0 ingest (rate, a failing job, the batch allowance, result order).
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
    poison_values: list[str] = field(default_factory=list)
    lock_forever_ids: list[str] = field(default_factory=list)
    storage_full_after: int | None = None
    instance_url: str | None = None
    omit_access_token: bool = False
    request_error_code: str | None = None
    bulk_rows_per_second: int = 0  # Bulk ingest processing rate; 0 = as fast as it goes
    bulk_fail_after_batches: int = 0  # fail each Bulk job after this many batches; 0 = never
    bulk_batches_remaining: int = BULK_BATCH_ALLOCATION  # DailyBulkApiBatches left (set = reset)
    bulk_shuffle_results: bool = True  # Bulk result rows in random order, as on an org

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
    special = _SPECIAL_CHECKS.get(name)
    if special is not None:
        return special(name, value)
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
    if name == "bulk_batches_remaining" and value > BULK_BATCH_ALLOCATION:
        raise ValueError(f"bulk_batches_remaining must be at most {BULK_BATCH_ALLOCATION}")
    return int(value)


def _optional_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or null")
    return value


def _seed(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer or null")
    return value


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) and item for item in value):
        raise ValueError(f"{name} must be a list of non-empty strings")
    return list(value)


def _ids(name: str, value: Any) -> list[str]:
    ids = _strings(name, value)
    bad = [item for item in ids if parse_id(item) is None]
    if bad:
        raise ValueError(f"{name}: not a valid record Id: {bad[0]!r}")
    return ids


def _optional_text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


_SPECIAL_CHECKS = {
    "random_seed": _seed, "poison_values": _strings, "lock_forever_ids": _ids,
    "storage_full_after": _optional_int, "instance_url": _optional_text,
    "omit_access_token": _flag, "request_error_code": _optional_text,
    "bulk_shuffle_results": _flag,
}
