"""skip_unchanged / full_resync on a SQLite ledger, through the real CLI and the emulator.

The scenarios shared with PostgreSQL are in _ledger_scenarios.py; the SQLite-only ones (a
corrupt file, the default location, a dry run, a ledger that cannot be opened, keys, moved
records, keys in flight or waiting) are here. In-process tests: test_ledger_sync.py.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import _ledger_scenarios as scenarios
import pytest
from _ledger_scenarios import KEYS, field_sets, ledger_config, profiles, send
from _reliability import LiveRun, message_lines
from conftest import base_config, run_target, seed_contacts, singer_lines

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.ledger import external_id_key, salesforce_id_key
from target_salesforce_crm.salesforce.ids import normalize_id


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger" / "sync.sqlite"


@pytest.fixture
def ledger_url(ledger_path: Path) -> str:
    return f"sqlite:///{ledger_path}"


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM sync_ledger ORDER BY record_key").fetchall()


def test_an_unchanged_rerun_sends_nothing(emulator, tmp_path, ledger_url):
    scenarios.unchanged_rerun_sends_nothing(emulator, tmp_path, ledger_url)


def test_one_percent_changed_sends_only_the_changed_field(emulator, tmp_path, ledger_url):
    scenarios.one_percent_changed_sends_only_the_changed_field(emulator, tmp_path, ledger_url)


def test_a_mapping_change_resends_that_field_everywhere(emulator, tmp_path, ledger_url):
    scenarios.a_mapping_change_resends_that_field_everywhere(emulator, tmp_path, ledger_url)


def test_full_resync_sends_everything(emulator, tmp_path, ledger_url):
    scenarios.full_resync_sends_everything(emulator, tmp_path, ledger_url)


def test_a_deleted_ledger_means_one_full_resend(emulator, tmp_path, ledger_url, ledger_path):
    scenarios.a_deleted_ledger_means_one_full_resend(emulator, tmp_path, ledger_url,
                                                     ledger_path.unlink)


def test_rejected_records_are_sent_again(emulator, tmp_path, ledger_url):
    scenarios.rejected_records_are_sent_again(emulator, tmp_path, ledger_url)


@pytest.mark.slow
def test_two_processes_share_one_sqlite_ledger(emulator, tmp_path, ledger_url):
    scenarios.two_processes_share_one_ledger(emulator, tmp_path, ledger_url)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(scenarios.KILL_POINTS))
def test_a_killed_run_then_a_rerun_equals_a_clean_run(tmp_path, point):
    def new_ledger(case: str) -> str:
        return f"sqlite:///{tmp_path}/{case}.sqlite"

    scenarios.killed_run_then_rerun_equals_a_clean_run(tmp_path, new_ledger,
                                                       scenarios.KILL_POINTS[point])


def test_a_value_changed_and_changed_back_in_one_run_ends_as_the_input_says(emulator, tmp_path,
                                                                          ledger_url):
    """The SDK hands the sink 200 records at a time: B (the last 50 of the first 200) is still
    in flight when A, the original values again in reverse order, is compared. A must not be
    compared with the ledger's old A (it would be skipped, leaving B): it is sent after B, and
    the ledger agrees with the org."""
    ids = seed_contacts(emulator, 200)
    original = profiles(ids)
    send(emulator, tmp_path / "first", original, ledger_url)
    changed = profiles(ids, version=1)
    emulator.set_faults(latency_ms=150)
    records = changed[50:] + changed[:50] + original[49::-1]
    back_and_forth = send(emulator, tmp_path / "run", records, ledger_url, batch_size=10,
                          max_concurrency=2, write_api="collections")  # sent as read, no hold
    emulator.set_faults(latency_ms=0)
    assert back_and_forth.totals["skipped_unchanged"] == 0
    assert back_and_forth.records == 250
    final = original[:50] + changed[50:]
    assert [emulator.get("Contact", i)["LastName"] for i in ids] == [
        record["person"]["name"]["lastName"] for record in final]
    assert send(emulator, tmp_path / "again", final, ledger_url).records == 0


def test_a_change_waiting_in_one_streams_sieve_goes_before_a_later_streams(emulator, tmp_path,
                                                                         ledger_url):
    """Stream one's B for five records waits for a full call in its sieve when stream two
    brings A, the ledger's values, for them: B is sent first, then A, as in the input."""
    ids = seed_contacts(emulator, 200)
    original = profiles(ids)
    send(emulator, tmp_path / "first", original, ledger_url)
    changed = profiles(ids[:5], version=1) + original[5:]
    text = singer_lines("one", changed).rsplit("\n", 2)[0] + "\n"  # without its STATE
    text += singer_lines("two", original[:10])  # a full batch: cut before any flush
    directory = tmp_path / "two_streams"
    directory.mkdir()
    run = run_target(ledger_config(emulator, directory, ledger_url, batch_size=10), text,
                     directory)
    assert run.returncode == 0, run.stderr[-2000:]
    assert [emulator.get("Contact", i)["LastName"] for i in ids[:5]] == [
        f"Last{n}" for n in range(5)]
    assert send(emulator, tmp_path / "again", original, ledger_url).records == 0


