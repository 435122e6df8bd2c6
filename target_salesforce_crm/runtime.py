"""The parts one run shares across its sinks: client, describe cache, dispatcher, dead letters."""

from __future__ import annotations

import gc
import logging
import threading
import typing as t
from typing import Any

from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.delivery import Deliverer, Dispatcher
from target_salesforce_crm.preflight import FieldSpec, check_fields
from target_salesforce_crm.settings import Settings
from target_salesforce_crm.stats import RunStats, write_report

if t.TYPE_CHECKING:
    from target_salesforce_crm.sinks import SalesforceSink

LOGGER = logging.getLogger("target-salesforce-crm")


class Runtime:
    """Created on the first SCHEMA, so a run with no data makes no network call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = SalesforceClient(settings)
        # a dry run writes nothing, not even the dead-letter file (the report has the counts)
        self.dead_letter = DeadLetter(None if settings.dry_run else settings.rejected_records_path)
        self.dead_letter.check_writable()
        self.stats = RunStats(dry_run=settings.dry_run)
        self.deliverer = Deliverer(
            self.client, self.dead_letter, self.stats, dry_run=settings.dry_run
        )
        self.dispatcher = Dispatcher(settings.max_concurrency, self.deliverer.deliver)
        self.client.on_concurrency_limit = self.dispatcher.lower_concurrency
        self._fields: dict[str, dict[str, FieldSpec]] = {}
        self.sinks: list[SalesforceSink] = []
        self._lock = threading.Lock()

    def fields_for(self, object_type: str) -> dict[str, FieldSpec]:
        """Describe and pre-flight, on first use, every object the config can write to, so a
        bad config for one object is refused before anything is written to another."""
        with self._lock:
            if not self._fields:
                objects = [self.settings.object_type, *self.settings.stream_object_types.values()]
                for name in dict.fromkeys(objects):
                    describe = self.client.describe(name)
                    self._fields[name] = check_fields(self.settings, name, describe)
                    LOGGER.info("pre-flight of %s passed (%d mapped fields, %d segment fields)",
                                name, len(self.settings.mappings_for(name)),
                                len(self.settings.segment_mappings))
            return self._fields[object_type]

    def api_summary(self) -> dict[str, Any]:
        counts = self.client.counts
        return {
            "calls": counts.total + self.client.tokens.grants,
            "token_calls": self.client.tokens.grants,
            "describe_calls": counts.describe,
            "collections_calls": counts.collections,
            "retried_calls": counts.retries,
            "reauthentications": counts.reauth,
            "usage_percent": self.client.usage.percent,
            "org_api_usage": self.client.usage.used,
            "org_api_limit": self.client.usage.max,
            "max_concurrency_now": self.dispatcher.limit,
            "rejected_records_path": self.settings.rejected_records_path,
            "dead_letter_lines": self.dead_letter.count,
        }

    def land_everything(self) -> None:
        """Barrier before STATE: every dispatched record landed or durably dead-lettered."""
        self.dispatcher.wait_idle()
        self.dead_letter.sync()

    def finish(self, error: str | None, status: str | None = None) -> None:
        """Log the summary and write the run report (also when the run failed)."""
        self.dispatcher.wait_idle(raise_failure=False)  # count what was in flight at a stop
        api = self.api_summary()
        self.stats.log_summary(api)
        if self.settings.run_report_path:
            report = self.stats.report(api, error=error, status=status)
            write_report(self.settings.run_report_path, report)
        self.dead_letter.close()
        self.dispatcher.shutdown()


def collect_garbage_rarely() -> None:
    """Records are acyclic and freed by reference counting; with the default thresholds the
    cyclic collector would run every few dozen records and re-scan every long-lived object.
    After start-up those are frozen out of its sight, and it runs every 20,000 allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
