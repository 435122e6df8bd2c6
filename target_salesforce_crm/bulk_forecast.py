"""What a Bulk API 2.0 job costs in API calls: a dry run's forecast, and the calls ``auto`` keeps
in hand for a job when the org's API allowance runs low.

A job costs six calls whatever its size (create, upload, close, the three result sets) plus its
polls, and those depend on how long the org takes: ``BulkIngest.wait`` polls after 1 s, then
1.5 times later each time, up to every 30 s (``salesforce.bulk.polls_for`` counts them). So a
job's polls are forecast from its rows and a processing rate, in rows per second from the job's
close to its end. The one assumption is DEFAULT_ROWS_PER_SECOND (README, "Bulk API 2.0 for
large volumes"); a dry run replaces it by what the org itself did last: the latest completed
ingest job on the same object, if it had at least MIN_CALIBRATION_ROWS rows, its
``numberRecordsProcessed`` over its ``totalProcessingTime``. That costs the dry run two calls
(the job list and that job), which its report names (``bulk_forecast.calls_made``) so they can
be told from the forecast.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.salesforce.bulk import ROWS_PER_BATCH, BulkIngest, JobInfo, polls_for
from target_salesforce_crm.salesforce.errors import BulkJobFailed, RequestFailed
from target_salesforce_crm.stats import RunStats

LOGGER = logging.getLogger("target-salesforce-crm")
# [I] an update of a Contact or Lead without heavy automation, queueing included; orgs with
# triggers or flows on the object are slower. Bulk-heavy orgs should let a dry run calibrate.
DEFAULT_ROWS_PER_SECOND = 2_000
JOB_FIXED_CALLS = 6  # create, upload, close; the three result sets
# a smaller job's time is mostly the org's fixed overhead: its rate would say little
MIN_CALIBRATION_ROWS = ROWS_PER_BATCH


@dataclass(frozen=True)
class ProcessingRate:
    """How fast the org processes a job's rows, and where that figure comes from."""

    rows_per_second: float
    source: str

    def polls(self, rows: int, timeout_s: float = math.inf) -> int:
        """Polls a job of ``rows`` rows takes (those until ``timeout_s`` if it runs longer)."""
        return polls_for(rows / self.rows_per_second, timeout_s)

    def job_calls(self, rows: int, timeout_s: float = math.inf) -> int:
        return JOB_FIXED_CALLS + self.polls(rows, timeout_s)


DEFAULT_RATE = ProcessingRate(DEFAULT_ROWS_PER_SECOND,
                              f"default ({DEFAULT_ROWS_PER_SECOND:,} rows/s)")


def job_reserve(rows: int, timeout_s: float = math.inf) -> int:
    """Calls ``auto`` keeps for a job when the API allowance runs low: a job of ``rows`` rows at
    the default rate, the look at the Bulk batch allowance and at the job list, and as many
    polls again for a job slower than that."""
    return DEFAULT_RATE.job_calls(rows, timeout_s) + 2 + DEFAULT_RATE.polls(rows, timeout_s)


def rate_of(info: JobInfo | None, object_type: str) -> ProcessingRate:
    """The rate a completed job shows (its rows over its processing time), or the default
    when there is none or it is too small to tell."""
    if info is None:
        return _default(f"no completed {object_type} ingest job in the org's job list")
    if info.processed < MIN_CALIBRATION_ROWS or info.processing_ms <= 0:
        return _default(f"the org's latest completed {object_type} job, {info.id}, had "
                        f"{info.processed:,} rows in {info.processing_ms / 1000:g} s (fewer "
                        f"than {MIN_CALIBRATION_ROWS:,} rows tell little)")
    seconds = info.processing_ms / 1000
    return ProcessingRate(info.processed / seconds,
                          f"job {info.id}: {info.processed:,} {object_type} rows in "
                          f"{seconds:.1f} s")


def _default(why: str) -> ProcessingRate:
    return ProcessingRate(DEFAULT_RATE.rows_per_second, f"{DEFAULT_RATE.source}: {why}")


class DryRunForecast:
    """A dry run's Bulk jobs: their calls forecast at the org's rate per object, and the
    report section (``bulk_forecast``, from the first job on) that says which rate, where it
    came from and what finding it cost."""

    def __init__(self, bulk: BulkIngest, timeout_s: float, stats: RunStats) -> None:
        self.bulk = bulk
        self.timeout_s = timeout_s
        self.stats = stats
        self.calls_made = 0
        self._rates: dict[str, ProcessingRate] = {}
        self._jobs: list[dict[str, Any]] = []

    def job_calls(self, object_type: str, rows: int) -> int:
        """The calls a job of ``rows`` rows would cost (the look at the job list aside)."""
        self.stats.sections["bulk_forecast"] = self.report
        polls = self.rate(object_type).polls(rows, self.timeout_s)
        self._jobs.append({"object": object_type, "rows": rows, "polls": polls})
        return JOB_FIXED_CALLS + polls

    def rate(self, object_type: str) -> ProcessingRate:
        rate = self._rates.get(object_type)
        if rate is None:
            rate = self._rates[object_type] = self._calibrate(object_type)
            LOGGER.info("DRY RUN: %s Bulk jobs forecast at %s rows/s (%s)", object_type,
                        f"{rate.rows_per_second:,.0f}", rate.source)
        return rate

    def _calibrate(self, object_type: str) -> ProcessingRate:
        before = self.bulk.client.counts.bulk
        try:
            return rate_of(self.bulk.last_completed(object_type), object_type)
        except (RequestFailed, BulkJobFailed) as exc:
            reason = getattr(exc, "error_code", None) or exc
            return _default(f"the org's job list could not be read ({reason})")
        finally:
            self.calls_made += self.bulk.client.counts.bulk - before

    def report(self) -> dict[str, Any]:
        return {
            "rates": {name: {"rows_per_second": round(rate.rows_per_second),
                             "from": rate.source} for name, rate in self._rates.items()},
            "calls_made": self.calls_made,
            "jobs": list(self._jobs),
        }
