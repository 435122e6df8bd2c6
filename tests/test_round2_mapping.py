"""End to end, through the CLI and the emulator: flattened records, keys never truncated,
lengths counted in UTF-16 units, NaN/Infinity refused, 18-character Ids in any case."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    PROFILE_SCHEMA,
    SEGMENT_FIELDS,
    base_config,
    profile,
    run_target,
    seed_contacts,
    seed_leads,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator


def test_eighteen_character_ids_in_any_case_land_and_merge(emulator, tmp_path):
    """An 18-character Id is case-insensitive: lower-cased or case-swapped it is the same
    record, written under its issued Id, and both forms merge into one collections record."""
    ids = seed_contacts(emulator, 2)
    swapped = {"crmID": ids[0].swapcase(), "person": {"name": {"firstName": "Swapped"}}}
    issued = {"crmID": ids[0], "title": "CTO"}
    lowered = {**profile(ids[1].lower(), 1, seg_loyal="realized")}
    config = base_config(emulator, tmp_path, field_mappings=[
        {"source": "person.name.firstName", "target": "FirstName"},
        {"source": "title", "target": "Title"}])
    schema = {"type": "object", "additionalProperties": True, "properties": {}}
    run = run_target(config, singer_lines("contacts", [swapped, issued, lowered],
                                          schema=schema), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert run.states == [{"offset": 3}]
    first, second = emulator.get("Contact", ids[0]), emulator.get("Contact", ids[1])
    assert (first["FirstName"], first["Title"]) == ("Swapped", "CTO")
    assert (second["FirstName"], second["Seg_Loyal__c"]) == ("First1", "realized")
    assert emulator.stats()["collections_records"] == 2
    assert run.report["streams"]["contacts"]["merged_duplicates"] == 1


def _admin(emu: Emulator, action: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{emu.url}/__emulator__/{action}", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _loose_schema() -> dict:
    return {"type": "object", "additionalProperties": True, "properties": {}}


def test_nan_and_infinity_are_rejected_not_stored_as_text(emulator, tmp_path):
    """NaN/Infinity input lines are read (the stdlib fallback accepts them) but are no value:
    the record is dead-lettered naming the field, the others land."""
    ids = seed_contacts(emulator, 4)
    records = [{"crmID": ids[0], "phone": float("nan"), "title": "CEO"},
               {"crmID": ids[1], "title": float("inf")},
               {"crmID": ids[2], "title": float("-inf")},
               {"crmID": ids[3], "phone": "+1 555 0100", "title": "CFO"}]
    config = base_config(emulator, tmp_path, field_mappings=[
        {"source": "phone", "target": "Phone"}, {"source": "title", "target": "Title"}])
    lines = singer_lines("contacts", records, schema=_loose_schema())
    assert "NaN" in lines and "-Infinity" in lines  # what a tap writing float('nan') sends
    run = run_target(config, lines, tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"offset": 4}]
    rejected = {r["id"]: r for r in run.rejected}
    assert set(rejected) == set(ids[:3])
    assert {r["error_code"] for r in run.rejected} == {"INVALID_FIELD_VALUE"}
    assert (rejected[ids[0]]["fields"], rejected[ids[1]]["fields"]) == (["Phone"], ["Title"])
    assert "Phone" in rejected[ids[0]]["message"]
    for record_id in ids[:3]:
        stored = emulator.get("Contact", record_id)
        assert stored.get("Phone") is None and stored.get("Title") is None
    stored = emulator.get("Contact", ids[3])
    assert (stored["Phone"], stored["Title"]) == ("+1 555 0100", "CFO")


EMOJI = "\U0001f600"  # a surrogate pair: Salesforce counts it as 2 characters


def _names_near_the_limit(ids: list[str]) -> list[dict]:
    """FirstName allows 40: 39 + an emoji is 41 units (the emoji must go whole), 20 emoji are
    exactly 40, 38 + an emoji + 1 is 41 (the emoji stays, the last letter goes)."""
    names = ["a" * 39 + EMOJI, EMOJI * 20, "b" * 38 + EMOJI + "c", "é" * 40]
    return [{"crmID": record_id, "person": {"name": {"firstName": name}}}
            for record_id, name in zip(ids, names, strict=True)]


def test_truncate_counts_utf16_units_and_lands_every_record(emulator, tmp_path):
    ids = seed_contacts(emulator, 4)
    run = run_target(base_config(emulator, tmp_path),
                     singer_lines("contacts", _names_near_the_limit(ids),
                                  schema=_loose_schema()), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert run.states == [{"offset": 4}]
    assert [emulator.get("Contact", i)["FirstName"] for i in ids] == [
        "a" * 39, EMOJI * 20, "b" * 38 + EMOJI, "é" * 40]
    assert run.report["streams"]["contacts"]["updated"] == 4


def test_reject_counts_utf16_units_client_side(emulator, tmp_path):
    ids = seed_contacts(emulator, 4)
    config = base_config(emulator, tmp_path, string_overflow="reject")
    run = run_target(config, singer_lines("contacts", _names_near_the_limit(ids),
                                          schema=_loose_schema()), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"offset": 4}]
    assert sorted((r["id"], r["error_code"], r["origin"], tuple(r["fields"]))
                  for r in run.rejected) == sorted(
        (i, "STRING_TOO_LONG", "client", ("FirstName",)) for i in (ids[0], ids[2]))
    assert [emulator.get("Contact", i)["FirstName"] for i in ids] == [
        "Before", EMOJI * 20, "Before", "é" * 40]


def test_over_long_external_ids_are_rejected_not_truncated_and_merged(emulator, tmp_path):
    """Two 256-character external ids that share their first 255 are two customers: cutting
    them to the field's 255 would merge them into one Contact. Both are refused instead."""
    shared = "K" * 255
    records = []
    for n, key in enumerate([shared + "1", shared + "2", "CUST-3"]):
        record = profile(None, n)
        record["customerId"] = key
        records.append(record)
    config = base_config(emulator, tmp_path, operation="upsert",
                         external_id_field="External_Id__c", external_id_source="customerId")
    run = run_target(config, singer_lines("customers", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"offset": 3}]
    assert [(r["error_code"], r["origin"], r["fields"]) for r in run.rejected] == [
        ("STRING_TOO_LONG", "client", ["External_Id__c"])] * 2
    assert [r["record"]["customerId"] for r in run.rejected] == [shared + "1", shared + "2"]
    stored = emulator.records("Contact")
    assert [(r["External_Id__c"], r["LastName"]) for r in stored] == [("CUST-3", "Last2")]
    assert emulator.stats()["collections_records"] == 1


