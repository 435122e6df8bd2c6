"""The sync ledger in a run (``skip_unchanged``, ``full_resync``): which entries to send, with
which fields, and recording what landed.

Where the diff happens: in the sink, as each batch of ``batch_size`` entries is cut (``Sieve``):
one ledger query per batch. Unchanged entries are done there (counted, never sent); changed
ones wait in the sieve until a full call's worth has gathered, so 1% of changed records cost
1% of the calls (benchmarks/ledger_run.py, 1,000,000 profiles with every 100th changed: 50 full
calls, where sending each chunk's changes on their own would take 5,000 calls of 2 records),
and a stream with nothing changed costs no collections call at all. The diff costs ~11 us of
CPU per unchanged record, about what sending it costs at 0 ms latency. Each changed entry
carries its changed fields plus ``attributes`` and its key field (95 bytes per record in that
benchmark against 202 for a full update).

Why the ledger is never read behind a write: an entry whose key still has a write not yet
recorded (a chunk in flight, or an entry waiting in a sieve) is not diffed against it. A key
waiting in a sieve is sent first (same-key writes keep input order, across streams too); a key
in flight is sent in full and merged into its entry once recorded, after the earlier write
(the Dispatcher runs same-key chunks in order). After each call the Deliverer hands
``record`` the keys Salesforce confirmed: one transaction per call. A record refused by
Salesforce (or whose campaign membership failed) is not recorded, so it is sent again next
run; one refused before any call never gets that far.

What is compared, per (org, object, record key):

- every mapped and segment field of the payload as it would be sent, each under a fingerprint
  of the config that produced it (object, target field, source path; for a segment field its
  segment id, model, membership path and status translation), so a mapping change re-sends
  just the fields it touches;
- campaign segments, as pseudo-fields ``campaign:<segment id>`` holding the status: a changed
  one is synced, an unchanged one costs no membership query. A record whose memberships changed
  but whose fields did not is sent with its key only (an upsert needs the call to learn the Id).

Keys: the 18-character Id (RecordMapper turns every spelling of an Id into it); for upsert
``<external id field>=<value>``, lower-cased unless the field is case-sensitive, which is
``ledger_keys.external_id_key`` and how RecordMapper merges records. A record that moved
(converted Lead, merged record) is recorded against the survivor's Id: its redirect chunk is
diffed in the Deliverer once the survivors are known. The moved Id gets no entry, so each run
costs it one refused write before the redirect (whose write is skipped when unchanged).

Bulk API 2.0 (``write_api``): the Sieve hands its chunks to the Bulk path's routing like any
chunk, so unchanged records never reach a job; a changed one is spooled whole (its full payload,
not just the changed fields) and ``record_landed`` records the rows successfulResults confirms.
Until then a spooled key counts as in flight for later diffs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from target_salesforce_crm.chunks import Chunk, Entry, LedgerPlan
from target_salesforce_crm.ledger_keys import config_fingerprint, org_id_from_identity_url
from target_salesforce_crm.rejections import Source
from target_salesforce_crm.salesforce.errors import ConfigError, TargetError
from target_salesforce_crm.settings import Settings

if TYPE_CHECKING:
    from target_salesforce_crm.ledger import Changes, Ledger

CAMPAIGN_FIELD = "campaign:"  # prefix of a campaign segment's pseudo-field in the ledger


@dataclass
class Planned:
    """One changed entry: what its call carries, and the diff that knows what to record."""

    entry: Entry
    body: dict[str, Any]
    memberships: dict[str, str] | None
    changes: Changes
    stamp: int | None = None  # its PendingIndex stamp: unsent for STATE until submitted


class SyncLedger:
    """The ledger, the run's org and the fingerprint of each field's config."""

    def __init__(self, ledger: Ledger, settings: Settings,
                 identity_url: Callable[[], str | None]) -> None:
        self.ledger = ledger
        self.full = settings.full_resync
        self.dry_run = settings.dry_run
        self._settings = settings
        self._identity_url = identity_url
        self._org_id: str | None = None
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.recorded = 0

    def org_id(self) -> str:
        """The org of the token (its identity URL), known once the first token arrived."""
        if self._org_id is None:
            url = self._identity_url()
            try:
                self._org_id = org_id_from_identity_url(url or "")
            except ValueError as exc:
                raise TargetError(f"the token response named no org ({exc}); the sync ledger "
                                  "cannot tell which org its entries belong to") from None
        return self._org_id

    def diff(self, object_type: str, external_id_field: str | None, entries: list[Entry],
             in_flight: Collection[str] = ()) -> tuple[list[Planned], int]:
        """The changed entries (with their bodies) and how many were unchanged: one query.

        ``in_flight``: entry keys with a write not yet recorded (sent in full)."""
        key_field = external_id_field or "id"
        prefix = _prefix(external_id_field)
        compared: dict[str, dict[str, Any]] = {}
        for entry in entries:
            values = entry.payload.copy()  # a copy and two deletes: a third of a filtering loop
            del values["attributes"], values[key_field]
            if entry.memberships:
                for segment_id, status in entry.memberships.items():
                    values[CAMPAIGN_FIELD + segment_id] = status
            compared[prefix + entry.key] = values
        fingerprints = self._fingerprints_for(object_type, compared.values())
        stale = {prefix + key for key in in_flight}
        changes = self._guard(lambda: self.ledger.diff(
            self.org_id(), object_type, compared, fingerprints, full=self.full,
            in_flight=stale))
        planned = []
        for entry in entries:
            key = prefix + entry.key
            fields = changes.payloads[key]
            if not fields:
                continue
            if len(fields) == len(compared[key]):  # everything: the payload as it is
                planned.append(Planned(entry, entry.payload, entry.memberships, changes))
                continue
            payload = entry.payload
            body = {"attributes": payload["attributes"], key_field: payload[key_field]}
            statuses: dict[str, str] = {}
            for name, value in fields.items():
                if name.startswith(CAMPAIGN_FIELD):
                    statuses[name[len(CAMPAIGN_FIELD):]] = value
                else:
                    body[name] = value
            planned.append(Planned(entry, body, statuses or None, changes))
        return planned, len(entries) - len(planned)

    @staticmethod
    def pack(external_id_field: str | None, planned: list[Planned]) -> LedgerPlan:
        """One call's plan from changed entries of one or more diffs (one transaction)."""
        prefix = _prefix(external_id_field)
        payloads, hashes = {}, {}
        for item in planned:
            key = prefix + item.entry.key
            payloads[key] = item.changes.payloads[key]
            if key in item.changes.entries:
                hashes[key] = item.changes.entries[key]
        changes = dataclasses.replace(planned[0].changes, payloads=payloads, entries=hashes)
        return LedgerPlan(changes, prefix, {p.entry.key: p.body for p in planned},
                          {p.entry.key: p.memberships for p in planned})

    def record_landed(self, object_type: str, external_id_field: str | None,
                      entries: list[Entry]) -> None:
        """Entries Salesforce confirmed that went out whole, without a plan (Bulk rows from
        successfulResults, the collections calls the Bulk path makes): every field they carried
        is recorded, in one transaction."""
        if not entries or self.dry_run:
            return
        planned, _ = self.diff(object_type, external_id_field, entries,
                               in_flight=[entry.key for entry in entries])
        if planned:
            self.record(self.pack(external_id_field, planned),
                        [item.entry.key for item in planned])

    def record(self, plan: LedgerPlan, landed_keys: Iterable[str]) -> None:
        """Record the entries Salesforce confirmed (entry keys), in one transaction."""
        keys = [plan.prefix + key for key in landed_keys]
        if not keys or self.dry_run:
            return
        count = self._guard(lambda: self.ledger.record(plan.changes, keys))
        with self._lock:
            self.recorded += count

    def report(self) -> dict[str, Any]:
        """The run report's ``ledger`` section."""
        with self._lock:
            recorded = self.recorded
        return {"url": self.ledger.display_url, "full_resync": self.full,
                "entries_recorded": recorded, "warnings": list(self.ledger.warnings)}

    def close(self) -> None:
        self.ledger.close()

    def _fingerprints_for(self, object_type: str,
                          payloads: Iterable[dict[str, Any]]) -> dict[str, str]:
        names: set[str] = set().union(*payloads)
        return {name: self._fingerprint(object_type, name) for name in names}

    def _fingerprint(self, object_type: str, name: str) -> str:
        found = self._fingerprints.get((object_type, name))
        if found is None:
            found = config_fingerprint(*self._config_of(object_type, name))
            self._fingerprints[object_type, name] = found
        return found

    def _config_of(self, object_type: str, name: str) -> tuple[Any, ...]:
        """Everything that decides what lands in field ``name`` of ``object_type``."""
        settings = self._settings
        translation = sorted(settings.segment_status_values.items())
        path = settings.segment_membership_path
        if name.startswith(CAMPAIGN_FIELD):
            segment_id = name[len(CAMPAIGN_FIELD):]
            campaign = next((m.mapping_id for m in settings.campaign_segments
                             if m.segment_id == segment_id), None)
            return (object_type, "campaign", segment_id, campaign, path, translation,
                    settings.campaign_exit)
        lower = name.lower()
        for segment in settings.field_segments:  # a segment field wins over a mapped one
            if segment.mapping_id.lower() == lower:
                translated = None if segment.model == "checkbox" else translation
                return (object_type, lower, "segment", segment.segment_id, segment.model, path,
                        translated)
        for mapping in settings.mappings_for(object_type):
            if mapping.target.lower() == lower:
                return (object_type, lower, "field", mapping.source)
        return (object_type, lower)

    def _guard(self, work: Callable[[], Any]) -> Any:
        """A ledger that failed mid-run (its server gone past the retries) stops the run:
        STATE is emitted only for what was both landed and recorded."""
        from target_salesforce_crm.ledger import LedgerError  # noqa: PLC0415 - see open_ledger

        try:
            return work()
        except LedgerError as exc:
            raise TargetError(str(exc)) from None


