"""What the README promises about hard failures, run through the CLI against emulator faults:

- a request-level 400 caused by one record is narrowed down by splitting until it is alone;
- `UNABLE_TO_LOCK_ROW` is given up on after 6 retries of just that record;
- per-record `STORAGE_LIMIT_EXCEEDED` stops the run (exit 3), STATE covering only what landed;
- a profile value echoed in a fatal request error is shown as `<value>`.
"""

from __future__ import annotations

import math
from pathlib import Path

import requests
from _reliability import LiveRun, message_lines, no_traceback, resume_after
from conftest import (
    CREDENTIALS,
    SEGMENT_FIELDS,
    base_config,
    profile,
    run_target,
    seed_contacts,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator

LIMIT_EXIT_CODE = 3


def _last_names(emu: Emulator, ids: list[str]) -> list[str]:
    return [emu.get("Contact", record_id)["LastName"] for record_id in ids]


def test_a_request_level_400_is_split_until_the_poisoned_record_is_alone(tmp_path: Path) -> None:
    emu = Emulator(segment_fields=SEGMENT_FIELDS, poison_values=["VENOM"]).start()
    try:
        ids = seed_contacts(emu, 200)
        records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
        culprit = 137
        records[culprit]["person"]["name"]["firstName"] = "Mr VENOM Smith"
        config = base_config(emu, tmp_path, batch_size=200, max_concurrency=1)
        run = run_target(config, singer_lines("contacts", records), tmp_path)
        stats = emu.stats()

        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states == [{"offset": 200}]
        # the one record is dead-lettered, every other one landed
        [rejected] = run.rejected
        assert (rejected["id"], rejected["error_code"], rejected["origin"]) == (
            ids[culprit], "JSON_PARSER_ERROR", "salesforce")
        assert "VENOM" not in rejected["message"] and "<value>" in rejected["message"]
        assert _last_names(emu, ids) == [
            "Old137" if n == culprit else f"Last{n}" for n in range(200)]
        # one call, then two halves per level until the record is alone: about log2(200) levels
        levels = (stats["collections_calls"] - 1) // 2
        assert stats["collections_calls"] % 2 == 1
        assert math.floor(math.log2(200)) <= levels <= math.ceil(math.log2(200))
        assert stats["faults_injected"]["poison"] == levels + 1
        totals = run.report["totals"]
        assert (totals["updated"], totals["rejected"]) == (199, 1)
        assert "VENOM" not in run.stderr
    finally:
        emu.stop()


def test_a_row_locked_forever_is_dead_lettered_after_six_retries(tmp_path: Path) -> None:
    ids_count, locked = 50, 7
    emu = Emulator(segment_fields=SEGMENT_FIELDS).start()
    try:
        ids = seed_contacts(emu, ids_count)
        emu.set_faults(lock_forever_ids=[ids[locked]])
        records = [profile(record_id, n, seg_news="existing") for n, record_id in enumerate(ids)]
        run = run_target(base_config(emu, tmp_path), singer_lines("contacts", records), tmp_path)
        stats = emu.stats()

        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states == [{"offset": ids_count}]
        [rejected] = run.rejected
        assert (rejected["id"], rejected["error_code"]) == (ids[locked], "UNABLE_TO_LOCK_ROW")
        assert "6 retries" in rejected["message"]
        assert _last_names(emu, ids) == [
            f"Old{n}" if n == locked else f"Last{n}" for n in range(ids_count)]
        # the first call with all 50, then 6 retries of the locked record alone
        assert stats["collections_calls"] == 7
        assert stats["collections_records"] == ids_count + 6
        assert stats["faults_injected"]["lock"] == 7
        totals = run.report["totals"]
        assert (totals["updated"], totals["rejected"], totals["retried"]) == (
            ids_count - 1, 1, 6)
    finally:
        emu.stop()


def test_storage_full_stops_the_run_with_state_only_for_what_landed(tmp_path: Path) -> None:
    count = 2000
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=20).start()
    try:
        ids = seed_contacts(emu, count)
        records = [profile(record_id, n, seg_churn="realized") for n, record_id in enumerate(ids)]
        lines = message_lines(singer_lines("contacts", records, state_every=100))
        config = base_config(emu, tmp_path, batch_size=50, max_concurrency=2)
        live = LiveRun(config, tmp_path, lines, lines_per_tick=50, tick_seconds=0.05,
                       max_record_age_minutes=0.004)
        # once a checkpoint is out, the org's data storage fills up
        live.wait_until(lambda: live.states)
        emu.set_faults(storage_full_after=0)
        code = live.finish()
        stderr = live.stderr
        stats = emu.stats()

        assert code == LIMIT_EXIT_CODE, stderr[-3000:]
        assert no_traceback(stderr)
        assert "STORAGE_LIMIT_EXCEEDED" in stderr and "re-run" in stderr
        assert stats["faults_injected"]["storage_full"] >= 1
        # no record was dead-lettered for a full org: they wait for the re-run
        assert not (tmp_path / "rejected.jsonl").exists()
        names = _last_names(emu, ids)
        assert live.states
        for state in live.states:
            offset = state["offset"]
            assert names[:offset] == [f"Last{n}" for n in range(offset)], state
        assert sum(name.startswith("Old") for name in names) > 0  # the stop was real
        report = live.directory / "report.json"
        assert '"status": "failed"' in report.read_text()

        # storage freed, the tap resumes from the last STATE: everything lands
        emu.set_faults(storage_full_after=None)
        rerun_dir = tmp_path / "rerun"
        rerun_dir.mkdir()
        rerun = run_target(base_config(emu, rerun_dir),
                           "".join(resume_after(lines, live.last_state)), rerun_dir)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert rerun.states[-1] == {"offset": count}
        assert _last_names(emu, ids) == [f"Last{n}" for n in range(count)]
    finally:
        emu.stop()


