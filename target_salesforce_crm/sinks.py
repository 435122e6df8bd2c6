"""The Salesforce sink: map each record on arrival, merge by Id, send full collections calls.

Records leave the SDK's buffer as soon as they are read: a bad one is dead-lettered at once
(no API call spent), a good one waits in ``_pending`` (merged with earlier records for the same
Id) until there are ``batch_size`` of them. Partial chunks go out once a minute, after 5 s
without a RECORD, and at the end; every other call carries a full ``batch_size``. With
``write_api: auto`` a new stream's first records wait longer, until the stream reaches
``bulk_threshold`` (then they travel in its Bulk job) or for at most ``HOLD_SECONDS``.
"""

from __future__ import annotations

import time
import typing as t
from typing import Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.helpers._compat import (
    date_fromisoformat,
    datetime_fromisoformat,
    time_fromisoformat,
)
from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.rejections import RecordRejected, Rejection, Source
from target_salesforce_crm.runtime import Runtime
from target_salesforce_crm.settings import MAX_BATCH_SIZE
from target_salesforce_crm.validation import CompiledValidator

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

_INVALID = "__target_salesforce_crm_invalid__"
_COUNTER_STEP = 64  # the SDK's record counter metric is fed in steps, not per record
HOLD_SECONDS = 3.0  # auto: how long a new stream's first records may wait for bulk_threshold
_DATE_PARSERS = {
    "date-time": datetime_fromisoformat,
    "date": date_fromisoformat,
    "time": time_fromisoformat,
}


