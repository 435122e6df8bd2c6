"""Single-record sObject resources: `POST /sobjects/{Type}`, `GET|PATCH|DELETE
/sobjects/{Type}/{Id}` (contract part 1 §4 semantics, part 2 §2.2 / §3 / §5.3 shapes).

Each call is run as a one-record collections call, so every per-record rule
(converted Leads, deleted records, campaign members, field permissions) holds
here too; only the answer changes shape: 201 with the new Id, 204 on update or
delete, and a request-level error array (`errorCode`) instead of per-record
`statusCode` entries.
"""

from __future__ import annotations

import json
from typing import Any

from . import dml
from .ids import parse_id
from .org import Org
from .prepare import RequestError, loads, not_found

Answer = tuple[int, Any, dict[str, str]]


def _uncount(org: Org) -> None:
    """A single-record call is not a collections call: undo what `dml` counted for it."""
    with org.lock:
        org.collections_calls -= 1
        org.collections_records -= 1


def _failure(errors: list[dict[str, Any]]) -> Answer:
    body = [{"message": error["message"], "errorCode": error["statusCode"],
             "fields": error.get("fields", [])} for error in errors]
    status = 404 if errors and errors[0]["statusCode"] == "ENTITY_IS_DELETED" else 400
    return status, body, {}


def _fields(raw: bytes, type_name: str) -> dict[str, Any]:
    record = loads(raw)
    if not isinstance(record, dict):
        raise RequestError(400, "JSON_PARSER_ERROR",
                           "Cannot deserialize instance of SObject from a non-object")
    return {**record, "attributes": {"type": type_name}}


def handle(org: Org, method: str, version: int, segments: list[str], body: bytes) -> Answer:
    """Route `sobjects/{Type}` and `sobjects/{Type}/{Id}`."""
    schema = org.schemas_lower.get(segments[1].lower())
    if schema is None:
        raise not_found()
    if len(segments) == 2:
        if method != "POST":
            raise RequestError(405, "METHOD_NOT_ALLOWED",
                               f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD,POST")
        record = _fields(body, schema.name)
        results = json.loads(dml.create(org, json.dumps({"records": [record]}).encode()))
        _uncount(org)
        if not results[0]["success"]:
            return _failure(results[0]["errors"])
        new_id = results[0]["id"]
        return 201, results[0], {
            "Location": f"/services/data/v{version}.0/sobjects/{schema.name}/{new_id}"}
    record_id = segments[2]
    if method in ("GET", "HEAD"):
        key = parse_id(record_id)
        with org.lock:
            stored = org.store[schema.name].get(key) if key else None
            found = dict(stored) if stored is not None else None
        if found is None:
            raise not_found()
        url = f"/services/data/v{version}.0/sobjects/{schema.name}/{found['Id']}"
        row: dict[str, Any] = {"attributes": {"type": schema.name, "url": url}}
        row.update((spec.name, found.get(spec.name)) for spec in schema.fields)
        return 200, row, {}
    if method == "PATCH":
        record = {**_fields(body, schema.name), "Id": record_id}
        results = json.loads(dml.update(org, json.dumps({"records": [record]}).encode()))
        _uncount(org)
        return (204, None, {}) if results[0]["success"] else _failure(results[0]["errors"])
    if method == "DELETE":
        results = json.loads(dml.delete(org, {"ids": [record_id]}))
        _uncount(org)
        return (204, None, {}) if results[0]["success"] else _failure(results[0]["errors"])
    raise RequestError(405, "METHOD_NOT_ALLOWED",
                       f"HTTP Method '{method}' not allowed. Allowed are DELETE,GET,HEAD,PATCH")
