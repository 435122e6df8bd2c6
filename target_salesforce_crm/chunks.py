"""What one collections call carries: entries (one payload per Salesforce record, with the
source records merged into it) and the stream and object they belong to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from target_salesforce_crm.rejections import Source
from target_salesforce_crm.stats import StreamStats

if TYPE_CHECKING:
    from target_salesforce_crm.ledger import Changes


@dataclass
class Entry:
    """One payload for one Salesforce record, and the source records merged into it (with
    the stream each came from: a later stream may take over an earlier stream's entry)."""

    key: str
    payload: dict[str, Any]
    records: list[tuple[Source, dict[str, Any]]] = field(default_factory=list)
    moves: int = 0  # times this entry was redirected to a converted or surviving record
    memberships: dict[str, str] | None = None  # campaign segment id → status, merged too

    def merge(self, payload: dict[str, Any], source: Source, record: dict[str, Any],
              memberships: dict[str, str] | None = None) -> None:
        """Later values win, field by field; absent fields keep the earlier value."""
        self.payload.update(payload)
        self.records.append((source, record))
        if memberships:
            self.memberships = {**(self.memberships or {}), **memberships}


@dataclass
class LedgerPlan:
    """skip_unchanged / full_resync (``ledger_sync.py``): what a chunk's call carries per entry
    key (its changed fields, with ``attributes`` and its key field), the campaign memberships
    to sync, and what ``SyncLedger.record`` writes once Salesforce confirmed an entry."""

    changes: Changes
    prefix: str  # ledger key = prefix + entry key ("<external id field>=" for upsert)
    bodies: dict[str, dict[str, Any]]
    memberships: dict[str, dict[str, str] | None]


@dataclass
class Chunk:
    """Entries for one collections call, with what is needed to account for the results."""

    source: Source
    segment_fields: tuple[str, ...]
    entries: list[Entry]
    external_id_field: str | None = None
    redirect: str | None = None  # a kind of move: entries still to be resolved, then sent
    refusals: list[tuple[str, str]] = field(default_factory=list)  # per entry: code, message
    plan: LedgerPlan | None = None  # with the sync ledger: the entries' changed fields

    @property
    def object_type(self) -> str:
        return self.source.object_type

    @property
    def stats(self) -> StreamStats:
        return self.source.stats

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(self.source.object_type, e.key) for e in self.entries]
