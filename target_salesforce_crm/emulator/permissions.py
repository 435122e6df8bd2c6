"""Field-level security (contract part 2, §5.2-5.3).

A field made through the Tooling API (`tooling.py`) is hidden from describe,
SOQL and writes (`No such column`) until a FieldPermissions row with
PermissionsRead, in a PermissionSet assigned to the API user, grants it;
PermissionsEdit makes it createable and updateable too. Every write to the
three setup objects rebuilds the affected describes, so a grant shows up on the
next call (no propagation delay).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .auth import USER_ID
from .ids import parse_id
from .schema import FieldSpec, build_object
from .values import Error, record_error

if TYPE_CHECKING:
    from .org import Org
    from .prepare import Prepared
    from .schema import SObjectSchema

_USER_KEY = USER_ID[:15]


def _key(value: Any) -> str | None:
    return parse_id(value) if isinstance(value, str) else None


def _live(org: Org, object_name: str, value: Any) -> dict[str, Any] | None:
    key = _key(value)
    return org.store[object_name].get(key) if key else None


def _bad_reference(field: str) -> list[Error]:
    return [record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field])]


def _restricted(label: str, field: str, value: Any) -> list[Error]:
    return [record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                         f"{label}: bad value for restricted picklist field: {value}", [field])]


def granted(org: Org) -> dict[str, bool]:
    """`object.field` (lower case) -> editable, for every field the API user may read."""
    assigned = {_key(row.get("PermissionSetId"))
                for row in org.store["PermissionSetAssignment"].values()
                if _key(row.get("AssigneeId")) == _USER_KEY}
    assigned &= set(org.store["PermissionSet"])
    access: dict[str, bool] = {}
    for row in org.store["FieldPermissions"].values():
        if row.get("PermissionsRead") and _key(row.get("ParentId")) in assigned:
            name = str(row.get("Field", "")).lower()
            access[name] = access.get(name, False) or bool(row.get("PermissionsEdit"))
    return access


def _with_access(spec: FieldSpec, edit: bool) -> FieldSpec:
    return dataclasses.replace(spec, createable=edit, updateable=edit,
                               describe={**spec.describe, "createable": edit,
                                         "updateable": edit})


def refresh(org: Org, *_: Any) -> None:
    """Rebuild the describe of each object with Tooling-made fields to match the grants."""
    if not org.custom_fields or "FieldPermissions" not in org.store:
        return
    access = granted(org)
    for object_name, specs in org.custom_fields.items():
        old = org.schemas[object_name]
        visible = [_with_access(spec, access[f"{object_name}.{spec.name}".lower()])
                   for spec in specs if f"{object_name}.{spec.name}".lower() in access]
        org.replace_schema(build_object(old.name, old.label, old.label_plural, old.key_prefix,
                                        org.base_fields[object_name] + visible,
                                        compound_name=old.compound_name))


def _permissionable(org: Org, schema: SObjectSchema, name: str) -> str | None:
    """The field's API name when FLS can be set on it: Tooling-made or optional fields."""
    for made in org.custom_fields.get(schema.name, []):
        if made.name.lower() == name.lower():
            return made.name
    spec = schema.field(name)
    if spec is None or spec.required_on_create or not (spec.createable or spec.updateable):
        return None
    return spec.name


def field_permissions_rule(org: Org, prep: Prepared, scratch: dict[Any, Any]) -> list[Error]:
    """A live parent PermissionSet, a permissionable `Object.Field`, Edit only with Read, one
    row per (permission set, field)."""
    values = prep.values
    merged = {**org.store["FieldPermissions"][prep.key], **values} if prep.key else values
    if merged.get("PermissionsEdit") and not merged.get("PermissionsRead"):
        return [record_error("FIELD_INTEGRITY_EXCEPTION",
                             "Edit Access requires Read Access", ["PermissionsEdit"])]
    if prep.key is not None:
        return []
    if _live(org, "PermissionSet", values.get("ParentId")) is None:
        return _bad_reference("ParentId")
    object_name = values.get("SobjectType")
    schema = org.schemas.get(object_name) if isinstance(object_name, str) else None
    if schema is None:
        return _restricted("Object Name", "SobjectType", object_name)
    prefix, _, field_name = str(values.get("Field", "")).partition(".")
    name = _permissionable(org, schema, field_name) if prefix == schema.name else None
    if name is None:
        return _restricted("Field Name", "Field", values.get("Field"))
    values["Field"] = f"{schema.name}.{name}"
    pair = (_key(values["ParentId"]), values["Field"].lower())
    existing = scratch.setdefault("field_permissions", {
        (_key(row.get("ParentId")), str(row.get("Field", "")).lower()): row["Id"]
        for row in org.store["FieldPermissions"].values()})
    if pair in existing:
        return [record_error("DUPLICATE_VALUE", f"duplicate value found: Field duplicates value "
                                                f"on record with id: {existing[pair]}")]
    existing[pair] = "<unknown>"
    return []


def assignment_rule(org: Org, prep: Prepared, scratch: dict[Any, Any]) -> list[Error]:
    """Assign a live PermissionSet to the API user, once."""
    values = prep.values
    if prep.key is not None:
        return []
    assignee, permission_set = values.get("AssigneeId"), values.get("PermissionSetId")
    if _key(assignee) != _USER_KEY:
        return _bad_reference("AssigneeId")
    if _live(org, "PermissionSet", permission_set) is None:
        return _bad_reference("PermissionSetId")
    pair = (_key(assignee), _key(permission_set))
    existing = scratch.setdefault("assignments", {
        (_key(row.get("AssigneeId")), _key(row.get("PermissionSetId")))
        for row in org.store["PermissionSetAssignment"].values()})
    if pair in existing:
        return [record_error(
            "DUPLICATE_VALUE", f"Duplicate PermissionSetAssignment.  Assignee: {pair[0]}; "
                               f"Permission Set: {pair[1]}", ["AssigneeId", "PermissionSetId"])]
    existing.add(pair)
    return []


def permission_set_rule(org: Org, prep: Prepared, scratch: dict[Any, Any]) -> list[Error]:
    """PermissionSet.Name is unique, ignoring case."""
    name = prep.values.get("Name")
    if name is None:
        return []
    names = scratch.setdefault("permission_sets", {
        str(row.get("Name", "")).lower(): row["Id"]
        for key, row in org.store["PermissionSet"].items() if key != prep.key})
    holder = names.get(str(name).lower())
    if holder is not None:
        return [record_error("DUPLICATE_VALUE", f"duplicate value found: Name duplicates value "
                                                f"on record with id: {holder}", ["Name"])]
    names[str(name).lower()] = "<unknown>"
    return []


Rule = Callable[["Org", "Prepared", dict[Any, Any]], list[Error]]
RULES: dict[str, Rule] = {"FieldPermissions": field_permissions_rule,
                          "PermissionSetAssignment": assignment_rule,
                          "PermissionSet": permission_set_rule}
# any change to these (written, deleted or restored) may grant or revoke access
AFTER_CHANGE: dict[str, Callable[..., None]] = dict.fromkeys(
    ("FieldPermissions", "PermissionSetAssignment", "PermissionSet"), refresh)
