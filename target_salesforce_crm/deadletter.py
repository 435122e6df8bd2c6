"""The dead-letter file: one JSON line per rejected record, durable before STATE moves on."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import os
import stat
import threading
from typing import IO, Any

from target_salesforce_crm.salesforce.errors import ConfigError

LOGGER = logging.getLogger("target-salesforce-crm")
_MIN_SCRUB_LENGTH = 3


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def scrub(message: str, payload: dict[str, Any]) -> str:
    """Remove profile values that Salesforce echoes in error messages (e.g. STRING_TOO_LONG)."""
    values = [
        value for name, value in payload.items()
        if name not in ("attributes", "id") and isinstance(value, str)
        and len(value) >= _MIN_SCRUB_LENGTH
    ]
    for value in sorted(values, key=len, reverse=True):
        message = message.replace(value, "<value>")
    return message


class DeadLetter:
    """Append-only JSONL writer shared by all sinks and worker threads."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._regular_file = False  # a pipe or /dev/stderr cannot be fsynced
        self._lock = threading.Lock()
        self.count = 0

    def check_writable(self) -> None:
        """Find an unwritable path at start-up, not at the first rejection hours later."""
        if self.path is None:
            return
        directory = os.path.dirname(os.path.abspath(self.path)) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"rejected_records_path: cannot create its folder ({exc.strerror})"
            ) from None
        target = self.path if os.path.exists(self.path) else directory
        if not os.access(target, os.W_OK):
            raise ConfigError(f"rejected_records_path {self.path!r} is not writable")

    def write(
        self,
        *,
        stream: str,
        object_type: str,
        record_id: str | None,
        code: str,
        message: str,
        fields: tuple[str, ...] | list[str],
        origin: str,
        record: dict[str, Any],
    ) -> None:
        entry = {
            "stream": stream,
            "object": object_type,
            "id": record_id,
            "error_code": code,
            "message": message,
            "fields": list(fields),
            "origin": origin,
            "rejected_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "record": record,
        }
        line = json.dumps(entry, default=_json_default, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, but JSON's \uXXXX holds it
            line = json.dumps(entry, default=_json_default)
        with self._lock:
            self.count += 1
            if self.path is None:
                return
            if self._file is None:
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._regular_file = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
            self._file.write(line + "\n")

    def sync(self) -> None:
        """Flush and fsync, so a STATE emitted after this never covers a lost rejection."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                if self._regular_file:
                    os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
