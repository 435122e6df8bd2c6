"""sObject Collections create / update / upsert / delete (contract §4).

Each call runs in three steps: request-level checks that reject the whole body
(HTTP 400) and per-record value checks that need no state (`prepare`, outside
the org lock), then matching, lock faults and the commit under the lock.
`allOrNone` is honoured by deciding every record before writing any.

Updates and upserts whose records all succeed (the bulk of a load) are
committed by `clean`; anything else takes the record-by-record path here, which
gives the same answers (a test checks both).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .clean import UPSERTED, update_clean, upsert_clean
from .ids import parse_id, to_18
from .org import Org, timestamp
from .prepare import (
    MAX_RECORDS,
    MISSING,
    Prepared,
    RequestError,
    collection_body,
    expand,
    not_found,
    prepare,
    prepare_exact,
    scan,
)
from .rules import check_rules, missing_error, update_blocks
from .schema import FieldSpec, SObjectSchema
from .values import Error, access_and_required, record_error

__all__ = ["RequestError", "create", "delete", "encode_results", "not_found", "update", "upsert"]

MAX_CHUNKS = 10
ROLLED_BACK = record_error(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)
STORAGE_FULL = record_error("STORAGE_LIMIT_EXCEEDED", "storage limit exceeded")
_SUCCESS = '{"id":"%s","success":true,"errors":[]}'
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def encode_results(results: list[dict[str, Any]]) -> bytes:
    """The JSON array of results; success entries (nearly all of them) come from a template."""
    parts = []
    for result in results:
        record_id = result.get("id")
        if result["success"] and type(record_id) is str and record_id.isascii() \
                and record_id.isalnum() and not result["errors"]:
            created = result.get("created")
            if created is None and len(result) == 3:
                parts.append(_SUCCESS % record_id)
                continue
            if type(created) is bool and len(result) == 4:
                parts.append(UPSERTED[created] % record_id)
                continue
        parts.append(_dumps(result))
    return ("[" + ",".join(parts) + "]").encode()


def _field_errors(prep: Prepared, *, creating: bool) -> list[Error]:
    """Value errors plus access and required-field errors, skipped when the shape rules them out."""
    plan = prep.plan
    if plan is not None and not prep.errors and None not in prep.values.values() \
            and (plan.createable if creating else plan.updateable):
        return []
    return prep.errors + access_and_required(prep.schema, prep.specs, prep.values, prep.failed,
                                             creating=creating)


def _check_chunks(prepared: list[Prepared]) -> None:
    chunks = sum(1 for i, prep in enumerate(prepared)
                 if i == 0 or prep.schema is not prepared[i - 1].schema)
    if chunks > MAX_CHUNKS:
        raise RequestError(400, "INVALID_BATCH_REQUEST",
                           "Cannot have more than 10 chunks in a single operation. Please "
                           "rearrange the data to reduce chunking.")


def _unique_errors(org: Org, prep: Prepared, seen: dict[tuple[str, str, str], str]) -> list[Error]:
    """DUPLICATE_VALUE for a unique field whose value another record already holds."""
    errors: list[Error] = []
    if prep.schema.unique_names.isdisjoint(prep.values):
        return errors
    for spec in prep.schema.unique:
        value = prep.values.get(spec.name)
        if value is None:
            continue
        others = [k for k in org.lookup_external(prep.schema, spec, str(value)) if k != prep.key]
        if others:
            holder = to_18(others[0])
        elif seen.get((prep.schema.name, spec.name, str(value).lower()), prep.key) != prep.key:
            holder = "<unknown>"
        else:
            continue
        errors.append(record_error(
            "DUPLICATE_VALUE",
            f"duplicate value found: {spec.name} duplicates value on record with id: {holder}",
            [spec.name]))
    return errors


def _remember_unique(prep: Prepared, seen: dict[tuple[str, str, str], str]) -> None:
    if prep.schema.unique_names.isdisjoint(prep.values):
        return
    for spec in prep.schema.unique:
        value = prep.values.get(spec.name)
        if value is not None:
            seen[(prep.schema.name, spec.name, str(value).lower())] = prep.key or ""


def _lock_error(org: Org, prep: Prepared) -> list[Error]:
    if not (org.faults.lock_rate or org.locked_keys) or not org.lock_fault(prep.key):
        return []
    target = to_18(prep.key) if prep.key else ""
    message = "unable to obtain exclusive access to this record"
    if target:
        message += f" or 1 records: {target}"
    return [record_error("UNABLE_TO_LOCK_ROW", message)]


def _write_faults(org: Org, prep: Prepared) -> list[Error]:
    """Lock, then storage: the faults a record that passed every check can still meet."""
    errors = _lock_error(org, prep)
    if errors or org.take_storage():
        return errors
    return [STORAGE_FULL]


def _refuse_poison(org: Org, records: list[Any]) -> None:
    """The `poison_values` fault: a body with a poisoned string value is refused whole; the
    `request_error_code` fault: every body is, quoting one of its values."""
    code = org.faults.request_error_code
    if code:
        org.note_fault("request_error")
        texts = [value for record in records if isinstance(record, dict)
                 for name, value in record.items()
                 if isinstance(value, str) and name.lower() != "id"]
        quoted = texts[0][:255] if texts else ""
        raise RequestError(400, code, f"Unable to process the request: value '{quoted}' cannot "
                                      "be written by this integration user")
    poison = org.faults.poison_values
    if not poison:
        return
    for record in records:
        for name, value in record.items() if isinstance(record, dict) else ():
            if isinstance(value, str) and any(text in value for text in poison):
                org.note_fault("poison")
                raise RequestError(400, "JSON_PARSER_ERROR",
                                   f"Cannot deserialize VALUE_STRING value {value[:255]} for "
                                   f"field {name} or request may be missing a required field")


def _finish(org: Org, prepared: list[Prepared], all_or_none: bool,
            upsert: bool = False) -> bytes:
    """Commit the records that passed (all or none of them) and build ordered results."""
    rollback = all_or_none and any(prep.outcome for prep in prepared)
    if rollback:
        org.refund_storage(sum(1 for prep in prepared if not prep.outcome))
    now = timestamp()
    results = []
    for prep in prepared:
        result: dict[str, Any]
        if prep.outcome or rollback:
            result = {"success": False, "errors": prep.outcome or [ROLLED_BACK]}
            if not prep.outcome and prep.key:
                result = {"id": to_18(prep.key), **result}
        else:
            if prep.key is None:
                new_id = org.insert(prep.schema, prep.values, now)
            else:
                new_id = org.update(prep.schema, prep.key, prep.values, now)
            result = {"id": new_id, "success": True, "errors": []}
        if upsert:
            result["created"] = prep.created
        results.append(result)
    return encode_results(results)


def _drop_null_defaults(prep: Prepared) -> None:
    """On insert, a null for a defaulted required field (Lead.Status) means "use the default"."""
    if None not in prep.values.values():
        return
    for spec in prep.specs:
        if spec.defaulted_on_create and not spec.nillable and spec.name in prep.values \
                and prep.values[spec.name] is None:
            del prep.values[spec.name]


def _count_call(org: Org) -> None:
    with org.lock:
        org.collections_calls += 1


def _note_received(org: Org, raw: bytes, records: list[Any]) -> None:
    """Keep each record's field names (in body order) and count the body's bytes, so a test
    or a benchmark can see what was sent."""
    names = [list(record) for record in records if isinstance(record, dict)]
    with org.lock:
        org.received.extend(names)
        org.collections_bytes += len(raw)


def create(org: Org, raw: bytes) -> bytes:
    _count_call(org)
    all_or_none, records = collection_body(raw)
    _note_received(org, raw, records)
    _refuse_poison(org, records)
    prepared = prepare(org, records, None)
    _check_chunks(prepared)
    with org.lock:
        org.collections_records += len(prepared)
        check_inserts(org, prepared)
        return _finish(org, prepared, all_or_none)


def check_inserts(org: Org, prepared: list[Prepared]) -> None:
    """Every per-record check of an insert, each record's errors in its ``outcome`` (the
    lock held); collections create and Bulk inserts share it, so a record fails alike."""
    seen: dict[tuple[str, str, str], str] = {}
    scratch: dict[Any, Any] = {}  # the object rules' per-request memory
    for prep in prepared:
        _drop_null_defaults(prep)
        errors = _field_errors(prep, creating=True)
        if prep.id_value is not MISSING:
            errors = [record_error("INVALID_FIELD_FOR_INSERT_UPDATE",
                                   "cannot specify Id in an insert call", ["Id"]), *errors]
        errors = errors or _unique_errors(org, prep, seen) \
            or check_rules(org, prep, scratch) or _write_faults(org, prep)
        prep.outcome = errors
        if not errors:
            _remember_unique(prep, seen)


def _resolve_id(org: Org, prep: Prepared) -> list[Error]:
    raw = prep.id_value
    if type(raw) is str and len(raw) == 18:
        # The usual case: exactly the Id the org handed out, so well-formed and present.
        stored = org.store[prep.schema.name].get(raw[:15])
        if stored is not None and stored["Id"] == raw:
            prep.key = raw[:15]
            return []
    if raw is MISSING or raw is None or raw == "":
        return [record_error("MISSING_ARGUMENT", "Id not specified in an update call")]
    key = parse_id(raw)
    if key is None or not key.startswith(prep.schema.key_prefix):
        return [record_error("MALFORMED_ID",
                             f"{prep.schema.label} ID: id value of incorrect type: {raw}", ["Id"])]
    if key not in org.store[prep.schema.name]:
        return [missing_error(org, prep.schema, key)]
    prep.key = key
    return []


def update(org: Org, raw: bytes) -> bytes:
    _count_call(org)
    all_or_none, records = collection_body(raw)
    _note_received(org, raw, records)
    _refuse_poison(org, records)
    scanned = scan(org, records, None)
    if scanned is not None:
        with org.lock:
            body = update_clean(org, *scanned, len(records))
        if body is not None:
            return body
    prepared = expand(*scanned, len(records)) if scanned else None
    if prepared is None:
        prepared = prepare_exact(org, records, None)
    _check_chunks(prepared)
    with org.lock:
        org.collections_records += len(prepared)
        check_updates(org, prepared)
        return _finish(org, prepared, all_or_none)


def check_updates(org: Org, prepared: list[Prepared]) -> None:
    """Every per-record check of an update by Id (the lock held); shared with Bulk updates."""
    seen: dict[tuple[str, str, str], str] = {}
    scratch: dict[Any, Any] = {}  # the object rules' per-request memory
    for prep in prepared:
        errors = _resolve_id(org, prep) or update_blocks(org, prep.key)
        if not errors:
            errors = _field_errors(prep, creating=False)
            errors = errors or _unique_errors(org, prep, seen) \
                or check_rules(org, prep, scratch) or _write_faults(org, prep)
        prep.outcome = errors
        if not errors:
            _remember_unique(prep, seen)


def upsert(org: Org, object_name: str, field_name: str, raw: bytes) -> bytes:
    schema = org.schemas_lower.get(object_name.lower())
    if schema is None:
        raise not_found()
    key_spec = schema.field(field_name)
    if key_spec is None or not key_spec.external_id:
        raise not_found(f"Provided external ID field does not exist or is not accessible: "
                        f"{field_name}")
    _count_call(org)
    all_or_none, records = collection_body(raw)
    _note_received(org, raw, records)
    _refuse_poison(org, records)
    scanned = scan(org, records, schema)
    if scanned is not None:
        with org.lock:
            body = upsert_clean(org, schema, key_spec, scanned[1], len(records))
        if body is not None:
            return body
    prepared = expand(*scanned, len(records)) if scanned else None
    if prepared is None:
        prepared = prepare_exact(org, records, schema)
    keys = [prep.values.get(key_spec.name) for prep in prepared]
    counts = Counter(str(value).lower() for value in keys if value is not None)
    with org.lock:
        org.collections_records += len(prepared)
        for prep, value in zip(prepared, keys, strict=True):
            prep.outcome = _upsert_record(org, prep, key_spec, value, counts)
        return _finish(org, prepared, all_or_none, upsert=True)


def _upsert_record(org: Org, prep: Prepared, key_spec: FieldSpec, value: Any,
                   counts: Counter[str]) -> list[Error]:
    if prep.id_value is not MISSING:
        return [record_error("INVALID_FIELD",
                             "Only external ids are supported. Don't use record ids.", ["Id"])]
    if key_spec.name in prep.failed:
        return prep.errors
    if value is None:
        return [record_error("MISSING_ARGUMENT", f"{key_spec.name} not specified",
                             [key_spec.name])]
    if counts[str(value).lower()] > 1:
        return [record_error("DUPLICATE_VALUE", f"Duplicate external id specified: {value}")]
    matches = org.lookup_external(prep.schema, key_spec, str(value))
    if len(matches) > 1:
        return [record_error("DUPLICATE_EXTERNAL_ID", "A user-specified external ID matches more "
                             "than one record during an upsert.")]
    if matches:
        prep.key = matches[0]
        blocked = update_blocks(org, prep.key)
        if blocked:
            return blocked
    else:
        prep.created = True
        _drop_null_defaults(prep)
    return _field_errors(prep, creating=not matches) or _write_faults(org, prep)


def delete(org: Org, query: dict[str, list[str]]) -> bytes:
    _count_call(org)
    raw_ids = [part.strip() for value in query.get("ids", []) for part in value.split(",")]
    raw_ids = [part for part in raw_ids if part]
    if not raw_ids:
        raise RequestError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(raw_ids) > MAX_RECORDS:
        raise RequestError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                           "than 200 records into this call")
    all_or_none = query.get("allOrNone", ["false"])[-1].lower() == "true"
    planned: list[tuple[SObjectSchema | None, str | None, list[Error]]] = []
    with org.lock:
        org.collections_records += len(raw_ids)
        doomed: set[str] = set()
        for raw in raw_ids:
            key = parse_id(raw)
            schema = org.by_prefix.get(key[:3]) if key else None
            if key is None or schema is None:
                planned.append((None, None, [record_error("MALFORMED_ID", f"malformed id {raw}")]))
            elif key not in org.store[schema.name]:
                planned.append((schema, key, [missing_error(org, schema, key)]))
            elif key in doomed:
                planned.append((schema, key, [record_error("ENTITY_IS_DELETED",
                                                           "entity is deleted")]))
            else:
                prep = Prepared(schema, [], {}, [], set(), key=key)
                errors = _lock_error(org, prep)
                if not errors:
                    doomed.add(key)
                planned.append((schema, key, errors))
        rollback = all_or_none and any(errors for _, _, errors in planned)
        now = timestamp()
        results: list[dict[str, Any]] = []
        for schema, key, errors in planned:
            result: dict[str, Any] = {"id": to_18(key)} if key else {}
            if errors or rollback or schema is None or key is None:
                result.update(success=False, errors=errors or [ROLLED_BACK])
            else:
                org.soft_delete(schema, key, now)
                result.update(success=True, errors=[])
            results.append(result)
        return encode_results(results)
