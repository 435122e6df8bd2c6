"""Test hooks for a record's life after creation (contract part 2, §2): Lead conversion,
merges, deletes, undeletes and Recycle Bin purges.

An org does these through the UI, SOAP `merge()` or Apex, none of which the
emulator speaks, so they are admin calls (`POST /__emulator__/convert-lead`,
`/merge`, `/delete`, `/undelete`, `/purge`). Each answers a JSON object, or
raises `ValueError` for the admin endpoint to turn into a 400.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from .ids import make_id, parse_id
from .org import Org, timestamp
from .schema import SObjectSchema

MAX_MERGE = 3  # records per merge, survivor included (SOAP merge())
CONVERTED_STATUS = "Closed - Converted"
_ACCOUNT_NUMBERS = itertools.count(1)  # Accounts are not stored; their Ids only need to differ
_CONTACT_FROM_LEAD = ("FirstName", "LastName", "Email", "Phone", "Title", "Description")


def _locate(org: Org, record_id: Any, *, expected: str | None = None,
            deleted: bool = False) -> tuple[SObjectSchema, str]:
    """The schema and storage key of a live (or, with `deleted`, a Recycle Bin) record."""
    key = parse_id(record_id)
    schema = org.by_prefix.get(key[:3]) if key else None
    if key is None or schema is None:
        raise ValueError(f"not a record Id of this org: {record_id!r}")
    if expected and schema.name != expected:
        raise ValueError(f"{record_id} is a {schema.name}, not a {expected}")
    store = org.deleted if deleted else org.store
    if key not in store[schema.name]:
        state = "in the Recycle Bin" if deleted else "live"
        raise ValueError(f"no {state} {schema.name} with Id {record_id}")
    return schema, key


def _ids(payload: Any, name: str) -> list[Any]:
    values = payload.get(name) if isinstance(payload, dict) else None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise ValueError(f"expected a JSON object with a non-empty list {name!r}")
    return values


def convert_lead(org: Org, payload: Any) -> dict[str, Any]:
    """Convert a live Lead: into `contact_id` when given, else into a new Contact made from the
    Lead's name and contact fields. The Lead stays queryable, with IsConverted true."""
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object with lead_id")
    now = timestamp()
    with org.lock:
        lead_schema, lead_key = _locate(org, payload.get("lead_id"), expected="Lead")
        lead = org.store["Lead"][lead_key]
        if lead.get("IsConverted") is True:
            raise ValueError(f"Lead {lead['Id']} is already converted")
        contact_schema = org.schemas["Contact"]
        if payload.get("contact_id"):
            _, contact_key = _locate(org, payload["contact_id"], expected="Contact")
            contact_id = org.store["Contact"][contact_key]["Id"]
        else:
            values = {name: lead.get(name) for name in _CONTACT_FROM_LEAD
                      if lead.get(name) is not None}
            contact_id = org.insert(contact_schema, values, now)
        account_id = payload.get("account_id") or make_id("001", next(_ACCOUNT_NUMBERS))
        org.update(lead_schema, lead_key, {
            "IsConverted": True, "ConvertedDate": now[:10], "ConvertedContactId": contact_id,
            "ConvertedAccountId": account_id, "ConvertedOpportunityId": None,
            "Status": payload.get("status") or CONVERTED_STATUS}, now)
        org.converted_leads.add(lead_key)
        for hook in org.convert_hooks:
            hook(org, lead_key, contact_id)
        return {"lead_id": lead["Id"], "contact_id": contact_id, "account_id": account_id}


def merge(org: Org, payload: Any) -> dict[str, Any]:
    """Merge up to two losers into a live master of the same object: each loser goes to the
    Recycle Bin with MasterRecordId = the master's Id."""
    losers = _ids(payload, "loser_ids")
    now = timestamp()
    with org.lock:
        schema, master_key = _locate(org, payload.get("master_id"),
                                     expected=payload.get("object"))
        if len(losers) + 1 > MAX_MERGE:
            raise ValueError(f"a merge takes at most {MAX_MERGE} records, the master included")
        keys = [_locate(org, loser, expected=schema.name)[1] for loser in losers]
        if master_key in keys or len(set(keys)) != len(keys):
            raise ValueError("the master and the losers must be distinct records")
        master_id = org.store[schema.name][master_key]["Id"]
        for key in keys:
            org.soft_delete(schema, key, now, master_id)
            for hook in org.merge_hooks:
                hook(org, schema, key, master_key, now)
        return {"master_id": master_id,
                "merged_ids": [org.deleted[schema.name][key]["Id"] for key in keys]}


def delete(org: Org, payload: Any) -> dict[str, Any]:
    """Plain deletes: to the Recycle Bin without a MasterRecordId."""
    now = timestamp()
    with org.lock:
        found = [_locate(org, record_id) for record_id in _ids(payload, "ids")]
        return {"deleted_ids": [org.soft_delete(schema, key, now)["Id"]
                                for schema, key in found]}


def undelete(org: Org, payload: Any) -> dict[str, Any]:
    now = timestamp()
    with org.lock:
        found = [_locate(org, record_id, deleted=True) for record_id in _ids(payload, "ids")]
        for schema, key in found:
            org.undelete(schema, key, now)
        return {"undeleted_ids": [org.store[schema.name][key]["Id"] for schema, key in found]}


def purge(org: Org, payload: Any) -> dict[str, Any]:
    """Empty records out of the Recycle Bin (live ones are deleted first): gone for good."""
    now = timestamp()
    with org.lock:
        found = []
        for record_id in _ids(payload, "ids"):
            try:
                found.append((*_locate(org, record_id, deleted=True), False))
            except ValueError:
                found.append((*_locate(org, record_id), True))
        purged = []
        for schema, key, live in found:
            if live:
                org.soft_delete(schema, key, now)
            purged.append(org.deleted[schema.name][key]["Id"])
            org.purge(schema, key)
        return {"purged_ids": purged}


ACTIONS: dict[str, Callable[[Org, Any], dict[str, Any]]] = {
    "convert-lead": convert_lead, "merge": merge, "delete": delete, "undelete": undelete,
    "purge": purge,
}
