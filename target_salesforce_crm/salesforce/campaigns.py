"""Campaign membership: find campaigns and their member statuses, and bring a set of people's
memberships to the wanted statuses with as few calls as Salesforce allows.

Existing memberships for a batch are read with one SOQL query (every person and campaign of the
batch in one ``IN``, paged by the client); the changes they call for (creates, status updates,
removals) go out through sObject Collections, up to 200 of one kind per call, whichever batches
they came from (the caller pools them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

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


CREATE, UPDATE, REMOVE = "create", "update", "remove"


@dataclass(frozen=True)
class MemberWrite:
    """One membership change: a CampaignMember to create or update (its record), or to remove
    (its Id)."""

    kind: str
    pair: tuple[str, str]  # (person Id, campaign Id)
    body: dict[str, Any] | str

    @property
    def status(self) -> str | None:
        """The Status the member will hold; None for a removal."""
        return None if isinstance(self.body, str) else str(self.body["Status"])


@dataclass
class MemberChanges:
    """What a batch of wanted memberships needs: the writes, and how many pairs already hold
    their wanted status (or are already absent)."""

    writes: list[MemberWrite] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)


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
    """Reads and plans the memberships of one object's people (Contacts or Leads)."""

    def __init__(self, client: SalesforceClient, object_type: str) -> None:
        self.client = client
        self.person_field = PERSON_FIELD[object_type]

    def changes(self, wanted: dict[tuple[str, str], str | None],
                existing: dict[tuple[str, str], tuple[str, str]]) -> MemberChanges:
        """``wanted[(person_id, campaign_id)]`` is the status to hold, or None for no member;
        ``existing`` what ``existing()`` found."""
        changes = MemberChanges()
        for pair, status in wanted.items():
            member = existing.get(pair)
            if status is None:
                if member is None:
                    changes.unchanged.append(pair)
                else:
                    changes.writes.append(MemberWrite(REMOVE, pair, member[0]))
            elif member is None:
                changes.writes.append(MemberWrite(CREATE, pair, {
                    "attributes": {"type": "CampaignMember"}, "CampaignId": pair[1],
                    self.person_field: pair[0], "Status": status}))
            elif member[1] != status:
                changes.writes.append(MemberWrite(UPDATE, pair, {
                    "attributes": {"type": "CampaignMember"}, "id": member[0],
                    "Status": status}))
            else:
                changes.unchanged.append(pair)
        return changes

    def existing(self, pairs: list[tuple[str, str]]
                 ) -> tuple[dict[tuple[str, str], tuple[str, str]], int]:
        """(person, campaign) → (member Id, Status) for ``pairs``, and the queries it took:
        one per 200 people, all the pairs' campaigns in the same query."""
        people = list(dict.fromkeys(person for person, _ in pairs))
        campaigns = list(dict.fromkeys(campaign for _, campaign in pairs))
        wanted = set(pairs)
        found: dict[tuple[str, str], tuple[str, str]] = {}
        queries = 0
        for start in range(0, len(people), IDS_PER_QUERY):
            batch = people[start:start + IDS_PER_QUERY]
            queries += 1
            rows = self.client.query(
                f"SELECT Id, CampaignId, {self.person_field}, Status FROM CampaignMember "  # noqa: S608
                f"WHERE CampaignId IN ({quoted(campaigns)}) "
                f"AND {self.person_field} IN ({quoted(batch)})"
            )
            for row in rows:
                pair = (str(row.get(self.person_field)), str(row.get("CampaignId")))
                if pair in wanted:
                    found[pair] = (str(row["Id"]), str(row.get("Status") or ""))
        return found, queries


def write_members(client: SalesforceClient, kind: str, writes: list[MemberWrite]
                  ) -> list[tuple[str, str] | None]:
    """One sObject Collections call for up to 200 writes of one kind (any object's people):
    per write, None when it took effect, else (error code, message). Removing a member
    already gone is what was wanted."""
    if len(writes) > RECORDS_PER_CALL:
        raise ValueError(f"{len(writes)} CampaignMember writes for one call (at most "
                         f"{RECORDS_PER_CALL})")
    if kind == REMOVE:
        results = client.collections_delete([str(write.body) for write in writes])
    else:
        records = [cast("dict[str, Any]", write.body) for write in writes]
        send = client.collections_create if kind == CREATE else client.collections_update
        results = send(records)
    outcomes: list[tuple[str, str] | None] = []
    for result in results:
        if result.get("success"):
            outcomes.append(None)
            continue
        code, message = _error(result)
        outcomes.append(None if kind == REMOVE and code in GONE_CODES else (code, message))
    return outcomes


def _error(result: dict[str, Any]) -> tuple[str, str]:
    error = (result.get("errors") or [{}])[0]
    return str(error.get("statusCode") or "UNKNOWN_ERROR"), str(error.get("message") or "")


def _campaign_id(reference: str) -> str | None:
    if not reference.startswith("701"):
        return None
    key, problem = normalize_id(reference, "Campaign")
    return None if problem else key

