"""Campaign segments: after a batch of records landed, bring their Campaign Members to the
statuses their profiles carry.

Each batch's existing memberships are read with one query, but the writes they call for are
pooled across batches and go out 200 of a kind per call: when a kind has 200 waiting, and at
every barrier (``flush``: before STATE at the end or on a drain, when input goes quiet, when a
write has waited ``max_age``). A re-run that changes 30 members per chunk thus spends one
write per 200 changed members, not one per chunk.

The Contact/Lead update and the membership writes of a record are both done before the record
counts as delivered: a batch whose writes are pooled holds its chunk open (``defer`` returns
the call that releases it), and ``then`` (the sync ledger's record) runs only once they are
written. A membership write that fails dead-letters the record with the segment named, while
its field update stands.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.rejections import Rejection, Rejector
from target_salesforce_crm.salesforce.campaigns import (
    CREATE,
    RECORDS_PER_CALL,
    REMOVE,
    UPDATE,
    Campaign,
    MembershipWriter,
    MemberWrite,
    write_members,
)
from target_salesforce_crm.salesforce.client import SalesforceClient

KINDS = (CREATE, UPDATE, REMOVE)
COUNTED = {CREATE: "created", UPDATE: "updated", REMOVE: "removed"}


def _released() -> None:
    """``defer`` outside a dispatched chunk: the caller (a Bulk job) flushes before it ends."""


@dataclass
class CampaignCounts:
    """Per campaign segment: members created, updated, removed, and statuses now held."""

    created: int = 0
    updated: int = 0
    removed: int = 0
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "removed": self.removed,
                "statuses": dict(self.statuses)}


@dataclass
class _Batch:
    """One ``sync`` call's pooled writes: when the last is written, ``then`` gets the keys of
    the entries a write failed for, and the chunk is released."""

    then: Callable[[set[str]], None]
    release: Callable[[], None]
    waiting: int
    failed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Pooled:
    write: MemberWrite
    object_type: str
    segment_id: str
    owner: Entry
    batch: _Batch
    since: float


class CampaignSync:
    """Reads the memberships of landed entries per batch, and writes the changes pooled."""

    def __init__(self, client: SalesforceClient, rejector: Rejector, *,
                 campaigns: dict[str, Campaign], status_values: dict[str, str],
                 remove_on_exit: bool) -> None:
        self.client = client
        self.rejector = rejector
        self.campaigns = campaigns  # by segment id, resolved at pre-flight
        self.status_values = status_values
        self.remove_on_exit = remove_on_exit
        self.counts = {segment: CampaignCounts() for segment in campaigns}
        self.calls: Counter = Counter()
        # keeps the chunk being delivered open; the call it returns releases it (Dispatcher.defer)
        self.defer: Callable[[], Callable[[], None]] = lambda: _released
        self._lock = threading.Lock()
        self._pool: dict[str, list[_Pooled]] = {kind: [] for kind in KINDS}

    def sync(self, chunk: Chunk, landed: list[tuple[Entry, str]],
             then: Callable[[set[str]], None]) -> None:
        """``landed``: entries Salesforce confirmed, with the Id of the record written.
        ``then`` gets the keys of entries a membership write failed for (dead-lettered), once
        every write they called for is done: at once, or when their pool is written."""
        wanted: dict[tuple[str, str], str | None] = {}
        owners: dict[tuple[str, str], tuple[Entry, str]] = {}
        for entry, person in landed:
            for segment_id, status in (entry.memberships or {}).items():
                campaign = self.campaigns[segment_id]
                pair = (person, campaign.id)
                removing = status == "exited" and self.remove_on_exit
                wanted[pair] = None if removing else self.status_values.get(status, status)
                owners[pair] = (entry, segment_id)
        if not wanted:
            then(set())
            return
        writer = MembershipWriter(self.client, chunk.object_type)
        existing, queries = writer.existing(list(wanted))
        changes = writer.changes(wanted, existing)
        with self._lock:
            self.calls["membership_queries"] += queries
            for pair in changes.unchanged:
                self.counts[owners[pair][1]].statuses[wanted[pair] or "removed"] += 1
        if not changes.writes:
            then(set())
            return
        batch = _Batch(then, self.defer(), len(changes.writes))
        now = time.monotonic()
        self._add([_Pooled(write, chunk.object_type, owners[write.pair][1],
                           owners[write.pair][0], batch, now) for write in changes.writes])
        self._write(self._take(full_only=True))

    def flush(self, max_age: float | None = None) -> None:
        """Write everything pooled (a barrier), or with ``max_age``, only if the oldest write
        has waited that long."""
        with self._lock:
            oldest = min((pooled[0].since for pooled in self._pool.values() if pooled),
                         default=None)
        if oldest is None or (max_age is not None and time.monotonic() - oldest < max_age):
            return
        while calls := self._take(full_only=False):
            self._write(calls)

    def _add(self, items: list[_Pooled]) -> None:
        with self._lock:
            for item in items:
                self._pool[item.write.kind].append(item)

    def _take(self, *, full_only: bool) -> list[list[_Pooled]]:
        """The calls to make now: every full 200 of a kind, and with ``full_only`` False the
        rest too."""
        calls = []
        with self._lock:
            for kind in KINDS:
                pooled = self._pool[kind]
                cut = len(pooled) if not full_only else (
                    len(pooled) - len(pooled) % RECORDS_PER_CALL)
                for start in range(0, cut, RECORDS_PER_CALL):
                    calls.append(pooled[start:start + RECORDS_PER_CALL])
                del pooled[:cut]
        return calls

    def _write(self, calls: list[list[_Pooled]]) -> None:
        for items in calls:
            kind = items[0].write.kind
            with self._lock:
                self.calls["membership_writes"] += 1
            outcomes = write_members(self.client, kind, [item.write for item in items])
            duplicates = []
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome is None:
                    self._done(item, COUNTED[kind])
                elif kind == CREATE and outcome[0] == "DUPLICATE_VALUE":
                    duplicates.append(item)
                else:
                    self._failed(item, *outcome)
            if duplicates:
                self._resolve_duplicates(duplicates)

    def _resolve_duplicates(self, items: list[_Pooled]) -> None:
        """Creates refused with DUPLICATE_VALUE (someone added the member meanwhile): read those
        members and pool an update where the status differs."""
        updates = []
        for object_type in dict.fromkeys(item.object_type for item in items):
            group = {item.write.pair: item for item in items if item.object_type == object_type}
            writer = MembershipWriter(self.client, object_type)
            existing, queries = writer.existing(list(group))
            with self._lock:
                self.calls["membership_queries"] += queries
            changes = writer.changes({pair: item.write.status for pair, item in group.items()},
                                     existing)
            for pair in changes.unchanged:
                self._done(group[pair], None)
            for write in changes.writes:
                if write.kind == CREATE:  # still not found: nothing to update
                    self._failed(group[write.pair], "DUPLICATE_VALUE", "Already a campaign member.")
                else:
                    updates.append(dataclasses.replace(group[write.pair], write=write))
        self._add(updates)

    def _done(self, item: _Pooled, counted: str | None) -> None:
        write = item.write
        with self._lock:
            counts = self.counts[item.segment_id]
            if counted is not None:
                setattr(counts, counted, getattr(counts, counted) + 1)
            held = write.status or "removed"
            counts.statuses[held] += 1
        self._settle(item)

    def _failed(self, item: _Pooled, code: str, message: str) -> None:
        campaign = self.campaigns[item.segment_id]
        self.rejector.reject(
            Rejection(code, f"membership of segment {item.segment_id} (campaign {campaign.id}) "
                      f"failed: {message}", ("CampaignMember",), origin="salesforce"),
            item.owner.key, item.owner.records)
        with self._lock:
            item.batch.failed.add(item.owner.key)
        self._settle(item)

    def _settle(self, item: _Pooled) -> None:
        batch = item.batch
        with self._lock:
            batch.waiting -= 1
            finished = batch.waiting == 0
        if finished:
            batch.then(batch.failed)
            batch.release()

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "segments": {segment: {"campaign": self.campaigns[segment].id,
                                       **counts.as_dict()}
                             for segment, counts in self.counts.items()},
                "calls": dict(self.calls),
            }
