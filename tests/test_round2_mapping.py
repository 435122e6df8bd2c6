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
