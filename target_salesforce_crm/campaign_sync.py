"""Campaign segments: after a chunk's records landed, bring their Campaign Members to the
statuses their profiles carry.

The Contact/Lead update and the membership writes of a record are both done before the chunk
counts as delivered, so STATE covers both. A membership write that fails dead-letters the record
with the segment named, while its field update stands.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.rejections import Rejection, Rejector
from target_salesforce_crm.salesforce.campaigns import Campaign, MembershipWriter
from target_salesforce_crm.salesforce.client import SalesforceClient


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


class CampaignSync:
    """Writes the memberships of landed entries, one chunk at a time."""

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
        self._lock = threading.Lock()

    def sync(self, chunk: Chunk, landed: list[tuple[Entry, str]]) -> set[str]:
        """``landed``: entries Salesforce confirmed, with the Id of the record written.
        Returns the keys of entries a membership write failed for (dead-lettered)."""
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
            return set()
        outcome = MembershipWriter(self.client, chunk.object_type).sync(wanted)
        for pair, (code, message) in outcome.failures.items():
            entry, segment_id = owners[pair]
            campaign = self.campaigns[segment_id]
            self.rejector.reject(
                Rejection(code, f"membership of segment {segment_id} (campaign {campaign.id}) "
                          f"failed: {message}", ("CampaignMember",), origin="salesforce"),
                entry.key, entry.records)
        with self._lock:
            self.calls.update({"membership_queries": outcome.calls["query"],
                               "membership_writes": outcome.calls["write"]})
            for pair, held in wanted.items():
                if pair not in outcome.failures:
                    self.counts[owners[pair][1]].statuses[held or "removed"] += 1
            by_segment = Counter(owners[pair][1] for pair in outcome.created_pairs)
            for segment_id, count in by_segment.items():
                self.counts[segment_id].created += count
            for segment_id, count in Counter(
                    owners[pair][1] for pair in outcome.updated_pairs).items():
                self.counts[segment_id].updated += count
            for segment_id, count in Counter(
                    owners[pair][1] for pair in outcome.removed_pairs).items():
                self.counts[segment_id].removed += count
        return {owners[pair][0].key for pair in outcome.failures}

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "segments": {segment: {"campaign": self.campaigns[segment].id,
                                       **counts.as_dict()}
                             for segment, counts in self.counts.items()},
                "calls": dict(self.calls),
            }
