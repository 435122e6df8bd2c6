"""The sync ledger in a run (``skip_unchanged``, ``full_resync``): what of a chunk to send, and
recording what landed.

The Deliverer asks ``plan`` about a chunk right before its collections call. By then the
Dispatcher has let every earlier chunk holding one of its keys finish, its recording included,
so the ledger is never read behind a write still in flight. ``plan`` looks the chunk's keys up
in one query: an unchanged entry is done (counted, never sent; a chunk of them costs no call),
a changed one sends its changed fields plus ``attributes`` and its key field. After each call
the Deliverer hands ``record`` the keys Salesforce confirmed: one transaction per call. A record
refused by Salesforce (or whose campaign membership failed) is not recorded, so it is sent
again next run; one refused before any call never reaches the Deliverer at all.

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
(converted Lead, merged record) is recorded against the survivor's Id when its redirect lands;
the moved Id itself gets no entry, so each run costs it one refused write before the redirect
(whose survivor write is skipped when unchanged).

Bulk API hook: a Bulk job records the same way, ``plan`` per slice of at most
``ledger.MAX_KEYS_PER_QUERY`` rows before the upload and ``record(plan, keys)`` with the keys of
the rows in its successfulResults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.ledger_keys import config_fingerprint, org_id_from_identity_url
from target_salesforce_crm.salesforce.errors import ConfigError, TargetError
from target_salesforce_crm.settings import Settings

if TYPE_CHECKING:
    from target_salesforce_crm.ledger import Changes, Ledger

CAMPAIGN_FIELD = "campaign:"  # prefix of a campaign segment's pseudo-field in the ledger


@dataclass
class Plan:
    """One chunk's diff: the entries to send, each one's body, and what to record."""

    changes: Changes
    prefix: str  # ledger key = prefix + entry key ("<external id field>=" for upsert)
    changed: list[Entry]
    unchanged: int
    bodies: dict[str, dict[str, Any]]  # by entry key: what the call carries
    memberships: dict[str, dict[str, str] | None]  # by entry key: campaign statuses to sync


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

    def plan(self, chunk: Chunk, entries: list[Entry]) -> Plan:
        """Diff ``entries`` against what last landed: one ledger query for the chunk."""
        key_field = chunk.external_id_field or "id"
        prefix = f"{chunk.external_id_field}=" if chunk.external_id_field else ""
        identity = ("attributes", key_field)
        compared: dict[str, dict[str, Any]] = {}
        for entry in entries:
            values = {name: value for name, value in entry.payload.items()
                      if name not in identity}
            if entry.memberships:
                for segment_id, status in entry.memberships.items():
                    values[CAMPAIGN_FIELD + segment_id] = status
            compared[prefix + entry.key] = values
        fingerprints = self._fingerprints_for(chunk.object_type, compared.values())
        changes = self._guard(lambda: self.ledger.diff(
            self.org_id(), chunk.object_type, compared, fingerprints, full=self.full))
        plan = Plan(changes, prefix, [], 0, {}, {})
        for entry in entries:
            key = prefix + entry.key
            fields = changes.payloads[key]
            if not fields:
                plan.unchanged += 1
                continue
            plan.changed.append(entry)
            if len(fields) == len(compared[key]):  # everything: the payload as it is
                plan.bodies[entry.key] = entry.payload
                plan.memberships[entry.key] = entry.memberships
                continue
            payload = entry.payload
            body = {"attributes": payload["attributes"], key_field: payload[key_field]}
            statuses: dict[str, str] = {}
            for name, value in fields.items():
                if name.startswith(CAMPAIGN_FIELD):
                    statuses[name[len(CAMPAIGN_FIELD):]] = value
                else:
                    body[name] = value
            plan.bodies[entry.key] = body
            plan.memberships[entry.key] = statuses or None
        return plan

    def record(self, plan: Plan, landed_keys: Iterable[str]) -> None:
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
        names: set[str] = set()
        for payload in payloads:
            names.update(payload)
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
