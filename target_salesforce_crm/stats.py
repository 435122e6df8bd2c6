"""Run counters, the periodic progress line, the final summary and the JSON run report.

Only counts, field names, error codes and Ids are kept here: never profile values or secrets.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOGGER = logging.getLogger("target-salesforce-crm")
PROGRESS_INTERVAL_SECONDS = 5.0
DRY_RUN_SAMPLE_SIZE = 20
_KEY_FIELDS = 2  # every body carries "attributes" and its key ("id" or the external id)


@dataclass
class StreamStats:
    object_type: str
    received: int = 0
    updated: int = 0
    created: int = 0
    rejected: int = 0
    merged: int = 0
    retried: int = 0
    would_send: int = 0
    skipped_unchanged: int = 0  # sync ledger: records whose values all landed before
    fields_sent: int = 0  # field values sent (or, in a dry run, that would be), keys excluded
    api_calls: int = 0
    transport: str = "collections"  # "bulk" once the stream's records go through Bulk API 2.0
    bulk_jobs: int = 0
    bulk_calls: int = 0
    bulk_batches: int = 0
    bulk_records: int = 0
    rejections_by_code: Counter = field(default_factory=Counter)
    redirected: Counter = field(default_factory=Counter)  # by kind: converted_lead, merged
    dropped_on_conversion: Counter = field(default_factory=Counter)  # Lead-only fields

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": self.object_type,
            "received": self.received,
            "updated": self.updated,
            "created": self.created,
            "rejected": self.rejected,
            "merged_duplicates": self.merged,
            "retried_records": self.retried,
            "would_send": self.would_send,
            "skipped_unchanged": self.skipped_unchanged,
            "fields_sent": self.fields_sent,
            "collections_calls": self.api_calls,
            "transport": self.transport,
            "api_calls": self.api_calls + self.bulk_calls,
            "bulk_jobs": self.bulk_jobs,
            "bulk_calls": self.bulk_calls,
            "bulk_batches": self.bulk_batches,
            "bulk_records": self.bulk_records,
            "rejections_by_code": dict(self.rejections_by_code),
            "redirected": dict(self.redirected),
            "fields_dropped_on_conversion": dict(self.dropped_on_conversion),
        }


class RunStats:
    """Thread-safe counters for one run."""

    def __init__(self, *, dry_run: bool = False) -> None:
        self.dry_run = dry_run
        self.started = time.time()
        self._lock = threading.Lock()
        self.streams: dict[str, StreamStats] = {}
        self.segments: dict[str, Counter] = {}
        self.segment_fields_sent: Counter = Counter()  # segment field → records it was sent in
        self.sample_payloads: list[dict[str, Any]] = []
        # further report sections by name (campaign members, provisioning, ...), read at the end
        self.sections: dict[str, Callable[[], dict[str, Any]]] = {}
        self._last_progress = time.monotonic()

    def stream(self, name: str, object_type: str) -> StreamStats:
        with self._lock:
            return self.streams.setdefault(name, StreamStats(object_type))

    def landed(
        self, stats: StreamStats, landed: list[tuple[dict[str, Any], bool]],
        segment_fields: tuple[str, ...],
    ) -> None:
        """Count one call's successes: (payload, created) pairs, under one lock."""
        created = sum(1 for _, was_created in landed if was_created)
        fields = sum(len(payload) for payload, _ in landed) - _KEY_FIELDS * len(landed)
        with self._lock:
            stats.created += created
            stats.updated += len(landed) - created
            stats.fields_sent += fields
            self._count_segments([payload for payload, _ in landed], segment_fields)

    def would_send(
        self, stats: StreamStats, payload: dict[str, Any], segment_fields: tuple[str, ...]
    ) -> None:
        with self._lock:
            stats.would_send += 1
            stats.fields_sent += len(payload) - _KEY_FIELDS
            self._count_segments([payload], segment_fields)
            if len(self.sample_payloads) < DRY_RUN_SAMPLE_SIZE:
                self.sample_payloads.append(payload)

    def _count_segments(
        self, payloads: list[dict[str, Any]], segment_fields: tuple[str, ...]
    ) -> None:
        """Status counts per segment field (caller holds the lock)."""
        for name in segment_fields:
            statuses = [p[name] for p in payloads if p.get(name) is not None]
            if statuses:
                self.segments.setdefault(name, Counter()).update(statuses)
                self.segment_fields_sent[name] += len(statuses)

    def skipped_unchanged(self, stats: StreamStats, count: int) -> None:
        with self._lock:
            stats.skipped_unchanged += count

    def rejected(self, stats: StreamStats, code: str) -> None:
        with self._lock:
            stats.rejected += 1
            stats.rejections_by_code[code] += 1

    def redirected(self, stats: StreamStats, kind: str, count: int) -> None:
        with self._lock:
            stats.redirected[kind] += count

    def dropped_on_conversion(self, stats: StreamStats, fields: list[str]) -> None:
        with self._lock:
            stats.dropped_on_conversion.update(fields)

    def called(self, stats: StreamStats) -> None:
        with self._lock:
            stats.api_calls += 1

    def bulk_job(self, stats: StreamStats, *, calls: int, batches: int, records: int) -> None:
        """One Bulk job's cost: API calls, DailyBulkApiBatches (≈ one per 10,000 rows), rows;
        measured in a real run, forecast in a dry run."""
        with self._lock:
            stats.bulk_jobs += 1
            stats.bulk_calls += calls
            stats.bulk_batches += batches
            stats.bulk_records += records

    def retried(self, stats: StreamStats, count: int) -> None:
        with self._lock:
            stats.retried += count

    def totals(self) -> dict[str, int]:
        keys = ("received", "updated", "created", "rejected", "retried", "would_send",
                "skipped_unchanged", "fields_sent")
        return {k: sum(getattr(s, k) for s in self.streams.values()) for k in keys}

    def maybe_log_progress(self, api_summary: Callable[[], dict[str, Any]]) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        api = api_summary()
        t = self.totals()
        usage = api.get("usage_percent")
        LOGGER.info(
            "progress: received=%d landed=%d skipped_unchanged=%d rejected=%d retried=%d "
            "api_calls=%d api_usage=%s",
            t["received"], t["updated"] + t["created"], t["skipped_unchanged"], t["rejected"],
            t["retried"],
            api.get("calls", 0), f"{usage:.1f}%" if usage is not None else "n/a",
        )

    def log_summary(self, api: dict[str, Any]) -> None:
        for name, s in self.streams.items():
            if self.dry_run:
                LOGGER.info(
                    "DRY RUN summary for stream %s (%s): received=%d would_send=%d "
                    "skipped_unchanged=%d fields_would_send=%d rejected=%d transport=%s "
                    "api_calls=%d bulk_batches=%d %s",
                    name, s.object_type, s.received, s.would_send, s.skipped_unchanged,
                    s.fields_sent, s.rejected, s.transport, s.api_calls + s.bulk_calls,
                    s.bulk_batches, dict(s.rejections_by_code) or "",
                )
                continue
            LOGGER.info(
                "summary for stream %s (%s): received=%d updated=%d created=%d "
                "skipped_unchanged=%d fields_sent=%d rejected=%d merged=%d retried=%d "
                "api_calls=%d transport=%s bulk_jobs=%d %s",
                name, s.object_type, s.received, s.updated, s.created, s.skipped_unchanged,
                s.fields_sent, s.rejected, s.merged, s.retried, s.api_calls + s.bulk_calls,
                s.transport, s.bulk_jobs,
                dict(s.rejections_by_code) or "",
            )
        for field_name, counts in self.segments.items():
            verb = "would carry" if self.dry_run else "now carry"
            LOGGER.info("segment field %s: %s in %d records; records that %s each status: %s",
                        field_name, "would be sent" if self.dry_run else "sent",
                        self.segment_fields_sent[field_name], verb, dict(counts))
        for name, section in self.sections.items():
            LOGGER.info("%s: %s", name, section())

    def report(
        self, api: dict[str, Any], *, error: str | None, status: str | None = None
    ) -> dict[str, Any]:
        finished = time.time()
        report: dict[str, Any] = {
            "status": status or ("failed" if error else "succeeded"),
            "error": error,
            "dry_run": self.dry_run,
            "started_at": _iso(self.started),
            "finished_at": _iso(finished),
            "duration_seconds": round(finished - self.started, 3),
            "totals": self.totals(),
            "streams": {name: s.as_dict() for name, s in self.streams.items()},
            "segments": {name: dict(c) for name, c in self.segments.items()},
            "segment_fields_sent": dict(self.segment_fields_sent),
            "api": api,
        }
        for name, section in self.sections.items():
            report[name] = section()
        if self.dry_run:
            report["sample_payloads"] = self.sample_payloads
        return report


def write_report(path: str, report: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, default=str)
    os.replace(tmp, path)


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()
