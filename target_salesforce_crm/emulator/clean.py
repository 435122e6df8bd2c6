"""Commits for collections calls in which no record can fail: the bulk of any load.

`scan` has already checked every value column by column; here the remaining
per-record conditions (Ids, external-id matches, field permissions, record
faults) are checked for the whole body before anything is written, so a body
that does not qualify returns None untouched and takes the record-by-record
path in `dml`, which gives the same answers.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from operator import eq, itemgetter, setitem
from typing import Any

from .org import Org, derive, timestamp
from .prepare import Group, in_key_order
from .rules import slow_path
from .schema import FieldSpec, SObjectSchema

_KEY = itemgetter(slice(0, 15))
_STORED_ID = itemgetter("Id")
_BETWEEN_SUCCESSES = '","success":true,"errors":[]},{"id":"'
UPSERTED = ('{"id":"%s","success":true,"errors":[],"created":false}',
            '{"id":"%s","success":true,"errors":[],"created":true}')


def update_clean(org: Org, schema: SObjectSchema, groups: list[Group], count: int) -> bytes | None:
    """Commit an update that cannot fail, or return None to take the general path.

    "Cannot fail": clean values of updateable fields that are neither unique nor
    indexed, every Id exactly as the org handed it out, no record faults. Call with
    the lock held.
    """
    if org.record_faults_on() or slow_path(org, schema) or not all(
            group.clean and group.plan.has_id and group.plan.updateable
            and not group.plan.unique and not group.plan.indexed
            and (group.plan.canonical or in_key_order(group)) for group in groups):
        return None
    store = org.store[schema.name]
    found: list[list[dict[str, Any]]] = []
    try:
        for group in groups:
            stored: list[Any] = list(map(store.get, map(_KEY, group.ids)))
            if not all(map(eq, map(_STORED_ID, stored), group.ids)):
                return None
            found.append(stored)
    except TypeError:  # an Id that is not a string, or one the org does not hold
        return None
    if len(groups) > 1 and len({id(record) for stored in found for record in stored}) < count:
        return None  # one record twice, in two shapes: apply in request order instead
    now = timestamp()
    ids: list[Any] = list(groups[0].ids) if len(groups) == 1 else [None] * count
    if len(groups) > 1:
        for group in groups:
            for index, record_id in zip(group.indexes, group.ids, strict=True):
                ids[index] = record_id
    for group, stored in zip(groups, found, strict=True):
        _write_columns(group, stored, now)
    org.collections_records += count
    # Each Id equals one the org handed out: plain alphanumerics, safe to splice in.
    return ('[{"id":"' + _BETWEEN_SUCCESSES.join(ids) + '","success":true,"errors":[]}]').encode()


def _write_columns(group: Group, stored: list[dict[str, Any]], now: str) -> None:
    """Apply one shape's values with C-level loops over the records.

    With keys spelled as the API names, the request's own record dicts (no longer
    needed) lose "attributes" and the id and are merged whole, each in its own key
    order; otherwise values go in field by field. Rows of one shape carry the same
    fields, so a record named twice ends up with its later row, as when rows are
    applied one after another.
    """
    plan, count = group.plan, len(stored)
    if plan.canonical:
        deque(map(dict.update, stored, _values(group)), maxlen=0)
    else:
        for name, column in zip(plan.names, group.columns, strict=True):
            deque(map(setitem, stored, repeat(name, count), column), maxlen=0)
    deque(map(setitem, stored, repeat("LastModifiedDate", count), repeat(now, count)), maxlen=0)
    if plan.full_name is not None:
        # Non-empty first and last names; the formula field's input is untouched.
        first, last = (group.columns[i] for i in plan.full_name)
        full = map(" ".join, zip(first, last, strict=True))
        deque(map(setitem, stored, repeat("Name", count), full), maxlen=0)
    elif plan.derived:
        deque(map(derive, stored), maxlen=0)


def _values(group: Group) -> list[dict[str, Any]]:
    """Each record's field values as a dict, in its own key order (the group's records are
    given up when their keys are the API names)."""
    plan = group.plan
    if plan.canonical:
        for key in plan.extra_keys:
            deque(map(dict.pop, group.records, repeat(key, len(group.records))), maxlen=0)
        return group.records
    return [dict(zip(plan.names, row, strict=False)) for row in group.rows]


def upsert_clean(org: Org, schema: SObjectSchema, key_spec: FieldSpec, groups: list[Group],
                 count: int) -> bytes | None:
    """Commit an upsert that cannot fail, or return None to take the general path.

    "Cannot fail": clean values, no record Ids, every external id present and
    distinct (ignoring case) and matching at most one record, each record's fields
    allowed for the insert or update its match decides, no record faults. Call with
    the lock held.
    """
    if org.record_faults_on() or slow_path(org, schema):
        return None
    plans: list[Any] = [None] * count
    keys: list[Any] = [None] * count
    for group in groups:
        plan = group.plan
        if not group.clean or plan.has_id or key_spec.name not in plan.names \
                or not (plan.canonical or in_key_order(group)):
            return None
        column = group.columns[plan.names.index(key_spec.name)]
        for index, key in zip(group.indexes, column, strict=True):
            plans[index], keys[index] = plan, key
    lowered = list(map(str.lower, map(str, keys)))
    if len(set(lowered)) != count:
        return None  # an external id given twice
    matches = list(map(org.indexes[schema.name][key_spec.name].get, lowered))
    for plan, found in zip(plans, matches, strict=True):
        if not ((plan.updateable and len(found) == 1) if found else plan.createable):
            return None
    values: list[Any] = [None] * count
    for group in groups:
        for index, record_values in zip(group.indexes, _values(group), strict=True):
            values[index] = record_values
    now = timestamp()
    store = org.store[schema.name]
    parts = []
    for found, record_values, plan in zip(matches, values, plans, strict=True):
        if found:
            # What `Org.update` does, less the re-indexing: the one match already holds this
            # external id (the index is keyed ignoring case), so the index stays as it is.
            record = store[found[0]]
            record.update(record_values)
            record["LastModifiedDate"] = now
            if plan.derived:
                derive(record)
            parts.append(UPSERTED[False] % record["Id"])
        else:
            parts.append(UPSERTED[True] % org.insert(schema, record_values, now))
    org.collections_records += count
    return ("[" + ",".join(parts) + "]").encode()
