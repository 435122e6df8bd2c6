"""One internal batch of Bulk API 2.0 rows, applied with the collections' own checks (§7.2).

A CSV cell is text: empty means "leave the field as it is" and `#N/A` means
null. Typed columns are converted column by column (numbers, checkboxes, and
date-times normalised to UTC milliseconds, as the org stores them), then the
rows go through `prepare.scan` and the commit rules of `dml`, imported rather
than copied, so a row fails with the same statusCode on either path. A batch in
which nothing can fail is committed by `clean`, as a collections call is.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from .bulk_csv import CsvFailure
from .clean import update_clean, upsert_clean
from .dml import (  # the collections' per-record rules, shared on purpose
    _lock_error,
    _upsert_record,
    check_inserts,
    check_updates,
)
from .ids import parse_id, to_18
from .org import Org, timestamp
from .prepare import Prepared, expand, prepare, prepare_exact, scan
from .rules import missing_error
from .schema import FieldSpec, SObjectSchema
from .values import Error, record_error

NULL_MARKER = "#N/A"
DELETES = ("delete", "hardDelete")
Outcome = tuple[str, bool, str]  # sf__Id, sf__Created, sf__Error ("" when the row landed)
_BOOLEANS = {"true": True, "false": False}
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True, slots=True)
class Target:
    """What a job's rows are applied to: object, operation and the API name of each column."""

    schema: SObjectSchema
    operation: str
    key_spec: FieldSpec | None
    names: tuple[str, ...]
    specs: tuple[FieldSpec | None, ...]  # None for the record Id column


def resolve_header(schema: SObjectSchema, operation: str, key_spec: FieldSpec | None,
                   header: Sequence[str]) -> Target:
    """Map header names to fields; an unknown or repeated one fails the job, naming it."""
    names: list[str] = []
    specs: list[FieldSpec | None] = []
    for name in header:
        spec = None if name.lower() == "id" else schema.field(name)
        if spec is None and name.lower() != "id":
            raise CsvFailure(f"InvalidBatch : Field name not found : {name}")
        api_name = spec.name if spec is not None else "Id"
        if api_name in names:
            raise CsvFailure(f"InvalidBatch : Duplicate field name : {name}")
        names.append(api_name)
        specs.append(spec)
    return Target(schema, operation, key_spec, tuple(names), tuple(specs))


def error_text(errors: list[Error]) -> str:
    """`sf__Error`: `CODE:message:Field,Field --`, or `CODE:message:--` without fields."""
    return " ".join(
        f"{error['statusCode']}:{error['message']}:{','.join(error['fields'])} --"
        if error["fields"] else f"{error['statusCode']}:{error['message']}:--"
        for error in errors)


def apply_batch(org: Org, target: Target, rows: list[list[str]]) -> list[Outcome]:
    """Apply the rows and return one outcome per row, in row order."""
    width = len(target.names)
    if all(len(row) == width for row in rows):
        return _apply(org, target, rows)
    outcomes: list[Outcome] = [
        ("", False, f"INVALID_INPUT:Row has {len(row)} values; the header has {width} "
                    "fields:--") for row in rows]
    positions = [index for index, row in enumerate(rows) if len(row) == width]
    for index, outcome in zip(positions, _apply(org, target, [rows[i] for i in positions]),
                              strict=True):
        outcomes[index] = outcome
    return outcomes


def _apply(org: Org, target: Target, rows: list[list[str]]) -> list[Outcome]:
    if not rows:
        return []
    if target.operation in DELETES:
        return _delete(org, target, rows)
    records = _records(target, rows)
    if target.operation == "insert":
        return _insert(org, target, records)
    if target.operation == "update":
        return _update(org, target, records)
    return _upsert(org, target, records)


# --- cells to values ----------------------------------------------------------------------


def _number(value: Any) -> Any:
    if type(value) is not str:
        return value
    try:
        number = float(value)
    except ValueError:
        return value  # left for `coerce` to report
    return number if math.isfinite(number) else value


def _boolean(value: Any) -> Any:
    return _BOOLEANS.get(value.lower(), value) if type(value) is str else value


def normalise_datetime(value: Any) -> Any:
    """`2026-11-03T09:10:00+01:00` -> `2026-11-03T08:10:00.000Z`; no zone means UTC.

    Values that are no date-time are returned as they are, for `coerce` to report.
    """
    match = _DATETIME.fullmatch(value) if type(value) is str else None
    if match is None:
        return value
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                   int(second or 0), int((fraction or "0")[:3].ljust(3, "0"))
                                   * 1000)
        if zone and zone != "Z":
            digits = zone[1:].replace(":", "")
            offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            moment = moment - offset if zone[0] == "+" else moment + offset
    except (ValueError, OverflowError):
        return value
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "double": _number, "boolean": _boolean, "datetime": normalise_datetime}


