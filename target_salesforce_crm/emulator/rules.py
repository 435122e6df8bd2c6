"""Checks that stop or extend a write beyond field values: records that are no longer live,
converted Leads (contract part 2, §2), and the per-object rules of `Org.rules` (campaigns).

All of them are called with the org lock held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .values import Error, record_error

if TYPE_CHECKING:
    from .org import Org
    from .schema import SObjectSchema


def missing_error(org: Org, schema: SObjectSchema, key: str) -> Error:
    """The per-record error for writing to an Id that is not live."""
    if key in org.deleted[schema.name] or org.missing_record_error == "ENTITY_IS_DELETED":
        return record_error("ENTITY_IS_DELETED", "entity is deleted")
    return record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")


def update_blocks(org: Org, key: str | None) -> list[Error]:
    """Errors that stop any update of a live record (a converted Lead, §2.2)."""
    if key in org.converted_leads and not org.converted_lead_edits:
        return [record_error("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")]
    return []


def slow_path(org: Org, schema: SObjectSchema) -> bool:
    """Whether writes to this object need the record-by-record checks of `dml` (the
    all-clean commits of `clean` know nothing of converted Leads, object rules or the
    reference index)."""
    name = schema.name
    references = org.references.get(name)
    return (bool(org.converted_leads) and name == "Lead") or name in org.rules \
        or name in org.after_write or (references is not None and bool(references.fields))


def check_rules(org: Org, prep: Any, scratch: dict[Any, Any]) -> list[Error]:
    """The object's own rules for one record about to be written."""
    rule = org.rules.get(prep.schema.name)
    return rule(org, prep, scratch) if rule is not None else []
