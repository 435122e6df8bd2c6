"""Campaign rules (contract part 2, §3): member uniqueness and statuses, status bookkeeping.

`RULES` run for each record of a create or update before anything is written
(the lock held) and may fill in derived values; `AFTER_WRITE` runs after a
record is stored. A CampaignMember's Status must be one of its campaign's
CampaignMemberStatus labels; what happens otherwise is unverified (§3.4), so
the `unknown_status` option picks: `reject` (default, the restricted-picklist
error), `default` (the campaign's default status) or `store` (kept as sent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .ids import parse_id, to_18
from .values import Error, record_error

if TYPE_CHECKING:
    from .org import Org
    from .prepare import Prepared
    from .schema import SObjectSchema

DEFAULT_STATUSES = (  # what every new Campaign starts with (§3.3)
    {"Label": "Sent", "IsDefault": True, "HasResponded": False, "SortOrder": 1},
    {"Label": "Responded", "IsDefault": False, "HasResponded": True, "SortOrder": 2},
)
ALREADY_MEMBER = "Already a campaign member."
DUPLICATE_STATUS = ("duplicate value found: <unknown> duplicates value on record with id: "
                    "<unknown>")
_WHO = ("ContactId", "LeadId")


def _key(value: Any) -> str | None:
    return parse_id(value) if isinstance(value, str) else None


def _live(org: Org, object_name: str, record_id: Any) -> dict[str, Any] | None:
    key = _key(record_id)
    return org.store[object_name].get(key) if key else None


def _bad_reference(field: str) -> list[Error]:
    return [record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field])]


def statuses(org: Org, campaign_key: str, scratch: dict[Any, Any]) -> list[dict[str, Any]]:
    """The campaign's CampaignMemberStatus records (cached for one request)."""
    cached = scratch.get(("statuses", campaign_key))
    if cached is None:
        cached = [status for status in org.store["CampaignMemberStatus"].values()
                  if _key(status.get("CampaignId")) == campaign_key]
        scratch[("statuses", campaign_key)] = cached
    return cached


def _live_members(org: Org, who: tuple[str, ...], person_key: str | None) -> list[str]:
    """Keys of the live members naming the person in any of `who`, in store order."""
    index = org.references["CampaignMember"]
    members = org.store["CampaignMember"]
    found: set[str] = set()
    for name in who:
        found.update(key for key in index.holders(name, [person_key] if person_key else [])
                     if key in members)
    return index.in_order(found)


def _is_member(org: Org, pair: tuple[str, str | None], scratch: dict[Any, Any]) -> bool:
    """Whether the person is a live member of the campaign already, or became one earlier in
    this request."""
    if pair in scratch.setdefault("pairs", set()):
        return True
    campaign_key, person_key = pair
    members = org.store["CampaignMember"]
    return any(_key(members[key].get("CampaignId")) == campaign_key
               for key in _live_members(org, _WHO, person_key))


def _apply_status(org: Org, prep: Prepared, campaign_key: str, scratch: dict[Any, Any],
                  stored: dict[str, Any] | None) -> list[Error]:
    values = prep.values
    known = statuses(org, campaign_key, scratch)
    default = next((s for s in known if s.get("IsDefault")), known[0] if known else None)
    label = values.get("Status")
    if label is None and stored is None:
        label = default["Label"] if default else None
    elif label is None:
        return []
    found = next((s for s in known if s.get("Label") == label), None)
    if found is None and org.unknown_status == "reject":
        spec = prep.schema.field("Status")
        name = spec.label if spec else "Status"
        return [record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"{name}: bad value for restricted picklist field: {label}",
                             ["Status"])]
    if found is None and org.unknown_status == "default" and default is not None:
        found, label = default, default["Label"]
    values["Status"] = label
    responded = bool(found and found.get("HasResponded"))
    values["HasResponded"] = responded
    if responded and not (stored or {}).get("FirstRespondedDate"):
        values["FirstRespondedDate"] = time.strftime("%Y-%m-%d", time.gmtime())
    return []


def member_rule(org: Org, prep: Prepared, scratch: dict[Any, Any]) -> list[Error]:
    """CampaignMember create/update: live campaign and person, one membership each, a known
    Status; fills Status, HasResponded, FirstRespondedDate and LeadOrContactId."""
    values = prep.values
    if prep.key is not None:
        stored = org.store["CampaignMember"][prep.key]
        return _apply_status(org, prep, _key(stored.get("CampaignId")) or "", scratch, stored)
    campaign_key = _key(values.get("CampaignId"))
    if _live(org, "Campaign", values.get("CampaignId")) is None or campaign_key is None:
        return _bad_reference("CampaignId")
    if values.get("ContactId") and values.get("LeadId"):
        del values["LeadId"]  # "successful insert but only the ContactId is inserted"
    who = next((name for name in _WHO if values.get(name)), None)
    if who is None:
        return [record_error("REQUIRED_FIELD_MISSING",
                             "Required fields are missing: [ContactId, LeadId]", list(_WHO))]
    person = _live(org, who[:-2], values[who])
    if person is None:
        return _bad_reference(who)
    if person.get("IsConverted") is True:
        return [record_error("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")]
    pair = (campaign_key, _key(values[who]))
    if _is_member(org, pair, scratch):
        return [record_error("DUPLICATE_VALUE", ALREADY_MEMBER)]
    errors = _apply_status(org, prep, campaign_key, scratch, None)
    if not errors:
        scratch["pairs"].add(pair)
        values["LeadOrContactId"] = values[who]
    return errors


