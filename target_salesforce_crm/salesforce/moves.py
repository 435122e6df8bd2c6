"""Where a record went: a converted Lead's Contact, a merged record's surviving record.

Salesforce refuses writes to a converted Lead (``CANNOT_UPDATE_CONVERTED_LEAD``) and to a
merged-away record (``ENTITY_IS_DELETED``, with ``MasterRecordId`` naming the winner). One SOQL
query answers up to 200 Ids (contract part 2, §1.7), and each answer is remembered for the run,
so a profile's later records go straight to the survivor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.ids import normalize_id

IDS_PER_QUERY = 200
MAX_MERGE_CHAIN = 10  # a survivor merged again, and again: followed this far
REMEMBERED_MOVES = 100_000  # Ids resolved per run; the oldest are forgotten first


class MoveResolver:
    """Resolves moved Ids in batches and remembers the answers (a bounded map)."""

    def __init__(self, client: SalesforceClient, *, remembered: int = REMEMBERED_MOVES) -> None:
        self._client = client
        self._remembered = remembered
        self._known: OrderedDict[tuple[str, str], tuple[str, str] | None] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, object_type: str, record_id: str) -> tuple[str, str] | None:
        """The (object, Id) a record moved to, if this run already found it moved."""
        with self._lock:
            return self._known.get((object_type, record_id))

    def remembers(self) -> bool:
        return bool(self._known)

    def converted_contacts(self, lead_ids: Iterable[str]) -> dict[str, str | None]:
        """Lead Id → the Contact it was converted into (None: not converted or gone)."""
        found: dict[str, str | None] = {}
        wanted = self._unknown("Lead", lead_ids, found)
        found.update(dict.fromkeys(wanted))
        for rows in self._query_in_batches(
            "SELECT Id, IsConverted, ConvertedContactId FROM Lead WHERE Id IN ({ids})", wanted,
            include_deleted=False,
        ):
            for row in rows:
                lead = _key(row.get("Id"), "Lead")
                contact = _key(row.get("ConvertedContactId"), "Contact")
                if lead in found and row.get("IsConverted") and contact:
                    found[lead] = contact
        self._remember("Lead", {k: _moved("Contact", found[k]) for k in wanted})
        return found

    def survivors(self, object_type: str, record_ids: Iterable[str]) -> dict[str, str | None]:
        """Merged-away Id → the live record that won the merge (following chains); None for
        a record deleted outright or purged."""
        result: dict[str, str | None] = {}
        wanted = self._unknown(object_type, record_ids, result)
        current = {record_id: record_id for record_id in wanted}
        result.update(dict.fromkeys(wanted))
        for _ in range(MAX_MERGE_CHAIN):
            pending = list(dict.fromkeys(current.values()))
            if not pending:
                break
            rows_by_id: dict[str, dict] = {}
            for rows in self._query_in_batches(
                # object_type is an API name from describe and the Ids are checksummed
                f"SELECT Id, IsDeleted, MasterRecordId FROM {object_type} WHERE Id IN ({{ids}})",  # noqa: S608
                pending, include_deleted=True,
            ):
                for row in rows:
                    key = _key(row.get("Id"), object_type)
                    if key:
                        rows_by_id[key] = row
            following: dict[str, str] = {}
            for origin, at in current.items():
                found = rows_by_id.get(at)
                if found is None:
                    continue  # purged: no survivor
                if not found.get("IsDeleted"):
                    result[origin] = None if at == origin else at
                    continue
                master = _key(found.get("MasterRecordId"), object_type)
                if master and master != at:
                    following[origin] = master
            current = following
        self._remember(object_type, {k: _moved(object_type, result[k]) for k in wanted})
        return result

    def _unknown(self, object_type: str, record_ids: Iterable[str],
                 answers: dict[str, str | None]) -> list[str]:
        """Ids this run has not resolved yet; the known ones are answered from memory."""
        unknown = []
        with self._lock:
            for record_id in dict.fromkeys(record_ids):
                key = (object_type, record_id)
                if key in self._known:
                    moved = self._known[key]
                    answers[record_id] = moved[1] if moved else None
                else:
                    unknown.append(record_id)
        return unknown

    def _query_in_batches(self, template: str, ids: list[str], *, include_deleted: bool
                          ) -> Iterable[list[dict]]:
        for start in range(0, len(ids), IDS_PER_QUERY):
            batch = ids[start:start + IDS_PER_QUERY]
            quoted = ", ".join(f"'{record_id}'" for record_id in batch)  # checked Ids only
            yield self._client.query(template.format(ids=quoted), include_deleted=include_deleted)

    def _remember(self, object_type: str, moves: dict[str, tuple[str, str] | None]) -> None:
        with self._lock:
            for record_id, moved in moves.items():
                self._known[(object_type, record_id)] = moved
                self._known.move_to_end((object_type, record_id))
            while len(self._known) > self._remembered:
                self._known.popitem(last=False)


def _key(value: object, object_type: str) -> str | None:
    record_id, problem = normalize_id(value, object_type)
    return None if problem or record_id is None else record_id


def _moved(object_type: str, record_id: str | None) -> tuple[str, str] | None:
    return (object_type, record_id) if record_id else None
