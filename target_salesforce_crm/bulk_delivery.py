"""The Singer side of Bulk API 2.0: which streams go by Bulk, and accounting for every row.

A stream's chunks (mapped, validated and merged exactly as for collections) go to the
Dispatcher as before until the stream goes by Bulk: always with ``write_api: bulk``; in
``auto`` once it has ``bulk_threshold`` records to write in this run (those its sink holds
unsent count: see ``hold_size``), or earlier when the org's
remaining daily API allowance, after the collections calls its pending records need, could no
longer pay for a job (while it still can).
From then on its chunks are spooled on disk (``spool.py``, one spool per object, merged by key
across streams and across the whole job). When partial chunks go out (idle input, max record
age), at the end, or when the spool reaches 100 MB of CSV, the spool is run as a job. A spool
holds a Dispatcher number (``Dispatcher.reserve``) until its job's results are read
(``bulk_results.py``) and the calls they lead to have landed, so no STATE covering its records
goes out before (at-least-once): successes are counted, failures followed or dead-lettered as
collections results are, and locked, unprocessed or unreported rows sent again through
collections. In ``auto`` a job that the org's remaining Bulk batches cannot
carry goes through collections instead.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

from target_salesforce_crm.bulk_forecast import DryRunForecast, job_reserve
from target_salesforce_crm.bulk_results import (
    JobResults,
    Lane,
    ObjectPlan,
    chunk_of,
    entry_of,
    key_reader,
)
from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.delivery import Deliverer, Dispatcher
from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.rejections import Rejector, Source
from target_salesforce_crm.salesforce.bulk import (
    MAX_RECORD_CHARS,
    MAX_UPLOAD_BYTES,
    BulkIngest,
    JobInfo,
    batches_for,
)
from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.errors import (
    ApiLimitReached,
    BulkJobAborted,
    BulkJobTimedOut,
    RequestFailed,
)
from target_salesforce_crm.settings import BULK_MIN_API_VERSION, Settings
from target_salesforce_crm.spool import Spool, SpooledEntry, bulk_expressible, row_content
from target_salesforce_crm.stats import RunStats

LOGGER = logging.getLogger("target-salesforce-crm")
# auto's hold (``hold_size``): a sink keeps up to bulk_threshold records of a new stream for a
# few seconds (``sinks.HOLD_SECONDS``), so a stream that reaches the threshold sends them in its
# job rather than ~50 collections calls (1,000,000 profiles on a busy box: 74 API calls without
# the hold, 41 with it, see RESULTS.md); above MAX_HELD_RECORDS the memory is not worth it
MAX_HELD_RECORDS = 20_000


class BulkDelivery:
    """Routes chunks to collections or the spool, and runs the spools as Bulk jobs."""

    def __init__(self, settings: Settings, client: SalesforceClient, rejector: Rejector,
                 stats: RunStats, dispatcher: Dispatcher, *, deliverer: Deliverer | None = None,
                 bulk: BulkIngest | None = None, max_job_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.settings = settings
        self.client = client
        self.deliverer = deliverer  # its redirector and campaign sync serve Bulk results too
        self.bulk = bulk or BulkIngest(client)
        self.rejector = rejector
        self.stats = stats
        self.dispatcher = dispatcher
        self.max_job_bytes = max_job_bytes
        self.stop_requested = False
        self._lanes: dict[str, Lane] = {}
        self._plans: dict[str, ObjectPlan] = {}
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._jobs = 0
        self._looked_for_earlier_jobs: set[str] = set()
        self._forecast = DryRunForecast(self.bulk, settings.bulk_job_timeout_s, stats) \
            if settings.dry_run else None

    # ------------------------------------------------------------------ routing

    def register(self, source: Source, mapper: RecordMapper, segment_fields: tuple[str, ...],
                 external_id_field: str | None) -> None:
        lane = self._lanes.get(source.stream)
        if lane is None:  # a new sink after a schema change keeps its stream's lane
            lane = Lane(source, segment_fields, bulk=self.settings.write_api == "bulk")
            self._lanes[source.stream] = lane
        lane.source, lane.segment_fields = source, segment_fields
        plan = self._plans.get(source.object_type)
        if plan is None:
            plan = ObjectPlan(source.object_type, "upsert" if external_id_field else "update",
                              external_id_field, key_reader(mapper))
            self._plans[source.object_type] = plan
        if lane not in plan.lanes:
            plan.lanes.append(lane)
        if lane.bulk:
            source.stats.transport = "bulk"

    def hold_size(self, stream: str) -> int:
        """How many records a stream's sink may hold before sending any (0: none): in auto,
        before anything of the stream was sent, up to bulk_threshold."""
        lane = self._lanes[stream]
        if self.settings.write_api != "auto" or lane.bulk or lane.to_write or \
                float(self.settings.api_version) < BULK_MIN_API_VERSION or \
                self.settings.bulk_threshold > MAX_HELD_RECORDS:
            return 0
        return self.settings.bulk_threshold

    def send(self, chunk: Chunk, waiting: int = 0) -> None:
        """Route one chunk; ``waiting`` is how many more entries the sink holds unsent (they
        count towards bulk_threshold: a stream has them to write too)."""
        lane = self._lanes[chunk.source.stream]
        lane.to_write += len(chunk.entries)
        if not lane.bulk and self._should_switch(lane, len(chunk.entries) + waiting, waiting):
            lane.bulk = True
            lane.source.stats.transport = "bulk"
        plan = self._plans[chunk.object_type]
        if not lane.bulk and not (plan.spool and len(plan.spool)):
            self.dispatcher.submit(chunk)
            return
        self._spool(plan, lane, chunk)

    def spooled(self, object_type: str, keys: list[str]) -> set[str]:
        """Those of ``keys`` waiting in the object's spool (the sync ledger does not trust
        their entries until the job's results are read)."""
        plan = self._plans.get(object_type)
        if plan is None or plan.spool is None:
            return set()
        return plan.spool.keys_in(keys)

    def _should_switch(self, lane: Lane, pending: int, waiting: int) -> bool:
        if self.settings.write_api != "auto" or \
                float(self.settings.api_version) < BULK_MIN_API_VERSION:
            return False
        if lane.to_write + waiting >= self.settings.bulk_threshold:
            LOGGER.info("stream %s has %d records to write in this run (bulk_threshold=%d): "
                        "its records now go through Bulk API 2.0", lane.source.stream,
                        lane.to_write + waiting, self.settings.bulk_threshold)
            return True
        usage = self.client.usage
        if usage.used is None or not usage.max:
            return False
        needed = -(-pending // self.settings.batch_size)
        remaining = int(usage.max * usage.limit_percent / 100.0) - usage.used
        # A sink holds little more than one chunk, so how much of the stream is still to come
        # is unknown: what is kept for a job is what one of bulk_threshold rows (the size auto
        # opens jobs for) costs, with polls to spare (``bulk_forecast.job_reserve``)
        reserve = job_reserve(self.settings.bulk_threshold, self.settings.bulk_job_timeout_s)
        if remaining - needed <= reserve + self.settings.max_concurrency:
            self.dispatcher.wait_idle()  # near the line: count the calls still in flight too
            remaining = int(usage.max * usage.limit_percent / 100.0) - usage.used
        # switch while a job is affordable, once collections would leave too little for one;
        # with less left already, collections land what they can
        if remaining > reserve and remaining - needed <= reserve:
            LOGGER.info("stream %s: %d API calls left within api_usage_limit_percent, %d needed "
                        "by collections now, about %d kept for a Bulk job whatever follows: "
                        "its records now go through Bulk API 2.0", lane.source.stream,
                        remaining, needed, reserve)
            return True
        return False

    def _spool(self, plan: ObjectPlan, lane: Lane, chunk: Chunk) -> None:
        """Spool the chunk's entries, merged with what is spooled for the same keys; an entry
        Bulk cannot express goes through collections (taken out of the spool if it was in)."""
        if plan.spool is None:
            plan.spool = Spool(plan.key_column, self._dir())
        spool = plan.spool
        contents = [row_content(entry.payload) for entry in chunk.entries]
        if len(spool) and spool.csv_bytes_with(contents, (e.payload for e in chunk.entries)) \
                > self.max_job_bytes:
            self._run(plan)
        spooled = spool.get_many([entry.key for entry in chunk.entries])
        keep: list[SpooledEntry] = []
        direct: list[Entry] = []
        for entry, own_content in zip(chunk.entries, contents, strict=True):
            records = [(source.stream, record) for source, record in entry.records]
            payload, content, memberships = entry.payload, own_content, entry.memberships
            old = spooled.get(entry.key)
            if old is not None:
                payload = {**old.payload, **payload}
                records = old.records + records
                content = row_content(payload)
                if old.memberships:
                    memberships = {**old.memberships, **(memberships or {})}
                lane.source.stats.merged += 1
            merged = SpooledEntry(entry.key, payload, records, content, memberships,
                                  max(entry.moves, old.moves if old else 0))
            if (lane.bulk or old is not None) and content <= MAX_RECORD_CHARS \
                    and bulk_expressible(payload):
                keep.append(merged)
            else:
                if old is not None:
                    spool.remove([entry.key])
                direct.append(self._entry(merged))
        spool.put_many(keep)
        if keep and plan.reservation is None:
            plan.reservation = self.dispatcher.reserve()  # what is spooled holds STATE back
        if direct:
            self.dispatcher.submit(self._chunk(plan, lane, direct))

    # ------------------------------------------------------------------ the barrier

    def land(self, every: int | None = None) -> None:
        """Run every spool (before STATE, at the end), or at a steady stream's partial flush
        with ``every``, each spool that has waited that many such flushes: each row landed,
        dead-lettered, or handed to the Dispatcher (the caller then waits for it to be idle)."""
        for plan in self._plans.values():
            if plan.spool is None or not len(plan.spool):
                continue
            plan.flushes_waited += 1
            if every is None or plan.flushes_waited >= every:
                self._run(plan)

    def _run(self, plan: ObjectPlan) -> None:
        """Send the spool and account for every row; only then may a STATE covering them go
        out (the spool's reservation is released after its follow-up calls are done too)."""
        self.dispatcher.wait_idle()  # earlier collections calls land first: later values win
        self._send_spool(plan)
        self.dispatcher.wait_idle()
        redirector = self.deliverer.redirector if self.deliverer else None
        while redirector is not None and (redirects := redirector.ready(flush=True)):
            for redirect in redirects:
                self.dispatcher.submit(redirect)
            self.dispatcher.wait_idle()
        if plan.reservation is not None:
            self.dispatcher.release(plan.reservation)
            plan.reservation = None
        plan.flushes_waited = 0

    def _send_spool(self, plan: ObjectPlan) -> None:
        spool = plan.spool
        assert spool is not None
        streams = {stream for stream, count in spool.streams.items() if count}
        bulk_streams = {stream for stream in streams if self._lanes[stream].bulk}
        self._replay(plan, streams - bulk_streams)
        if not bulk_streams:
            return
        rows = sum(spool.streams[stream] for stream in bulk_streams)
        if self.settings.write_api == "auto":
            remaining = self.bulk.remaining_batches()
            if remaining is not None and remaining < batches_for(rows):
                LOGGER.warning("the org has %d Bulk API batches left today; a job of %d rows "
                               "needs %d: sending them through collections", remaining, rows,
                               batches_for(rows))
                self._replay(plan, bulk_streams)
                return
        if self.stop_requested:
            raise BulkJobAborted(f"stopped by a signal before {rows} spooled {plan.object_type} "
                                 "records were sent; STATE covers only what landed, so a re-run "
                                 "resumes from there")
        self._job(plan, bulk_streams, rows)

    def _replay(self, plan: ObjectPlan, streams: Iterable[str]) -> None:
        """Spooled entries through collections, in chunks of ``batch_size`` per stream."""
        for stream in streams:
            lane = self._lanes[stream]
            batch: list[Entry] = []
            for spooled in plan.spool.take([stream]) if plan.spool else ():
                batch.append(self._entry(spooled))
                if len(batch) == self.settings.batch_size:
                    self.dispatcher.submit(self._chunk(plan, lane, batch))
                    batch = []
            if batch:
                self.dispatcher.submit(self._chunk(plan, lane, batch))

    # ------------------------------------------------------------------ one job

    def _job(self, plan: ObjectPlan, streams: set[str], rows: int) -> None:
        spool = plan.spool
        assert spool is not None
        lead = self._lanes[max(streams, key=lambda stream: spool.streams[stream])]
        stats = lead.source.stats
        if self._forecast is not None:  # a dry run
            for spooled in spool.take(streams):
                lane = self._lanes[spooled.stream]
                self.stats.would_send(lane.source.stats, spooled.payload, lane.segment_fields)
            first = plan.object_type not in self._looked_for_earlier_jobs
            self._looked_for_earlier_jobs.add(plan.object_type)
            self.stats.bulk_job(stats, batches=batches_for(rows), records=rows,
                                calls=self._forecast.job_calls(plan.object_type, rows) + first)
            return
        self._jobs += 1
        path = Path(self._dir()) / f"job-{self._jobs}.csv"
        spool.write_csv(path, streams)
        calls_before = self.client.counts.bulk
        if plan.object_type not in self._looked_for_earlier_jobs:
            self._looked_for_earlier_jobs.add(plan.object_type)
            self._wait_for_earlier_jobs(plan)
        try:
            job = self._submit(plan, path, rows)
        finally:
            path.unlink(missing_ok=True)
        try:
            info = self.bulk.wait(job.id, self.settings.bulk_job_timeout_s,
                                  on_poll=lambda info: _progress(plan, info, rows))
        except BulkJobTimedOut as exc:
            LOGGER.error("%s: aborting it; rows it processed are still counted", exc)
            self.bulk.abort(job.id)
            self._account(plan, streams, self.bulk.info(job.id), resend=False)
            info = self.bulk.info(job.id)
            self.stats.bulk_job(stats, calls=self.client.counts.bulk - calls_before,
                                batches=batches_for(info.processed), records=rows)
            raise BulkJobTimedOut(f"{exc} (bulk_job_timeout_s={self.settings.bulk_job_timeout_s}"
                                  "); the job was aborted and the run stopped; STATE covers "
                                  "only what landed, so a re-run resumes from there") from None
        self._account(plan, streams, info, resend=True)
        self.stats.bulk_job(stats, calls=self.client.counts.bulk - calls_before,
                            batches=batches_for(info.processed), records=rows)

    def _wait_for_earlier_jobs(self, plan: ObjectPlan) -> None:
        """A job that a killed run left processing still writes that run's (older) values of
        the same records: this run's job waits for it, so they cannot land after ours. (Its
        rows are sent again here: no STATE covered them.) One call, before the first job."""
        for job_id in self.bulk.processing(plan.object_type):
            LOGGER.warning("Bulk job %s on %s, left by an earlier run, is still being "
                           "processed: waiting for it to end before this run's job",
                           job_id, plan.object_type)
            try:
                self.bulk.wait(job_id, self.settings.bulk_job_timeout_s)
            except BulkJobTimedOut as exc:
                raise BulkJobTimedOut(f"{exc}; it was left by an earlier run, and this run "
                                      "stopped before sending anything after it (re-run once it "
                                      "has ended)") from None

    def _submit(self, plan: ObjectPlan, path: Path, rows: int) -> JobInfo:
        """Create, upload and close a job; an Open job is aborted on a stop signal or error.
        A close refused (a lost upload answer replayed: two uploads) starts one new job."""
        for attempt in (1, 2):
            job = self._create(plan, rows)
            LOGGER.info("Bulk job %s: %d %s rows (%s), %.1f MB of CSV", job.id, rows,
                        plan.object_type, plan.operation, path.stat().st_size / 1e6)
            try:
                self._check_stop(job, rows)
                self.bulk.upload(job.id, path)
                self._check_stop(job, rows)
                return self.bulk.close(job.id)
            except RequestFailed as exc:
                self._abort_quietly(job)
                if attempt == 2 or exc.status != 400:
                    raise
                LOGGER.warning("Bulk job %s could not be closed (%s); starting it again",
                               job.id, exc.error_code)
            except BaseException:
                self._abort_quietly(job)
                raise
        raise AssertionError("unreachable")

    def _create(self, plan: ObjectPlan, rows: int) -> JobInfo:
        """A new job; the org refusing it for want of Bulk batches is a daily limit (exit 3)."""
        try:
            return self.bulk.create(plan.object_type, plan.operation, plan.external_id_field)
        except RequestFailed as exc:
            if exc.error_code != "LIMIT_EXCEEDED":
                raise
            raise ApiLimitReached(
                f"Salesforce refused a Bulk job for {rows} {plan.object_type} records: {exc} "
                "(write_api=bulk; auto would send them through collections). STATE covers only "
                "what landed, so a re-run once the allocation recovers resumes from there"
            ) from None

    def _check_stop(self, job: JobInfo, rows: int) -> None:
        if self.stop_requested:
            raise BulkJobAborted(f"stopped by a signal while Bulk job {job.id} was open: it was "
                                 f"aborted unsent ({rows} rows); STATE covers only what landed, "
                                 "so a re-run resumes from there")

    def _abort_quietly(self, job: JobInfo) -> None:
        try:
            self.bulk.abort(job.id)
            LOGGER.info("Bulk job %s aborted before it was processed", job.id)
        except Exception as exc:  # an Open job is never processed; it expires on its own
            LOGGER.warning("could not abort Bulk job %s (%s); left Open, it is never "
                           "processed", job.id, type(exc).__name__)

    # ------------------------------------------------------------------ results

    def _account(self, plan: ObjectPlan, streams: set[str], info: JobInfo, *,
                 resend: bool) -> None:
        """Account for the job's rows; locked, unprocessed and unreported ones are sent
        again through collections (unless the run is stopping)."""
        if info.error_message:
            LOGGER.warning("Bulk job %s ended %s: %s", info.id, info.state, info.error_message)
        again = JobResults(plan, self._lanes, self.bulk, self.stats, self.rejector,
                           self.deliverer, self._dir()).account(info, streams)
        if not resend:
            return
        for stream in {spooled.stream for spooled in again}:
            lane = self._lanes[stream]
            mine = [self._entry(spooled) for spooled in again if spooled.stream == stream]
            self.stats.retried(lane.source.stats, len(mine))
            for start in range(0, len(mine), self.settings.batch_size):
                self.dispatcher.submit(
                    self._chunk(plan, lane, mine[start:start + self.settings.batch_size]))

    def _entry(self, spooled: SpooledEntry) -> Entry:
        return entry_of(spooled, self._lanes)

    def _chunk(self, plan: ObjectPlan, lane: Lane, entries: list[Entry]) -> Chunk:
        return chunk_of(plan, lane, entries)

    def _dir(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="target-salesforce-crm-bulk-")
        return self._workdir.name

    def close(self) -> None:
        """Delete the spools (what they held was landed, or is not covered by any STATE)."""
        for plan in self._plans.values():
            if plan.spool is not None:
                plan.spool.close()
                plan.spool = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def _progress(plan: ObjectPlan, info: JobInfo, rows: int) -> None:
    LOGGER.info("Bulk job %s (%s, %d rows): %s, %d processed, %d failed", info.id,
                plan.object_type, rows, info.state, info.processed, info.failed)