def test_a_profile_value_echoed_in_a_fatal_request_error_is_scrubbed(tmp_path: Path) -> None:
    secret_name = "Quixotic-Lastname-4711"
    emu = Emulator(segment_fields=SEGMENT_FIELDS,
                   request_error_code="INSUFFICIENT_ACCESS_OR_READONLY").start()
    try:
        ids = seed_contacts(emu, 10)
        records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
        records[0]["person"]["name"]["lastName"] = secret_name
        run = run_target(base_config(emu, tmp_path), singer_lines("contacts", records), tmp_path)

        assert run.returncode == 1
        assert no_traceback(run.stderr)
        assert emu.stats()["faults_injected"]["request_error"] == 1  # never retried
        errors = [line for line in run.stderr.splitlines()
                  if "INSUFFICIENT_ACCESS_OR_READONLY" in line]
        assert errors and all("'<value>'" in line for line in errors), run.stderr[-3000:]
        assert secret_name not in run.stderr and secret_name not in run.stdout
        report_error = run.report["error"]
        assert "'<value>'" in report_error and secret_name not in report_error
        assert run.states == [] and run.rejected == []
        assert _last_names(emu, ids) == [f"Old{n}" for n in range(10)]
    finally:
        emu.stop()


def test_the_request_error_fault_quotes_a_value_of_the_request(emulator: Emulator) -> None:
    """The emulator side of the test above: what the org answers with the fault on."""
    [record_id] = seed_contacts(emulator, 1)
    token = requests.post(f"{emulator.url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": CREDENTIALS["client_id"],
        "client_secret": CREDENTIALS["client_secret"], "username": CREDENTIALS["username"],
        "password": CREDENTIALS["password"] + CREDENTIALS["security_token"]},
        timeout=10).json()["access_token"]
    emulator.set_faults(request_error_code="INVALID_OPERATION")
    body = {"records": [{"attributes": {"type": "Contact"}, "id": record_id,
                         "LastName": "Echoed"}]}
    answer = requests.patch(f"{emulator.url}/services/data/v63.0/composite/sobjects", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == "INVALID_OPERATION" and "'Echoed'" in error["message"]
    assert emulator.get("Contact", record_id)["LastName"] == "Old0"
    emulator.set_faults(request_error_code=None)
    answer = requests.patch(f"{emulator.url}/services/data/v63.0/composite/sobjects", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()[0]["success"] is True