class SalesforceSink(BatchSink):
    """Writes one stream to one Salesforce object (Contact or Lead)."""

    MAX_SIZE_DEFAULT = MAX_BATCH_SIZE  # the SDK drains the sink after this many records

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        runtime = getattr(target, "runtime", None)
        if not isinstance(runtime, Runtime):
            msg = "SalesforceSink needs a target that built a Runtime"
            raise TypeError(msg)
        self.runtime = runtime
        super().__init__(target, *args, **kwargs)

    def setup(self) -> None:
        settings = self.runtime.settings
        self.object_type = settings.object_for_stream(self.stream_name)
        fields = self.runtime.fields_for(self.object_type)
        self.mapper = RecordMapper(settings, self.object_type, fields, self.runtime.flattening)
        self.batch_size = settings.batch_size
        self.external_id_field = (
            fields[settings.external_id_field.lower()].name
            if settings.operation == "upsert" and settings.external_id_field
            else None
        )
        self.segment_fields = tuple(spec.name for _, spec, _ in self.mapper.segments)
        self.stream_stats = self.runtime.stats.stream(self.stream_name, self.object_type)
        self.source = Source(self.stream_name, self.object_type, self.stream_stats)
        self.runtime.bulk.register(self.source, self.mapper, self.segment_fields,
                                   self.external_id_field)
        # skip_unchanged / full_resync: batches go through the sync ledger's diff first
        self.sieve = self.runtime.sieve(self.source, self.segment_fields,
                                        self.external_id_field)
        self._pending: dict[str, Entry] = {}
        self._index = self.runtime.pending
        self._date_fields = {
            key: kind
            for key, prop in self.schema.get("properties", {}).items()
            if (kind := get_datelike_property_type(prop))
        }
        self._add_metadata = self.include_sdc_metadata_properties
        self._uncounted = 0  # records not yet added to the SDK's record counter metric
        self._drain_size = self.max_size
        # auto: a new stream's first records are held (``BulkDelivery.hold_size``) until it
        # has bulk_threshold of them, HOLD_SECONDS pass, or a flush, whichever comes first
        self._hold_size = self.runtime.bulk.hold_size(self.stream_name)
        self._hold_deadline: float | None = None

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return CompiledValidator(self.schema) if self.validate_schema else None

    def _validate_and_parse(self, record: dict) -> dict:
        """Validate without aborting the run: an invalid record is marked (in place, the SDK
        ignores the return value) and dead-lettered by ``process_record``."""
        problem = None
        if self._validator is not None:
            try:
                self._validator.validate(record)
            except InvalidRecord as exc:
                problem = str(exc)
        if problem is None:
            problem = self._parse_dates(record)
        if problem is not None:
            record[_INVALID] = problem
        return record

    def _parse_dates(self, record: dict) -> str | None:
        """Top-level date/date-time/time strings to Python objects, as the SDK would; a bad one
        makes the record invalid (the SDK would log the value and silently drop it)."""
        for key, kind in self._date_fields.items():
            value = record.get(key)
            if isinstance(value, str):
                try:
                    record[key] = _DATE_PARSERS[kind](value)
                except ValueError:
                    return f"{key} is not a valid ISO 8601 {kind}"
        return None

    def _singer_validate_message(self, record: dict) -> None:
        """A record without a key property is dead-lettered, not fatal: a fatal error would
        stop every re-run at the same record."""
        if _INVALID in record:
            return
        missing = [key for key in self.key_properties if key not in record]
        if missing:
            record[_INVALID] = f"the record lacks the stream's key properties {missing}"

    def take(self, record: dict, message: dict) -> bool:
        """One RECORD through the SDK's per-record steps (metadata columns, validation,
        ``preprocess_record``, key check, tallies, record counter) minus its record copy and
        debug log, which cost more than mapping; True when the sink should be drained.

        The steps repeat ``Target._process_record_message``; ``sdk_privates.py`` lists the SDK
        internals they use and ``tests/test_sdk_fence.py`` checks both stay in step."""
        context = self._get_context(record)
        if self._add_metadata:
            self._add_sdc_metadata_to_record(record, message, context)
        else:
            self._remove_sdc_metadata_from_record(record)
        self._validate_and_parse(record)
        record = self.preprocess_record(record, context)
        self._singer_validate_message(record)
        self.tally_record_read()
        self.process_record(record, context)
        self._uncounted += 1
        if self._uncounted == _COUNTER_STEP:
            self._record_counter.increment(_COUNTER_STEP)
            self._uncounted = 0
        return self._batch_records_read >= self._drain_size

    def process_record(self, record: dict, context: dict) -> None:
        stats = self.stream_stats
        stats.received += 1
        if _INVALID in record:
            message = record.pop(_INVALID)
            self._reject_now(record, Rejection("INVALID_RECORD", message))
            return
        try:
            mapped = self.mapper.map(record)
        except RecordRejected as exc:
            self._reject_now(record, exc.rejection)
            return
        existing = self._pending.get(mapped.key)
        if existing is None:
            entry = Entry(mapped.key, mapped.payload, [(self.source, record)],
                          memberships=mapped.memberships)
            earlier = self._index.open(self.object_type, entry, self._pending)
            if earlier is not None:  # another stream's older value: merged, then sent here
                earlier.records[-1][0].stats.merged += 1
                earlier.merge(mapped.payload, self.source, record, mapped.memberships)
                entry = earlier
            self._pending[mapped.key] = entry
        else:
            existing.merge(mapped.payload, self.source, record, mapped.memberships)
            stats.merged += 1
        if not stats.received & 63:  # the clock is read every 64 records, not every one
            self.runtime.stats.maybe_log_progress(self.runtime.api_summary)

    def _reject_now(self, record: dict, rejection: Rejection) -> None:
        raw_id = self.mapper.key_path.get(record)
        self.runtime.rejector.reject(rejection, None if raw_id is None else str(raw_id),
                                     [(self.source, record)])

    def process_batch(self, context: dict) -> None:
        """Send every full ``batch_size`` chunk; keep the remainder for the next one."""
        self._dispatch(flush=False)

    def has_pending(self) -> bool:
        return bool(self._pending) or (self.sieve is not None and self.sieve.pending)

    def flush(self) -> None:
        """Send what is pending, full or not (before STATE and at the end)."""
        self._dispatch(flush=True)

    def _holding(self) -> bool:
        """Still holding: fewer than ``_hold_size`` records, and within HOLD_SECONDS of the
        first check."""
        if len(self._pending) >= self._hold_size:
            return False
        now = time.monotonic()
        if self._hold_deadline is None:
            self._hold_deadline = now + HOLD_SECONDS
        return now < self._hold_deadline

    def _dispatch(self, *, flush: bool) -> None:
        if self._hold_size and not flush and self._holding():
            return
        self._hold_size = 0  # a hold ends once, for good
        while len(self._pending) >= self.batch_size or (flush and self._pending):
            keys: list[str] = []
            entries: list[Entry] = []
            incomplete: list[tuple[Entry, Rejection]] = []
            for key, entry in self._pending.items():
                if len(entries) == self.batch_size:
                    break
                keys.append(key)
                problem = self.mapper.missing_for_create(entry.payload)
                if problem is None:
                    entries.append(entry)
                else:
                    incomplete.append((entry, problem))
            for key in keys:
                del self._pending[key]
            stamps = self._index.release_all(self.object_type, keys)
            for entry, problem in incomplete:
                self.runtime.rejector.reject(problem, entry.key, entry.records)
            if entries and self.sieve is not None:
                self.sieve.add(entries, stamps)
            elif entries:
                self.runtime.send(self._chunk(entries), len(self._pending))
        if flush and self.sieve is not None:
            self.sieve.flush()

    def _chunk(self, entries: list[Entry]) -> Chunk:
        return Chunk(
            source=self.source,
            segment_fields=self.segment_fields,
            entries=entries,
            external_id_field=self.external_id_field,
        )

    def clean_up(self) -> None:
        self._record_counter.increment(self._uncounted)
        self._uncounted = 0
        self.flush()
        self.runtime.land_everything()
        if self.mapper.truncated:
            self.logger.info("truncated over-long values (string_overflow=truncate): %s",
                             self.mapper.truncated)
