"""The parts one run shares across its sinks: client, describe cache, dispatcher, dead letters."""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.delivery import Deliverer, Dispatcher
from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.paths import Flattening
from target_salesforce_crm.preflight import check_campaigns, check_fields
from target_salesforce_crm.redirects import CONVERTED, MERGED, Redirector
from target_salesforce_crm.rejections import Rejector, Source
from target_salesforce_crm.salesforce.auth import TokenProvider
from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.describe import FieldSpec, field_specs
from target_salesforce_crm.salesforce.moves import MoveResolver
from target_salesforce_crm.salesforce.transport import TIMEOUT, new_session
from target_salesforce_crm.settings import FieldMapping, Settings
from target_salesforce_crm.stats import RunStats, write_report

if TYPE_CHECKING:
    from target_salesforce_crm.bulk_delivery import BulkDelivery
    from target_salesforce_crm.ledger_sync import Sieve, SyncLedger
    from target_salesforce_crm.salesforce.campaigns import Campaign

LOGGER = logging.getLogger("target-salesforce-crm")


class Runtime:
    """The run's services, built once right after the settings are parsed.

    Building them makes no network call: the first token and describe wait for the first
    SCHEMA, so a run with no data touches nothing."""

    def __init__(self, settings: Settings, flattening: Flattening | None = None) -> None:
        """``flattening``: how the SDK flattens records before the sinks see them."""
        self.settings = settings
        self.flattening = flattening
        # a dry run writes nothing, not even the dead-letter file (the report has the counts)
        self.dead_letter = DeadLetter(None if settings.dry_run else settings.rejected_records_path)
        self.dead_letter.check_writable()
        session = new_session(settings.max_concurrency)
        tokens = TokenProvider(settings.login_url, settings.auth_flow, settings.credentials,
                               session, TIMEOUT)
        self.client = SalesforceClient(
            tokens, settings.api_version, session,
            api_usage_limit_percent=settings.api_usage_limit_percent,
        )
        self.stats = RunStats(dry_run=settings.dry_run)
        self.rejector = Rejector(self.dead_letter, self.stats)
        follow = frozenset(
            kind for kind, setting in ((CONVERTED, settings.converted_leads),
                                       (MERGED, settings.merged_records))
            if setting == "follow"
        )
        self.redirector = Redirector(MoveResolver(self.client), self.rejector, self.stats,
                                     follow=follow, batch_size=settings.batch_size)
        # skip_unchanged / full_resync: opened now, so a ledger that cannot be is refused
        # before any API call (ConfigError)
        self.ledger = _open_ledger(settings, lambda: tokens.identity_url)
        if self.ledger is not None:
            self.stats.sections["ledger"] = self.ledger.report
        self.deliverer = Deliverer(
            self.client, self.rejector, self.stats, dry_run=settings.dry_run,
            redirector=self.redirector, ledger=self.ledger,
        )
        self.dispatcher = Dispatcher(settings.max_concurrency, self.deliverer.deliver)
        self.client.on_concurrency_limit = self.dispatcher.lower_concurrency
        self.deliverer.on_hold = self.dispatcher.held
        self.bulk: BulkDelivery | CollectionsOnly = (
            CollectionsOnly(self.dispatcher) if settings.write_api == "collections"
            else _bulk_delivery(settings, self.client, self.rejector, self.stats,
                                self.dispatcher, self.deliverer)
        )
        self.pending = PendingIndex()
        self._waiting: dict[tuple[str, str], Sieve] = {}  # keys diffed, not yet submitted
        self._fields: dict[str, dict[str, FieldSpec]] = {}
        self._lock = threading.Lock()

    def fields_for(self, object_type: str) -> dict[str, FieldSpec]:
        """Describe and pre-flight, on first use, every object the config can write to, so a
        bad config for one object is refused before anything is written to another."""
        with self._lock:
            if not self._fields:
                objects = [self.settings.object_type, *self.settings.stream_object_types.values()]
                describes = {name: self.client.describe(name) for name in dict.fromkeys(objects)}
                planned_campaigns = {}
                if self.settings.provision_segment_fields:
                    from target_salesforce_crm.provision import (  # noqa: PLC0415 - see _bulk_delivery
                        SegmentProvisioning,
                    )

                    provisioning = SegmentProvisioning(self.client, self.settings,
                                                       self.client.tokens.identity_url)
                    self.stats.sections["provisioning"] = provisioning.report
                    describes = provisioning.fields(describes)
                    planned_campaigns = provisioning.campaigns()
                for name, describe in describes.items():
                    self._fields[name] = check_fields(self.settings, name, describe)
                    LOGGER.info("pre-flight of %s passed (%d mapped fields, %d segment fields)",
                                name, len(self.settings.mappings_for(name)),
                                len(self.settings.field_segments))
                if self.settings.campaign_segments:
                    self._prepare_campaigns(planned_campaigns)
                if "Lead" in describes and CONVERTED in self.redirector.follow:
                    contact = describes.get("Contact") or self.client.describe("Contact")
                    self._prepare_conversions(contact)
            return self._fields[object_type]

    def _prepare_campaigns(self, planned: dict[str, Campaign]) -> None:
        """Campaign segments: each names exactly one Campaign with every status it can write
        (``planned``: those a dry run would create)."""
        from target_salesforce_crm.campaign_sync import CampaignSync  # noqa: PLC0415 - see _bulk_delivery
        from target_salesforce_crm.salesforce.campaigns import find_campaigns  # noqa: PLC0415

        references = [segment.mapping_id for segment in self.settings.campaign_segments]
        found = find_campaigns(self.client, references)
        found.update({reference: [campaign] for reference, campaign in planned.items()})
        campaigns = check_campaigns(self.settings, found)
        sync = CampaignSync(self.client, self.rejector, campaigns=campaigns,
                            status_values=self.settings.segment_status_values,
                            remove_on_exit=self.settings.campaign_exit == "delete")
        self.deliverer.campaigns = sync
        sync.defer = self.dispatcher.defer  # a chunk stays open until its pooled writes land
        self.dispatcher.on_idle = sync.flush
        self.stats.sections["campaign_members"] = sync.report
        LOGGER.info("pre-flight of %d campaign segments passed", len(campaigns))

    def _prepare_conversions(self, contact_describe: dict[str, Any]) -> None:
        """converted_leads=follow: a converted Lead's records are written to its Contact with
        the Contact mapping; mapped fields Contact lacks are dropped (and reported), segment
        fields must exist on Contact too (pre-flight, before anything is written)."""
        specs = field_specs(contact_describe)
        kept: list[FieldMapping] = []
        dropped: list[FieldMapping] = []
        for mapping in self.settings.mappings_for("Contact"):
            spec = specs.get(mapping.target.lower())
            (kept if spec is not None and spec.updateable else dropped).append(mapping)
        settings = dataclasses.replace(
            self.settings, operation="update",
            field_mappings={**self.settings.field_mappings, "Contact": tuple(kept)},
        )
        fields = check_fields(settings, "Contact", contact_describe)
        self.redirector.contact_mapper = RecordMapper(settings, "Contact", fields,
                                                      self.flattening)
        self.redirector.dropped_contact_fields = tuple(m.target for m in dropped)
        LOGGER.info("pre-flight of Contact for converted Leads passed%s",
                    f" (not on Contact, dropped: {', '.join(m.target for m in dropped)})"
                    if dropped else "")

    def sieve(self, source: Source, segment_fields: tuple[str, ...],
              external_id_field: str | None) -> Sieve | None:
        """With the sync ledger, the gate a sink sends its batches through (diffed there)."""
        if self.ledger is None:
            return None
        from target_salesforce_crm.ledger_sync import Sieve  # noqa: PLC0415 - see _open_ledger

        return Sieve(self.ledger, source, segment_fields, external_id_field,
                     self.settings.batch_size, submit=self.send,
                     in_flight=self._unsettled, waiting=self._waiting,
                     park=self.pending.park, unpark=self.pending.unpark,
                     on_unchanged=lambda count: self.stats.skipped_unchanged(source.stats,
                                                                             count))

    def _unsettled(self, object_type: str, keys: list[str]) -> set[str]:
        """Keys with a write not yet recorded: in a submitted chunk, or in a Bulk spool."""
        return self.dispatcher.in_flight(object_type, keys) | self.bulk.spooled(object_type, keys)

    def submit(self, chunk: Chunk) -> None:
        """Send a chunk, then any full batch of moved records waiting to be redirected."""
        self.dispatcher.submit(chunk)
        for redirect in self.redirector.ready(flush=False):
            self.dispatcher.submit(redirect)

    def send(self, chunk: Chunk, waiting: int = 0) -> None:
        """A chunk through collections, or (write_api auto/bulk) to the Bulk path's routing;
        ``waiting`` is how many more entries the sink holds unsent."""
        if self.settings.write_api == "collections":
            self.submit(chunk)
        else:
            self.bulk.send(chunk, waiting)

    def write_pooled(self, max_age: float | None) -> None:
        """Write the pooled campaign membership changes (all, or with ``max_age``, once the
        oldest has waited that long) so a STATE held back by them can go out."""
        if self.deliverer.campaigns is not None:
            self.deliverer.campaigns.flush(max_age)

    def request_stop(self) -> None:
        """A stop signal: no Bulk job is opened from now on, an open one is aborted."""
        self.bulk.stop_requested = True

    def api_summary(self) -> dict[str, Any]:
        counts = self.client.counts
        return {
            "calls": counts.total + self.client.tokens.grants,
            "token_calls": self.client.tokens.grants,
            "describe_calls": counts.describe,
            "collections_calls": counts.collections,
            "query_calls": counts.query,
            "bulk_calls": counts.bulk,
            "retried_calls": counts.retries,
            "reauthentications": counts.reauth,
            "usage_percent": self.client.usage.percent,
            "org_api_usage": self.client.usage.used,
            "org_api_limit": self.client.usage.max,
            "max_concurrency_now": self.dispatcher.limit,
            "rejected_records_path": self.settings.rejected_records_path,
            "dead_letter_lines": self.dead_letter.count,
        }

    def land_everything(self) -> None:
        """Barrier before STATE: every dispatched or spooled record landed or durably
        dead-lettered (Bulk jobs run here, after the collections calls before them; moved
        records are redirected until none is left waiting)."""
        self.dispatcher.wait_idle()
        self.bulk.land()
        self.dispatcher.wait_idle()
        while redirects := self.redirector.ready(flush=True):
            for redirect in redirects:
                self.dispatcher.submit(redirect)
            self.dispatcher.wait_idle()
        self.dead_letter.sync()

    def finish(self, error: str | None, status: str | None = None) -> None:
        """Log the summary and write the run report (also when the run failed)."""
        self.dispatcher.wait_idle(raise_failure=False)  # count what was in flight at a stop
        api = self.api_summary()
        self.stats.log_summary(api)
        if self.settings.run_report_path:
            report = self.stats.report(api, error=error, status=status)
            write_report(self.settings.run_report_path, report)
        self.dead_letter.close()
        self.dispatcher.shutdown()
        self.bulk.close()
        if self.ledger is not None:
            self.ledger.close()