def test_no_state_covers_a_change_still_waiting_for_a_full_call(emulator, tmp_path,
                                                              ledger_url):
    """Ten changed records wait in the sieve for a full call while thousands of unchanged ones
    pass (no call at all): no STATE may go out past them until they are sent. Killed then,
    a re-run from the last STATE still sends them."""
    ids = seed_contacts(emulator, 4000)
    original = profiles(ids)
    send(emulator, tmp_path / "first", original, ledger_url)
    records = profiles(ids)
    for n in range(10, 20):
        records[n]["personalEmail"]["address"] = f"changed{n}@example.org"
    lines = message_lines(singer_lines("contacts", records, state_every=100))
    directory = tmp_path / "killed"
    directory.mkdir()
    live = LiveRun(ledger_config(emulator, directory, ledger_url, batch_size=50), directory,
                   lines)
    live.wait_until(lambda: live.fed >= 3000)
    live.signal(signal.SIGKILL)
    assert live.finish() == -signal.SIGKILL
    assert live.states == [] and emulator.stats()["collections_records"] == 4000
    resumed = send(emulator, tmp_path / "resumed", records, ledger_url)
    assert resumed.records == 10
    assert emulator.get("Contact", ids[10])["Email"] == "changed10@example.org"


def test_through_bulk_api_unchanged_records_never_reach_a_job(emulator, tmp_path, ledger_url):
    """write_api bulk: a job carries the changed records only, and the rows successfulResults
    confirms are recorded (the same stream again costs no job)."""
    ids = seed_contacts(emulator, 1000)
    first = send(emulator, tmp_path / "first", profiles(ids), ledger_url, write_api="bulk")
    assert first.run.report["streams"]["contacts"]["bulk_records"] == 1000
    again = send(emulator, tmp_path / "again", profiles(ids), ledger_url, write_api="bulk")
    stream = again.run.report["streams"]["contacts"]
    assert (stream["bulk_jobs"], stream["skipped_unchanged"]) == (0, 1000)
    assert again.api_calls == again.describes == 1
    records = profiles(ids)
    for n in range(0, 1000, 100):
        records[n]["segmentMembership"]["ups"]["seg-loyal"]["status"] = "exited"
    changed = send(emulator, tmp_path / "changed", records, ledger_url, write_api="bulk")
    stream = changed.run.report["streams"]["contacts"]
    assert (stream["bulk_jobs"], stream["bulk_records"]) == (1, 10)
    assert {emulator.get("Contact", ids[n])["Seg_Loyal__c"] for n in range(0, 1000, 100)} == {
        "exited"}
    last = send(emulator, tmp_path / "last", records, ledger_url, write_api="bulk")
    assert last.run.report["streams"]["contacts"]["skipped_unchanged"] == 1000


def test_a_segment_translation_change_resends_the_segment_fields_only(emulator, tmp_path,
                                                                       ledger_url):
    ids = seed_contacts(emulator, 400)
    send(emulator, tmp_path / "first", profiles(ids), ledger_url)
    sent = send(emulator, tmp_path / "translated", profiles(ids), ledger_url,
                segment_status_values={"existing": "Current"})
    assert field_sets(sent) == [[*KEYS, "Seg_Churn_Risk__c", "Seg_Loyal__c"]] * 400
    assert {emulator.get("Contact", i)["Seg_Churn_Risk__c"] for i in ids} == {"Current"}


def test_15_character_ids_share_the_entries_of_their_18_character_form(emulator, tmp_path,
                                                                       ledger_url):
    ids = seed_contacts(emulator, 400)
    send(emulator, tmp_path / "first", profiles(ids), ledger_url)
    short = [record_id[:15] for record_id in ids]
    assert send(emulator, tmp_path / "short", profiles(short), ledger_url).records == 0
    for record_id in (ids[0], ids[0][:15], ids[0].lower()):  # the mapper's key is the ledger's
        assert normalize_id(record_id, "Contact")[0] == salesforce_id_key(ids[0])


def test_upserted_records_are_keyed_by_external_id_as_salesforce_matches_it(emulator, tmp_path,
                                                                             ledger_url):
    records = [{"ext": f"Key-{n}", "person": {"name": {"lastName": f"U{n}"}}}
               for n in range(300)]
    schema = {"type": "object", "properties": {
        "ext": {"type": "string"}, "person": {"type": "object", "additionalProperties": True}}}
    upsert = {"operation": "upsert", "external_id_field": "External_Id__c",
              "external_id_source": "ext", "segment_mappings": []}

    def run(name: str, batch: list[dict]) -> dict:
        directory = tmp_path / name
        directory.mkdir()
        config = ledger_config(emulator, directory, ledger_url, **upsert)
        result = run_target(config, singer_lines("people", batch, schema=schema), directory)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.report["totals"]

    assert run("create", records)["created"] == 300
    upper = run("upper", [{**record, "ext": record["ext"].upper()} for record in records])
    assert (upper["skipped_unchanged"], upper["created"], upper["updated"]) == (300, 0, 0)
    with sqlite3.connect(Path(ledger_url.removeprefix("sqlite:///"))) as db:
        keys = {key for (key,) in db.execute("SELECT record_key FROM sync_ledger")}
    assert keys == {external_id_key("External_Id__c", f"KEY-{n}", case_sensitive=False)
                    for n in range(300)}


