"""Collections request bodies: request-level checks and per-record value checks (contract §4).

`scan` is the hot path of every collections call. Records of one type that
share their keys (a "shape") get one cached `Plan`, and each field is checked
down the whole column in C-level loops (`map`, `join`, email shapes). Values
that fail are then coerced one by one, as the reference does. Anything unusual
(mixed types, unknown or repeated fields, nested values, differing key orders
where order matters) falls back to `prepare_exact`, the record-by-record
reference, so the answers a request gets never depend on which path ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from .org import DERIVED_INPUTS, Org
from .schema import FieldSpec, SObjectSchema
from .values import Error, coerce, emails_valid, utf16_length

MAX_RECORDS = 200
MISSING: Any = object()
_FAILED: Any = object()
_PLAN_CACHE_LIMIT = 512
_NUMBER_TYPES = frozenset({int, float})
_ATTRIBUTES = itemgetter("attributes")


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


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(raw: bytes) -> Any:
    """Parse a JSON body the way the org's strict parser does (no NaN/Infinity)."""
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except json.JSONDecodeError as exc:
        raise RequestError(400, "JSON_PARSER_ERROR",
                           f"Unexpected character: {exc.msg} at [line:{exc.lineno}, "
                           f"column:{exc.colno}]") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "JSON_PARSER_ERROR", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything about a record shape that does not depend on its values.

    The flags let the DML code skip checks that cannot fail for this shape.
    """

    specs: tuple[FieldSpec, ...]
    names: tuple[str, ...]
    getter: Callable[[dict[str, Any]], tuple[Any, ...]]  # field values, then the id if any
    has_id: bool
    extra_keys: tuple[str, ...]  # "attributes" and the id's key, when present
    canonical: bool  # every field key is spelled exactly as the field's API name
    updateable: bool  # every field may be updated
    createable: bool  # every field may be set on insert, and every required one is present
    unique: bool  # touches a unique field
    indexed: bool  # touches an external-id (indexed) field
    derived: bool  # touches an input of the compound Name or the formula field
    full_name: tuple[int, int] | None  # columns of FirstName and LastName, when only they are


@dataclass(slots=True)
class Prepared:
    """One record after type and value checks; `plan` is None when it took the exact path."""

    schema: SObjectSchema
    specs: Sequence[FieldSpec]
    values: dict[str, Any]
    errors: list[Error]
    failed: set[str]
    id_value: Any = MISSING
    outcome: list[Error] = field(default_factory=list)
    key: str | None = None
    created: bool = False
    plan: Plan | None = None


def collection_body(raw: bytes) -> tuple[bool, list[Any]]:
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


def record_schema(org: Org, type_name: Any, fixed: SObjectSchema | None) -> SObjectSchema:
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


def prepare(org: Org, records: list[Any], fixed: SObjectSchema | None) -> list[Prepared]:
    """Resolve types and field names for every record; any unknown one rejects the request."""
    scanned = scan(org, records, fixed)
    prepared = expand(*scanned, len(records)) if scanned else None
    return prepare_exact(org, records, fixed) if prepared is None else prepared


def prepare_exact(org: Org, records: list[Any], fixed: SObjectSchema | None) -> list[Prepared]:
    """The record-by-record reference behaviour, including every request-level error."""
    prepared = []
    last_type: Any = None
    schema: SObjectSchema | None = None
    for record in records:
        if not isinstance(record, dict):
            raise RequestError(400, "JSON_PARSER_ERROR",
                               "Cannot deserialize instance of SObject from a non-object")
        attributes = record.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if schema is None or type_name is None or type_name != last_type:
            schema = record_schema(org, type_name, fixed)
            last_type = type_name
        specs: list[FieldSpec] = []
        prep = Prepared(schema, specs, {}, [], set())
        for name, value in record.items():
            if name == "attributes":
                continue
            spec = schema.by_name.get(name) or schema.by_name.get(name.lower())
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
            specs.append(spec)
            if error is None:
                prep.values[spec.name] = coerced
            else:
                prep.errors.append(error)
                prep.failed.add(spec.name)
        prepared.append(prep)
    return prepared


# --- the column-wise path ----------------------------------------------------------------


@dataclass(slots=True)
class Group:
    """The records of one shape: their positions, values and per-record value errors.

    `rows` hold the field values in `plan.names` order (the raw id, if any, trails
    them) and `columns` the same values field by field; `clean` means every value
    passed unchanged, so no record has an error. When `ordered` is false only the
    records' key *sets* are known to match `shape`; see `in_key_order`.
    """

    shape: tuple[str, ...]
    ordered: bool
    plan: Plan
    indexes: list[int]
    records: list[dict[str, Any]]
    rows: list[tuple[Any, ...]]
    columns: list[tuple[Any, ...]]
    ids: Sequence[Any]
    errors: dict[int, list[Error]]
    clean: bool


def scan(org: Org, records: list[Any],
         fixed: SObjectSchema | None) -> tuple[SObjectSchema, list[Group]] | None:
    """Column-wise checks of one-type bodies of known fields; None means "use the exact path"."""
    if not records or not all(map(isinstance, records, repeat(dict))):
        return None
    attributes_everywhere = True
    try:
        attributes = list(map(_ATTRIBUTES, records))
    except KeyError:
        attributes_everywhere = False
        attributes = [record.get("attributes") for record in records]
    try:
        types = list(map(dict.get, attributes, repeat("type")))
    except TypeError:
        types = [a.get("type") if isinstance(a, dict) else None for a in attributes]
    first = types[0]
    if types.count(first) != len(types):
        return None
    schema = record_schema(org, first, fixed)  # record 0 would raise the same error first
    count = len(records)
    sizes = list(map(len, records))
    if attributes_everywhere and sizes.count(sizes[0]) == count:
        # Same number of keys, "attributes" and record 0's other keys everywhere: the
        # key sets are equal. Their order is only checked where it matters.
        shape = tuple(records[0])
        plan = _plan(schema, shape)
        if plan is None:
            return None
        try:
            rows: list[Any] | None = list(map(plan.getter, records))
        except KeyError:  # a key missing somewhere: the per-shape grouping below decides
            rows = None
        if rows is not None:
            group = _scan_group(shape, False, plan, records, list(range(count)), rows)
            return None if group is None else (schema, [group])
    shapes = list(map(tuple, records))
    by_shape: dict[tuple[str, ...], list[int]]
    if shapes.count(shapes[0]) == len(shapes):
        by_shape = {shapes[0]: list(range(len(records)))}
    else:
        by_shape = {}
        for index, shape in enumerate(shapes):
            by_shape.setdefault(shape, []).append(index)
    groups = []
    for shape, indexes in by_shape.items():
        plan = _plan(schema, shape)
        members = records if len(indexes) == len(records) else list(map(records.__getitem__,
                                                                         indexes))
        group = None if plan is None else _scan_group(shape, True, plan, members, indexes,
                                                      list(map(plan.getter, members)))
        if group is None:
            return None
        groups.append(group)
    return schema, groups


def in_key_order(group: Group) -> bool:
    """Whether every record of the group lists its keys in the order of `group.shape`."""
    return group.ordered or all(map(group.shape.__eq__, map(tuple, group.records)))


def expand(schema: SObjectSchema, groups: list[Group], count: int) -> list[Prepared] | None:
    """One `Prepared` per record, in request order; None when key orders differ (the
    order of a record's errors and of its new fields follows its own key order)."""
    if not all(map(in_key_order, groups)):
        return None
    out: list[Any] = [None] * count
    for group in groups:
        plan = group.plan
        names, specs, errors = plan.names, plan.specs, group.errors
        for row, (index, values, id_value) in enumerate(
                zip(group.indexes, group.rows, group.ids, strict=True)):
            prep = Prepared(schema, specs, dict(zip(names, values, strict=False)), [], set(),
                            id_value, [], None, False, plan)
            if row in errors:
                prep.errors = errors[row]
                prep.failed = {name for name, value in prep.values.items() if value is _FAILED}
                for name in prep.failed:
                    del prep.values[name]
            out[index] = prep
    return out


def _plan(schema: SObjectSchema, shape: tuple[str, ...]) -> Plan | None:
    plans = schema.plans
    plan = plans.get(shape, MISSING)  # None is a cached answer too (unknown field)
    if plan is not MISSING:
        return plan
    plan = _build_plan(schema, shape)
    if len(plans) >= _PLAN_CACHE_LIMIT:
        plans.clear()
    plans[shape] = plan
    return plan


def _build_plan(schema: SObjectSchema, shape: tuple[str, ...]) -> Plan | None:
    keys: list[str] = []
    specs: list[FieldSpec] = []
    seen: set[str] = set()
    id_keys = []
    for name in shape:
        if name == "attributes":
            continue
        if name.lower() == "id":
            id_keys.append(name)
            continue
        spec = schema.by_name.get(name) or schema.by_name.get(name.lower())
        if spec is None or spec.name in seen:
            return None  # unknown or repeated field: the exact path reports it
        seen.add(spec.name)
        keys.append(name)
        specs.append(spec)
    if len(id_keys) > 1:
        return None
    keys += id_keys
    getter: Callable[[dict[str, Any]], tuple[Any, ...]]
    if len(keys) > 1:
        getter = itemgetter(*keys)
    elif keys:
        only = keys[0]
        getter = lambda record: (record[only],)  # noqa: E731
    else:
        getter = lambda record: ()  # noqa: E731
    names = frozenset(seen)
    order = [spec.name for spec in specs]
    return Plan(
        specs=tuple(specs), names=tuple(order), getter=getter,
        has_id=bool(id_keys), extra_keys=tuple(k for k in shape if k not in keys[:len(specs)]),
        canonical=keys[:len(specs)] == order, updateable=names <= schema.updateable_names,
        createable=names <= schema.createable_names
        and all(spec.name in names for spec in schema.required),
        unique=not schema.unique_names.isdisjoint(names),
        indexed=any(spec.name in names for spec in schema.external_id_fields()),
        derived=not DERIVED_INPUTS.isdisjoint(names),
        full_name=(order.index("FirstName"), order.index("LastName"))
        if names & DERIVED_INPUTS == {"FirstName", "LastName"} else None,
    )


def _column_ok(spec: FieldSpec, column: tuple[Any, ...]) -> bool:
    """True when `coerce` would keep every value of the column as it is, without error."""
    if spec.type in ("double", "boolean"):
        kinds = set(map(type, column))
        return kinds == {bool} if spec.type == "boolean" else kinds <= _NUMBER_TYPES
    if spec.type == "email":
        return not spec.restricted and emails_valid(column, spec.length)
    if not (spec.plain_text or spec.restricted):
        return False
    try:
        joined = "".join(column)
    except TypeError:
        return False  # not all strings
    total = utf16_length(joined)
    measure = len if total == len(joined) else utf16_length  # the latter for non-BMP text
    if not all(column) or (total > spec.length and max(map(measure, column)) > spec.length):
        return False  # an empty string (null) or one too long
    return not spec.restricted or set(column) <= set(spec.picklist)


def _scan_group(shape: tuple[str, ...], ordered: bool, plan: Plan, records: list[dict[str, Any]],
                indexes: list[int], rows: list[tuple[Any, ...]]) -> Group | None:
    columns = list(zip(*rows, strict=True))
    ids: Sequence[Any] = columns.pop() if plan.has_id else (MISSING,) * len(rows)
    errors: dict[int, list[Error]] = {}
    clean = True
    for number, (spec, column) in enumerate(zip(plan.specs, columns, strict=True)):
        if _column_ok(spec, column):
            continue
        clean = False
        fixed: list[Any] = []
        for row, value in enumerate(column):
            if isinstance(value, (dict, list)):
                return None  # a request-level error: the exact path finds the first one
            coerced, error = coerce(spec, value)
            if error is None:
                fixed.append(coerced)
            else:
                fixed.append(_FAILED)
                errors.setdefault(row, []).append(error)
        columns[number] = tuple(fixed)
    if not clean:
        rows = list(zip(*columns, strict=True))
    return Group(shape, ordered, plan, indexes, records, rows, columns, ids, errors, clean)