def _open_ledger(settings: Settings, identity_url: Callable[[], str | None]
                 ) -> SyncLedger | None:
    """The sync ledger with skip_unchanged / full_resync; its module is imported only then
    (as the Bulk path's, see ``_bulk_delivery``)."""
    if not (settings.skip_unchanged or settings.full_resync):
        return None
    from target_salesforce_crm.ledger_sync import open_ledger  # noqa: PLC0415

    return open_ledger(settings, identity_url, LOGGER.warning)


def _bulk_delivery(settings: Settings, client: SalesforceClient, rejector: Rejector,
                   stats: RunStats, dispatcher: Dispatcher, deliverer: Deliverer
                   ) -> BulkDelivery:
    """The Bulk path, imported only when ``write_api`` may use it. Its modules (and sqlite3),
    with those of the ledger, campaign segments and provisioning, imported by every run cost
    7% of the import's instructions (callgrind: 2.00 G, 1.85 G without them; ~45 ms of
    start-up CPU, median of 10, 2026-12-02)."""
    from target_salesforce_crm.bulk_delivery import BulkDelivery  # noqa: PLC0415

    return BulkDelivery(settings, client, rejector, stats, dispatcher, deliverer=deliverer)


class CollectionsOnly:
    """``write_api: collections``: what ``BulkDelivery`` does then, without its modules:
    every chunk goes to the Dispatcher, nothing is held or spooled. (mypy checks that it has
    every method of BulkDelivery that Runtime's users call: ``Runtime.bulk`` is the union.)"""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.stop_requested = False

    def register(self, source: Source, mapper: RecordMapper, segment_fields: tuple[str, ...],
                 external_id_field: str | None) -> None:
        """Nothing to route: no stream goes by Bulk."""

    def hold_size(self, stream: str) -> int:
        """No sink holds records back for a Bulk job."""
        return 0

    def send(self, chunk: Chunk, waiting: int = 0) -> None:
        self.dispatcher.submit(chunk)

    def spooled(self, object_type: str, keys: list[str]) -> set[str]:
        return set()

    def land(self, every: int | None = None) -> None:
        """No spool to run."""

    def close(self) -> None:
        """No spool to delete."""