def status_rule(org: Org, prep: Prepared, scratch: dict[Any, Any]) -> list[Error]:
    """CampaignMemberStatus create/update: a live campaign, unique Label and SortOrder, and
    the campaign keeps a default and a responded status."""
    values = prep.values
    stored = org.store["CampaignMemberStatus"].get(prep.key) if prep.key else None
    campaign_id = stored["CampaignId"] if stored else values.get("CampaignId")
    campaign_key = _key(campaign_id)
    if stored is None and (campaign_key is None or _live(org, "Campaign", campaign_id) is None):
        return _bad_reference("CampaignId")
    assert campaign_key is not None
    others = [s for s in statuses(org, campaign_key, scratch) if s is not stored]
    duplicate = record_error("DUPLICATE_VALUE", DUPLICATE_STATUS)
    label = values.get("Label")
    if label is not None and any(str(s.get("Label", "")).lower() == str(label).lower()
                                 for s in others):
        return [duplicate]
    if values.get("SortOrder") is None and stored is None:
        values["SortOrder"] = max((s.get("SortOrder") or 0 for s in others), default=0) + 1
    if values.get("SortOrder") is not None and any(
            s.get("SortOrder") == values["SortOrder"] for s in others):
        return [duplicate]
    if stored is not None:
        merged = {**stored, **values}
        if not any(s.get("IsDefault") for s in [*others, merged]) or \
                not any(s.get("HasResponded") for s in [*others, merged]):
            return [duplicate]  # a campaign must keep a default and a responded status
    if stored is None:
        statuses(org, campaign_key, scratch).append({"CampaignId": campaign_id, **values})
    return []


def _campaign_created(org: Org, schema: SObjectSchema, record: dict[str, Any],
                      created: bool) -> None:
    if not created:
        return
    status_schema = org.schemas.get("CampaignMemberStatus")
    if status_schema is None:
        return
    now = record["CreatedDate"]
    for status in DEFAULT_STATUSES:
        org.insert(status_schema, {"CampaignId": record["Id"], **status}, now)


def _status_written(org: Org, schema: SObjectSchema, record: dict[str, Any],
                    created: bool) -> None:
    """One default per campaign: a new default demotes the others."""
    if not record.get("IsDefault"):
        return
    campaign_key = _key(record.get("CampaignId"))
    for other in org.store[schema.name].values():
        if other is not record and other.get("IsDefault") \
                and _key(other.get("CampaignId")) == campaign_key:
            other["IsDefault"] = False


def reparent_members(org: Org, schema: SObjectSchema, loser_key: str, master_key: str,
                     now: str) -> None:
    """After a merge the loser's memberships move to the survivor (dropped where it already
    is a member of that campaign)."""
    who = {"Contact": "ContactId", "Lead": "LeadId"}.get(schema.name)
    if who is None or "CampaignMember" not in org.schemas:
        return
    _move_members(org, who, loser_key, to_18(master_key), now)


def convert_members(org: Org, lead_key: str, contact_id: str) -> None:
    """A converted Lead's memberships keep LeadId and gain the Contact (§3.2, [I])."""
    if "CampaignMember" not in org.schemas:
        return
    schema = org.schemas["CampaignMember"]
    for key in _live_members(org, ("LeadId",), lead_key):
        if not org.store["CampaignMember"][key].get("ContactId"):
            org.assign(schema, key, {"ContactId": contact_id})


def _move_members(org: Org, who: str, from_key: str, to_id: str, now: str) -> None:
    members = org.store["CampaignMember"]
    schema = org.schemas["CampaignMember"]
    taken = {_key(members[key].get("CampaignId"))
             for key in _live_members(org, (who,), parse_id(to_id))}
    for key in _live_members(org, (who,), from_key):
        if _key(members[key].get("CampaignId")) in taken:
            org.soft_delete(schema, key, now)
        else:
            org.assign(schema, key, {who: to_id, "LeadOrContactId": to_id})


Rule = Callable[["Org", "Prepared", dict[Any, Any]], list[Error]]
AfterWrite = Callable[["Org", "SObjectSchema", dict[str, Any], bool], None]
RULES: dict[str, Rule] = {"CampaignMember": member_rule, "CampaignMemberStatus": status_rule}
# reference fields `Org` indexes (references.py): members by campaign and by person
REFERENCES: dict[str, tuple[str, ...]] = {"CampaignMember": ("CampaignId", "ContactId", "LeadId")}
AFTER_WRITE: dict[str, AfterWrite] = {"Campaign": _campaign_created,
                                      "CampaignMemberStatus": _status_written}