def _records(target: Target, rows: list[list[str]]) -> list[dict[str, Any]]:
    """Rows as records keyed by API name: typed columns converted, empty cells left out."""
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
    for number, spec in enumerate(target.specs):
        if NULL_MARKER in columns[number]:
            columns[number] = tuple(None if value == NULL_MARKER else value
                                    for value in columns[number])
        convert = _CONVERTERS.get(spec.type) if spec is not None else None
        if convert is not None:
            columns[number] = tuple(map(convert, columns[number]))
    names = target.names
    if any("" in column for column in columns):
        return [{name: value for name, value in zip(names, row, strict=True) if value != ""}
                if "" in row else dict(zip(names, row, strict=True))
                for row in zip(*columns, strict=True)]
    return list(map(dict, map(zip, repeat(names), zip(*columns, strict=True))))


# --- the operations (the commit rules mirror dml.create / update / upsert / delete) --------


def _commit(org: Org, prepared: list[Prepared]) -> list[Outcome]:
    """Write the rows that passed and describe every row; call with the lock held."""
    now = timestamp()
    outcomes: list[Outcome] = []
    for prep in prepared:
        if prep.outcome:
            outcomes.append(("", False, error_text(prep.outcome)))
        elif prep.key is None:
            outcomes.append((org.insert(prep.schema, prep.values, now), True, ""))
        else:
            outcomes.append((org.update(prep.schema, prep.key, prep.values, now), False, ""))
    return outcomes


def _insert(org: Org, target: Target, records: list[dict[str, Any]]) -> list[Outcome]:
    prepared = prepare(org, records, target.schema)
    with org.lock:
        check_inserts(org, prepared)
        return _commit(org, prepared)


def _clean_commit(org: Org, commit: Callable[[], bytes | None]) -> bytes | None:
    """Run a `clean` commit under the lock without counting its rows as collections records."""
    with org.lock:
        before = org.collections_records
        try:
            return commit()
        finally:
            org.collections_records = before


def _update(org: Org, target: Target, records: list[dict[str, Any]]) -> list[Outcome]:
    ids = list(map(dict.get, records, repeat("Id")))  # the clean commit consumes the records
    scanned = scan(org, records, target.schema)
    if scanned is not None:
        schema, groups = scanned
        if _clean_commit(org, lambda: update_clean(org, schema, groups, len(records))):
            return [(str(record_id), False, "") for record_id in ids]
    prepared = expand(*scanned, len(records)) if scanned else None
    if prepared is None:
        prepared = prepare_exact(org, records, target.schema)
    with org.lock:
        check_updates(org, prepared)
        return _commit(org, prepared)


def _upsert(org: Org, target: Target, records: list[dict[str, Any]]) -> list[Outcome]:
    schema, key_spec = target.schema, target.key_spec
    assert key_spec is not None  # an upsert job is only created with its external-id field
    scanned = scan(org, records, schema)
    if scanned is not None:
        groups = scanned[1]
        body = _clean_commit(org, lambda: upsert_clean(org, schema, key_spec, groups,
                                                       len(records)))
        if body is not None:
            return [(result["id"], result["created"], "") for result in json.loads(body)]
    prepared = expand(*scanned, len(records)) if scanned else None
    if prepared is None:
        prepared = prepare_exact(org, records, schema)
    keys = [prep.values.get(key_spec.name) for prep in prepared]
    counts = Counter(str(value).lower() for value in keys if value is not None)
    with org.lock:
        for prep, value in zip(prepared, keys, strict=True):
            prep.outcome = _upsert_record(org, prep, key_spec, value, counts)
        return _commit(org, prepared)


def _delete(org: Org, target: Target, rows: list[list[str]]) -> list[Outcome]:
    """Soft deletes (to the Recycle Bin, as collections delete does), row by row."""
    schema = target.schema
    column = target.names.index("Id") if "Id" in target.names else None
    outcomes: list[Outcome] = []
    with org.lock:
        now = timestamp()
        for row in rows:
            raw = row[column] if column is not None else ""
            key = parse_id(raw)
            errors: list[Error]
            if raw in ("", NULL_MARKER):
                errors = [record_error("MISSING_ARGUMENT", "Id not specified in a delete call")]
            elif key is None or not key.startswith(schema.key_prefix):
                errors = [record_error("MALFORMED_ID", f"malformed id {raw}")]
            elif key not in org.store[schema.name]:
                errors = [missing_error(org, schema, key)]
            else:
                errors = _lock_error(org, Prepared(schema, [], {}, [], set(), key=key))
                if not errors:
                    org.soft_delete(schema, key, now)
                    outcomes.append((to_18(key), False, ""))
                    continue
            outcomes.append(("", False, error_text(errors)))
    return outcomes
