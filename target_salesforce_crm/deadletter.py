"""The dead-letter file: one JSON line per rejected record, durable before STATE moves on."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import errno
import json
import logging
import os
import stat
import tempfile
import threading
from typing import IO, Any

from target_salesforce_crm.salesforce.errors import TargetError

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


class DeadLetterUnwritable(TargetError):
    """``rejected_records_path`` cannot be written: refused at start-up (a folder, a folder
    that does not let us write), or failing during the run (a full disk). A rejected record
    that cannot be kept stops the run, so that no STATE covers it."""


class DeadLetter:
    """Append-only JSONL writer shared by all sinks and worker threads."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._regular_file = False  # a pipe or /dev/stderr cannot be fsynced
        self._lock = threading.Lock()
        self._broken: DeadLetterUnwritable | None = None
        self.count = 0

    def check_writable(self) -> None:
        """Find an unusable path at start-up, not at the first rejection hours later.

        A regular file is opened for appending (nothing is written); a new file's folder
        must let a file be created there; a pipe or device is only checked for permission
        (opening a pipe would wait for its reader)."""
        if self.path is None:
            return
        path = os.path.abspath(self.path)
        if os.path.isdir(path):
            raise DeadLetterUnwritable(
                f"rejected_records_path {self.path!r} is a folder; give the path of a file "
                f"in it, e.g. {os.path.join(self.path, 'rejected.jsonl')!r}"
            )
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.exists(path):
                with tempfile.TemporaryFile(dir=os.path.dirname(path)):
                    pass
            elif stat.S_ISREG(os.stat(path).st_mode):
                with open(path, "a", encoding="utf-8"):
                    pass
            elif not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        except OSError as exc:
            # makedirs meeting a file where a folder should be says "File exists"
            reason = os.strerror(errno.ENOTDIR) if isinstance(exc, FileExistsError) else (
                exc.strerror or str(exc))
            raise DeadLetterUnwritable(
                f"rejected_records_path {self.path!r} is not writable ({reason})"
            ) from None

    def _failed(self, exc: OSError) -> DeadLetterUnwritable:
        self._broken = DeadLetterUnwritable(
            f"cannot write the dead-letter file {self.path} (rejected_records_path): "
            f"{exc.strerror or exc}; stopping so that no STATE covers a rejected record that "
            "was not kept"
        )
        return self._broken

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
            if self._broken is not None:
                raise self._broken
            try:
                if self._file is None:
                    directory = os.path.dirname(os.path.abspath(self.path))
                    os.makedirs(directory, exist_ok=True)
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                    self._regular_file = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
                self._file.write(line + "\n")
            except OSError as exc:
                raise self._failed(exc) from None

    def sync(self) -> None:
        """Flush and fsync, so a STATE emitted after this never covers a lost rejection."""
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._file is not None:
                try:
                    self._file.flush()
                    if self._regular_file:
                        os.fsync(self._file.fileno())
                except OSError as exc:
                    raise self._failed(exc) from None

    def close(self) -> None:
        """Flush and close; after a write failure (already reported) just let the file go."""
        try:
            if self._broken is None:
                self.sync()
        finally:
            with self._lock:
                if self._file is not None:
                    with contextlib.suppress(OSError):
                        self._file.close()
                    self._file = None
