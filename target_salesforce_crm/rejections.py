"""One road for a rejected record, whoever rejected it: dead-letter file, counters, log.

Client-side rejections (mapping, Id checks, schema) and Salesforce's per-record errors both end
here, so every rejected record is written, counted and logged the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.salesforce.ids import is_salesforce_id
from target_salesforce_crm.stats import RunStats, StreamStats

LOGGER = logging.getLogger("target-salesforce-crm")
LOGGED_REJECTIONS = 50  # one warning line each; after that, a count every 1,000


@dataclass(frozen=True)
class Rejection:
    """Why a record was not written: error code, message (no profile values), fields, and who
    decided (``client`` before any API call, ``salesforce`` from a result)."""

    code: str
    message: str
    fields: tuple[str, ...] = ()
    origin: str = "client"


class RecordRejected(Exception):
    """Raised by mapping for a record that cannot be sent."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True)
class Source:
    """Where rejected records came from: their stream, its counters and the object written."""

    stream: str
    object_type: str
    stats: StreamStats


class Rejector:
    """Sends rejected records to the dead-letter file, the counters and the log."""

    def __init__(self, dead_letter: DeadLetter, stats: RunStats) -> None:
        self.dead_letter = dead_letter
        self.stats = stats
        self._logged = 0
        self._lock = threading.Lock()

    def reject(self, rejection: Rejection, key: str | None,
               records: Iterable[tuple[Source, dict[str, Any]]]) -> None:
        object_type = ""
        stream = ""
        for source, record in records:
            object_type, stream = source.object_type, source.stream
            self.dead_letter.write(
                stream=source.stream, object_type=source.object_type, record_id=key or None,
                code=rejection.code, message=rejection.message, fields=rejection.fields,
                origin=rejection.origin, record=record,
            )
            self.stats.rejected(source.stats, rejection.code)
        with self._lock:
            self._logged += 1
            count = self._logged
        if count <= LOGGED_REJECTIONS:
            # only a checked Salesforce Id is logged: an external id or a malformed Id may
            # be profile data (the dead-letter file, the user's own, keeps it)
            shown = key if key and is_salesforce_id(key, object_type) else "(see file)"
            LOGGER.warning("rejected %s %s in stream %s: %s %s", object_type, shown, stream,
                           rejection.code, list(rejection.fields))
        elif count % 1000 == 0:
            LOGGER.warning("%d records rejected so far (see the dead-letter file)", count)
