"""Accounting for one Bulk API 2.0 job's results: every row it carried, matched back by key.

Landed rows are counted (created vs updated, from ``sf__Created``) and their campaign
memberships written; failed rows go where a collections result would send them (followed to a
converted or surviving record, or dead-lettered with ``sf__Error`` split into code, message and
fields); locked, unprocessed and unreported rows are handed back to be sent again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.deadletter import scrub
from target_salesforce_crm.delivery import Deliverer
from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.rejections import Rejection, Rejector, Source
from target_salesforce_crm.salesforce.bulk import (
    FAILED,
    SUCCESSFUL,
    UNPROCESSED,
    BulkIngest,
    JobInfo,
    parse_error,
)
from target_salesforce_crm.salesforce.campaigns import IDS_PER_QUERY
from target_salesforce_crm.salesforce.errors import (
    ApiLimitReached,
    ErrorClass,
    classify_record_error,
)
from target_salesforce_crm.salesforce.ids import normalize_id
from target_salesforce_crm.spool import Spool, SpooledEntry
from target_salesforce_crm.stats import RunStats

_MATCH_BATCH = 500
LOGGER = logging.getLogger("target-salesforce-crm")


@dataclass
class Lane:
    """One stream: its transport and how many records it had to write in this run."""

    source: Source
    segment_fields: tuple[str, ...]
    bulk: bool
    to_write: int = 0


@dataclass
class ObjectPlan:
    """One object: how its jobs are created and how a result row finds its spooled entry."""

    object_type: str
    operation: str
    external_id_field: str | None
    key_of: Callable[[str], str]
    spool: Spool | None = None
    reservation: int | None = None  # the Dispatcher number that holds STATE until it is run
    flushes_waited: int = 0  # a steady stream's partial flushes since the spool last ran
    lanes: list[Lane] = field(default_factory=list)

    @property
    def key_column(self) -> str:
        return self.external_id_field or "Id"


class JobResults:
    """Reads one finished job's three result sets and accounts for each row."""

    def __init__(self, plan: ObjectPlan, lanes: dict[str, Lane], bulk: BulkIngest,
                 stats: RunStats, rejector: Rejector, deliverer: Deliverer | None,
                 workdir: str) -> None:
        self.plan = plan
        self.lanes = lanes
        self.bulk = bulk
        self.stats = stats
        self.rejector = rejector
        self.deliverer = deliverer
        self.workdir = workdir
        self._ledger = deliverer.ledger if deliverer else None
        self._campaigns = deliverer.campaigns if deliverer else None
        self._members: list[tuple[Entry, str]] = []  # landed, memberships not yet synced

    @property
    def spool(self) -> Spool:
        assert self.plan.spool is not None
        return self.plan.spool

    def account(self, info: JobInfo, streams: set[str]) -> list[SpooledEntry]:
        """Match each result row to its spooled entry by key, never by position; returns the
        entries to send again (locked, unprocessed, or in no result set)."""
        plan = self.plan
        retry: list[SpooledEntry] = []
        storage_full = False
        for found in self._matched(info.id, SUCCESSFUL):
            self._landed(found)
        self._sync_members()
        redirector = self.deliverer.redirector if self.deliverer else None
        for found in self._matched(info.id, FAILED):
            for spooled, row in found:
                code, message, fields = parse_error(row[1])
                entry = self.entry(spooled)
                chunk = self.chunk(self.lanes[spooled.stream], [entry])
                if redirector is not None and redirector.wants(code, chunk, entry):
                    redirector.hold(chunk, entry, code, message)  # followed, as collections do
                    continue
                error_class = classify_record_error(code)
                if error_class is ErrorClass.TRANSIENT:
                    retry.append(spooled)
                    continue
                storage_full = storage_full or error_class is ErrorClass.QUOTA
                self.rejector.reject(
                    Rejection(code, scrub(message, spooled.payload), fields, origin="salesforce"),
                    spooled.key, entry.records)
        for found in self._matched(info.id, UNPROCESSED):
            retry.extend(spooled for spooled, _ in found)
        unreported = list(self.spool.take(streams))
        if unreported:
            LOGGER.warning("Bulk job %s: %d rows are in no result set; they are sent again "
                           "through collections", info.id, len(unreported))
        if storage_full:
            raise ApiLimitReached(f"Salesforce answered STORAGE_LIMIT_EXCEEDED in Bulk job "
                                  f"{info.id} ({plan.object_type}): the org's data storage is "
                                  "full; free storage, then re-run to resume")
        return retry + unreported

    def _landed(self, found: list[tuple[SpooledEntry, list[str]]]) -> None:
        """Count landed rows (``sf__Created`` says created or updated) and queue the campaign
        memberships they carry, with the Id of the record written (``sf__Id``): they are
        synced 200 people at a time (one query each), and recorded in the sync ledger once
        their memberships are written."""
        by_stream: dict[str, list[tuple[SpooledEntry, list[str]]]] = {}
        for spooled, row in found:
            by_stream.setdefault(spooled.stream, []).append((spooled, row))
        for stream, rows in by_stream.items():
            lane = self.lanes[stream]
            self.stats.landed(lane.source.stats,
                              [(spooled.payload, row[1] == "true") for spooled, row in rows],
                              lane.segment_fields)
        whole: list[Entry] = []  # landed with nothing more to write
        for spooled, row in found:
            if self._campaigns is not None and spooled.memberships:
                self._members.append((self.entry(spooled), row[0] or spooled.key))
            elif self._ledger is not None:
                whole.append(self.entry(spooled))
        self._record(whole, set())
        while len(self._members) >= IDS_PER_QUERY:
            self._sync_members(IDS_PER_QUERY)

    def _sync_members(self, count: int | None = None) -> None:
        """Sync the memberships of the first ``count`` (or all) landed rows queued."""
        members = self._members[:count]
        del self._members[:count]
        if self._campaigns is None or not members:
            return
        entries = [entry for entry, _ in members]
        lane = next(iter(self.lanes.values()))  # the object's lanes share its object type
        self._campaigns.sync(self.chunk(lane, entries), members,
                       then=functools.partial(self._record, entries))

    def _record(self, entries: list[Entry], failed: set[str]) -> None:
        """skip_unchanged: the rows successfulResults confirmed (and their memberships)."""
        if self._ledger is not None and entries:
            self._ledger.record_landed(self.plan.object_type, self.plan.external_id_field,
                                       [entry for entry in entries if entry.key not in failed])

    def _matched(self, job_id: str, kind: str
                 ) -> Iterable[list[tuple[SpooledEntry, list[str]]]]:
        """Batches of (spooled entry, result row) for one result set; each matched entry leaves
        the spool, so a row reported twice is counted once."""
        path = Path(self.workdir) / f"{job_id}-{kind}.csv"
        header, rows = self.bulk.results(job_id, kind, path)
        key_index = [name.lower() for name in header].index(self.plan.key_column.lower())
        # landed rows need their source records only to report a campaign membership failure
        records = kind != SUCCESSFUL or self._campaigns is not None
        batch: list[list[str]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _MATCH_BATCH:
                yield self._match_batch(batch, key_index, records)
                batch = []
        if batch:
            yield self._match_batch(batch, key_index, records)
        path.unlink(missing_ok=True)

    def _match_batch(self, rows: list[list[str]], key_index: int, records: bool
                     ) -> list[tuple[SpooledEntry, list[str]]]:
        keys = [self.plan.key_of(row[key_index]) for row in rows]
        found = {entry.key: entry for entry in self.spool.remove(keys, records=records)}
        return [(found[key], row) for key, row in zip(keys, rows, strict=True) if key in found]

    def entry(self, spooled: SpooledEntry) -> Entry:
        return entry_of(spooled, self.lanes)

    def chunk(self, lane: Lane, entries: list[Entry]) -> Chunk:
        return chunk_of(self.plan, lane, entries)


def entry_of(spooled: SpooledEntry, lanes: dict[str, Lane]) -> Entry:
    """A spooled entry as the Dispatcher sends it, its records with their streams' sources."""
    return Entry(spooled.key, spooled.payload,
                 [(lanes[stream].source, record) for stream, record in spooled.records],
                 moves=spooled.moves, memberships=spooled.memberships)


def chunk_of(plan: ObjectPlan, lane: Lane, entries: list[Entry]) -> Chunk:
    return Chunk(source=lane.source, segment_fields=lane.segment_fields, entries=entries,
                 external_id_field=plan.external_id_field)


def key_reader(mapper: RecordMapper) -> Callable[[str], str]:
    """A result row's key cell as the mapper keyed the record (18-character Id, or the
    external id, lower-cased when the field is not case-sensitive)."""
    external = mapper.external_id
    if external is not None:
        if external.spec.case_sensitive:
            return lambda cell: cell
        return str.lower
    object_type = mapper.object_type

    def record_id(cell: str) -> str:
        return normalize_id(cell, object_type)[0] or cell

    return record_id
