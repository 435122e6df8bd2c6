"""Campaign membership: find campaigns and their member statuses, and bring a set of people's
memberships to the wanted statuses with as few calls as Salesforce allows.

Existing memberships for a batch are read with one SOQL query (every person and campaign of the
batch in one ``IN``, paged by the client); creates, status updates and removals then go out
through sObject Collections, up to 200 records per call. A create refused with
``DUPLICATE_VALUE`` (someone added the member meanwhile) is resolved by reading that member
and updating it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.ids import normalize_id
from target_salesforce_crm.salesforce.soql import quoted

RECORDS_PER_CALL = 200
IDS_PER_QUERY = 200
PERSON_FIELD = {"Contact": "ContactId", "Lead": "LeadId"}
# Removing a member that is already gone is what was wanted
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    statuses: frozenset[str]


@dataclass
class MembershipOutcome:
    """What happened to each (person, campaign): counts, and the failures by person."""

    created_pairs: list[tuple[str, str]] = field(default_factory=list)
    updated_pairs: list[tuple[str, str]] = field(default_factory=list)
    removed_pairs: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    calls: dict[str, int] = field(default_factory=lambda: {"query": 0, "write": 0})
    failures: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def find_campaigns(client: SalesforceClient, references: Iterable[str]
                   ) -> dict[str, list[Campaign]]:
    """Each reference (a Campaign Id or Name) → the campaigns it matches (none, one, or
    several when a name is shared), with their member status labels."""
    references = list(dict.fromkeys(references))
    ids = {ref: key for ref in references if (key := _campaign_id(ref))}
    names = [ref for ref in references if ref not in ids]
    rows: list[dict[str, Any]] = []
    if ids:
        rows += client.query(
            f"SELECT Id, Name FROM Campaign WHERE Id IN ({quoted(ids.values())})"  # noqa: S608
        )
    if names:
        rows += client.query(
            f"SELECT Id, Name FROM Campaign WHERE Name IN ({quoted(names)})"  # noqa: S608
        )
    found = {str(row["Id"]): row for row in rows}
    statuses: dict[str, set[str]] = {key: set() for key in found}
    if found:
        for row in client.query(
            "SELECT CampaignId, Label FROM CampaignMemberStatus WHERE CampaignId IN "  # noqa: S608
            f"({quoted(found)})"
        ):
            statuses.setdefault(str(row["CampaignId"]), set()).add(str(row["Label"]))
    result: dict[str, list[Campaign]] = {}
    for ref in references:
        matches = [row for key, row in found.items()
                   if key == ids.get(ref) or (ref not in ids and row.get("Name") == ref)]
        result[ref] = [Campaign(str(row["Id"]), str(row.get("Name") or ""),
                                frozenset(statuses.get(str(row["Id"]), ())))
                       for row in matches]
    return result


class MembershipWriter:
    """Brings memberships to the wanted status for one batch of people of one object."""

    def __init__(self, client: SalesforceClient, object_type: str) -> None:
        self.client = client
        self.object_type = object_type
        self.person_field = PERSON_FIELD[object_type]

    def sync(self, wanted: dict[tuple[str, str], str | None]) -> MembershipOutcome:
        """``wanted[(person_id, campaign_id)]`` is the status to hold, or None to remove the
        member. Returns counts and the failed pairs with (code, message)."""
        outcome = MembershipOutcome()
        existing = self._existing(list(wanted), outcome)
        creates: list[tuple[tuple[str, str], dict[str, Any]]] = []
        updates: list[tuple[tuple[str, str], dict[str, Any]]] = []
        removals: list[tuple[tuple[str, str], str]] = []
        for pair, status in wanted.items():
            member = existing.get(pair)
            if status is None:
                if member is not None:
                    removals.append((pair, member[0]))
                else:
                    outcome.unchanged += 1
            elif member is None:
                creates.append((pair, {"attributes": {"type": "CampaignMember"},
                                       "CampaignId": pair[1], self.person_field: pair[0],
                                       "Status": status}))
            elif member[1] != status:
                updates.append((pair, {"attributes": {"type": "CampaignMember"},
                                       "id": member[0], "Status": status}))
            else:
                outcome.unchanged += 1
        duplicates = self._write(creates, self.client.collections_create, outcome,
                                 outcome.created_pairs)
        if duplicates:  # created by someone else meanwhile: read them and update instead
            again = self._existing([pair for pair, _ in duplicates], outcome)
            for pair, record in duplicates:
                member = again.get(pair)
                if member is None:
                    outcome.failures[pair] = ("DUPLICATE_VALUE", "Already a campaign member.")
                elif member[1] == record["Status"]:
                    outcome.unchanged += 1
                else:
                    updates.append((pair, {"attributes": {"type": "CampaignMember"},
                                           "id": member[0], "Status": record["Status"]}))
        self._write(updates, self.client.collections_update, outcome, outcome.updated_pairs)
        self._remove(removals, outcome)
        return outcome

    def _existing(self, pairs: list[tuple[str, str]], outcome: MembershipOutcome
                  ) -> dict[tuple[str, str], tuple[str, str]]:
        """(person, campaign) → (member Id, Status), for the people and campaigns of
        ``pairs``, one query per 200 people."""
        people = list(dict.fromkeys(person for person, _ in pairs))
        campaigns = list(dict.fromkeys(campaign for _, campaign in pairs))
        wanted = set(pairs)
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for start in range(0, len(people), IDS_PER_QUERY):
            batch = people[start:start + IDS_PER_QUERY]
            outcome.calls["query"] += 1
            rows = self.client.query(
                f"SELECT Id, CampaignId, {self.person_field}, Status FROM CampaignMember "  # noqa: S608
                f"WHERE CampaignId IN ({quoted(campaigns)}) "
                f"AND {self.person_field} IN ({quoted(batch)})"
            )
            for row in rows:
                pair = (str(row.get(self.person_field)), str(row.get("CampaignId")))
                if pair in wanted:
                    found[pair] = (str(row["Id"]), str(row.get("Status") or ""))
        return found

    def _write(self, items: list[tuple[tuple[str, str], dict[str, Any]]], send: Any,
               outcome: MembershipOutcome, done: list[tuple[str, str]]
               ) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        duplicates = []
        for start in range(0, len(items), RECORDS_PER_CALL):
            batch = items[start:start + RECORDS_PER_CALL]
            outcome.calls["write"] += 1
            results = send([record for _, record in batch])
            for (pair, record), result in zip(batch, results, strict=True):
                if result.get("success"):
                    done.append(pair)
                    continue
                code, message = _error(result)
                if code == "DUPLICATE_VALUE" and done is outcome.created_pairs:
                    duplicates.append((pair, record))
                else:
                    outcome.failures[pair] = (code, message)
        return duplicates

    def _remove(self, removals: list[tuple[tuple[str, str], str]],
                outcome: MembershipOutcome) -> None:
        for start in range(0, len(removals), RECORDS_PER_CALL):
            batch = removals[start:start + RECORDS_PER_CALL]
            outcome.calls["write"] += 1
            results = self.client.collections_delete([member for _, member in batch])
            for (pair, _), result in zip(batch, results, strict=True):
                code, message = ("", "") if result.get("success") else _error(result)
                if result.get("success") or code in GONE_CODES:
                    outcome.removed_pairs.append(pair)
                else:
                    outcome.failures[pair] = (code, message)


def _error(result: dict[str, Any]) -> tuple[str, str]:
    error = (result.get("errors") or [{}])[0]
    return str(error.get("statusCode") or "UNKNOWN_ERROR"), str(error.get("message") or "")


def _campaign_id(reference: str) -> str | None:
    if not reference.startswith("701"):
        return None
    key, problem = normalize_id(reference, "Campaign")
    return None if problem else key

