"""Tooling API: `POST /tooling/sobjects/CustomField` and Tooling queries (contract part 2,
§5.1), and `GET /services/oauth2/userinfo`, which names the API user (§5.4).

A made field exists at once but, as in an org, without field-level security:
it stays out of describe, SOQL and writes until `permissions` sees it granted.
Error codes marked [I] in the contract are this emulator's best guess.
"""

from __future__ import annotations

import re
from typing import Any

from .auth import USER_ID
from .ids import make_id
from .objects import custom_field_schema
from .org import Org, timestamp
from .permissions import refresh
from .prepare import RequestError, loads, not_found
from .query import next_page, run_query
from .schema import FieldSpec, make_field

TOOLING_SCHEMAS = {"customfield": custom_field_schema()}
LONG_TEXT_MIN, LONG_TEXT_MAX, LONG_TEXT_DEFAULT = 256, 131072, 32768
LONG_TEXT_PER_OBJECT = 1638400  # characters across all long and rich text fields of an object
_DEVELOPER_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*")
_BAD_NAME = ("The Field Name can only contain underscores and alphanumeric characters. It must "
             "be unique, begin with a letter, not include spaces, not end with an underscore, "
             "and not contain two consecutive underscores.")


def _integrity(message: str) -> RequestError:
    return RequestError(400, "FIELD_INTEGRITY_EXCEPTION", message)


def _long_text(name: str, label: str, metadata: dict[str, Any], used: int) -> FieldSpec:
    if metadata.get("visibleLines") in (None, ""):
        raise _integrity("Must specify 'visibleLines' for a CustomField of type LongTextArea")
    length = metadata.get("length", LONG_TEXT_DEFAULT)
    if isinstance(length, bool) or not isinstance(length, int) \
            or not LONG_TEXT_MIN <= length <= LONG_TEXT_MAX:
        raise _integrity(f"Length must be between {LONG_TEXT_MIN} and {LONG_TEXT_MAX}")
    if used + length > LONG_TEXT_PER_OBJECT:
        raise RequestError(400, "LIMIT_EXCEEDED",
                           f"Long text area fields on this object may hold at most "
                           f"{LONG_TEXT_PER_OBJECT} characters together")
    return make_field(name, label, "textarea", length, custom=True, extra="plaintextarea")


def _checkbox(name: str, label: str, metadata: dict[str, Any]) -> FieldSpec:
    default = metadata.get("defaultValue")
    if isinstance(default, str) and default.lower() in ("true", "false"):
        default = default.lower() == "true"
    if not isinstance(default, bool):
        raise _integrity("Must specify 'defaultValue' for a CustomField of type Checkbox")
    return make_field(name, label, "boolean", custom=True, nillable=False, defaulted=True,
                      default=default)


def _picklist(name: str, label: str, metadata: dict[str, Any]) -> FieldSpec:
    value_set = metadata.get("valueSet")
    value_set = value_set if isinstance(value_set, dict) else {}
    definition = value_set.get("valueSetDefinition")
    entries = definition.get("value") if isinstance(definition, dict) else None
    values = tuple(str(entry.get("fullName") or entry.get("label"))
                   for entry in entries or () if isinstance(entry, dict)
                   and (entry.get("fullName") or entry.get("label")))
    if not values:
        raise _integrity("At least one value is required to create this picklist.")
    default = next((str(entry.get("fullName")) for entry in entries or ()
                    if isinstance(entry, dict) and entry.get("default") in (True, "true")), None)
    return make_field(name, label, "picklist", 255, custom=True, picklist=values,
                      restricted=value_set.get("restricted") in (True, "true"), default=default)


def _text(name: str, label: str, metadata: dict[str, Any]) -> FieldSpec:
    length = metadata.get("length")
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 255:
        raise _integrity("Length must be between 1 and 255")
    return make_field(name, label, "string", length, custom=True)


