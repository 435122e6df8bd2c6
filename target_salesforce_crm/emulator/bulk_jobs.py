"""A Bulk API 2.0 ingest job: its settings, state, counters and result sets (contract §7).

States run `Open` -> `UploadComplete` -> `InProgress` -> `JobComplete` | `Failed`,
or `Aborted` from any of the first three. Every field here is guarded by the
owning `BulkIngest`'s lock; the worker thread and the HTTP handlers both write.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from .auth import USER_ID
from .bulk_csv import DELIMITERS, ResultSet, header_line

OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED = "JobComplete", "Failed", "Aborted"
TERMINAL = frozenset({JOB_COMPLETE, FAILED, ABORTED})
SUCCESS_COLUMNS = ("sf__Id", "sf__Created")
FAILURE_COLUMNS = ("sf__Id", "sf__Error")


@dataclass(eq=False)
class Job:
    """One ingest job; `uploads` holds the CSV bodies until the worker has read them."""

    id: str
    object: str
    operation: str
    external_id_field: str | None
    line_ending: str
    column_delimiter: str
    api_version: int
    created: str
    assignment_rule_id: str | None
    rng: random.Random
    state: str = OPEN
    modstamp: str = ""
    uploads: list[bytes] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    batches: int = 0
    error_message: str | None = None
    total_ms: int = 0
    active_ms: int = 0
    successes: ResultSet = field(default_factory=ResultSet)
    failures: ResultSet = field(default_factory=ResultSet)
    unprocessed: ResultSet = field(default_factory=ResultSet)
    abort_requested: bool = False
    deleted: bool = False
    wake: threading.Event = field(default_factory=threading.Event)  # cuts a worker's wait
    settled: threading.Event = field(default_factory=threading.Event)  # results are final

    def info(self, view: str = "full") -> dict[str, Any]:
        """Job info as the create (`create`), close/abort (`patch`) or poll (`full`) answer has it.

        Live create answers omit `jobType` and the counters; close/abort answers
        also omit `lineEnding` and `columnDelimiter`.
        """
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object,
            "createdById": USER_ID, "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created, "state": self.state,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        if self.assignment_rule_id:
            body["assignmentRuleId"] = self.assignment_rule_id
        body.update(concurrencyMode="Parallel", contentType="CSV",
                    apiVersion=float(self.api_version))
        if view == "full":
            body["jobType"] = "V2Ingest"
        if view == "create" or (view == "full" and self.state == OPEN):
            body["contentUrl"] = (f"services/data/v{self.api_version}.0/jobs/ingest/{self.id}"
                                  "/batches")
        if view != "patch":
            body.update(lineEnding=self.line_ending, columnDelimiter=self.column_delimiter)
        if view == "full":
            body.update(numberRecordsProcessed=self.processed,
                        numberRecordsFailed=self.failed, retries=0,
                        totalProcessingTime=self.total_ms,
                        apiActiveProcessingTime=self.active_ms, apexProcessingTime=0)
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body

    def results(self, kind: str) -> bytes:
        """One result set as CSV bytes: `successful`, `failed` or `unprocessed`."""
        delimiter = DELIMITERS[self.column_delimiter]
        if kind == "successful":
            return self.successes.read(header_line(SUCCESS_COLUMNS, self.header, delimiter,
                                                   self.line_ending))
        if kind == "failed":
            return self.failures.read(header_line(FAILURE_COLUMNS, self.header, delimiter,
                                                  self.line_ending))
        return self.unprocessed.read(header_line((), self.header, delimiter, self.line_ending))
