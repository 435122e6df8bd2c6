"""The forecast of a Bulk job's polls, and a dry run calibrating it from the org.

A job's polls are counted by ``polls_for`` from the time the org takes; here that count is
checked against ``BulkIngest.wait`` itself, run on a simulated clock against a job that ends at
a given time, and end to end: a dry run that reads the org's processing rate from its latest
completed job forecasts the calls a real run then spends.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.bulk_forecast import (
    DEFAULT_RATE,
    MIN_CALIBRATION_ROWS,
    DryRunForecast,
    ProcessingRate,
    job_reserve,
    rate_of,
)
from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.salesforce.bulk import BulkIngest, JobInfo, polls_for
from target_salesforce_crm.salesforce.client import CallCounts
from target_salesforce_crm.salesforce.errors import BulkJobTimedOut, RequestFailed
from target_salesforce_crm.stats import RunStats


class JobEndingAt:
    """A client whose one job is InProgress until the simulated clock reaches ``ends_at``."""

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at
        self.now = 0.0
        self.polls = 0

    def call(self, method: str, path: str, body: Any = None, kind: str | None = None) -> Any:
        assert (method, path) == ("GET", "jobs/ingest/750x")
        self.polls += 1
        state = "JobComplete" if self.now >= self.ends_at else "InProgress"
        return {"id": "750x", "state": state}

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def polls_of_wait(ends_at: float, timeout_s: float) -> int:
    """How many polls ``BulkIngest.wait`` makes for a job that ends ``ends_at`` s after close."""
    client = JobEndingAt(ends_at)
    bulk = BulkIngest(client, sleep=client.sleep, clock=lambda: client.now)  # type: ignore[arg-type]
    try:
        bulk.wait("750x", timeout_s)
    except BulkJobTimedOut:
        assert client.now >= timeout_s
    return client.polls


@pytest.mark.parametrize("seconds", [0, 0.4, 1, 1.01, 2.5, 2.6, 4.75, 8, 20.8, 49.3, 74.9, 105,
                                     106, 500, 1000.5, 3599, 3600, 3601, 10_000])
def test_polls_for_counts_the_polls_wait_makes(seconds: float) -> None:
    assert polls_for(seconds, 3600) == polls_of_wait(seconds, 3600)
    assert polls_for(seconds, 60) == polls_of_wait(seconds, 60)


@pytest.mark.parametrize(("rows", "rows_per_second"), [
    (1, 2_000), (450, 2_000), (10_000, 2_000), (333_333, 2_000), (1_000_000, 2_000),
    (333_333, 16_000), (918_498, 120_000), (1_000_000, 300), (50_000, 4_000)])
def test_a_jobs_polls_follow_from_its_rows_and_the_rate(rows: int, rows_per_second: int) -> None:
    rate = ProcessingRate(rows_per_second, "test")
    assert rate.polls(rows, 3600) == polls_of_wait(rows / rows_per_second, 3600)
    assert rate.job_calls(rows, 3600) == rate.polls(rows, 3600) + 6


def test_slower_jobs_never_take_fewer_polls_and_the_timeout_bounds_them() -> None:
    counts = [DEFAULT_RATE.polls(rows, 3600) for rows in range(0, 10_000_000, 25_000)]
    assert counts == sorted(counts)
    assert counts[0] == 1
    assert counts[-1] == polls_of_wait(math.inf, 3600) == polls_for(3600)


def test_auto_keeps_more_for_a_larger_job() -> None:
    assert job_reserve(300) < job_reserve(10_000) < job_reserve(1_000_000)
    assert job_reserve(10_000_000, 3600) == job_reserve(100_000_000, 3600)  # the timeout ends it


def test_the_rate_comes_from_a_completed_job_large_enough_to_tell() -> None:
    large = JobInfo("750a", "JobComplete", processed=300_000, processing_ms=20_000)
    assert rate_of(large, "Contact").rows_per_second == 15_000
    assert "750a" in rate_of(large, "Contact").source
    small = JobInfo("750b", "JobComplete", processed=MIN_CALIBRATION_ROWS - 1,
                    processing_ms=100)
    untimed = JobInfo("750c", "JobComplete", processed=300_000, processing_ms=0)
    for info in (None, small, untimed):
        rate = rate_of(info, "Contact")
        assert rate.rows_per_second == DEFAULT_RATE.rows_per_second
        assert rate.source.startswith(DEFAULT_RATE.source)


class ListRefused:
    """An org whose integration user may not read the job list."""

    def __init__(self) -> None:
        self.counts = CallCounts()

    def call(self, method: str, path: str, body: Any = None, kind: str | None = None) -> Any:
        self.counts.bulk += 1
        raise RequestFailed(403, "INSUFFICIENT_ACCESS", "insufficient access rights")


def test_a_job_list_the_dry_run_cannot_read_leaves_the_default_rate() -> None:
    stats = RunStats(dry_run=True)
    forecast = DryRunForecast(BulkIngest(ListRefused()), 3600, stats)  # type: ignore[arg-type]
    assert forecast.job_calls("Contact", 50_000) == DEFAULT_RATE.job_calls(50_000, 3600)
    assert forecast.job_calls("Contact", 10_000) == DEFAULT_RATE.job_calls(10_000, 3600)
    report = stats.sections["bulk_forecast"]()
    assert report["calls_made"] == 1  # one look per object and run
    assert "INSUFFICIENT_ACCESS" in report["rates"]["Contact"]["from"]
    assert [job["rows"] for job in report["jobs"]] == [50_000, 10_000]


def test_a_dry_run_calibrates_from_the_orgs_last_job_and_forecasts_the_calls(
        tmp_path: Path) -> None:
    """The emulator processes 4,000 rows/s (not the default rate): a dry run on an org that
    has run no job forecasts at the default rate; once the org has completed a job, a dry
    run forecasts at that job's rate, and the real run that follows spends what it said."""
    rows = 12_000
    with Emulator(segment_fields=SEGMENT_FIELDS, bulk_rows_per_second=4_000) as emu:
        ids = seed_contacts(emu, rows)
        lines = singer_lines("contacts", [profile(i, n, seg_loyal="realized")
                                          for n, i in enumerate(ids)])

        def run(name: str, **settings: Any) -> dict[str, Any]:
            directory = tmp_path / name
            directory.mkdir()
            done = run_target(base_config(emu, directory, write_api="bulk", **settings), lines,
                              directory)
            assert done.returncode == 0, done.stderr[-3000:]
            return done.report

        cold = run("cold", dry_run=True)
        assert cold["bulk_forecast"]["calls_made"] == 1  # the job list: no job to look at
        assert cold["bulk_forecast"]["rates"]["Contact"]["from"].startswith(DEFAULT_RATE.source)
        run("first")
        calibrated = run("calibrated", dry_run=True)
        measured = run("measured")
        stats = emu.stats()

    forecast = calibrated["bulk_forecast"]
    assert forecast["calls_made"] == 2  # the job list and the job it names
    assert forecast["rates"]["Contact"]["from"].startswith("job 750")
    assert 2_000 < forecast["rates"]["Contact"]["rows_per_second"] <= 4_000
    stream, done = calibrated["streams"]["contacts"], measured["streams"]["contacts"]
    assert forecast["jobs"] == [{"object": "Contact", "rows": rows,
                                 "polls": stream["bulk_calls"] - 7}]  # 6 + the job list
    assert (done["bulk_jobs"], done["bulk_batches"]) == (stream["bulk_jobs"],
                                                         stream["bulk_batches"]) == (1, 2)
    assert done["bulk_calls"] == stream["bulk_calls"]
    assert cold["streams"]["contacts"]["bulk_calls"] > stream["bulk_calls"]
    assert stats["bulk"]["jobs_created"] == 2
