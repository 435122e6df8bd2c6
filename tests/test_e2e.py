"""End to end: the real CLI in a subprocess, real HTTP to the emulator on loopback."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conftest import (
    base_config,
    make_id,
    profile,
    run_target,
    seed_contacts,
    seed_leads,
    singer_lines,
)


def test_contacts_update_fields_and_segments(emulator, tmp_path):
    ids = seed_contacts(emulator, 450)
    records = [
        profile(i, n, seg_loyal="realized", seg_churn="existing" if n % 2 else "exited")
        for n, i in enumerate(ids)
    ]
    run = run_target(base_config(emulator, tmp_path), singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"offset": 450}]
    assert run.rejected == []
    first, second = emulator.get("Contact", ids[0]), emulator.get("Contact", ids[1])
    assert (first["FirstName"], first["LastName"], first["Email"]) == (
        "First0", "Last0", "person0@example.com")
    assert first["Seg_Loyal__c"] == "realized"
    assert first["Seg_Churn_Risk__c"] == "exited"
    assert second["Seg_Churn_Risk__c"] == "existing"
    assert first.get("Seg_Newsletter__c") is None  # no membership: field untouched
    stats = emulator.stats()
    assert stats["collections_calls"] == math.ceil(450 / 200)
    assert stats["token_requests"] == 1
    assert stats["describe_calls"] == {"Contact": 1}
    report = run.report
    assert report["status"] == "succeeded"
    assert report["streams"]["contacts"]["updated"] == 450
    assert report["segments"]["Seg_Loyal__c"] == {"realized": 450}
    assert report["segments"]["Seg_Churn_Risk__c"] == {"existing": 225, "exited": 225}


def test_bad_records_are_dead_lettered_and_the_rest_lands(emulator, tmp_path):
    ids = seed_contacts(emulator, 210)
    lead_id = seed_leads(emulator, 1)[0]
    good = [profile(i, n, seg_news="realized") for n, i in enumerate(ids)]
    invalid_email = profile(ids[3], 9001)
    invalid_email["personalEmail"]["address"] = "not-an-email"
    empty_last_name = profile(ids[4], 9002)
    empty_last_name["person"]["name"]["lastName"] = ""
    bad = [
        profile(None, 9003),                       # missing Id
        profile("003NOTANID", 9004),               # malformed Id
        profile(ids[5][:17] + "Z", 9005),          # wrong checksum
        profile(lead_id, 9006),                    # another object's Id
        profile(make_id("003", 7777), 9007),       # unknown Id (server-side rejection)
        invalid_email,
        empty_last_name,
    ]
    records = good[:100] + bad + good[100:]
    run = run_target(base_config(emulator, tmp_path), singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr
    codes = sorted(r["error_code"] for r in run.rejected)
    assert codes == sorted([
        "MISSING_ID", "MALFORMED_ID", "MALFORMED_ID", "WRONG_OBJECT_ID", "ENTITY_IS_DELETED",
        "INVALID_EMAIL_ADDRESS", "REQUIRED_FIELD_MISSING",
    ])
    by_code = {r["error_code"]: r for r in run.rejected}
    assert by_code["ENTITY_IS_DELETED"]["origin"] == "salesforce"
    assert by_code["ENTITY_IS_DELETED"]["record"]["crmID"] == make_id("003", 7777)
    assert by_code["INVALID_EMAIL_ADDRESS"]["fields"] == ["Email"]
    assert by_code["INVALID_EMAIL_ADDRESS"]["record"]["personalEmail"]["address"] == "not-an-email"
    assert "not-an-email" not in by_code["INVALID_EMAIL_ADDRESS"]["message"]
    assert by_code["WRONG_OBJECT_ID"]["id"] == lead_id
    # every valid profile landed; the rejected ones changed nothing
    for n, record_id in enumerate(ids):
        stored = emulator.get("Contact", record_id)
        assert stored["LastName"] == f"Last{n}"
        assert stored["Seg_Newsletter__c"] == "realized"
    assert emulator.get("Contact", ids[3])["Email"] == "person3@example.com"
    # 211 records reached Salesforce (210 valid + the unknown Id): ceil(211/200) calls
    assert emulator.stats()["collections_calls"] == 2
    assert run.report["streams"]["contacts"]["rejected"] == 7


def test_leads_with_company_and_segments(emulator, tmp_path):
    ids = seed_leads(emulator, 30)
    records = [profile(i, n, lead=True, seg_churn="realized") for n, i in enumerate(ids)]
    no_company = profile(ids[0], 999, lead=True)
    no_company["b2b"]["companyName"] = ""
    records.append(no_company)
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead")
    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr
    stored = emulator.get("Lead", ids[7])
    assert (stored["LastName"], stored["Company"], stored["Email"]) == (
        "Last7", "Company7", "person7@example.com")
    assert stored["Seg_Churn_Risk__c"] == "realized"
    assert [(r["error_code"], r["fields"]) for r in run.rejected] == [
        ("REQUIRED_FIELD_MISSING", ["Company"])]
    assert emulator.get("Lead", ids[0])["Company"] == "Company0"


def test_stream_object_types_routes_streams(emulator, tmp_path):
    contact_ids = seed_contacts(emulator, 3)
    lead_ids = seed_leads(emulator, 3)
    text = singer_lines("contacts", [profile(i, n) for n, i in enumerate(contact_ids)])
    text += singer_lines("leads", [profile(i, n, lead=True) for n, i in enumerate(lead_ids)])
    config = base_config(emulator, tmp_path, stream_object_types={"leads": "Lead"})
    run = run_target(config, text, tmp_path)

    assert run.returncode == 0, run.stderr
    assert emulator.get("Contact", contact_ids[2])["LastName"] == "Last2"
    assert emulator.get("Lead", lead_ids[2])["Company"] == "Company2"
    assert emulator.stats()["describe_calls"] == {"Contact": 1, "Lead": 1}


def test_same_id_twice_in_a_batch_is_merged(emulator, tmp_path):
    ids = seed_contacts(emulator, 2)
    first = profile(ids[0], 1, seg_loyal="realized")
    later = {"crmID": ids[0], "person": {"name": {"firstName": "Renamed"}},
             "segmentMembership": {"ups": {"seg-loyal": {"status": "exited"}}}}
    run = run_target(base_config(emulator, tmp_path),
                     singer_lines("contacts", [first, later, profile(ids[1], 2)]), tmp_path)

    assert run.returncode == 0, run.stderr
    stored = emulator.get("Contact", ids[0])
    assert (stored["FirstName"], stored["LastName"], stored["Seg_Loyal__c"]) == (
        "Renamed", "Last1", "exited")
    assert emulator.stats()["collections_records"] == 2
    assert run.report["streams"]["contacts"]["merged_duplicates"] == 1


def test_custom_mapping_status_translation_and_flattened_keys(emulator, tmp_path):
    ids = seed_contacts(emulator, 1)
    record = {"crmID": ids[0], "person__name__lastName": "Flat", "title": "CTO",
              "segmentMembership": {"ups": {"seg-loyal": {"status": "exited"}}}}
    config = base_config(
        emulator, tmp_path,
        field_mappings=[{"source": "person.name.lastName", "target": "LastName"},
                        {"source": "title", "target": "Title"}],
        segment_mappings=[{"segment_id": "seg-loyal", "mapping_id": "Seg_Loyal"}],
        segment_status_values={"exited": "Left the segment"},
    )
    schema = {"type": "object", "properties": {
        "crmID": {"type": "string"}, "person__name__lastName": {"type": "string"},
        "title": {"type": "string"}, "segmentMembership": {"type": "object"}}}
    run = run_target(config, singer_lines("contacts", [record], schema=schema), tmp_path)

    assert run.returncode == 0, run.stderr
    stored = emulator.get("Contact", ids[0])
    assert (stored["LastName"], stored["Title"], stored["Seg_Loyal__c"]) == (
        "Flat", "CTO", "Left the segment")
    assert stored["FirstName"] == "Before"  # not mapped: kept


def test_missing_segment_field_fails_before_any_write(emulator, tmp_path):
    ids = seed_contacts(emulator, 5)
    config = base_config(emulator, tmp_path, segment_mappings=[
        {"segment_id": "seg-loyal", "mapping_id": "Seg_Loyal__c"},
        {"segment_id": "seg-x", "mapping_id": "Seg_Does_Not_Exist__c"},
    ])
    run = run_target(config, singer_lines("contacts", [profile(i, n, seg_loyal="realized")
                                                       for n, i in enumerate(ids)]), tmp_path)

    assert run.returncode != 0
    assert "Seg_Does_Not_Exist__c" in run.stderr
    assert "Traceback" not in run.stderr
    assert emulator.stats()["collections_calls"] == 0
    assert emulator.get("Contact", ids[0])["LastName"] == "Old0"
    assert run.states == []
    assert run.report["status"] == "failed"
    assert "Seg_Does_Not_Exist__c" in run.report["error"]


def test_rich_text_segment_field_is_refused(emulator, tmp_path):
    ids = seed_contacts(emulator, 1)
    config = base_config(emulator, tmp_path, segment_mappings=[
        {"segment_id": "seg-loyal", "mapping_id": "Rich_Note__c"}])
    run = run_target(config, singer_lines("contacts", [profile(ids[0], 0)]), tmp_path)
    assert run.returncode != 0
    assert "Rich_Note__c" in run.stderr and "Text Area (Long)" in run.stderr
    assert emulator.stats()["collections_calls"] == 0


def test_config_errors_refused_before_any_network_call(emulator, tmp_path):
    config = base_config(emulator, tmp_path, segment_mappings=[
        {"segment_id": f"s{n}", "mapping_id": f"Seg_{n}__c"} for n in range(26)])
    config["login_url"] = "http://example.com"
    del config["client_secret"]
    run = run_target(config, singer_lines("contacts", [profile(None, 0)]), tmp_path)

    assert run.returncode == 1
    assert "at most 25" in run.stderr
    assert "non-loopback" in run.stderr
    assert "client_secret" in run.stderr
    assert emulator.stats()["requests"] == 0


def test_string_overflow_truncate_and_reject(emulator, tmp_path):
    ids = seed_contacts(emulator, 2)
    long_first = profile(ids[0], 0)
    long_first["person"]["name"]["firstName"] = "F" * 60  # FirstName allows 40
    run = run_target(base_config(emulator, tmp_path),
                     singer_lines("contacts", [long_first]), tmp_path)
    assert run.returncode == 0, run.stderr
    assert emulator.get("Contact", ids[0])["FirstName"] == "F" * 40

    reject_dir = tmp_path / "reject"
    reject_dir.mkdir()
    long_first = profile(ids[1], 1)
    long_first["person"]["name"]["firstName"] = "G" * 60
    config = base_config(emulator, reject_dir, string_overflow="reject")
    run = run_target(config, singer_lines("contacts", [long_first]), reject_dir)
    assert run.returncode == 0, run.stderr
    assert [(r["error_code"], r["fields"]) for r in run.rejected] == [
        ("STRING_TOO_LONG", ["FirstName"])]
    assert emulator.get("Contact", ids[1])["FirstName"] == "Before"


def test_a_quiet_tap_gets_its_partial_batch_sent_and_state_emitted(emulator, tmp_path):
    """Records are not held until the next line: after a few idle seconds they land."""
    ids = seed_contacts(emulator, 3)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(emulator, tmp_path)))
    with subprocess.Popen(
        [sys.executable, "-m", "target_salesforce_crm", "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)]))
        proc.stdin.flush()
        first_state = proc.stdout.readline()  # blocks until the idle flush emits STATE
        landed = emulator.get("Contact", ids[2])["LastName"]
        proc.stdin.close()
        proc.wait(timeout=60)
    assert json.loads(first_state) == {"offset": 3}
    assert landed == "Last2"  # landed while the tap was still connected
    assert proc.returncode == 0
    assert emulator.stats()["collections_calls"] == 1


def test_stream_maps_take_the_sdk_path_and_still_land(emulator, tmp_path):
    """A stream map (here a filter and an alias) is applied by the SDK; the records that pass
    it land exactly as without one."""
    ids = seed_contacts(emulator, 30)
    records = [profile(i, n, seg_loyal="realized") for n, i in enumerate(ids)]
    config = base_config(
        emulator, tmp_path,
        stream_maps={"profiles": {"__alias__": "contacts",
                                  "__filter__": "person['name']['firstName'] != 'First3'"}},
    )
    run = run_target(config, singer_lines("profiles", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert run.report["streams"]["contacts"]["updated"] == 29
    assert emulator.get("Contact", ids[3])["FirstName"] == "Before"
    assert emulator.get("Contact", ids[4])["FirstName"] == "First4"
    assert emulator.get("Contact", ids[4])["Seg_Loyal__c"] == "realized"


def test_record_metadata_columns_do_not_reach_salesforce(emulator, tmp_path):
    """add_record_metadata adds _sdc_ columns to each record; they are not mapped, and a
    rejected record keeps them in the dead-letter file."""
    ids = seed_contacts(emulator, 3)
    records = [profile(i, n) for n, i in enumerate(ids)] + [profile("bad-id", 9)]
    config = base_config(emulator, tmp_path, add_record_metadata=True)
    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert emulator.get("Contact", ids[0])["LastName"] == "Last0"
    assert [r["error_code"] for r in run.rejected] == ["MALFORMED_ID"]
    assert "_sdc_received_at" in run.rejected[0]["record"]


def test_text_with_a_lone_surrogate_is_dead_lettered_not_fatal(emulator, tmp_path):
    r"""A "\ud800" escape decodes to text that is not Unicode: that record is rejected (and kept,
    escaped, in the dead-letter file); the others land."""
    ids = seed_contacts(emulator, 2)
    lines = singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)])
    lines = lines.replace('"First0"', '"A\\ud800B"')
    run = run_target(base_config(emulator, tmp_path), lines, tmp_path)

    assert run.returncode == 0, run.stderr
    assert [r["error_code"] for r in run.rejected] == ["INVALID_FIELD_VALUE"]
    assert run.rejected[0]["record"]["person"]["name"]["firstName"] == "A\ud800B"
    assert emulator.get("Contact", ids[0])["FirstName"] == "Before"
    assert emulator.get("Contact", ids[1])["FirstName"] == "First1"
