"""sObject Collections create / update / upsert / delete (contract §4).

Each call runs in three steps: request-level checks that reject the whole body
(HTTP 400), per-record value checks that need no state (done outside the org
lock), then matching, lock faults and the commit under the lock. `allOrNone`
is honoured by deciding every record before writing any.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .ids import parse_id, to_18
from .org import Org, timestamp
from .schema import FieldSpec, SObjectSchema
from .values import Error, access_and_required, coerce, record_error

MAX_RECORDS = 200
MAX_CHUNKS = 10
_MISSING: Any = object()
ROLLED_BACK = record_error(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


class RequestError(Exception):
    """A failure of the whole request: non-2xx status and the REST error array."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.body = [{"message": message, "errorCode": code}]


def not_found(message: str = "The requested resource does not exist") -> RequestError:
    return RequestError(404, "NOT_FOUND", message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Non-standard token '{name}'")


def loads(raw: bytes) -> Any:
    """Parse a JSON body the way the org's strict parser does (no NaN/Infinity)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(400, "JSON_PARSER_ERROR",
                           f"Unexpected character: {exc.msg} at [line:{exc.lineno}, "
                           f"column:{exc.colno}]") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "JSON_PARSER_ERROR", str(exc)) from exc


@dataclass(slots=True)
class _Prepared:
    schema: SObjectSchema
    specs: list[FieldSpec]
    values: dict[str, Any]
    errors: list[Error]
    failed: set[str]
    id_value: Any = _MISSING
    outcome: list[Error] = field(default_factory=list)
    key: str | None = None
    created: bool = False


def _collection_body(raw: bytes) -> tuple[bool, list[Any]]:
    body = loads(raw)
    if not isinstance(body, dict):
        raise RequestError(400, "JSON_PARSER_ERROR",
                           "Cannot deserialize instance of SObjectCollection from a non-object")
    records = body.get("records")
    if not isinstance(records, list):
        raise RequestError(400, "JSON_PARSER_ERROR", "records: a JSON array of sObjects is "
                           "required")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise RequestError(400, "JSON_PARSER_ERROR",
                           f"Cannot deserialize value of type boolean from {all_or_none!r}")
    if len(records) > MAX_RECORDS:
        raise RequestError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                           "than 200 records into this call")
    return all_or_none, records


def _record_schema(org: Org, type_name: Any, fixed: SObjectSchema | None) -> SObjectSchema:
    if fixed is not None:
        if type_name is not None and str(type_name).lower() != fixed.name.lower():
            raise RequestError(400, "INVALID_TYPE",
                               f"Record type '{type_name}' does not match the sObject "
                               f"'{fixed.name}' in the URI")
        return fixed
    if not isinstance(type_name, str) or not type_name:
        raise RequestError(400, "INVALID_TYPE",
                           "Each record must have an attributes map with a type")
    found = org.schemas_lower.get(type_name.lower())
    if found is None:
        raise RequestError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
    return found


def _prepare(org: Org, records: list[Any], fixed: SObjectSchema | None) -> list[_Prepared]:
    """Resolve types and field names for every record; any unknown one rejects the request."""
    prepared = []
    last_type: Any = None
    schema: SObjectSchema | None = None
    for record in records:
        if not isinstance(record, dict):
            raise RequestError(400, "JSON_PARSER_ERROR",
                               "Cannot deserialize instance of SObject from a non-object")
        attributes = record.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        # Records of one type usually come in a run: resolve the type once per run.
        if schema is None or type_name is None or type_name != last_type:
            schema = _record_schema(org, type_name, fixed)
            last_type = type_name
        prep = _Prepared(schema, [], {}, [], set())
        specs, values, by_name = prep.specs, prep.values, schema.by_name
        for name, value in record.items():
            if name == "attributes":
                continue
            spec = by_name.get(name) or by_name.get(name.lower())
            # Fast path for the common case: a non-empty plain string that fits.
            if spec is not None and type(value) is str and value and spec.plain_text \
                    and len(value) <= spec.length:
                specs.append(spec)
                values[spec.name] = value
                continue
            if name.lower() == "id":
                prep.id_value = value
                continue
            if spec is None:
                raise RequestError(400, "INVALID_FIELD",
                                   f"No such column '{name}' on sobject of type {schema.name}")
            if isinstance(value, (dict, list)):
                kind = "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"
                raise RequestError(400, "JSON_PARSER_ERROR",
                                   f"Cannot deserialize instance of {spec.describe['soapType']} "
                                   f"from {kind} value for field {spec.name}")
            coerced, error = coerce(spec, value)
            prep.specs.append(spec)
            if error is None:
                prep.values[spec.name] = coerced
            else:
                prep.errors.append(error)
                prep.failed.add(spec.name)
        prepared.append(prep)
    return prepared


def _check_chunks(prepared: list[_Prepared]) -> None:
    chunks = sum(1 for i, prep in enumerate(prepared)
                 if i == 0 or prep.schema is not prepared[i - 1].schema)
    if chunks > MAX_CHUNKS:
        raise RequestError(400, "INVALID_BATCH_REQUEST",
                           "Cannot have more than 10 chunks in a single operation. Please "
                           "rearrange the data to reduce chunking.")


def _unique_errors(org: Org, prep: _Prepared, seen: dict[tuple[str, str, str], str]) -> list[Error]:
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


def _remember_unique(prep: _Prepared, seen: dict[tuple[str, str, str], str]) -> None:
    if prep.schema.unique_names.isdisjoint(prep.values):
        return
    for spec in prep.schema.unique:
        value = prep.values.get(spec.name)
        if value is not None:
            seen[(prep.schema.name, spec.name, str(value).lower())] = prep.key or ""


def _lock_error(org: Org, prep: _Prepared) -> list[Error]:
    if not org.faults.lock_rate or not org.lock_fault():
        return []
    target = to_18(prep.key) if prep.key else ""
    message = "unable to obtain exclusive access to this record"
    if target:
        message += f" or 1 records: {target}"
    return [record_error("UNABLE_TO_LOCK_ROW", message)]


def _finish(org: Org, prepared: list[_Prepared], all_or_none: bool,
            upsert: bool = False) -> list[dict[str, Any]]:
    """Commit the records that passed (all or none of them) and build ordered results."""
    rollback = all_or_none and any(prep.outcome for prep in prepared)
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
    return results


def _drop_null_defaults(prep: _Prepared) -> None:
    """On insert, a null for a defaulted required field (Lead.Status) means "use the default"."""
    for spec in prep.specs:
        if spec.defaulted_on_create and not spec.nillable and spec.name in prep.values \
                and prep.values[spec.name] is None:
            del prep.values[spec.name]


def _count_call(org: Org) -> None:
    with org.lock:
        org.collections_calls += 1


def create(org: Org, raw: bytes) -> list[dict[str, Any]]:
    _count_call(org)
    all_or_none, records = _collection_body(raw)
    prepared = _prepare(org, records, None)
    _check_chunks(prepared)
    seen: dict[tuple[str, str, str], str] = {}
    with org.lock:
        org.collections_records += len(prepared)
        for prep in prepared:
            _drop_null_defaults(prep)
            errors = list(prep.errors)
            if prep.id_value is not _MISSING:
                errors.insert(0, record_error("INVALID_FIELD_FOR_INSERT_UPDATE",
                                              "cannot specify Id in an insert call", ["Id"]))
            errors += access_and_required(prep.schema, prep.specs, prep.values, prep.failed,
                                          creating=True)
            errors = errors or _unique_errors(org, prep, seen) or _lock_error(org, prep)
            prep.outcome = errors
            if not errors:
                _remember_unique(prep, seen)
        return _finish(org, prepared, all_or_none)


def _resolve_id(org: Org, prep: _Prepared) -> list[Error]:
    raw = prep.id_value
    if raw is _MISSING or raw is None or raw == "":
        return [record_error("MISSING_ARGUMENT", "Id not specified in an update call")]
    key = parse_id(raw)
    if key is None or not key.startswith(prep.schema.key_prefix):
        return [record_error("MALFORMED_ID",
                             f"{prep.schema.label} ID: id value of incorrect type: {raw}", ["Id"])]
    if key not in org.store[prep.schema.name]:
        return [record_error("ENTITY_IS_DELETED", "entity is deleted")]
    prep.key = key
    return []


def update(org: Org, raw: bytes) -> list[dict[str, Any]]:
    _count_call(org)
    all_or_none, records = _collection_body(raw)
    prepared = _prepare(org, records, None)
    _check_chunks(prepared)
    seen: dict[tuple[str, str, str], str] = {}
    with org.lock:
        org.collections_records += len(prepared)
        for prep in prepared:
            errors = _resolve_id(org, prep)
            if not errors:
                errors = prep.errors + access_and_required(
                    prep.schema, prep.specs, prep.values, prep.failed, creating=False)
                errors = errors or _unique_errors(org, prep, seen) or _lock_error(org, prep)
            prep.outcome = errors
            if not errors:
                _remember_unique(prep, seen)
        return _finish(org, prepared, all_or_none)


def upsert(org: Org, object_name: str, field_name: str, raw: bytes) -> list[dict[str, Any]]:
    schema = org.schemas_lower.get(object_name.lower())
    if schema is None:
        raise not_found()
    key_spec = schema.field(field_name)
    if key_spec is None or not key_spec.external_id:
        raise not_found(f"Provided external ID field does not exist or is not accessible: "
                        f"{field_name}")
    _count_call(org)
    all_or_none, records = _collection_body(raw)
    prepared = _prepare(org, records, schema)
    keys = [prep.values.get(key_spec.name) for prep in prepared]
    counts = Counter(str(value).lower() for value in keys if value is not None)
    with org.lock:
        org.collections_records += len(prepared)
        for prep, value in zip(prepared, keys, strict=True):
            prep.outcome = _upsert_record(org, prep, key_spec, value, counts)
        return _finish(org, prepared, all_or_none, upsert=True)


def _upsert_record(org: Org, prep: _Prepared, key_spec: FieldSpec, value: Any,
                   counts: Counter[str]) -> list[Error]:
    if prep.id_value is not _MISSING:
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
    else:
        prep.created = True
        _drop_null_defaults(prep)
    errors = prep.errors + access_and_required(prep.schema, prep.specs, prep.values, prep.failed,
                                               creating=not matches)
    return errors or _lock_error(org, prep)


def delete(org: Org, query: dict[str, list[str]]) -> list[dict[str, Any]]:
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
            elif key not in org.store[schema.name] or key in doomed:
                planned.append((schema, key, [record_error("ENTITY_IS_DELETED",
                                                           "entity is deleted")]))
            else:
                prep = _Prepared(schema, [], {}, [], set(), key=key)
                errors = _lock_error(org, prep)
                if not errors:
                    doomed.add(key)
                planned.append((schema, key, errors))
        rollback = all_or_none and any(errors for _, _, errors in planned)
        results: list[dict[str, Any]] = []
        for schema, key, errors in planned:
            result: dict[str, Any] = {"id": to_18(key)} if key else {}
            if errors or rollback or schema is None or key is None:
                result.update(success=False, errors=errors or [ROLLED_BACK])
            else:
                org.delete(schema, key)
                result.update(success=True, errors=[])
            results.append(result)
        return results
