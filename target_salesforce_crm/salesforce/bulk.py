"""Bulk API 2.0 ingest (contract §7): create a job, upload its CSV once, close, poll, read results.

Knows nothing of Singer: it takes a ``SalesforceClient`` (whose retry, re-auth and usage policy
every request goes through) and speaks the wire format: CSV with every field quoted, CRLF line
endings, UTF-8 without BOM, and result sets matched back by the caller's key column.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.errors import BulkJobFailed, BulkJobTimedOut, RequestFailed

LOGGER = logging.getLogger("target-salesforce-crm")
CSV_TYPE = "text/csv"
LINE_ENDING = "\r\n"
NULL_CELL = "#N/A"  # how a Bulk CSV cell says "set this field to null"; an empty cell keeps it
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # "upload data that does not exceed 100 MB" per job
MAX_RECORD_CHARS = 400_000  # per record in a Bulk job (contract §7.6)
ROWS_PER_BATCH = 10_000  # Salesforce charges about one DailyBulkApiBatches per 10,000 rows
TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
PROCESSING_STATES = frozenset({"UploadComplete", "InProgress"})
MAX_LIST_PAGES = 10  # of the org's job list, looked through for jobs still processing
FIRST_POLL_S = 1.0  # the wait before a closed job's first poll, growing by POLL_GROWTH
POLL_GROWTH = 1.5
MAX_POLL_S = 30.0
SUCCESSFUL, FAILED, UNPROCESSED = "successfulResults", "failedResults", "unprocessedrecords"
# sf__Error: "CODE:message:Field,Field --" (several errors joined by spaces; fields may be empty)
_ERROR = re.compile(r"(?P<code>[A-Z][A-Z0-9_]*):(?P<message>.*?):(?P<fields>[\w.,]*) ?--",
                    re.DOTALL)


@dataclass(frozen=True)
class JobInfo:
    """What a job answer tells: its id, state and row counters."""

    id: str
    state: str
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    processing_ms: int = 0  # totalProcessingTime

    @classmethod
    def from_answer(cls, body: Any) -> JobInfo:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise BulkJobFailed("Salesforce answered a Bulk job request without a job id")
        return cls(
            id=body["id"], state=str(body.get("state") or ""),
            processed=int(body.get("numberRecordsProcessed") or 0),
            failed=int(body.get("numberRecordsFailed") or 0),
            error_message=body.get("errorMessage") or None,
            processing_ms=int(body.get("totalProcessingTime") or 0),
        )

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


class BulkIngest:
    """Bulk API 2.0 ingest jobs through one ``SalesforceClient`` (each request is one API
    call against the org's daily allocation, counted as kind ``bulk``)."""

    def __init__(
        self, client: SalesforceClient, *, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._sleep = sleep
        self._clock = clock

    def create(self, object_type: str, operation: str,
               external_id_field: str | None = None) -> JobInfo:
        body: dict[str, Any] = {"object": object_type, "operation": operation,
                                "contentType": "CSV", "lineEnding": "CRLF",
                                "columnDelimiter": "COMMA"}
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        return JobInfo.from_answer(self.client.call("POST", "jobs/ingest", body, kind="bulk"))

    def upload(self, job_id: str, data: Path | bytes) -> None:
        """The job's one upload (a second PUT makes Salesforce refuse to close the job)."""
        self.client.call_raw("PUT", f"jobs/ingest/{job_id}/batches", data,
                             content_type=CSV_TYPE, kind="bulk")

    def close(self, job_id: str) -> JobInfo:
        return self._set_state(job_id, "UploadComplete")

    def abort(self, job_id: str) -> JobInfo:
        return self._set_state(job_id, "Aborted")

    def _set_state(self, job_id: str, state: str) -> JobInfo:
        answer = self.client.call("PATCH", f"jobs/ingest/{job_id}", {"state": state}, kind="bulk")
        return JobInfo.from_answer(answer)

    def info(self, job_id: str) -> JobInfo:
        return JobInfo.from_answer(self.client.call("GET", f"jobs/ingest/{job_id}", kind="bulk"))

    def wait(self, job_id: str, timeout_s: float,
             on_poll: Callable[[JobInfo], None] = lambda info: None) -> JobInfo:
        """Poll until the job ends, one GET per interval (``poll_intervals``: 1 s growing to
        30 s); raise ``BulkJobTimedOut`` (the job still running) once ``timeout_s`` has passed."""
        deadline = self._clock() + timeout_s
        for interval in poll_intervals():
            remaining = deadline - self._clock()
            self._sleep(max(0.0, min(interval, remaining)))
            info = self.info(job_id)
            on_poll(info)
            if info.finished:
                return info
            if self._clock() >= deadline:
                raise BulkJobTimedOut(
                    f"Bulk job {job_id} was still {info.state} after {timeout_s:g} s "
                    f"({info.processed} rows processed, {info.failed} failed)"
                )
        raise AssertionError("unreachable: poll_intervals never ends")

    def results(self, job_id: str, kind: str, into: Path
                ) -> tuple[list[str], Iterator[list[str]]]:
        """One result set (``SUCCESSFUL``, ``FAILED`` or ``UNPROCESSED``), downloaded to the
        file ``into`` (a result set is as large as the job) and read from there lazily."""
        self.client.call_raw("GET", f"jobs/ingest/{job_id}/{kind}/", accept=CSV_TYPE,
                             kind="bulk", into=into)
        return read_csv_file(into)

    def processing(self, object_type: str) -> list[str]:
        """Ids of the integration user's ingest jobs on ``object_type`` that the org is still
        processing (``GET jobs/ingest``, one call per page of the list)."""
        identity = self.client.tokens.identity_url or ""
        user = identity.rstrip("/").rsplit("/", 1)[-1][:15] if "/005" in identity else None
        found: list[str] = []
        path = "jobs/ingest"
        for _ in range(MAX_LIST_PAGES):
            answer = self.client.call("GET", path, kind="bulk")
            if not isinstance(answer, dict):
                break
            for job in answer.get("records") or ():
                if isinstance(job, dict) and job.get("state") in PROCESSING_STATES \
                        and str(job.get("object", "")).lower() == object_type.lower() \
                        and (user is None or str(job.get("createdById", ""))[:15] == user):
                    found.append(str(job["id"]))
            next_page = answer.get("nextRecordsUrl")
            if answer.get("done", True) or not isinstance(next_page, str) or not next_page:
                break
            path = next_page
        return found

    def last_completed(self, object_type: str) -> JobInfo | None:
        """The org's most recently finished ``JobComplete`` ingest job on ``object_type`` (by
        ``systemModstamp``, in the first page of ``GET jobs/ingest``), with its counters from
        ``GET jobs/ingest/{id}`` (the list need not carry them): at most two calls."""
        answer = self.client.call("GET", "jobs/ingest", kind="bulk")
        records = answer.get("records") if isinstance(answer, dict) else None
        done = [job for job in records or () if isinstance(job, dict)
                and job.get("state") == "JobComplete" and isinstance(job.get("id"), str)
                and job.get("jobType", "V2Ingest") == "V2Ingest"
                and str(job.get("object", "")).lower() == object_type.lower()]
        if not done:
            return None
        latest = max(done, key=lambda job: str(job.get("systemModstamp") or ""))
        return self.info(latest["id"])

    def remaining_batches(self) -> int | None:
        """``DailyBulkApiBatches.Remaining`` from ``GET /limits/``, or None if not reported."""
        try:
            limits = self.client.call("GET", "limits/", kind="bulk")
        except RequestFailed:
            return None
        batches = limits.get("DailyBulkApiBatches") if isinstance(limits, dict) else None
        remaining = batches.get("Remaining") if isinstance(batches, dict) else None
        return remaining if isinstance(remaining, int) else None


def quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def csv_line(cells: Iterable[str]) -> str:
    """One CSV line as the job expects it: every field quoted, ``"`` doubled, CRLF-terminated;
    commas, quotes, CR and LF inside a field are kept as they are."""
    return ",".join(map(quote, cells)) + LINE_ENDING


def cell_size(cell: str) -> int:
    """Bytes ``cell`` takes inside its quotes (UTF-8, each ``"`` doubled)."""
    size = len(cell) if cell.isascii() else len(cell.encode("utf-8", "surrogatepass"))
    return size + cell.count('"')


def csv_bytes(rows: int, columns: int, content: int, header_content: int) -> int:
    """Exact size of a file of ``rows`` rows of ``columns`` quoted cells (per row: 2 quotes per
    cell, commas between, CRLF) whose cells hold ``content`` bytes, after its header line."""
    per_row_overhead = 3 * columns + 1
    return header_content + per_row_overhead + content + rows * per_row_overhead


def read_csv(data: bytes) -> tuple[list[str], Iterator[list[str]]]:
    """Header and rows of a result set (fields may hold CR, LF, commas and quotes)."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    header = next(reader, [])
    return header, (row for row in reader if row)


def read_csv_file(path: Path) -> tuple[list[str], Iterator[list[str]]]:
    """Like ``read_csv``, from a file read as the rows are consumed."""
    handle = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    header = next(reader, [])

    def rows() -> Iterator[list[str]]:
        with handle:
            yield from (row for row in reader if row)

    return header, rows()


def poll_intervals() -> Iterator[float]:
    """The waits before each poll of a closed job (``BulkIngest.wait``): FIRST_POLL_S, then
    each POLL_GROWTH times the last, up to MAX_POLL_S."""
    interval = FIRST_POLL_S
    while True:
        yield interval
        interval = min(interval * POLL_GROWTH, MAX_POLL_S)


def polls_for(seconds: float, timeout_s: float = math.inf) -> int:
    """How many polls ``BulkIngest.wait`` makes for a job that ends ``seconds`` after it was
    closed (the time requests take aside); a job past ``timeout_s`` gets those until then."""
    end = min(seconds, timeout_s)
    elapsed = 0.0
    for polls, interval in enumerate(poll_intervals(), start=1):
        elapsed += interval
        if elapsed >= end:
            return polls
    raise AssertionError("unreachable: poll_intervals never ends")


def batches_for(rows: int) -> int:
    """About how many DailyBulkApiBatches a job of ``rows`` rows spends."""
    return -(-rows // ROWS_PER_BATCH) if rows else 0


def parse_error(text: str) -> tuple[str, str, tuple[str, ...]]:
    """Status code, message and fields of the first error in an ``sf__Error`` cell."""
    match = _ERROR.match(text.strip())
    if match is None:
        code, _, message = text.strip().partition(":")
        if code and re.fullmatch(r"[A-Z][A-Z0-9_]*", code):
            return code, message.strip(), ()
        return "UNKNOWN_ERROR", text.strip(), ()
    fields = tuple(name for name in match.group("fields").split(",") if name)
    return match.group("code"), match.group("message"), fields