# --------------------------------------------------------------------------- flattening

FLAT_FIELDS = [
    {"source": "person.name.lastName", "target": "LastName"},
    {"source": "person.name.firstName", "target": "FirstName"},
    {"source": "personalEmail.address", "target": "Email"},
    {"source": "work.role.title", "target": "Title"},
    {"source": "work.phones.office", "target": "Phone"},
    {"source": "scores.loyalty", "target": "Loyalty_Score__c"},
]
_LOOSE = {"type": ["object", "null"], "additionalProperties": True}
# every object declared without properties: the SDK turns each into JSON text at the top
SCHEMA_OPAQUE = {"type": "object", "properties": {
    **PROFILE_SCHEMA["properties"], "work": _LOOSE, "scores": _LOOSE}}
# names declared down to the leaves, memberships as an open object
SCHEMA_DECLARED = {"type": "object", "properties": {
    "crmID": {"type": ["string", "null"]},
    "person": {"type": "object", "properties": {"name": {"type": "object", "properties": {
        "firstName": {"type": ["string", "null"]}, "lastName": {"type": ["string", "null"]}}}}},
    "personalEmail": {"type": "object", "properties": {"address": {"type": "string"}}},
    "segmentMembership": {"type": "object", "properties": {"ups": _LOOSE}},
}}
# nothing but the Id declared: every nested key is flattened down to the depth limit
SCHEMA_BARE = {"type": "object", "properties": {"crmID": {"type": ["string", "null"]}}}


def _flattening_input(ids: list[str]) -> list[dict]:
    records = [profile(ids[0], 0, seg_loyal="realized", seg_churn="existing"),
               profile(ids[1], 1, seg_loyal="exited", seg_news="realized"),
               profile(ids[2], 2),  # no memberships: the segment fields are kept
               {"crmID": ids[3], "person": {"name": {"firstName": "Only"}},
                "segmentMembership": {"ups": {"seg-news": {"status": "existing"}}}},
               profile(ids[4], 4, seg_churn="realized"),
               profile("003-not-an-id", 5, seg_loyal="realized")]
    records[0]["work"] = {"role": {"title": "CTO"}, "phones": {"office": "+1 555 0100"}}
    records[0]["scores"] = {"loyalty": 12.75}  # read as a Decimal, inside JSON text or not
    records[1]["work"] = {"role": {"title": None}}
    records[1]["scores"] = {"loyalty": 3}
    records[4]["personalEmail"] = {"address": "not an email"}
    return records