def create_custom_field(org: Org, raw: bytes) -> dict[str, Any]:
    """Make `Object.Name__c` from its CustomField metadata; returns the create result."""
    body = loads(raw)
    full_name = body.get("FullName") if isinstance(body, dict) else None
    metadata = body.get("Metadata") if isinstance(body, dict) else None
    if not isinstance(full_name, str) or not isinstance(metadata, dict):
        raise RequestError(400, "REQUIRED_FIELD_MISSING",
                           "Required fields are missing: [FullName, Metadata]")
    object_name, _, name = full_name.partition(".")
    developer_name = name[:-3] if name.endswith("__c") else ""
    if not (_DEVELOPER_NAME.fullmatch(developer_name) and len(developer_name) <= 40
            and not developer_name.endswith("_")):
        raise _integrity(_BAD_NAME)
    label = metadata.get("label")
    if not isinstance(label, str) or not label.strip():
        raise _integrity("Must specify 'label' for a CustomField")
    kind = metadata.get("type")
    with org.lock:
        schema = org.schemas_lower.get(object_name.lower())
        if schema is None or schema.name not in ("Contact", "Lead", "Campaign",
                                                 "CampaignMember"):
            raise RequestError(400, "INVALID_TYPE",
                               f"sObject type '{object_name}' is not supported.")
        made = org.custom_fields.get(schema.name, [])
        if schema.field(name) is not None or any(spec.name.lower() == name.lower()
                                                 for spec in made):
            raise RequestError(400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field "
                               f"named {developer_name} on {schema.name}.")
        fields = org.base_fields.get(schema.name, schema.fields) + made
        if sum(1 for spec in fields if spec.describe.get("custom")) >= org.custom_field_limit:
            raise RequestError(400, "LIMIT_EXCEEDED", f"You have reached the maximum number of "
                               f"custom fields ({org.custom_field_limit}) on {schema.name}.")
        if kind == "LongTextArea":
            used = sum(spec.length for spec in fields
                       if spec.type == "textarea" and spec.length > 255)
            spec = _long_text(name, label, metadata, used)
        elif kind == "Checkbox":
            spec = _checkbox(name, label, metadata)
        elif kind == "Picklist":
            spec = _picklist(name, label, metadata)
        elif kind == "Text":
            spec = _text(name, label, metadata)
        else:
            raise _integrity(f"This emulator makes LongTextArea, Checkbox, Picklist and Text "
                             f"fields, not {kind!r}")
        org.base_fields.setdefault(schema.name, list(schema.fields))
        org.custom_fields.setdefault(schema.name, []).append(spec)
        store = org.store.setdefault("CustomField", {})
        record_id = make_id("00N", len(store) + 1)
        now = timestamp()
        store[record_id[:15]] = {"Id": record_id, "DeveloperName": developer_name,
                      "TableEnumOrId": schema.name, "FullName": f"{schema.name}.{name}",
                      "CreatedDate": now, "LastModifiedDate": now}
        refresh(org)
    return {"id": record_id, "success": True, "errors": [], "warnings": [], "infos": []}


def handle(org: Org, method: str, version: int, segments: list[str], query_string: str,
           body: bytes, header: str | None) -> tuple[int, Any]:
    """Route `tooling/sobjects/CustomField` and `tooling/query[/<locator>]`."""
    tail = segments[1:]
    if tail == ["sobjects", "CustomField"] or [part.lower() for part in tail] == [
            "sobjects", "customfield"]:
        if method != "POST":
            raise RequestError(405, "METHOD_NOT_ALLOWED",
                               f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD,POST")
        return 201, create_custom_field(org, body)
    if tail[:1] == ["query"] and method in ("GET", "HEAD"):
        if len(tail) == 1:
            return 200, run_query(org, version, query_string, header, tooling=TOOLING_SCHEMAS)
        if len(tail) == 2:
            return 200, next_page(org, version, tail[1], tooling=True)
    raise not_found()


def userinfo(username: str, org_id: str, base_url: str) -> dict[str, Any]:
    """The OpenID Connect userinfo body for the emulator's one API user."""
    return {
        "sub": f"https://login.salesforce.com/id/{org_id}/{USER_ID}", "user_id": USER_ID,
        "organization_id": org_id, "preferred_username": username, "nickname": "integration",
        "name": "Integration User", "email": username, "email_verified": True,
        "given_name": "Integration", "family_name": "User", "zoneinfo": "GMT", "active": True,
        "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
        "urls": {"rest": f"{base_url}/services/data/v{{version}}/",
                 "query": f"{base_url}/services/data/v{{version}}/query/"},
    }
