"""Bulk API 2.0 end to end: the real CLI against the emulator over loopback HTTP.

The differential test is the contract: ``write_api: bulk`` must leave the org and the
dead-letter file exactly as ``write_api: collections`` does on the same input.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import requests
from _reliability import VOLATILE_FIELDS as VOLATILE
from _reliability import LiveRun, message_lines, snapshot
from conftest import (
    SEGMENT_FIELDS,
    access_token,
    base_config,
    make_id,
    profile,
    run_target,
    seed_contacts,
    seed_leads,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator

MAPPINGS = [
    {"source": "person.name.lastName", "target": "LastName"},
    {"source": "person.name.firstName", "target": "FirstName"},
    {"source": "personalEmail.address", "target": "Email"},
    {"source": "note", "target": "Description"},
    {"source": "street", "target": "MailingStreet"},
    {"source": "title", "target": "Title"},
    {"source": "birth", "target": "Birthdate"},
    {"source": "score", "target": "Loyalty_Score__c"},
    {"source": "optout", "target": "HasOptedOutOfEmail"},
]
WIDE_SCHEMA = {
    "type": "object",
    "properties": {
        "crmID": {"type": ["string", "null"]},
        "person": {"type": ["object", "null"], "additionalProperties": True},
        "personalEmail": {"type": ["object", "null"], "additionalProperties": True},
        "segmentMembership": {"type": ["object", "null"], "additionalProperties": True},
        "note": {"type": ["string", "null"]},
        "street": {"type": ["string", "null"]},
        "title": {"type": ["string", "null"]},
        "birth": {"type": ["string", "null"], "format": "date-time"},
        "score": {"type": ["number", "string", "null"]},
        "optout": {"type": ["boolean", "null"]},
    },
}


def person(record_id: Any, last: Any = "Last", first: Any = None, **extra: Any) -> dict:
    name = {"lastName": last}
    if first is not None:
        name["firstName"] = first
    return {"crmID": record_id, "person": {"name": name}, **extra}


def tricky_input(ids: list[str]) -> list[dict[str, Any]]:
    """One record per case the two transports must agree on."""
    deleted = make_id("003", 987_654)
    return [
        {"crmID": ids[0], "person": {"name": {"lastName": "OnlyLast"}}},  # fewest columns first
        person(ids[1], "Nulls", None, title="", note=None),  # null kept, "" clears, absent kept
        person(ids[2], "Marker", "#N/A", title="x"),  # literal #N/A: Bulk would read null
        person(ids[3], "Comma, \"quoted\"", "Ann", note='a,b "c"\r\nline2\nline3\rend',
               street="1 Main St\nApt 2"),
        person(ids[4], "Emoji", "😀" * 19 + "ab"),  # 40 UTF-16 units: fits
        person(ids[5], "Emoji", "😀" * 20 + "a"),  # 41 UTF-16 units: STRING_TOO_LONG
        person(ids[6], "Dates", "Dee", birth="2026-11-03T23:30:00-05:00",
               title="2026-11-03T23:30:00.250-05:00", optout=True),
        person(ids[7], "Numbers", score=12.50),
        person(ids[8], "Numbers", score="3.14159"),
        person(ids[9], "Numbers", score=7, optout=False),
        person(ids[10], "SameA", "X"),
        person(ids[10], "SameA", title="T",
               segmentMembership={"ups": {"seg-loyal": {"status": "realized"}}}),
        person(ids[10], "SameB", "Y"),
        person(deleted, "Gone"),  # ENTITY_IS_DELETED
        person(None, "NoId"),  # MISSING_ID
        person("abc", "Bad"),  # MALFORMED_ID
        person(make_id("00Q", 5), "Lead"),  # WRONG_OBJECT_ID
        person(ids[11], "Mail", personalEmail={"address": "not-an-email"}),
        person(ids[11], "Mail", personalEmail={"address": "x" * 80 + "@example.com"}),
        person(ids[11], ""),  # REQUIRED_FIELD_MISSING
        person(ids[11], "Score", score="abc"),  # INVALID_FIELD_VALUE
        person(ids[11], "Seg", segmentMembership={"ups": {"seg-news": {"status": 5}}}),
        person(ids[11], "Surrogate", "\ud800"),  # INVALID_FIELD_VALUE (lone surrogate)
        {"crmID": 12345, "person": {"name": {"lastName": "Typed"}}},  # INVALID_RECORD
        person(ids[11], "Landed", "Last", title="kept"),
    ]


def run_once(tmp_path: Path, write_api: str, records: list[dict]) -> tuple[dict, list, Any]:
    with Emulator(segment_fields=SEGMENT_FIELDS, random_seed=7) as emu:
        emu.seed("Contact", [
            {"LastName": f"Old{n}", "FirstName": "Before", "Title": "Old title",
             "Description": "Old note", "Email": f"old{n}@example.org"} for n in range(12)])
        config = base_config(emu, tmp_path, write_api=write_api, field_mappings=MAPPINGS)
        lines = singer_lines("contacts", records, schema=WIDE_SCHEMA)
        run = run_target(config, lines, tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        dead = sorted((line["id"] or "", line["error_code"], line["origin"])
                      for line in run.rejected)
        return snapshot(emu), dead, run


def test_bulk_lands_exactly_what_collections_lands(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, random_seed=7) as probe:
        ids = probe.seed("Contact", [{"LastName": f"Old{n}"} for n in range(12)])
    records = tricky_input(ids)
    (tmp_path / "c").mkdir()
    (tmp_path / "b").mkdir()
    org_c, dead_c, run_c = run_once(tmp_path / "c", "collections", records)
    org_b, dead_b, run_b = run_once(tmp_path / "b", "bulk", records)

    assert org_b == org_c
    assert dead_b == dead_c
    codes = {code for _, code, _ in dead_c}
    assert {"ENTITY_IS_DELETED", "MISSING_ID", "MALFORMED_ID", "WRONG_OBJECT_ID",
            "INVALID_EMAIL_ADDRESS", "STRING_TOO_LONG", "REQUIRED_FIELD_MISSING",
            "INVALID_FIELD_VALUE", "INVALID_SEGMENT_STATUS", "INVALID_RECORD"} <= codes
    assert run_b.states == run_c.states
    stream_b = run_b.report["streams"]["contacts"]
    assert (stream_b["transport"], stream_b["bulk_jobs"]) == ("bulk", 1)
    assert stream_b["collections_calls"] == 1  # the #N/A record, which Bulk cannot express
    assert run_c.report["streams"]["contacts"]["bulk_jobs"] == 0
    # spot checks that the comparison is about something
    assert org_b[ids[1]]["Title"] is None and org_b[ids[1]]["FirstName"] == "Before"
    assert org_b[ids[2]]["FirstName"] == "#N/A"
    assert org_b[ids[3]]["Description"] == 'a,b "c"\r\nline2\nline3\rend'
    assert org_b[ids[10]]["FirstName"] == "Y" and org_b[ids[10]]["Title"] == "T"
    assert org_b[ids[0]]["FirstName"] == "Before"


def upsert_once(tmp_path: Path, write_api: str) -> tuple[dict, list, Any]:
    def ext(value: str | None, last: Any = "Last", **extra: Any) -> dict:
        return {"ext": value, "person": {"name": {"lastName": last}}, **extra}

    records = [
        ext("E-1", "One"), ext("e-1", title="merged by case"),  # one key, case-insensitive
        ext("E-2", "Two", personalEmail={"address": "two@example.com"}),
        ext("OLD-1", title="only a title for an existing record"),
        ext(None, "NoKey"),  # MISSING_EXTERNAL_ID
        ext("E-3", None, title="new without LastName"),  # REQUIRED_FIELD_MISSING
        ext("E-4", "Mark", title="#N/A"),  # the null marker as text
        ext("E-5", "Bad", personalEmail={"address": "no-at-sign"}),  # INVALID_EMAIL_ADDRESS
    ]
    schema = {"type": "object", "properties": {
        "ext": {"type": ["string", "null"]}, "person": {"type": "object"},
        "personalEmail": {"type": "object"}, "title": {"type": "string"}}}
    mappings = [*MAPPINGS[:3], {"source": "title", "target": "Title"}]
    with Emulator(segment_fields=SEGMENT_FIELDS, random_seed=7) as emu:
        emu.seed("Contact", [{"LastName": "Old", "External_Id__c": "OLD-1"}])
        config = base_config(emu, tmp_path, write_api=write_api, operation="upsert",
                             external_id_field="External_Id__c", external_id_source="ext",
                             field_mappings=mappings)
        run = run_target(config, singer_lines("contacts", records, schema=schema), tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        # created Ids follow creation order, which merging may change: compare by external id
        org = {r["External_Id__c"]: {k: v for k, v in r.items() if k not in ("Id", *VOLATILE)}
               for r in emu.records("Contact")}
        dead = sorted((line["error_code"], line["origin"]) for line in run.rejected)
        return org, dead, run


def test_bulk_upserts_exactly_what_collections_upserts(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "b").mkdir()
    org_c, dead_c, _ = upsert_once(tmp_path / "c", "collections")
    org_b, dead_b, run_b = upsert_once(tmp_path / "b", "bulk")
    assert org_b == org_c
    assert dead_b == dead_c == [("INVALID_EMAIL_ADDRESS", "client"),
                                ("MISSING_EXTERNAL_ID", "client"),
                                ("REQUIRED_FIELD_MISSING", "client")]
    assert org_b["e-1"]["Title"] == "merged by case" and org_b["E-4"]["Title"] == "#N/A"
    stream = run_b.report["streams"]["contacts"]
    assert (stream["created"], stream["updated"], stream["bulk_jobs"]) == (3, 1, 1)


@pytest.mark.parametrize(("count", "bulk_jobs"), [(299, 0), (300, 1)])
def test_auto_switches_to_bulk_at_the_threshold(emulator: Emulator, tmp_path: Path, count: int,
                                                bulk_jobs: int) -> None:
    ids = seed_contacts(emulator, count)
    records = [profile(record_id, n) for n, record_id in enumerate(ids)]
    config = base_config(emulator, tmp_path, bulk_threshold=300)
    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    stream = run.report["streams"]["contacts"]
    assert stream["bulk_jobs"] == bulk_jobs == emulator.stats()["bulk"]["jobs_completed"]
    assert stream["transport"] == ("bulk" if bulk_jobs else "collections")
    assert stream["updated"] == count
    assert all(emulator.get("Contact", i)["LastName"] == f"Last{n}" for n, i in enumerate(ids))


@pytest.mark.slow
def test_fifty_thousand_records_cost_a_handful_of_calls(emulator: Emulator, tmp_path: Path
                                                        ) -> None:
    ids = seed_contacts(emulator, 50_000)
    records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
    config = base_config(emulator, tmp_path, write_api="bulk")
    run = run_target(config, singer_lines("contacts", records), tmp_path, timeout=600)

    assert run.returncode == 0, run.stderr[-3000:]
    api = run.report["api"]
    assert api["collections_calls"] == 0
    assert api["calls"] <= 12, api
    stream = run.report["streams"]["contacts"]
    assert (stream["updated"], stream["bulk_batches"]) == (50_000, 5)
    assert emulator.get("Contact", ids[-1])["Seg_Loyal__c"] == "realized"
    assert emulator.stats()["bulk"]["rows_processed"] == 50_000


def test_dry_run_forecasts_the_transport_calls_and_batches(emulator: Emulator, tmp_path: Path
                                                           ) -> None:
    ids = seed_contacts(emulator, 450)
    records = [profile(record_id, n) for n, record_id in enumerate(ids)]
    config = base_config(emulator, tmp_path, bulk_threshold=300, dry_run=True)
    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    assert emulator.stats()["bulk"]["jobs_created"] == 0
    assert emulator.stats()["collections_calls"] == 0
    stream = run.report["streams"]["contacts"]
    # auto holds the records before the threshold: all 450 go in the one job
    assert stream["transport"] == "bulk"
    assert stream["would_send"] == 450
    assert (stream["collections_calls"], stream["bulk_jobs"], stream["bulk_records"],
            stream["bulk_batches"]) == (0, 1, 450, 1)
    assert stream["api_calls"] == stream["collections_calls"] + stream["bulk_calls"] > 5

    real = tmp_path / "real"
    real.mkdir()
    config = base_config(emulator, real, bulk_threshold=300)
    measured = run_target(config, singer_lines("contacts", records), real)
    assert measured.returncode == 0, measured.stderr[-3000:]
    done = measured.report["streams"]["contacts"]
    assert {key: done[key] for key in ("transport", "collections_calls", "bulk_jobs",
                                       "bulk_records", "bulk_batches")} == {
        key: stream[key] for key in ("transport", "collections_calls", "bulk_jobs",
                                     "bulk_records", "bulk_batches")}
    # the dry run read the org's job list (looking for a rate to forecast with); nothing else
    made = run.report["bulk_forecast"]["calls_made"]
    assert done["bulk_calls"] == emulator.stats()["bulk"]["calls"] - made
    assert done["bulk_calls"] == stream["bulk_calls"]  # 450 rows: one poll, as forecast


def test_a_job_left_open_by_a_killed_run_is_left_alone(emulator: Emulator, tmp_path: Path
                                                       ) -> None:
    ids = seed_contacts(emulator, 3)
    jobs = f"{emulator.url}/services/data/v63.0/jobs/ingest"
    headers = {"Authorization": f"Bearer {access_token(emulator)}"}
    stale = requests.post(jobs, json={"object": "Contact", "operation": "update",
                                      "lineEnding": "CRLF"}, headers=headers, timeout=10).json()
    requests.put(f"{jobs}/{stale['id']}/batches", data=f'"Id","LastName"\r\n"{ids[0]}","Stale"\r\n',
                 headers={**headers, "Content-Type": "text/csv"}, timeout=10).raise_for_status()

    records = [profile(record_id, n) for n, record_id in enumerate(ids)]
    run = run_target(base_config(emulator, tmp_path, write_api="bulk"),
                     singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    assert [emulator.get("Contact", i)["LastName"] for i in ids] == ["Last0", "Last1", "Last2"]
    left = requests.get(f"{jobs}/{stale['id']}", headers=headers, timeout=10).json()
    assert (left["state"], left["numberRecordsProcessed"]) == ("Open", 0)


# --------------------------------------------------------------------------- results and faults


def bulk_run(emu: Emulator, tmp_path: Path, count: int, **config: Any) -> tuple[list[str], Any]:
    ids = seed_contacts(emu, count)
    records = [profile(record_id, n, seg_news="existing") for n, record_id in enumerate(ids)]
    settings = base_config(emu, tmp_path, **{"write_api": "bulk", **config})
    return ids, run_target(settings, singer_lines("contacts", records), tmp_path)


def all_landed(emu: Emulator, ids: list[str]) -> bool:
    return all(emu.get("Contact", i)["LastName"] == f"Last{n}" for n, i in enumerate(ids))


def test_locked_rows_are_retried_for_those_rows_only(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, random_seed=3, lock_rate=0.2) as emu:
        ids, run = bulk_run(emu, tmp_path, 400)
        assert run.returncode == 0, run.stderr[-3000:]
        assert all_landed(emu, ids)
        stream = run.report["streams"]["contacts"]
        failed = emu.stats()["bulk"]["rows_failed"]
        assert failed > 0
        assert stream["retried_records"] >= failed  # each locked row again, through collections
        assert stream["updated"] == 400 and stream["rejected"] == 0
        assert 0 < stream["collections_calls"] < 400 / 200 * 6


def test_unprocessed_rows_of_a_failed_job_go_through_collections(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, bulk_fail_after_batches=1) as emu:
        ids, run = bulk_run(emu, tmp_path, 10_400)
        assert run.returncode == 0, run.stderr[-3000:]
        assert all_landed(emu, ids)
        bulk = emu.stats()["bulk"]
        assert (bulk["jobs_failed"], bulk["rows_processed"], bulk["rows_unprocessed"]) == (
            1, 10_000, 400)
        stream = run.report["streams"]["contacts"]
        assert stream["updated"] == 10_400
        assert stream["collections_calls"] == 2
        assert "retried more than 10 times" in run.stderr


def test_token_expiry_5xx_and_html_bodies_during_a_job_are_survived(tmp_path: Path) -> None:
    faults = {"token_ttl_requests": 3, "http_503_rate": 0.15, "html_503_rate": 0.15,
              "random_seed": 11}
    with Emulator(segment_fields=SEGMENT_FIELDS, **faults) as emu:
        ids, run = bulk_run(emu, tmp_path, 300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert all_landed(emu, ids)
        api = run.report["api"]
        assert api["reauthentications"] > 0 and api["retried_calls"] > 0
        assert emu.stats()["bulk"]["jobs_completed"] == 1
        assert run.states == [{"offset": 300}]


def test_a_job_past_its_timeout_is_aborted_and_the_run_stops(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, bulk_rows_per_second=20) as emu:
        ids, run = bulk_run(emu, tmp_path, 200, bulk_job_timeout_s=1)
        assert run.returncode == 1
        assert "bulk_job_timeout_s=1" in run.stderr and "aborted" in run.stderr
        assert "Traceback" not in run.stderr
        assert run.states == []  # nothing landed, so no STATE
        assert emu.stats()["bulk"]["aborts"] == 1
        assert emu.get("Contact", ids[0])["LastName"] == "Old0"
        assert run.report["status"] == "failed"


def test_upsert_through_bulk_creates_and_updates(emulator: Emulator, tmp_path: Path) -> None:
    emulator.seed("Contact", [{"LastName": "Old", "External_Id__c": "EXT-0"}])
    records = [dict(profile(None, n), ext=f"ext-{n}" if n % 2 else f"EXT-{n}")
               for n in range(5)]
    config = base_config(emulator, tmp_path, write_api="bulk", operation="upsert",
                         external_id_field="External_Id__c", external_id_source="ext")
    schema = {"type": "object", "properties": {"ext": {"type": "string"},
                                               "person": {"type": "object"},
                                               "personalEmail": {"type": "object"},
                                               "segmentMembership": {"type": "object"}}}
    run = run_target(config, singer_lines("contacts", records, schema=schema), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    stream = run.report["streams"]["contacts"]
    assert (stream["updated"], stream["created"], stream["bulk_jobs"]) == (1, 4, 1)
    stored = {r["External_Id__c"]: r["LastName"] for r in emulator.records("Contact")}
    assert stored == {"EXT-0": "Last0", "ext-1": "Last1", "EXT-2": "Last2", "ext-3": "Last3",
                      "EXT-4": "Last4"}


def test_auto_sends_through_collections_when_bulk_batches_run_short(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, bulk_batches_remaining=0) as emu:
        ids, run = bulk_run(emu, tmp_path, 300, write_api="auto", bulk_threshold=100)
        assert run.returncode == 0, run.stderr[-3000:]
        assert all_landed(emu, ids)
        assert emu.stats()["bulk"]["jobs_created"] == 0
        assert run.report["streams"]["contacts"]["collections_calls"] == 2
        assert "Bulk API batches left" in run.stderr


def test_sigterm_aborts_the_job_it_was_filling(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=1500) as emu:
        ids = seed_contacts(emu, 300)
        records = [profile(record_id, n) for n, record_id in enumerate(ids)]
        config = base_config(emu, tmp_path, write_api="bulk")
        live = LiveRun(config, tmp_path, message_lines(singer_lines("contacts", records)),
                       lines_per_tick=1000)
        live.wait_until(lambda: emu.stats()["bulk"]["calls"] >= 1, timeout=60)
        live.signal(signal.SIGTERM)
        code = live.finish()

        assert code == 1, live.stderr[-3000:]
        assert "aborted unsent" in live.stderr and "Traceback" not in live.stderr
        bulk = emu.stats()["bulk"]
        assert (bulk["aborts"], bulk["closes"], bulk["rows_processed"]) == (1, 0, 0)
        assert live.states == []
        assert emu.get("Contact", ids[0])["LastName"] == "Old0"


def admin(emu: Emulator, action: str, payload: dict) -> dict:
    answer = requests.post(f"{emu.url}/__emulator__/{action}", json=payload, timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def test_moved_records_refused_in_a_job_are_followed_as_collections_follow_them(
        emulator: Emulator, tmp_path: Path) -> None:
    leads = seed_leads(emulator, 120)
    converted, merged, deleted = leads[:20], leads[20:30], leads[30:35]
    contact_of = {lead: admin(emulator, "convert-lead", {"lead_id": lead})["contact_id"]
                  for lead in converted}
    survivor = dict(zip(merged, leads[100:110], strict=True))
    for loser, master in survivor.items():
        admin(emulator, "merge", {"object": "Lead", "master_id": master, "loser_ids": [loser]})
    admin(emulator, "delete", {"ids": deleted})
    order = leads[35:] + leads[:35]  # the moved profiles come last: their values win
    records = [profile(lead, n, lead=True, seg_loyal="realized") for n, lead in enumerate(order)]
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead", write_api="bulk")

    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    position = {lead: n for n, lead in enumerate(order)}
    for lead, contact in contact_of.items():
        assert emulator.get("Contact", contact)["LastName"] == f"Last{position[lead]}"
    for lead, live in survivor.items():
        assert emulator.get("Lead", live)["LastName"] == f"Last{position[lead]}"
    assert sorted(row["id"] for row in run.rejected) == sorted(deleted)
    assert {row["error_code"] for row in run.rejected} == {"ENTITY_IS_DELETED"}
    stream = run.report["streams"]["leads"]
    assert stream["redirected"] == {"converted_lead": 20, "merged": 10}
    assert stream["bulk_jobs"] == 1


def test_a_steady_stream_fills_one_job_rather_than_one_per_max_age(tmp_path: Path) -> None:
    """While RECORDs keep coming, partial chunks still go out once per max record age, but a
    Bulk spool runs only once _BULK_JOB_AGES (10) max ages old: an input read in about 5 max
    ages makes one job, not five (each costs a dozen calls or more)."""
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        ids = seed_contacts(emu, 3000)
        records = [profile(record_id, n) for n, record_id in enumerate(ids)]
        lines = message_lines(singer_lines("contacts", records, state_every=100))
        live = LiveRun(base_config(emu, tmp_path, write_api="bulk"), tmp_path, lines,
                       lines_per_tick=40, tick_seconds=0.04, max_record_age_minutes=0.01)
        assert live.finish(timeout=180) == 0, live.stderr[-3000:]
        assert all_landed(emu, ids)
        assert emu.stats()["bulk"]["jobs_completed"] == 1
        assert live.states[-1] == {"offset": 3000}


def test_state_waits_for_the_job_carrying_its_records(tmp_path: Path) -> None:
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        ids = seed_contacts(emu, 3000)
        records = [profile(record_id, n) for n, record_id in enumerate(ids)]
        config = base_config(emu, tmp_path, write_api="bulk")
        lines = message_lines(singer_lines("contacts", records, state_every=100))
        # partial chunks (and so the spool) go out every 1.2 s, as a Bulk job each
        live = LiveRun(config, tmp_path, lines, lines_per_tick=10, tick_seconds=0.05,
                       max_record_age_minutes=0.02, bulk_job_ages=1)
        live.wait_until(lambda: len(live.states) >= 2, timeout=120)
        live.signal(signal.SIGKILL)
        live.finish()

        covered = live.last_state["offset"] if live.last_state else 0
        assert covered > 0
        stored = [emu.get("Contact", i)["LastName"] for i in ids[:covered]]
        assert stored == [f"Last{n}" for n in range(covered)]  # everything STATE covers landed
        assert emu.stats()["bulk"]["jobs_completed"] >= 2
