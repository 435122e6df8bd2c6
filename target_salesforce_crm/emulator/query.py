"""`/query` and `/queryAll` over REST (contract part 2, §1): matching, ordering, pages, cursors.

A query's rows are rendered once, when it runs, and kept behind an opaque
locator; `nextRecordsUrl` pages through them, so a client that follows pages
sees one consistent result, as with an org's server-side cursor. Every page is
its own REST request and so its own API call.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .ids import make_id
from .prepare import RequestError
from .references import ReferenceIndex, reference_key
from .schema import FieldSpec, SObjectSchema
from .soql import LIKE_ESCAPE, Condition, Junction, Negation, Query, parse

if TYPE_CHECKING:
    from .org import Org

MAX_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
MAX_CURSORS = 256
_BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_LOCATOR = re.compile(r"(0r8[0-9A-Za-z]{15})-(\d+)")

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(slots=True)
class Cursor:
    rows: list[dict[str, Any]]
    batch_size: int


def _utc(text: str) -> datetime.datetime | None:
    """A stored or literal datetime as an aware UTC datetime (2024-05-01T10:00:00.000+0000,
    …Z, …+01:00); None when it is not one."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def comparable(spec: FieldSpec) -> Callable[[Any], Any]:
    """How the org compares a field's values: text ignoring case, Ids by their 15-char key,
    datetimes in UTC. Empty strings are null."""
    kind = spec.type

    def key(value: Any) -> Any:
        if value is None or value == "":
            return None
        if kind in ("id", "reference"):
            return reference_key(value)
        if kind == "boolean":
            return bool(value)
        if kind in ("double", "int", "currency", "percent"):
            return float(value) if not isinstance(value, bool) else None
        if kind == "datetime":
            return _utc(str(value))
        if kind == "date":
            return str(value)[:10]
        return str(value).lower()

    return key


def _like(pattern: str) -> re.Pattern[str]:
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == LIKE_ESCAPE and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _condition(cond: Condition) -> Predicate:
    spec, op = cond.spec, cond.op
    key = comparable(spec)
    name = spec.name
    if op == "like":
        pattern = _like(cond.values[0])
        return lambda record: (value := record.get(name)) not in (None, "") \
            and pattern.fullmatch(str(value)) is not None
    literals = [key(value) for value in cond.values]
    if op in ("in", "notin"):
        wanted = set(literals)
        if op == "in":
            return lambda record: key(record.get(name)) in wanted
        return lambda record: key(record.get(name)) not in wanted
    literal = literals[0]
    if op == "=":
        return lambda record: key(record.get(name)) == literal
    if op == "!=":
        return lambda record: key(record.get(name)) != literal
    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b, ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}[op]

    def ordered(record: dict[str, Any]) -> bool:
        value = key(record.get(name))
        return value is not None and literal is not None and compare(value, literal)

    return ordered


def predicate(node: Any) -> Predicate:
    """Compile a WHERE tree into one function of a stored record."""
    if node is None:
        return lambda record: True
    if isinstance(node, Condition):
        return _condition(node)
    if isinstance(node, Negation):
        inner = predicate(node.part)
        return lambda record: not inner(record)
    assert isinstance(node, Junction)
    parts = [predicate(part) for part in node.parts]
    if node.kind == "and":
        return lambda record: all(part(record) for part in parts)
    return lambda record: any(part(record) for part in parts)


def _pinned(node: Any) -> list[Condition]:
    """The `=` and `IN` conditions every matching record must meet: the WHERE clause itself,
    or the parts of an AND (nested ANDs included)."""
    if isinstance(node, Condition):
        return [node] if node.op in ("=", "in") else []
    if isinstance(node, Junction) and node.kind == "and":
        return [cond for part in node.parts for cond in _pinned(part)]
    return []


def _narrowed(index: ReferenceIndex, where: Any) -> set[str] | None:
    """Keys of the only records that can match, from the object's reference index, when the
    WHERE clause pins an Id or an indexed field to non-null values; None when it does not."""
    best: tuple[int, str, set[str]] | None = None
    for cond in _pinned(where):
        if cond.spec.type not in ("id", "reference"):
            continue
        wanted = {reference_key(value) for value in cond.values}
        if None in wanted:
            continue  # `= null` matches records the index does not hold
        keys = {key for key in wanted if key is not None}
        if cond.spec.name == "Id":
            return keys
        if cond.spec.name in index.fields:
            size = index.size(cond.spec.name, keys)
            if best is None or size < best[0]:
                best = (size, cond.spec.name, keys)
    return None if best is None else index.holders(best[1], best[2])


def _candidates(org: Org, schema: SObjectSchema, where: Any, *, include_deleted: bool,
                tooling: bool) -> list[dict[str, Any]]:
    """The stored records a query tests, in store order: the live ones, then (queryAll) those
    in the Recycle Bin; only those the reference index leaves possible when it can tell."""
    live = org.store.get(schema.name, {})
    deleted = org.deleted.get(schema.name, {}) if include_deleted else {}
    index = None if tooling else org.references.get(schema.name)
    keys = _narrowed(index, where) if index is not None and index.fields else None
    if keys is None:
        return [*live.values(), *deleted.values()]
    assert index is not None
    return [*(live[key] for key in index.in_order(keys & live.keys())),
            *(deleted[key] for key in index.in_order(keys & deleted.keys()))]