def test_a_merged_record_is_recorded_against_its_survivor(emulator, tmp_path, ledger_url):
    ids = seed_contacts(emulator, 40)
    loser, survivor = ids[0], ids[1]
    _admin(emulator, "merge", {"object": "Contact", "master_id": survivor,
                               "loser_ids": [loser]})
    moved = profiles([loser])
    first = send(emulator, tmp_path / "first", moved, ledger_url)
    assert first.run.report["streams"]["contacts"]["redirected"] == {"merged": 1}
    # the survivor's entry holds what landed: its own profile with those values is skipped
    as_survivor = [{**moved[0], "crmID": survivor}]
    assert send(emulator, tmp_path / "survivor", as_survivor, ledger_url).records == 0
    # the moved Id has no entry: one refused write, then nothing sent to the survivor
    again = send(emulator, tmp_path / "again", moved, ledger_url)
    assert again.records == 1 and again.totals["skipped_unchanged"] == 1


def _admin(emu: Emulator, action: str, payload: dict) -> None:
    request = urllib.request.Request(
        f"{emu.url}/__emulator__/{action}", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        response.read()


def test_a_corrupt_ledger_warns_and_sends_everything(emulator, tmp_path, ledger_url,
                                                     ledger_path):
    ids = seed_contacts(emulator, 400)
    send(emulator, tmp_path / "first", profiles(ids), ledger_url)
    ledger_path.write_bytes(b"garbage, not a database" * 1000)
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)

    resent = send(emulator, tmp_path / "resent", profiles(ids), ledger_url)

    assert resent.records == 400
    assert "corrupt" in resent.run.stderr and "moved aside" in resent.run.stderr
    assert list(ledger_path.parent.glob("sync.sqlite.corrupt-*"))
    assert send(emulator, tmp_path / "after", profiles(ids), ledger_url).records == 0


def test_the_default_ledger_lives_under_the_working_directory(emulator, tmp_path):
    ids = seed_contacts(emulator, 10)
    config = base_config(emulator, tmp_path, skip_unchanged=True)
    run = run_target(config, singer_lines("contacts", profiles(ids)), tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / ".target-salesforce-crm" / "ledger.sqlite").is_file()


def test_without_skip_unchanged_no_ledger_is_opened(emulator, tmp_path, ledger_path):
    ids = seed_contacts(emulator, 10)
    config = base_config(emulator, tmp_path, ledger_url=f"sqlite:///{ledger_path}")
    run = run_target(config, singer_lines("contacts", profiles(ids)), tmp_path)
    assert run.returncode == 0, run.stderr
    assert not ledger_path.parent.exists() and "ledger" not in run.report


def test_a_dry_run_counts_what_it_would_skip_and_writes_nothing(emulator, tmp_path,
                                                                ledger_url, ledger_path):
    ids = seed_contacts(emulator, 400)
    missing = send(emulator, tmp_path / "missing", profiles(ids), ledger_url, dry_run=True)
    assert missing.totals["would_send"] == 400 and not ledger_path.exists()
    assert "would send every record in full" in missing.run.stderr

    send(emulator, tmp_path / "first", profiles(ids), ledger_url)
    rows = _rows(ledger_path)
    records = profiles(ids)
    for n in range(0, 400, 40):
        records[n]["personalEmail"]["address"] = f"new{n}@example.org"
    dry = send(emulator, tmp_path / "dry", records, ledger_url, dry_run=True)

    assert dry.calls == 0 and dry.totals["would_send"] == 10
    assert dry.totals["skipped_unchanged"] == 390 and dry.totals["fields_sent"] == 10
    assert "skipped_unchanged=390 fields_would_send=10" in dry.run.stderr
    assert [sorted(p) for p in dry.run.report["sample_payloads"]] == [
        ["Email", "attributes", "id"]] * 10
    assert _rows(ledger_path) == rows
    assert not (tmp_path / "dry" / "rejected.jsonl").exists()


def test_a_ledger_that_cannot_be_opened_stops_before_any_api_call(emulator, tmp_path):
    url = "postgresql+psycopg://sync:Sup3r-Secret-Pw@127.0.0.1:1/ledger"
    config = base_config(emulator, tmp_path, skip_unchanged=True, ledger_url=url)
    run = run_target(config, singer_lines("contacts", profiles(seed_contacts(emulator, 5))),
                     tmp_path)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ledger_url" in line]
    assert len(errors) == 1 and "cannot be opened" in errors[0] and "***" in errors[0]
    assert "Sup3r-Secret-Pw" not in run.stderr and "Traceback" not in run.stderr
    assert emulator.stats()["token_requests"] == 0 and emulator.stats()["api_calls"] == 0
