"""In-memory org: records, external-id indexes, API usage, concurrency and fault decisions.

One lock guards all of it. Anything slow (JSON, validation, sleeping) happens
outside the lock, so the lock is only held for dictionary updates and counters.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import campaigns, permissions
from .faults import BULK_BATCH_ALLOCATION, FaultSettings
from .ids import make_id, parse_id, to_18
from .options import CUSTOM_FIELD_LIMIT, MAX_URI_BYTES, QUERY_BATCH_SIZE
from .references import ReferenceIndex
from .schema import FieldSpec, SObjectSchema

RECEIVED_KEPT = 10_000  # field names of the last records sent to collections, for tests
FAULT_KINDS = ("latency", "drop", "html_503", "http_503", "http_500", "lock", "token_expired",
               "concurrency_limit", "daily_limit", "poison", "storage_full", "request_error")


def timestamp() -> str:
    """Salesforce's datetime wire format, e.g. 2024-05-01T10:00:00.000+0000."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+0000"


@dataclass(slots=True)
class Admission:
    """What to do with one authenticated API request once it has been let in (or not)."""

    limit_info: str
    error: tuple[int, str, str] | None = None
    fault: str | None = None
    latency_s: float = 0.0
    entered: bool = False


class Org:
    """The emulated org's data and counters."""

    def __init__(self, schemas: dict[str, SObjectSchema], faults: FaultSettings) -> None:
        self.schemas = schemas
        self.schemas_lower = {name.lower(): schema for name, schema in schemas.items()}
        self.by_prefix = {schema.key_prefix: schema for schema in schemas.values()}
        self.faults = faults
        self.lock = threading.Lock()
        self.rng = random.Random(faults.random_seed)
        self.store: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in schemas}
        self.indexes: dict[str, dict[str, dict[str, list[str]]]] = {
            name: {spec.name: {} for spec in schema.external_id_fields()}
            for name, schema in schemas.items()
        }
        # record keys by reference field (references.py); inert for objects that declare none
        self.references = {name: ReferenceIndex(campaigns.REFERENCES.get(name, ()))
                           for name in schemas}
        self._counters = {schema.key_prefix: 0 for schema in schemas.values()}
        self._defaults = {name: _defaults(schema) for name, schema in schemas.items()}
        self.api_usage = faults.initial_api_usage
        self.locked_keys = _keys(faults.lock_forever_ids)
        self.storage_left = faults.storage_full_after  # record writes before storage is full
        self.bulk_batches_remaining = faults.bulk_batches_remaining
        self.in_flight = 0
        self.max_in_flight = 0
        self.api_calls = 0
        self.requests = 0
        self.collections_calls = 0
        self.collections_records = 0
        self.received: deque[list[str]] = deque(maxlen=RECEIVED_KEPT)
        self.collections_bytes = 0  # request bodies of create/update/upsert calls
        self.describe_calls: dict[str, int] = {}
        self.faults_injected = dict.fromkeys(FAULT_KINDS, 0)
        # SOQL (query.py): soft-deleted records for queryAll, kept result cursors, page cap
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in schemas}
        self.cursors: dict[str, Any] = {}
        self.cursor_count = 0
        self.query_batch_size = QUERY_BATCH_SIZE
        self.max_uri_bytes = MAX_URI_BYTES
        # lifecycle (lifecycle.py): converted Leads refuse updates unless the permission is on
        self.converted_leads: set[str] = set()
        self.converted_lead_edits = False
        self.missing_record_error = "ENTITY_IS_DELETED"
        # per-object rules: checks before a write, follow-ups after it, merge/convert hooks
        self.rules: dict[str, Any] = {**campaigns.RULES, **permissions.RULES}
        self.after_write: dict[str, Any] = {**campaigns.AFTER_WRITE, **permissions.AFTER_CHANGE}
        self.after_delete: dict[str, Any] = dict(permissions.AFTER_CHANGE)
        self.merge_hooks: list[Any] = [campaigns.reparent_members]
        self.convert_hooks: list[Any] = [campaigns.convert_members]
        self.unknown_status = "reject"
        # Tooling API (tooling.py): made fields per object (shown once FLS grants them) and
        # each such object's fields before any was made
        self.custom_fields: dict[str, list[FieldSpec]] = {}
        self.base_fields: dict[str, list[FieldSpec]] = {}
        self.custom_field_limit = CUSTOM_FIELD_LIMIT

    # --- limits and faults -------------------------------------------------

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.faults.daily_api_limit}"

    def note_request(self) -> None:
        with self.lock:
            self.requests += 1

    def note_fault(self, kind: str, count: int = 1) -> None:
        with self.lock:
            self.faults_injected[kind] += count

    def admit(self) -> Admission:
        """Charge one API call, enforce daily and concurrency limits, and draw the request fault.

        Faults are decided here, before the request's body is looked at, so an
        injected failure can never follow a write.
        """
        faults = self.faults
        with self.lock:
            if self.api_usage >= faults.daily_api_limit:
                self.faults_injected["daily_limit"] += 1
                return Admission(self.limit_info(), error=(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            self.api_usage += 1
            self.api_calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            admission = Admission(self.limit_info(), entered=True)
            if faults.concurrency_limit and self.in_flight > faults.concurrency_limit:
                self.faults_injected["concurrency_limit"] += 1
                admission.error = (403, "REQUEST_LIMIT_EXCEEDED",
                                   "ConcurrentPerOrgLongTxn Limit exceeded.")
                return admission
            if faults.latency_ms:
                self.faults_injected["latency"] += 1
                admission.latency_s = faults.latency_ms / 1000.0
            admission.fault = self._draw_fault()
            if admission.fault:
                self.faults_injected[admission.fault] += 1
            return admission

    def _draw_fault(self) -> str | None:
        faults = self.faults
        rates = (("drop", faults.drop_rate), ("html_503", faults.html_503_rate),
                 ("http_503", faults.http_503_rate), ("http_500", faults.http_500_rate))
        if not any(rate for _, rate in rates):
            return None
        draw = self.rng.random()
        threshold = 0.0
        for kind, rate in rates:
            threshold += rate
            if draw < threshold:
                return kind
        return None

    def release(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def record_faults_on(self) -> bool:
        """Whether any record of a write may fail by a fault (the clean paths then stand aside)."""
        return bool(self.faults.lock_rate or self.locked_keys) or self.storage_left is not None

    def lock_fault(self, key: str | None) -> bool:
        """Per-record UNABLE_TO_LOCK_ROW: always for a locked-forever Id, else a draw; call
        with the lock held."""
        if key is not None and key in self.locked_keys:
            self.faults_injected["lock"] += 1
            return True
        rate = self.faults.lock_rate
        if rate and self.rng.random() < rate:
            self.faults_injected["lock"] += 1
            return True
        return False

    def take_storage(self) -> bool:
        """Reserve room for one record write, False when storage is full; lock held."""
        left = self.storage_left
        if left is None:
            return True
        if left > 0:
            self.storage_left = left - 1
            return True
        self.faults_injected["storage_full"] += 1
        return False

    def refund_storage(self, count: int) -> None:
        """Give back reserved writes that an allOrNone rollback never made; lock held."""
        if self.storage_left is not None:
            self.storage_left += count

    def set_faults(self, values: dict[str, Any]) -> None:
        with self.lock:
            self.faults.update(values)
            if "lock_forever_ids" in values:
                self.locked_keys = _keys(self.faults.lock_forever_ids)
            if "storage_full_after" in values:
                self.storage_left = self.faults.storage_full_after
            if "random_seed" in values:
                self.rng = random.Random(self.faults.random_seed)
            if "initial_api_usage" in values:
                self.api_usage = self.faults.initial_api_usage
            if "bulk_batches_remaining" in values:
                self.bulk_batches_remaining = self.faults.bulk_batches_remaining

    def reset_usage(self) -> None:
        with self.lock:
            self.api_usage = 0
            self.bulk_batches_remaining = BULK_BATCH_ALLOCATION

    def take_bulk_batch(self) -> bool:
        """Charge one Bulk API batch to DailyBulkApiBatches; False when none are left."""
        with self.lock:
            if self.bulk_batches_remaining <= 0:
                return False
            self.bulk_batches_remaining -= 1
            return True

    def stats(self, token_requests: int) -> dict[str, Any]:
        with self.lock:
            return {
                "api_calls": self.api_calls,
                "token_requests": token_requests,
                "describe_calls": dict(self.describe_calls),
                "collections_calls": self.collections_calls,
                "collections_records": self.collections_records,
                "collections_bytes": self.collections_bytes,
                "requests": self.requests,
                "faults_injected": dict(self.faults_injected),
                "api_usage": self.api_usage,
                "api_limit": self.faults.daily_api_limit,
                "max_in_flight": self.max_in_flight,
                "storage_writes_left": self.storage_left,
                "in_flight": self.in_flight,
                "faults": self.faults.as_dict(),
            }

    # --- records (callers of the write helpers hold the lock) ------------------

    def schema(self, name: str) -> SObjectSchema:
        schema = self.schemas_lower.get(name.lower())
        if schema is None:
            raise ValueError(f"unknown sObject type: {name}")
        return schema

    def new_key(self, schema: SObjectSchema) -> str:
        store = self.store[schema.name]
        while True:
            self._counters[schema.key_prefix] += 1
            key = make_id(schema.key_prefix, self._counters[schema.key_prefix])[:15]
            if key not in store:
                return key

    def lookup_external(self, schema: SObjectSchema, spec: FieldSpec, value: str) -> list[str]:
        return self.indexes[schema.name][spec.name].get(value.lower(), [])

    def insert(self, schema: SObjectSchema, values: dict[str, Any], now: str,
               key: str | None = None) -> str:
        key = key or self.new_key(schema)
        record: dict[str, Any] = {"Id": to_18(key), **self._defaults[schema.name]}
        record.update(values)
        record.setdefault("CreatedDate", now)
        record.setdefault("LastModifiedDate", now)
        if schema.compound_name:
            derive(record)
        self.store[schema.name][key] = record
        self._index(schema, key, record, add=True)
        self.references[schema.name].add(key, record)
        if record.get("IsConverted") is True:
            self.converted_leads.add(key)
        hook = self.after_write.get(schema.name)
        if hook is not None:
            hook(self, schema, record, True)
        return record["Id"]

    def update(self, schema: SObjectSchema, key: str, values: dict[str, Any], now: str) -> str:
        """Apply changed fields; indexes and derived fields are only redone when touched."""
        record = self.store[schema.name][key]
        indexes = self.indexes[schema.name]
        moved = [] if values.keys().isdisjoint(indexes) \
            else [name for name, index in indexes.items()
                  if _moves(index, key, record.get(name), values.get(name, record.get(name)))]
        for name in moved:
            self._index_field(indexes[name], key, record.get(name), add=False)
        references = self.references[schema.name]
        before = None if values.keys().isdisjoint(references.fields) \
            else references.values(record)
        record.update(values)
        if before is not None:
            references.changed(key, before, record)
        record["LastModifiedDate"] = now
        if not values.keys().isdisjoint(DERIVED_INPUTS):
            derive(record)
        for name in moved:
            self._index_field(indexes[name], key, record.get(name), add=True)
        hook = self.after_write.get(schema.name)
        if hook is not None:
            hook(self, schema, record, False)
        return str(record["Id"])

    def assign(self, schema: SObjectSchema, key: str, values: dict[str, Any]) -> None:
        """Set fields of a live record in place, as the org's own follow-ups to a merge or a
        conversion do: no LastModifiedDate, no hooks, the reference index kept."""
        record = self.store[schema.name][key]
        before = self.references[schema.name].values(record)
        record.update(values)
        self.references[schema.name].changed(key, before, record)

    def delete(self, schema: SObjectSchema, key: str) -> None:
        record = self.store[schema.name].pop(key)
        self._index(schema, key, record, add=False)
        self.references[schema.name].remove(key, record)

    def soft_delete(self, schema: SObjectSchema, key: str, now: str,
                    master_id: str | None = None) -> dict[str, Any]:
        """Move a live record to the Recycle Bin: only queryAll sees it from now on."""
        record = self.store[schema.name].pop(key)
        self._index(schema, key, record, add=False)
        self.converted_leads.discard(key)
        record.update(IsDeleted=True, MasterRecordId=master_id, LastModifiedDate=now)
        self.deleted[schema.name][key] = record
        self.references[schema.name].moved(key)
        hook = self.after_delete.get(schema.name)
        if hook is not None:
            hook(self, schema, record, False)
        return record

    def undelete(self, schema: SObjectSchema, key: str, now: str) -> None:
        record = self.deleted[schema.name].pop(key)
        record.update(IsDeleted=False, MasterRecordId=None, LastModifiedDate=now)
        self.store[schema.name][key] = record
        self._index(schema, key, record, add=True)
        self.references[schema.name].moved(key)
        if record.get("IsConverted") is True:
            self.converted_leads.add(key)
        hook = self.after_write.get(schema.name)
        if hook is not None:
            hook(self, schema, record, False)

    def purge(self, schema: SObjectSchema, key: str) -> None:
        """Empty a record out of the Recycle Bin: gone from queryAll too."""
        self.references[schema.name].remove(key, self.deleted[schema.name].pop(key))

    def replace_schema(self, schema: SObjectSchema) -> None:
        """Swap in a rebuilt describe of an object (a field appeared, or its access changed)."""
        name = schema.name
        self.schemas[name] = schema
        self.schemas_lower[name.lower()] = schema
        self.by_prefix[schema.key_prefix] = schema
        self._defaults[name] = _defaults(schema)
        for spec in schema.external_id_fields():
            self.indexes[name].setdefault(spec.name, {})

    def _index(self, schema: SObjectSchema, key: str, record: dict[str, Any], *, add: bool) -> None:
        for field_name, index in self.indexes[schema.name].items():
            self._index_field(index, key, record.get(field_name), add=add)

    @staticmethod
    def _index_field(index: dict[str, list[str]], key: str, value: Any, *, add: bool) -> None:
        if value is None or value == "":
            return
        keys = index.setdefault(str(value).lower(), [])
        if add:
            keys.append(key)
        elif key in keys:
            keys.remove(key)

    # --- the Python API's view -------------------------------------------------

    def seed(self, object_name: str, records: Iterable[dict[str, Any]]) -> list[str]:
        """Store records as-is (no validation), so tests can build any starting state."""
        schema = self.schema(object_name)
        now = timestamp()
        ids = []
        with self.lock:
            for raw in records:
                if not isinstance(raw, dict):
                    raise ValueError("each seeded record must be a JSON object")
                values: dict[str, Any] = {}
                key = None
                for name, value in raw.items():
                    if name == "attributes":
                        continue
                    if name.lower() == "id":
                        key = parse_id(value)
                        if key is None or not key.startswith(schema.key_prefix):
                            raise ValueError(f"not a valid {schema.name} Id: {value!r}")
                        continue
                    spec = schema.field(name)
                    if spec is None:
                        raise ValueError(f"No such column '{name}' on sobject of type "
                                         f"{schema.name}")
                    values[spec.name] = value
                if key is not None and key in self.store[schema.name]:
                    self.delete(schema, key)
                if key is not None and key in self.deleted[schema.name]:
                    self.purge(schema, key)
                ids.append(self.insert(schema, values, now, key=key))
                if values.get("IsDeleted") is True:
                    self.soft_delete(schema, ids[-1][:15], now, values.get("MasterRecordId"))
        return ids

    def get(self, object_name: str, record_id: str, *,
            deleted: bool = False) -> dict[str, Any] | None:
        """A live record, or with `deleted` one in the Recycle Bin."""
        schema = self.schema(object_name)
        key = parse_id(record_id)
        store = self.deleted[schema.name] if deleted else self.store[schema.name]
        with self.lock:
            record = store.get(key) if key else None
            return dict(record) if record is not None else None

    def records(self, object_name: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        """Live records, or with `deleted` the ones in the Recycle Bin."""
        schema = self.schema(object_name)
        store = self.deleted[schema.name] if deleted else self.store[schema.name]
        with self.lock:
            return [dict(record) for record in store.values()]


def _keys(record_ids: Iterable[str]) -> frozenset[str]:
    """15-character storage keys of (already checked) record Ids."""
    return frozenset(key for key in map(parse_id, record_ids) if key is not None)


def _defaults(schema: SObjectSchema) -> dict[str, Any]:
    return {spec.name: spec.default_value for spec in schema.fields
            if spec.defaulted_on_create and spec.default_value is not None}


DERIVED_INPUTS = frozenset({"FirstName", "LastName", "Loyalty_Score__c"})


def _index_key(value: Any) -> str | None:
    return None if value is None or value == "" else str(value).lower()


def _moves(index: dict[str, list[str]], key: str, old: Any, new: Any) -> bool:
    """Whether re-indexing one field changes anything: not when the value keeps its sole entry."""
    old_key = _index_key(old)
    if old_key != _index_key(new):
        return True
    return old_key is not None and index.get(old_key) != [key]


def derive(record: dict[str, Any]) -> None:
    """Keep the compound Name and the formula field in step with their inputs."""
    first, last = record.get("FirstName"), record.get("LastName")
    if first and last:
        record["Name"] = f"{first} {last}"
    else:
        record["Name"] = f"{first or last or ''}"
    score = record.get("Loyalty_Score__c")
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        record["Formula_Tier__c"] = "Gold" if score >= 80 else "Standard"
    else:
        record["Formula_Tier__c"] = None