def _sort(records: list[dict[str, Any]], order: list[tuple[FieldSpec, bool, bool]]) -> None:
    for spec, descending, nulls_last in reversed(order):
        key = comparable(spec)
        present = [r for r in records if key(r.get(spec.name)) is not None]
        absent = [r for r in records if key(r.get(spec.name)) is None]
        present.sort(key=lambda r, k=key, n=spec.name: k(r.get(n)),  # type: ignore[misc]
                     reverse=descending)
        records[:] = present + absent if nulls_last else absent + present


def _output(spec: FieldSpec, value: Any) -> Any:
    if value == "" or value is None:
        return False if spec.type == "boolean" else None
    return value


def execute(org: Org, soql: str, *, include_deleted: bool, version: int,
            tooling: Mapping[str, SObjectSchema] | None = None,
            ) -> tuple[Query, list[dict[str, Any]]]:
    """Run a query against the org (or, given its objects, the Tooling API); returns it and
    its rendered rows (for COUNT(), the matching records)."""
    with org.lock:
        query = parse(org.schemas_lower if tooling is None else tooling, soql)
        schema = query.schema
        test = predicate(query.where)
        candidates = _candidates(org, schema, query.where, include_deleted=include_deleted,
                                 tooling=tooling is not None)
        matched = [dict(record) for record in candidates if test(record)]
    if query.order:
        _sort(matched, query.order)
    matched = matched[query.offset:]
    if query.limit is not None:
        matched = matched[:query.limit]
    if query.count:
        return query, matched
    area = "tooling/" if tooling is not None else ""
    base = f"/services/data/v{version}.0/{area}sobjects/{schema.name}/"
    rows = []
    for record in matched:
        row: dict[str, Any] = {"attributes": {"type": schema.name, "url": base + record["Id"]}}
        for spec in query.fields:
            row[spec.name] = _output(spec, record.get(spec.name))
        rows.append(row)
    return query, rows


def batch_size(header: str | None, cap: int) -> int:
    """`Sforce-Query-Options: batchSize=N` within 200..2000, then the emulator's own cap."""
    size = MAX_BATCH_SIZE
    match = _BATCH_OPTION.search(header or "")
    if match:
        size = min(MAX_BATCH_SIZE, max(MIN_BATCH_SIZE, int(match.group(1))))
    return max(1, min(size, cap))


def _page(locator: str, rows: list[dict[str, Any]], offset: int, size: int,
          url: str) -> dict[str, Any]:
    end = offset + size
    records = rows[offset:end]
    if end >= len(rows):
        return {"totalSize": len(rows), "done": True, "records": records}
    return {"totalSize": len(rows), "done": False,
            "nextRecordsUrl": f"{url}/{locator}-{end}",
            "records": records}


def _remember(org: Org, cursor: Cursor) -> str:
    cursors: dict[str, Cursor] = org.cursors
    with org.lock:
        org.cursor_count += 1
        locator = make_id("0r8", org.cursor_count)
        cursors[locator] = cursor
        while len(cursors) > MAX_CURSORS:
            del cursors[next(iter(cursors))]
    return locator


def run_query(org: Org, version: int, query_string: str, header: str | None, *,
              include_deleted: bool = False,
              tooling: Mapping[str, SObjectSchema] | None = None) -> dict[str, Any]:
    """The first page of `/query?q=`, `/queryAll?q=` or `/tooling/query?q=`."""
    values = parse_qs(query_string, keep_blank_values=True).get("q")
    soql = values[-1] if values else ""
    if not soql.strip():
        raise RequestError(400, "MALFORMED_QUERY", "A query string has to be specified")
    query, rows = execute(org, soql, include_deleted=include_deleted, version=version,
                          tooling=tooling)
    if query.count:
        return {"totalSize": len(rows), "done": True, "records": []}
    size = batch_size(header, org.query_batch_size)
    if len(rows) <= size:
        return {"totalSize": len(rows), "done": True, "records": rows}
    locator = _remember(org, Cursor(rows, size))
    return _page(locator, rows, 0, size, _pages_url(version, tooling is not None))


def _pages_url(version: int, tooling: bool) -> str:
    """Where next pages live: `/query/` even for queryAll, as the org does (§1.1)."""
    return f"/services/data/v{version}.0/{'tooling/' if tooling else ''}query"


def next_page(org: Org, version: int, locator_text: str,
              tooling: bool = False) -> dict[str, Any]:
    """`GET /query/<locator>-<offset>`: the page of a kept result starting at `offset`."""
    match = _LOCATOR.fullmatch(locator_text)
    with org.lock:
        cursor = org.cursors.get(match.group(1)) if match else None
    if match is None or cursor is None or int(match.group(2)) >= len(cursor.rows):
        raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(match.group(1), cursor.rows, int(match.group(2)), cursor.batch_size,
                 _pages_url(version, tooling))


def handle(org: Org, method: str, version: int, segments: list[str], query_string: str,
           uri_length: int, header: str | None) -> tuple[int, Any]:
    """Route `/query...` and `/queryAll...`; returns (status, JSON payload)."""
    if uri_length > org.max_uri_bytes:
        raise RequestError(414, "URI_TOO_LONG", "URI Too Long")
    if method not in ("GET", "HEAD"):
        raise RequestError(405, "METHOD_NOT_ALLOWED",
                           f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD")
    include_deleted = segments[0] == "queryAll"
    if len(segments) == 1:
        return 200, run_query(org, version, query_string, header,
                              include_deleted=include_deleted)
    if len(segments) == 2:
        return 200, next_page(org, version, segments[1])
    raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
