"""kill -9 during a Bulk API 2.0 job, then a re-run from the last STATE: the org ends as after
one clean run (SPEC §3 "Delivery": at-least-once, STATE only for what landed).

The real CLI is fed slowly with a lowered max record age (and a spool run at each one, not every
tenth), so the spool goes out as a job about every second and STATEs follow each job. Once a
STATE is out, the emulator is made slow in one phase of the next job (its answers held for
seconds, or its rows processed slowly); the phase is seen in the emulator's
``/__emulator__/stats`` Bulk counters and the target is killed with SIGKILL there: while its
upload is unanswered, while it polls a job that keeps running, or between the result sets it
reads. A tap then resumes after the last STATE the target printed. The input sends every profile
twice, the second time with newer values, so a stale write anywhere (a replay landing before the
records it should follow, a killed run's job landing after the re-run) shows in the comparison.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _reliability import LiveRun, assert_same_org, message_lines, resume_after, snapshot
from conftest import SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.emulator import Emulator

PROFILES = 1500
STATE_EVERY = 100
AGE_MINUTES = 0.02  # partial chunks, and so the spool, go out every 1.2 s
SLOW_MS = 1500


def input_records(ids: list[str]) -> list[dict]:
    records = [profile(record_id, n, seg_loyal="realized", seg_churn="existing")
               for n, record_id in enumerate(ids)]
    for k in range(PROFILES):  # every profile again, in another order, with newer values
        n = (k * 7) % PROFILES
        records.append({"crmID": ids[n], "person": {"name": {"lastName": f"L{n}t{k}"}},
                        "segmentMembership": {"ups": {"seg-loyal": {"status": "exited"}}}})
    return records


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str], dict]:
    """The input's lines and the org one clean Bulk run leaves."""
    directory = tmp_path_factory.mktemp("clean")
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        ids = seed_contacts(emu, PROFILES)
        text = singer_lines("contacts", input_records(ids), state_every=STATE_EVERY)
        run = run_target(base_config(emu, directory, write_api="bulk"), text, directory)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.report["streams"]["contacts"]["bulk_jobs"] >= 1
        return ids, message_lines(text), snapshot(emu)


def bulk_stats(emu: Emulator) -> dict[str, int]:
    return dict(emu.stats()["bulk"])


def reach_upload(emu: Emulator, live: LiveRun) -> None:
    """A job's upload has arrived; its answer is held back."""
    emu.set_faults(latency_ms=SLOW_MS)
    before = bulk_stats(emu)
    live.wait_until(lambda: bulk_stats(emu)["uploads"] > before["uploads"], timeout=120)


def reach_polling(emu: Emulator, live: LiveRun) -> None:
    """A job is closed and polled while the org processes its rows slowly; killed there, the
    job goes on writing after the target is gone."""
    emu.set_faults(bulk_rows_per_second=40)
    before = bulk_stats(emu)
    live.wait_until(lambda: bulk_stats(emu)["closes"] > before["closes"], timeout=120)
    closed = bulk_stats(emu)
    live.wait_until(lambda: bulk_stats(emu)["polls"] > closed["polls"], timeout=60)
    assert bulk_stats(emu)["jobs_completed"] == closed["jobs_completed"]  # still processing


def reach_result_reading(emu: Emulator, live: LiveRun) -> None:
    """A job's results are being read: one result set answered, the next held back."""
    emu.set_faults(latency_ms=SLOW_MS)
    before = bulk_stats(emu)
    live.wait_until(lambda: bulk_stats(emu)["result_reads"] >= before["result_reads"] + 2,
                    timeout=120)


PHASES: dict[str, Callable[[Emulator, LiveRun], None]] = {
    "upload": reach_upload, "polling": reach_polling, "result_reading": reach_result_reading}


def settle(emu: Emulator, timeout: float = 60) -> None:
    """Wait until no job is left processing (a killed run's job keeps running on the org)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bulk = emu.stats()["bulk"]
        if bulk["closes"] <= bulk["jobs_completed"] + bulk["jobs_failed"] + bulk["aborts"]:
            return
        time.sleep(0.1)
    raise AssertionError("a Bulk job was still running")


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_sigkill_during_a_bulk_job_then_resume_equals_a_clean_run(
        phase: str, clean: tuple[list[str], list[str], dict], tmp_path: Path) -> None:
    ids, lines, expected = clean
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        assert seed_contacts(emu, PROFILES) == ids
        killed = tmp_path / "killed"
        killed.mkdir()
        live = LiveRun(base_config(emu, killed, write_api="bulk"), killed, lines,
                       lines_per_tick=10, tick_seconds=0.04,
                       max_record_age_minutes=AGE_MINUTES, bulk_job_ages=1)
        live.wait_until(lambda: len(live.states) >= 1, timeout=120)
        PHASES[phase](emu, live)
        live.signal(signal.SIGKILL)
        assert live.finish() == -signal.SIGKILL, live.stderr[-2000:]
        state = live.last_state
        assert state is not None and state["offset"] < len(ids) * 2
        assert emu.stats()["bulk"]["jobs_completed"] >= 1

        emu.set_faults(latency_ms=0, bulk_rows_per_second=0)
        resumed = tmp_path / "resumed"
        resumed.mkdir()
        run = run_target(base_config(emu, resumed, write_api="bulk"),
                         "".join(resume_after(lines, state)), resumed)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states[-1] == {"offset": len(ids) * 2}
        if phase == "polling":  # the killed run's job was waited for, not raced
            assert "left by an earlier run" in run.stderr
        settle(emu)
        assert_same_org(expected, snapshot(emu))
