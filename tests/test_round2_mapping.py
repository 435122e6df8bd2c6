"""End to end, through the CLI and the emulator: flattened records, keys never truncated,
lengths counted in UTF-16 units, NaN/Infinity refused, 18-character Ids in any case."""

from __future__ import annotations

from conftest import base_config, profile, run_target, seed_contacts, singer_lines


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
