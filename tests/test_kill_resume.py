"""Kill and resume (SPEC §3 "Delivery": at-least-once, STATE only for what landed).

One Singer input of 3,000 records with a STATE every 100, where the last third re-sends earlier
Ids with newer values (so replay order matters). A clean run gives the reference org. Then, for
each kill point, the real CLI is fed slowly, killed, and a tap "resumes" with only what follows
the last STATE the target printed; the org must end exactly as the clean run left it.

About STATE cadence: the target emits, at most once a second, the latest STATE whose records
have all landed, and partial chunks go out once per ``_MAX_RECORD_AGE_IN_MINUTES`` (1 minute).
A SIGKILL in the first second leaves no STATE at all (case ``sigkill_before_any_state``: the tap
replays everything). To kill between many mid-stream STATEs in a short run, the other SIGKILL
cases start the same CLI with that age lowered to a quarter of a second (STATE then checked
every 0.06 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from _reliability import LiveRun, assert_same_org, message_lines, resume_after, snapshot
from conftest import (
    SEGMENT_FIELDS,
    base_config,
    make_id,
    profile,
    run_target,
    seed_contacts,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator

DISTINCT = 2000
TOTAL = 3012  # 3,000 good records and 12 bad ones
STATE_EVERY = 100
SHORT_AGE_MINUTES = 0.004  # 0.24 s


def _records(ids: list[str]) -> list[dict]:
    records = [profile(i, n, seg_loyal="realized", seg_churn="existing")
               for n, i in enumerate(ids)]
    for k in range(1000):  # Ids 0..499 come back twice more, each time with newer values
        n = (k * 7) % 500
        update: dict = {"crmID": ids[n], "person": {"name": {"lastName": f"L{n}t{k}"}},
                        "segmentMembership": {"ups": {
                            "seg-loyal": {"status": "exited" if k < 500 else "realized"}}}}
        if k % 2:
            update["personalEmail"] = {"address": f"t{k}.{n}@example.net"}
        records.append(update)
    # every 250th record is one the target must dead-letter: an unknown Id (refused by the
    # org, after an API call) or an invalid email (refused without one)
    for k, index in enumerate(range(125, len(records), 250)):
        if k % 2:
            bad = profile(make_id("003", 900000 + k), 5000 + k)
        else:
            bad = profile(ids[k], 5000 + k)
            bad["personalEmail"]["address"] = f"bad{k}-at-example.com"
        records.insert(index, {**bad, "probe": f"bad{k}"})
    return records


def _probes_below(records: list[dict], count: int) -> set[str]:
    return {r["probe"] for r in records[:count] if "probe" in r}


def _dead_lettered(directory) -> set[str]:
    path = directory / "rejected.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {json.loads(line)["record"].get("probe") for line in lines}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clean")
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        ids = seed_contacts(emu, DISTINCT)
        records = _records(ids)
        text = singer_lines("contacts", records, state_every=STATE_EVERY)
        run = run_target(base_config(emu, directory), text, directory)
        assert run.returncode == 0, run.stderr
        assert run.states[-1] == {"offset": len(records)}
        assert _dead_lettered(directory) == _probes_below(records, len(records))
        return ids, records, message_lines(text), snapshot(emu)


def _resume(emu: Emulator, lines: list[str], state: dict | None, directory) -> None:
    directory.mkdir()
    emu.set_faults(latency_ms=0)
    run = run_target(base_config(emu, directory, batch_size=50),
                     "".join(resume_after(lines, state)), directory)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states[-1] == {"offset": TOTAL}


def _missing_below(emu: Emulator, records: list[dict], count: int) -> list[int]:
    """Indexes among the first ``count`` good records whose values the org lost: for each Id,
    the org must hold the last of its values among them, or a value sent after them."""
    good = [(index, r) for index, r in enumerate(records) if "probe" not in r]
    last_index = {r["crmID"]: index for index, r in good if index < count}
    acceptable: dict[str, set[str]] = {}
    for index, record in good:
        if index >= last_index.get(record["crmID"], len(records)):
            acceptable.setdefault(record["crmID"], set()).add(
                record["person"]["name"]["lastName"])
    missing = [index for record_id, index in last_index.items()
               if emu.get("Contact", record_id)["LastName"] not in acceptable[record_id]]
    return sorted(missing)


KILL_POINTS = {
    # name: (signal, lowered max record age?, kill condition, extra delay after it)
    "sigkill_before_any_state": (signal.SIGKILL, None, lambda run: run.fed >= 900, 0.0),
    "sigkill_at_first_state": (signal.SIGKILL, SHORT_AGE_MINUTES,
                               lambda run: len(run.states) >= 1, 0.0),
    "sigkill_calls_in_flight": (signal.SIGKILL, SHORT_AGE_MINUTES,
                                lambda run: len(run.states) >= 3, 0.12),
    "sigkill_near_the_end": (signal.SIGKILL, SHORT_AGE_MINUTES,
                             lambda run: run.fed >= 2800, 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(KILL_POINTS))
def test_sigkill_then_resume_from_the_last_state_equals_a_clean_run(case, reference, tmp_path):
    ids, records, lines, expected = reference
    signum, age, condition, delay = KILL_POINTS[case]
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=40).start()
    try:
        assert seed_contacts(emu, DISTINCT) == ids
        config = base_config(emu, tmp_path, batch_size=50, max_concurrency=2)
        live = LiveRun(config, tmp_path, lines, max_record_age_minutes=age)
        live.wait_until(lambda: condition(live))
        time.sleep(delay)
        live.signal(signum)
        assert live.finish() == -signum, live.stderr[-2000:]

        state = live.last_state
        if case != "sigkill_before_any_state":  # (that one may see a STATE on a slow machine)
            assert state is not None
        if state is not None:
            # the STATE's promise: everything it covers is in the org or the dead-letter file
            assert _missing_below(emu, records, state["offset"]) == []
            assert _probes_below(records, state["offset"]) <= _dead_lettered(tmp_path)
        _resume(emu, lines, state, tmp_path / "resume")
        assert_same_org(expected, snapshot(emu))
    finally:
        emu.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("latency_ms", "max_concurrency"),
    [(40, 2), (300, 1)],  # the second keeps the main thread waiting for a free call slot
    ids=["streaming", "waiting_for_a_call_slot"],
)
def test_sigterm_drains_and_emits_state_for_everything_read(latency_ms, max_concurrency,
                                                            reference, tmp_path):
    ids, records, lines, expected = reference
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=latency_ms).start()
    try:
        assert seed_contacts(emu, DISTINCT) == ids
        # collections: calls go out as records are read (auto would hold the first ones)
        config = base_config(emu, tmp_path, batch_size=50, max_concurrency=max_concurrency,
                             write_api="collections")
        live = LiveRun(config, tmp_path, lines)  # the real CLI, unmodified
        live.wait_until(lambda: emu.stats()["collections_calls"] >= 6)
        live.signal(signal.SIGTERM)
        code = live.finish()

        assert code == 0, live.stderr[-3000:]
        report = json.loads((tmp_path / "report.json").read_text())
        read = report["totals"]["received"]
        assert 0 < read < len(records)
        # the STATE printed last is the latest one read ...
        assert live.last_state is not None
        covered = live.last_state["offset"]
        assert covered in {read // STATE_EVERY * STATE_EVERY,
                           (read - 1) // STATE_EVERY * STATE_EVERY}
        # ... everything it covers is in the org or the dead-letter file ...
        assert _missing_below(emu, records, covered) == []
        assert _probes_below(records, covered) <= _dead_lettered(tmp_path)
        # ... and so is everything read after it, except at most the one record the signal
        # interrupted (counted as received, never queued; no STATE covers it)
        missing = _missing_below(emu, records, read)
        assert missing in ([], [read - 1]), missing
        totals = report["totals"]
        handled = totals["updated"] + totals["rejected"] + report["streams"]["contacts"][
            "merged_duplicates"]
        assert read - 1 <= handled <= read
        _resume(emu, lines, live.last_state, tmp_path / "resume")
        assert_same_org(expected, snapshot(emu))
    finally:
        emu.stop()


UPSERT_SCHEMA = {
    "type": "object",
    "properties": {
        "ext": {"type": "string"},
        "person": {"type": ["object", "null"], "additionalProperties": True},
        "personalEmail": {"type": ["object", "null"], "additionalProperties": True},
        "segmentMembership": {"type": ["object", "null"], "additionalProperties": True},
    },
}


def _upsert_records() -> list[dict]:
    records = [
        {"ext": f"EXT-{n}", "person": {"name": {"lastName": f"U{n}", "firstName": f"F{n}"}},
         "personalEmail": {"address": f"u{n}@example.com"},
         "segmentMembership": {"ups": {"seg-loyal": {"status": "realized"}}}}
        for n in range(2000)  # the first 1,000 exist in the org, the rest are created
    ]
    records += [  # newer values, also for records the run itself created
        {"ext": f"ext-{(k * 3) % 2000}",  # external ids match case-insensitively
         "person": {"name": {"lastName": f"U{(k * 3) % 2000}v2"}},
         "segmentMembership": {"ups": {"seg-loyal": {"status": "exited"}}}}
        for k in range(500)
    ]
    return records


def _by_external_id(emu: Emulator) -> dict[str, dict]:
    """The org keyed by External_Id__c (created records get different Ids in each org)."""
    rows = [{k: v for k, v in r.items() if k != "Id"} for r in snapshot(emu).values()]
    keyed = {str(row.get("External_Id__c")).lower(): row for row in rows}
    assert len(keyed) == len(rows), "two records share an external id: a replay duplicated"
    return keyed


def _upsert_org(**faults) -> Emulator:
    emu = Emulator(segment_fields=SEGMENT_FIELDS, **faults).start()
    emu.seed("Contact", [{"LastName": f"Old{n}", "External_Id__c": f"EXT-{n}"}
                         for n in range(1000)])
    return emu


@pytest.mark.slow
def test_upsert_killed_twice_then_resumed_creates_no_duplicates(tmp_path):
    records = _upsert_records()
    lines = message_lines(singer_lines("contacts", records, state_every=STATE_EVERY,
                                       schema=UPSERT_SCHEMA))
    upsert = {"operation": "upsert", "external_id_field": "External_Id__c",
              "external_id_source": "ext", "batch_size": 50, "max_concurrency": 2}

    with _upsert_org() as clean:
        clean_dir = tmp_path / "clean"
        clean_dir.mkdir()
        run = run_target(base_config(clean, clean_dir, **upsert), "".join(lines), clean_dir)
        assert run.returncode == 0, run.stderr[-3000:]
        expected = _by_external_id(clean)
        assert len(expected) == 2000

    emu = _upsert_org(latency_ms=40)
    try:
        state = None
        for attempt, kill_after_states in enumerate((2, 1)):
            directory = tmp_path / f"killed{attempt}"
            directory.mkdir()
            live = LiveRun(base_config(emu, directory, **upsert), directory,
                           resume_after(lines, state), max_record_age_minutes=SHORT_AGE_MINUTES)
            live.wait_until(lambda live=live, n=kill_after_states: len(live.states) >= n)
            time.sleep(0.08)
            live.signal(signal.SIGKILL)
            assert live.finish() == -signal.SIGKILL
            state = live.last_state or state
        assert state is not None
        final_dir = tmp_path / "final"
        final_dir.mkdir()
        run = run_target(base_config(emu, final_dir, **upsert),
                         "".join(resume_after(lines, state)), final_dir)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states[-1] == {"offset": len(records)}
        got = _by_external_id(emu)
        assert len(got) == 2000
        assert got == expected
    finally:
        emu.stop()


@pytest.mark.slow
def test_sigterm_while_writing_a_dead_letter_still_drains_and_exits(tmp_path):
    emu = Emulator(segment_fields=SEGMENT_FIELDS).start()
    try:
        ids = seed_contacts(emu, 100)
        records = []
        for n in range(6000):  # all refused client-side: one dead-letter line each
            record = profile(ids[n % 100], n)
            record["personalEmail"]["address"] = f"bad{n}-at-example.com"
            records.append(record)
        # the dead-letter file is a pipe whose reader stalls (a slow disk or NFS mount behaves
        # alike): the main thread blocks inside DeadLetter.write when the signal arrives
        fifo = tmp_path / "rejected.jsonl"
        os.mkfifo(fifo)
        received: list[bytes] = []
        resume_reading = threading.Event()

        def slow_reader() -> None:
            with open(fifo, "rb") as pipe:
                received.append(pipe.read(1000))
                resume_reading.wait()
                while chunk := pipe.read(65536):
                    received.append(chunk)

        threading.Thread(target=slow_reader, daemon=True).start()
        lines = message_lines(singer_lines("contacts", records, state_every=50))
        live = LiveRun(base_config(emu, tmp_path), tmp_path, lines, lines_per_tick=500,
                       tick_seconds=0.001)
        live.wait_until(lambda: live.fed >= 300)
        time.sleep(1.0)  # the pipe is full: the target is blocked writing a dead letter
        live.signal(signal.SIGTERM)
        time.sleep(0.3)
        resume_reading.set()
        try:
            code = live.process.wait(timeout=6)  # a correct drain takes about a second
        except subprocess.TimeoutExpired:
            live.signal(signal.SIGKILL)
            live.finish()
            pytest.fail("the target hung after SIGTERM")
        live.finish()
        assert live.last_state is not None, (code, live.stderr[-2000:])
        dead_letters = b"".join(received).decode().splitlines()
        assert len(dead_letters) >= live.last_state["offset"]
    finally:
        emu.stop()
