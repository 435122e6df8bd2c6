"""Bulk API 2.0 ingest endpoints under `/services/data/vXX.X/jobs/ingest` (contract §7).

Create a job, upload its CSV once, close or abort it, poll it, list or delete
jobs, and read the three result sets. The routes sit behind the same bearer
check, `Sforce-Limit-Info` and API-call counting as the REST API (each request
is one call); the processing runs in `bulk_worker`. Where the contract leaves
a refusal's status or code open, the choice is marked [I] below.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

from .bulk_csv import DELIMITERS, LINE_ENDINGS, MAX_UPLOAD_BYTES
from .bulk_jobs import ABORTED, IN_PROGRESS, OPEN, TERMINAL, UPLOAD_COMPLETE, Job
from .bulk_rows import DELETES
from .bulk_worker import run
from .httpd import JSON_TYPE
from .ids import make_id, parse_id
from .org import Org, timestamp
from .prepare import RequestError, loads, not_found

BULK_MIN_VERSION = 41
JOB_KEY_PREFIX = "750"
OPERATIONS = ("insert", "update", "upsert", *DELETES)
STAT_NAMES = ("calls", "jobs_created", "uploads", "upload_bytes", "closes", "aborts", "polls",
              "lists", "result_reads", "deletes", "batches", "rows_processed", "rows_failed",
              "rows_unprocessed", "jobs_completed", "jobs_failed")
_CREATE_KEYS = frozenset({"object", "operation", "externalIdFieldName", "contentType",
                          "lineEnding", "columnDelimiter", "assignmentRuleId"})
_RESULT_SETS = {"successfulresults": "successful", "failedresults": "failed",
                "unprocessedrecords": "unprocessed"}
_RESULTS_WAIT_S = 60.0  # an aborted job's worker finishes its batch before results are final
Reply = tuple[int, bytes, str]


def _json(status: int, payload: Any) -> Reply:
    return status, json.dumps(payload).encode(), JSON_TYPE


def _not_allowed(method: str, allowed: str) -> RequestError:
    return RequestError(405, "METHOD_NOT_ALLOWED",
                        f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


def _wrong_state(job: Job, action: str) -> RequestError:
    # [I] code named after the Bulk API's InvalidJobState; status 400
    return RequestError(400, "INVALIDJOBSTATE", f"Job {job.id} cannot {action} in state "
                                                f"{job.state}")


def _enum(request: dict[str, Any], key: str, allowed: Any, default: str | None) -> str:
    value = request.get(key, default)
    if value is None:
        raise RequestError(400, "INVALIDJOB", f"InvalidJob : {key} is required")
    if value not in allowed:
        raise RequestError(400, "JSON_PARSER_ERROR",
                           f"Cannot deserialize value of {key} from String \"{value}\": not "
                           f"one of [{', '.join(allowed)}]")
    return str(value)


class BulkIngest:
    """The org's ingest jobs, their worker threads and the bulk call counters."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}  # by 15-character key
        self.threads: list[threading.Thread] = []
        self.counts: Counter[str] = Counter()
        self.stopping = False
        self._serial = 0

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {name: self.counts[name] for name in STAT_NAMES}

    def stop(self) -> None:
        """Cut every worker's wait short; a job's results stop where its worker was."""
        with self.lock:
            self.stopping = True
            threads = list(self.threads)
            for job in self.jobs.values():
                job.wake.set()
        for thread in threads:
            thread.join(timeout=5)
        with self.lock:
            self.stopping = False  # the emulator may be started again

    # --- routing ---------------------------------------------------------------------------

    def handle(self, method: str, version: int, segments: list[str], body: bytes,
               content_type: str) -> Reply:
        """Answer one request; `segments` are the path parts after `jobs/ingest`."""
        if version < BULK_MIN_VERSION:
            raise not_found()
        with self.lock:
            self.counts["calls"] += 1
        if not segments:
            if method == "POST":
                return self._create(version, body)
            if method in ("GET", "HEAD"):
                return self._list()
            raise _not_allowed(method, "GET,HEAD,POST")
        job = self._job(segments[0])
        if len(segments) == 1:
            if method in ("GET", "HEAD"):
                return self._poll(job)
            if method == "PATCH":
                return self._patch(job, body)
            if method == "DELETE":
                return self._delete(job)
            raise _not_allowed(method, "DELETE,GET,HEAD,PATCH")
        if len(segments) == 2 and segments[1] == "batches":
            if method != "PUT":
                raise _not_allowed(method, "PUT")
            return self._upload(job, body, content_type)
        kind = _RESULT_SETS.get(segments[1].lower()) if len(segments) == 2 else None
        if kind is None:
            raise not_found()
        if method not in ("GET", "HEAD"):
            raise _not_allowed(method, "GET,HEAD")
        return self._results(job, kind)

    def _job(self, text: str) -> Job:
        key = parse_id(text)
        with self.lock:
            job = self.jobs.get(key) if key else None
        if job is None:
            raise not_found()
        return job

    # --- the endpoints ---------------------------------------------------------------------

    def _create(self, version: int, body: bytes) -> Reply:
        request = loads(body)
        if not isinstance(request, dict):
            raise RequestError(400, "JSON_PARSER_ERROR",
                               "Cannot deserialize instance of JobInfo from a non-object")
        unknown = sorted(set(request) - _CREATE_KEYS)
        if unknown:
            raise RequestError(400, "JSON_PARSER_ERROR", f'Unrecognized field "{unknown[0]}"')
        object_name = request.get("object")
        if not isinstance(object_name, str) or not object_name:
            raise RequestError(400, "INVALIDJOB", "InvalidJob : object is required")
        schema = self.org.schemas_lower.get(object_name.lower())
        if schema is None:
            raise RequestError(400, "INVALIDENTITY",
                               f"Entity '{object_name}' is not supported by the Bulk API.")
        operation = _enum(request, "operation", OPERATIONS, None)
        _enum(request, "contentType", ("CSV",), "CSV")
        line_ending = _enum(request, "lineEnding", LINE_ENDINGS, "LF")
        delimiter = _enum(request, "columnDelimiter", DELIMITERS, "COMMA")
        external = None
        if operation == "upsert":
            name = request.get("externalIdFieldName")
            if not name:
                raise RequestError(400, "INVALIDJOB", f"External ID was blank for {schema.name}. "
                                   "An External ID must be specified for upsert.")
            spec = schema.field(name) if isinstance(name, str) else None
            if spec is None or not spec.external_id:
                raise RequestError(400, "INVALIDJOB", f"Field name provided, {name} is not an "
                                   f"External ID or indexed field for {schema.name}")
            external = spec.name
        if self.org.bulk_batches_remaining <= 0:
            # [I] the contract lists LIMIT_EXCEEDED (daily) among observed Bulk codes
            raise RequestError(400, "LIMIT_EXCEEDED", "ExceededQuota : the daily allocation of "
                               "Bulk API batches (DailyBulkApiBatches) is used up")
        with self.org.lock:
            seed = self.org.rng.random()  # the emulator's random seed decides result order
        rule = request.get("assignmentRuleId")
        with self.lock:
            self._serial += 1
            job = Job(id=make_id(JOB_KEY_PREFIX, self._serial), object=schema.name,
                      operation=operation, external_id_field=external, line_ending=line_ending,
                      column_delimiter=delimiter, api_version=version, created=timestamp(),
                      assignment_rule_id=rule if isinstance(rule, str) else None,
                      rng=random.Random(seed))
            self.jobs[job.id[:15]] = job
            self.counts["jobs_created"] += 1
            return _json(200, job.info("create"))

    def _upload(self, job: Job, body: bytes, content_type: str) -> Reply:
        if content_type.split(";", maxsplit=1)[0].strip().lower() != "text/csv":
            # [I] status and code; the documented media type is text/csv
            raise RequestError(415, "UNSUPPORTED_MEDIA_TYPE",
                               "Job data must be sent with Content-Type: text/csv")
        if len(body) > MAX_UPLOAD_BYTES:
            # [I] status and code; the message follows the Bulk API's ClientInputError wording
            raise RequestError(413, "CLIENTINPUTERROR", "Failed to read request. Exceeded max "
                               f"size limit of {MAX_UPLOAD_BYTES} bytes")
        with self.lock:
            if job.state != OPEN:
                raise _wrong_state(job, "accept job data")
            job.uploads.append(body)
            self.counts["uploads"] += 1
            self.counts["upload_bytes"] += len(body)
        return 201, b"", JSON_TYPE

    def _patch(self, job: Job, body: bytes) -> Reply:
        request = loads(body)
        state = request.get("state") if isinstance(request, dict) else None
        with self.lock:
            if state == UPLOAD_COMPLETE:
                if job.state != OPEN:
                    raise _wrong_state(job, "be closed")
                if len(job.uploads) > 1:
                    raise RequestError(400, "INVALIDJOB", f"Found multiple contents for job: "
                                       f"<{job.id}>, please 'Close' / 'Abort' / 'Delete' the "
                                       "current Job then create a new Job and make sure you "
                                       "only do 'PUT' once on a given Job.")
                job.state, job.modstamp = UPLOAD_COMPLETE, timestamp()
                self.counts["closes"] += 1
                self._start(job)
            elif state == ABORTED:
                if job.state in TERMINAL:
                    raise _wrong_state(job, "be aborted")
                was_open = job.state == OPEN
                job.state, job.modstamp = ABORTED, timestamp()
                job.abort_requested = True
                job.wake.set()
                self.counts["aborts"] += 1
                if was_open and job.uploads:
                    self._start(job)  # only to list the uploaded rows as unprocessed
                elif was_open:
                    job.settled.set()
            else:
                raise RequestError(400, "INVALIDJOBSTATE", f"Invalid state for a job update: "
                                   f"{state!r}; use UploadComplete or Aborted")
            return _json(200, job.info("patch"))

    def _start(self, job: Job) -> None:
        """Start the job's worker; call with the lock held."""
        thread = threading.Thread(target=run, args=(self, job), name=f"bulk-{job.id}",
                                  daemon=True)
        self.threads = [alive for alive in self.threads if alive.is_alive()]
        self.threads.append(thread)
        thread.start()

    def _poll(self, job: Job) -> Reply:
        with self.lock:
            self.counts["polls"] += 1
            return _json(200, job.info("full"))

    def _list(self) -> Reply:
        with self.lock:
            self.counts["lists"] += 1
            records = [job.info("full") for job in self.jobs.values()]
        return _json(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def _delete(self, job: Job) -> Reply:
        with self.lock:
            if job.state in (OPEN, IN_PROGRESS):
                raise _wrong_state(job, "be deleted")
            job.deleted = True
            job.wake.set()
            self.jobs.pop(job.id[:15], None)
            self.counts["deletes"] += 1
        return 204, b"", JSON_TYPE

    def _results(self, job: Job, kind: str) -> Reply:
        with self.lock:
            self.counts["result_reads"] += 1
            if job.state not in TERMINAL:
                raise _wrong_state(job, "return results")
        job.settled.wait(_RESULTS_WAIT_S)
        return 200, job.results(kind), "text/csv"
