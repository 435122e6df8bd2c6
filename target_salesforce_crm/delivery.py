"""Sending chunks of up to 200 records: a bounded window of concurrent collections calls.

A chunk is "done" only when each of its records has landed or been written to the dead-letter
file. Chunks are numbered as they are submitted; ``Dispatcher.done_through()`` says up to which
number every chunk is done, which is what lets a STATE go out while later calls still run.
``Dispatcher.wait_idle()`` is the barrier at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from target_salesforce_crm.chunks import Chunk, Entry, LedgerPlan
from target_salesforce_crm.deadletter import scrub
from target_salesforce_crm.redirects import CONVERTED_CODE, MERGED_CODE, Redirector
from target_salesforce_crm.rejections import Rejection, Rejector
from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.errors import (
    ApiLimitReached,
    ErrorClass,
    RequestFailed,
    TargetError,
    classify_record_error,
)
from target_salesforce_crm.salesforce.retry import Backoff
from target_salesforce_crm.stats import RunStats

if TYPE_CHECKING:  # only with campaign segments / the sync ledger (runtime.py imports them)
    from target_salesforce_crm.campaign_sync import CampaignSync
    from target_salesforce_crm.ledger_sync import SyncLedger

LOGGER = logging.getLogger("target-salesforce-crm")
LOCK_RETRY_ATTEMPTS = 6


class Deliverer:
    """Sends one chunk and accounts for every record in it (landed, retried or rejected)."""

    def __init__(
        self, client: SalesforceClient, rejector: Rejector, stats: RunStats, *, dry_run: bool,
        redirector: Redirector | None = None, campaigns: CampaignSync | None = None,
        ledger: SyncLedger | None = None,
    ) -> None:
        self.client = client
        self.rejector = rejector
        self.stats = stats
        self.dry_run = dry_run
        self.redirector = redirector
        self.campaigns = campaigns
        self.on_hold: Callable[[Entry], None] = lambda entry: None  # before it is held
        self.ledger = ledger

    def reject(self, entry: Entry, code: str, message: str,
               fields: tuple[str, ...] | list[str]) -> None:
        self.rejector.reject(Rejection(code, message, tuple(fields), origin="salesforce"),
                             entry.key, entry.records)

    def deliver(self, chunk: Chunk) -> None:
        if self.dry_run:
            self.stats.called(chunk.stats)  # the forecast: the calls a real run would make
            for entry in chunk.entries:
                self.stats.would_send(chunk.stats, _body(entry, chunk.plan), chunk.segment_fields)
            return
        if chunk.redirect and self.redirector is not None:
            chunk = self.redirector.resolve(chunk)
            self._plan_redirect(chunk)
        entries = self._skip_known_moves(chunk, chunk.entries)
        self._send(chunk, entries, chunk.plan)

    def _plan_redirect(self, chunk: Chunk) -> None:
        """With the sync ledger, records that moved are diffed once their survivors are known
        (other chunks were diffed by the sink's Sieve); a Bulk API job would plan the same."""
        if self.ledger is None or not chunk.entries:
            return
        planned, unchanged = self.ledger.diff(chunk.object_type, chunk.external_id_field,
                                              chunk.entries)
        if unchanged:
            self.stats.skipped_unchanged(chunk.stats, unchanged)
        chunk.entries = [item.entry for item in planned]
        if planned:
            chunk.plan = self.ledger.pack(chunk.external_id_field, planned)

    def _skip_known_moves(self, chunk: Chunk, entries: list[Entry]) -> list[Entry]:
        """Entries whose record this run already found moved go to the redirector at once,
        without a refused call first."""
        redirector = self.redirector
        if redirector is None or chunk.external_id_field or not redirector.resolver.remembers():
            return entries
        kept = []
        for entry in entries:
            moved = redirector.resolver.known(chunk.object_type, entry.key)
            if moved is None:
                kept.append(entry)
                continue
            code = MERGED_CODE if moved[0] == chunk.object_type else CONVERTED_CODE
            if redirector.wants(code, chunk, entry):
                self._hold(chunk, entry, code, "redirected: the record moved earlier")
            else:
                kept.append(entry)
        return kept

    def _hold(self, chunk: Chunk, entry: Entry, code: str, message: str) -> None:
        """Hand a moved record to the redirector; ``on_hold`` first, so the Dispatcher knows
        that the chunk's records are not all accounted for before a redirect can carry it."""
        assert self.redirector is not None
        self.on_hold(entry)
        self.redirector.hold(chunk, entry, code, message)

    def _call(self, chunk: Chunk, entries: list[Entry], plan: LedgerPlan | None
              ) -> list[dict[str, Any]]:
        payloads = ([e.payload for e in entries] if plan is None
                    else [plan.bodies[e.key] for e in entries])
        self.stats.called(chunk.stats)
        if chunk.external_id_field:
            return self.client.collections_upsert(
                chunk.object_type, chunk.external_id_field, payloads
            )
        return self.client.collections_update(payloads)

    def _send(self, chunk: Chunk, entries: list[Entry], plan: LedgerPlan | None) -> None:
        backoff = Backoff(attempts=LOCK_RETRY_ATTEMPTS)
        while entries:
            try:
                results = self._call(chunk, entries, plan)
            except RequestFailed as exc:
                if not exc.is_data_error:
                    # Salesforce may echo a value in the message: scrub before it is logged
                    raise RequestFailed(exc.status, exc.error_code, _scrub_all(str(exc), entries)
                                        ) from None
                self._isolate(chunk, entries, exc, plan)
                return
            if not isinstance(results, list) or len(results) != len(entries):
                raise TargetError(
                    f"Salesforce returned {len(results) if isinstance(results, list) else 'no'} "
                    f"results for {len(entries)} {chunk.object_type} records; stopping so that "
                    "no record is assumed written"
                )
            locked = []
            landed = []
            landed_entries: list[Entry] = []
            members: list[tuple[Entry, str]] = []
            for entry, result in zip(entries, results, strict=True):
                if result.get("success"):  # _body inline: it runs per record
                    landed.append((entry.payload if plan is None else plan.bodies[entry.key],
                                   bool(result.get("created"))))
                    landed_entries.append(entry)
                    memberships = (entry.memberships if plan is None
                                   else plan.memberships[entry.key])
                    if memberships:
                        syncing = entry if memberships is entry.memberships else (
                            dataclasses.replace(entry, memberships=memberships))  # changed ones
                        members.append((syncing, str(result.get("id") or entry.key)))
                    continue
                error = (result.get("errors") or [{}])[0]
                code = str(error.get("statusCode") or "UNKNOWN_ERROR")
                if self.redirector is not None and self.redirector.wants(code, chunk, entry):
                    self._hold(chunk, entry, code, str(error.get("message") or code))
                    continue
                error_class = classify_record_error(code)
                if error_class is ErrorClass.TRANSIENT:
                    locked.append(entry)
                    continue
                if error_class is ErrorClass.QUOTA:  # landed, not recorded: sent again next run
                    self.stats.landed(chunk.stats, landed, chunk.segment_fields)
                    raise ApiLimitReached(
                        f"Salesforce answered {code} for {chunk.object_type}: the org's data "
                        "storage is full; free storage, then re-run to resume"
                    )
                self.reject(entry, code, scrub(str(error.get("message") or ""), entry.payload),
                            error.get("fields") or [])
            self.stats.landed(chunk.stats, landed, chunk.segment_fields)
            record = functools.partial(self._record, chunk, plan, landed_entries)
            if members and self.campaigns is not None:
                self.campaigns.sync(chunk, members, then=record)  # maybe once pooled writes land
            else:
                record(set())
            if locked and not backoff.sleep():
                for entry in locked:
                    self.reject(entry, "UNABLE_TO_LOCK_ROW",
                                f"record still locked after {LOCK_RETRY_ATTEMPTS} retries", [])
                return
            if locked:
                self.stats.retried(chunk.stats, len(locked))
            entries = locked

    def _record(self, chunk: Chunk, plan: LedgerPlan | None, landed: list[Entry],
                failed: set[str]) -> None:
        """With the sync ledger, record one call's landed entries (one transaction), but not
        those whose membership write failed (``failed``: their keys)."""
        if self.ledger is None:
            return
        recorded = [entry for entry in landed if entry.key not in failed]
        if plan is not None:
            self.ledger.record(plan, [entry.key for entry in recorded])
        else:  # sent whole (the Bulk path's collections calls): all of it landed
            self.ledger.record_landed(chunk.object_type, chunk.external_id_field, recorded)

    def _isolate(self, chunk: Chunk, entries: list[Entry], exc: RequestFailed,
                 plan: LedgerPlan | None) -> None:
        """A request-level data error: split until the culprit record is alone, then reject it."""
        if len(entries) == 1:
            entry = entries[0]
            self.reject(entry, exc.error_code or "REQUEST_FAILED", scrub(str(exc), entry.payload),
                        [])
            return
        middle = len(entries) // 2
        LOGGER.info("request-level %s on a %d-record call; splitting to isolate the record",
                    exc.error_code, len(entries))
        self._send(chunk, entries[:middle], plan)
        self._send(chunk, entries[middle:], plan)


def _count_down(counts: dict[Any, int], keys: Iterable[Any]) -> None:
    """One less of each key; a key at zero leaves ``counts``."""
    for key in keys:
        remaining = counts[key] - 1
        if remaining:
            counts[key] = remaining
        else:
            del counts[key]


def _nothing() -> None:
    """Releases nothing: see ``Dispatcher.defer``."""


def _body(entry: Entry, plan: LedgerPlan | None) -> dict[str, Any]:
    """What the call carries for ``entry``: with the ledger, its changed fields only."""
    return entry.payload if plan is None else plan.bodies[entry.key]


def _scrub_all(message: str, entries: list[Entry]) -> str:
    for entry in entries:
        message = scrub(message, entry.payload)
    return message


class Dispatcher:
    """At most ``limit`` calls running and as many chunks ready behind them, so a freed slot is
    refilled at once; chunks sharing a record key never overlap (the later one waits).

    Chunks are numbered as submitted. Chunk n is done when its call ended without a failure,
    each entry it handed to the redirector (``held``) went out again in a redirect chunk that
    is done too, and the follow-up writes it pooled (``defer``) were made; ``done_through`` is
    the prefix of done chunks that STATE relies on. ``on_idle`` writes what is pooled: the
    barrier calls it, and so does a chunk that must wait for a pooled chunk's keys."""

    def __init__(self, max_concurrency: int, deliver: Callable[[Chunk], None]) -> None:
        self._deliver = deliver
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="sf-call")
        self._cond = threading.Condition()
        self.limit = max_concurrency
        self._capacity = 2 * max_concurrency
        self._submitted = 0
        self._running = 0
        self._keys: dict[tuple[str, str], int] = {}
        self._failure: BaseException | None = None
        self.last_number = 0  # the number of the latest chunk submitted (1, 2, ...)
        self.on_submit: Callable[[], None] = lambda: None  # in the submitting thread
        self._unfinished: set[int] = set()  # queued, running, failed or skipped
        self._unresolved: dict[int, int] = {}  # chunk → its held entries not yet done
        self._held: dict[int, tuple[Entry, frozenset[int]]] = {}  # id(entry) → its chunks
        self._current = threading.local()  # the chunk a worker delivers, and its origins
        self.on_idle: Callable[[], None] = lambda: None  # write what deferred chunks wait for
        self._deferred: dict[int, int] = {}  # chunk → its pooled writes not yet made
        self._parked: dict[int, tuple[list[tuple[str, str]], list[int]]] = {}  # keys, carried

    def submit(self, chunk: Chunk) -> None:
        keys = chunk.keys
        with self._cond:
            flushed = False
            while True:
                self._raise_failure()
                clash = any(k in self._keys for k in keys)
                if self._submitted < self._capacity and not clash:
                    break
                if clash and self._parked and not flushed:  # the keys may wait on a pool
                    flushed = True
                    self._cond.release()
                    try:
                        self.on_idle()
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait()
                flushed = False
            self._submitted += 1
            self.last_number += 1
            number = self.last_number
            self._unfinished.add(number)
            carried: list[int] = []  # a redirect chunk: the chunks whose held entries it carries
            if self._held:  # none held, the usual case: no look-up per entry
                for entry in chunk.entries:
                    found = self._held.pop(id(entry), None)
                    if found is not None:
                        carried.extend(found[1])
            for key in keys:
                self._keys[key] = self._keys.get(key, 0) + 1
        origins = frozenset(carried) or frozenset((number,))
        self._pool.submit(self._run, chunk, keys, number, origins, carried)
        self.on_submit()

    def reserve(self) -> int:
        """A chunk number for work done outside the pool (a Bulk job): not done, so no STATE
        past it goes out, until ``release``."""
        with self._cond:
            self.last_number += 1
            number = self.last_number
            self._unfinished.add(number)
        self.on_submit()
        return number

    def release(self, number: int) -> None:
        with self._cond:
            self._unfinished.discard(number)
            self._cond.notify_all()

    def defer(self) -> Callable[[], None]:
        """Called by the worker delivering a chunk: the chunk stays open (its number not done,
        its keys taken) until the returned call, made when the pooled writes are done."""
        number = getattr(self._current, "number", None)
        if number is None:  # not in a dispatched chunk (a Bulk job): its owner flushes
            return _nothing
        with self._cond:
            self._deferred[number] = self._deferred.get(number, 0) + 1
        return lambda: self._settle(number)

    def _settle(self, number: int) -> None:
        with self._cond:
            remaining = self._deferred[number] - 1
            if remaining:
                self._deferred[number] = remaining
                return
            del self._deferred[number]
            parked = self._parked.pop(number, None)
            if parked is not None:
                self._finish(number, *parked)
            self._cond.notify_all()

    def held(self, entry: Entry) -> None:
        """Called by the worker delivering a chunk (``Deliverer.on_hold``) just before it
        hands ``entry`` to the redirector."""
        origins: frozenset[int] = self._current.origins
        with self._cond:
            self._held[id(entry)] = (entry, origins)
            for origin in origins:
                self._unresolved[origin] = self._unresolved.get(origin, 0) + 1

    def _run(self, chunk: Chunk, keys: list[tuple[str, str]], number: int,
             origins: frozenset[int], carried: list[int]) -> None:
        done = False
        try:
            with self._cond:
                while self._running >= self.limit:
                    self._cond.wait()
                self._running += 1
                failed = self._failure is not None
            if not failed:  # after a fatal error nothing more is sent; a re-run resumes
                self._current.origins = origins
                self._current.number = number
                self._deliver(chunk)
                done = True
        except BaseException as exc:
            with self._cond:
                if self._failure is None:
                    self._failure = exc
        finally:
            self._current.number = None
            with self._cond:
                self._running -= 1
                self._submitted -= 1
                if done and number in self._deferred:
                    self._parked[number] = (keys, carried)
                elif done:
                    self._finish(number, keys, carried)
                else:
                    self._release(keys)
                self._cond.notify_all()

    def _finish(self, number: int, keys: list[tuple[str, str]], carried: list[int]) -> None:
        """Chunk ``number`` is done (under the lock)."""
        self._unfinished.discard(number)
        _count_down(self._unresolved, carried)
        self._release(keys)

    def _release(self, keys: list[tuple[str, str]]) -> None:
        _count_down(self._keys, keys)

    def done_through(self) -> int:
        """The highest n such that chunks 1..n are all done (a failed or skipped chunk is
        never done, so nothing after it counts either)."""
        with self._cond:
            open_numbers = self._unfinished.union(self._unresolved)
            return min(open_numbers) - 1 if open_numbers else self.last_number

    def in_flight(self, object_type: str, keys: list[str]) -> set[str]:
        """Those of ``keys`` in a chunk submitted and not yet done (its ledger entry may be
        stale until it is)."""
        with self._cond:
            return {key for key in keys if (object_type, key) in self._keys}

    def wait_idle(self, *, raise_failure: bool = True) -> None:
        """Block until nothing is queued or running, then write what is pooled (``on_idle``,
        unless a chunk failed: then nothing more is sent); re-raise the first failure of any
        chunk. With ``raise_failure`` False (counting at a stop) nothing pooled is written."""
        with self._cond:
            while self._submitted:
                self._cond.wait()
            if not raise_failure:
                return
            self._raise_failure()
        self.on_idle()

    def lower_concurrency(self) -> None:
        with self._cond:
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                LOGGER.warning(
                    "Salesforce reported too many concurrent long requests; "
                    "lowering concurrency to %d", self.limit,
                )

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