class Sieve:
    """One sink's gate to the Dispatcher: diffs each batch the sink cuts, drops the unchanged
    entries, and submits the changed ones in full calls (all of them at ``flush``)."""

    def __init__(self, sync: SyncLedger, source: Source, segment_fields: tuple[str, ...],
                 external_id_field: str | None, batch_size: int, *,
                 submit: Callable[[Chunk], None],
                 in_flight: Callable[[str, list[str]], set[str]],
                 waiting: dict[tuple[str, str], Sieve],
                 park: Callable[[Iterable[int]], None],
                 unpark: Callable[[Iterable[int]], None],
                 on_unchanged: Callable[[int], None]) -> None:
        self.sync = sync
        self.source = source
        self.segment_fields = segment_fields
        self.external_id_field = external_id_field
        self.batch_size = batch_size
        self._submit = submit
        self._in_flight = in_flight
        self._waiting = waiting  # every sieve's waiting keys, by (object, key): one per run
        self._park, self._unpark = park, unpark
        self._on_unchanged = on_unchanged
        self._ready: list[Planned] = []

    @property
    def pending(self) -> bool:
        return bool(self._ready)

    def add(self, entries: list[Entry], stamps: dict[str, int | None]) -> None:
        """A batch the sink cut (``stamps``: each entry's PendingIndex stamp): parked at once,
        so a STATE cannot count it as sent until its call is submitted."""
        object_type = self.source.object_type
        keys = [entry.key for entry in entries]
        own = {key: stamp for key in keys if (stamp := stamps.get(key)) is not None}
        self._park(own.values())
        waiting = self._waiting
        holders = {waiting[object_type, key] for key in keys if (object_type, key) in waiting}
        for holder in holders:
            holder.flush()  # an older write of one of these keys goes first
        planned, unchanged = self.sync.diff(object_type, self.external_id_field, entries,
                                            self._in_flight(object_type, keys))
        if unchanged:
            self._on_unchanged(unchanged)
            changed = {item.entry.key for item in planned}
            self._unpark(stamp for key, stamp in own.items() if key not in changed)  # skipped
        for item in planned:
            item.stamp = own.get(item.entry.key)
            self._waiting[object_type, item.entry.key] = self
        self._ready.extend(planned)
        while len(self._ready) >= self.batch_size:
            self._send(self.batch_size)

    def flush(self) -> None:
        if self._ready:
            self._send(len(self._ready))

    def _send(self, count: int) -> None:
        batch, self._ready = self._ready[:count], self._ready[count:]
        for item in batch:
            del self._waiting[self.source.object_type, item.entry.key]
        # unparked just before the submit numbers the chunk: STATE then waits for that chunk
        self._unpark(item.stamp for item in batch if item.stamp is not None)
        self._submit(Chunk(source=self.source, segment_fields=self.segment_fields,
                           entries=[item.entry for item in batch],
                           external_id_field=self.external_id_field,
                           plan=self.sync.pack(self.external_id_field, batch)))


def _prefix(external_id_field: str | None) -> str:
    return f"{external_id_field}=" if external_id_field else ""


def open_ledger(settings: Settings, identity_url: Callable[[], str | None],
                on_warning: Callable[[str], None]) -> SyncLedger | None:
    """The run's ledger, or None when neither skip_unchanged nor full_resync is on.

    Opened at start-up, before any API call: a ledger that cannot be opened is a config error.
    A dry run opens it read-only (it writes nothing, not even a missing file).
    """
    if not (settings.skip_unchanged or settings.full_resync):
        return None
    # imported here: SQLAlchemy costs every run without a ledger ~0.3 s of start-up
    from target_salesforce_crm.ledger import Ledger, LedgerUnavailable  # noqa: PLC0415

    try:
        ledger = Ledger.open(settings.ledger_url, on_warning=on_warning,
                             read_only=settings.dry_run)
    except LedgerUnavailable as exc:
        raise ConfigError(str(exc)) from None
    return SyncLedger(ledger, settings, identity_url)