class PendingIndex:
    """Which unsent entry holds each (object, key), across every stream's sink.

    A record for a key that another stream holds unsent takes that entry over (later values
    win, field by field), so the org ends as if all streams were one stream in input order.
    Each entry gets a stamp when it opens (1, 2, ...): a STATE that remembers ``opened`` when
    it arrives knows its records are all sent once ``oldest()`` is past that count."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[dict[str, Entry], Entry, int]] = {}
        self._parked: set[int] = set()  # stamps of entries cut but waiting in a ledger Sieve
        self.opened = 0

    def open(self, object_type: str, entry: Entry, holder: dict[str, Entry]) -> Entry | None:
        """``holder`` (a sink's pending entries) takes a new ``entry`` for a key it does not
        hold. When another holder has an unsent entry for the key, that one is taken out of
        it and returned, to be merged and held by ``holder`` (it keeps its place and stamp);
        else ``entry`` is indexed with the next stamp. One call per new key instead of a
        look-up and a hold (with the per-record trims in delivery.py and mapping.py, 2.7% fewer
        instructions per record: 156.5k to 152.3k, callgrind, 10,000 profiles)."""
        index_key = (object_type, entry.key)
        found = self._entries.get(index_key)
        if found is None:
            self.opened += 1
            self._entries[index_key] = (holder, entry, self.opened)
            return None
        other, earlier, stamp = found
        if other is holder:
            self._entries[index_key] = (holder, entry, stamp)
            return None
        del other[entry.key]
        self._entries[index_key] = (holder, earlier, stamp)
        return earlier

    def release_all(self, object_type: str, keys: Iterable[str]) -> dict[str, int | None]:
        """The entries leave the index (cut into a batch); returns their stamps by key."""
        pop = self._entries.pop
        return {key: None if (found := pop((object_type, key), None)) is None else found[2]
                for key in keys}

    def park(self, stamps: Iterable[int]) -> None:
        """Entries cut but not yet submitted (diffed, waiting in a sync-ledger Sieve for a
        full call) still count as unsent, until ``unpark``."""
        self._parked.update(stamps)

    def unpark(self, stamps: Iterable[int]) -> None:
        self._parked.difference_update(stamps)

    def oldest(self) -> int | None:
        """Stamp of the oldest entry still unsent (the dict keeps opening order), or None."""
        first = next(iter(self._entries.values()), None)
        oldest = None if first is None else first[2]
        if self._parked:  # at most a batch per sink: min() is cheap
            parked = min(self._parked)
            return parked if oldest is None else min(oldest, parked)
        return oldest


def collect_garbage_rarely() -> None:
    """Records are acyclic and freed by reference counting; with the default thresholds the
    cyclic collector would run every few dozen records and re-scan every long-lived object.
    After start-up those are frozen out of its sight, and it runs every 20,000 allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