def _run_into_a_fresh_org(tmp_path: Path, name: str, schema: dict, **settings: object):
    """The flattening input into its own emulator: (run, stored Contacts without the
    timestamps that differ between orgs)."""
    work = tmp_path / name
    work.mkdir()
    emu = Emulator(segment_fields=SEGMENT_FIELDS, random_seed=7).start()
    try:
        ids = seed_contacts(emu, 5)
        config = base_config(emu, work, field_mappings=FLAT_FIELDS, **settings)
        lines = singer_lines("contacts", _flattening_input(ids), schema=schema)
        run = run_target(config, lines, work)
        stored = [{k: v for k, v in record.items() if not k.endswith("Date")}
                  for record in sorted(emu.records("Contact"), key=lambda r: r["Id"])]
        return run, stored
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def nested_baseline(tmp_path_factory):
    """The same input without flattening (every schema above accepts every record)."""
    return _run_into_a_fresh_org(tmp_path_factory.mktemp("baseline"), "nested", SCHEMA_BARE)


@pytest.mark.parametrize(
    ("schema", "flattening"),
    [(SCHEMA_OPAQUE, {"flattening_max_depth": 1}),
     (SCHEMA_DECLARED, {"flattening_max_depth": 2}),
     (SCHEMA_DECLARED, {"flattening_max_depth": 10, "flattening_separator": "~"}),
     (SCHEMA_BARE, {"flattening_max_depth": 2}),
     (SCHEMA_BARE, {"flattening_max_depth": 10})],
    ids=["opaque-depth1", "declared-depth2", "declared-depth10-tilde", "bare-depth2",
         "bare-depth10"],
)
def test_flattened_records_leave_the_org_exactly_as_nested_ones(tmp_path, nested_baseline,
                                                                schema, flattening):
    """The SDK flattens nested keys into top-level ones and encodes what lies deeper as JSON
    text; the memberships and mapped fields are still found, so both orgs end the same."""
    nested, nested_org = nested_baseline
    flat, flat_org = _run_into_a_fresh_org(tmp_path, "flat", schema, flattening_enabled=True,
                                           **flattening)

    assert (nested.returncode, flat.returncode) == (0, 0), flat.stderr
    assert flat_org == nested_org
    first = next(r for r in flat_org if r["Title"] == "CTO")
    assert (first["Seg_Loyal__c"], first["Seg_Churn_Risk__c"], first["Loyalty_Score__c"]) == (
        "realized", "existing", 12.75)
    assert sum(r.get("Seg_Newsletter__c") is not None for r in flat_org) == 2
    assert flat.states == nested.states == [{"offset": 6}]

    def outcome(run):
        return sorted((r["id"], r["error_code"], r["origin"], tuple(r["fields"]))
                      for r in run.rejected)

    assert outcome(flat) == outcome(nested)
    assert sorted(code for _, code, _, _ in outcome(flat)) == [
        "INVALID_EMAIL_ADDRESS", "MALFORMED_ID"]
    assert flat.report["streams"]["contacts"]["updated"] == 4


def test_flattening_that_would_shorten_a_key_is_refused_at_start_up(emulator, tmp_path):
    ids = seed_contacts(emulator, 1)
    config = base_config(emulator, tmp_path, flattening_enabled=True, flattening_max_depth=10,
                         flattening_max_key_length=30)
    run = run_target(config, singer_lines("contacts", [profile(ids[0], 0, seg_loyal="realized")],
                                          schema=SCHEMA_BARE), tmp_path)

    assert run.returncode != 0
    assert "flattening_max_key_length" in run.stderr
    assert "segmentMembership.ups.seg-loyal.status" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == []
    assert emulator.stats()["collections_calls"] == 0
    assert emulator.get("Contact", ids[0])["LastName"] == "Old0"


def test_a_converted_lead_gets_its_flattened_record_on_the_contact(emulator, tmp_path):
    """The write that follows a converted Lead to its Contact re-maps the record the sink
    holds, which is the flattened one: its memberships are still found."""
    leads = seed_leads(emulator, 2)
    contact = _admin(emulator, "convert-lead", {"lead_id": leads[0]})["contact_id"]
    records = [profile(lead, n, lead=True, seg_loyal="realized") for n, lead in enumerate(leads)]
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead", flattening_enabled=True,
                         flattening_max_depth=1)
    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert run.states == [{"offset": 2}]
    stored = emulator.get("Contact", contact)
    assert (stored["LastName"], stored["Seg_Loyal__c"]) == ("Last0", "realized")
    assert emulator.get("Lead", leads[1])["Seg_Loyal__c"] == "realized"
    assert run.report["streams"]["leads"]["redirected"] == {"converted_lead": 1}
