"""Several streams writing the same records: the org ends as if they were one stream in input
order, field by field (a later event is never overwritten by an older snapshot)."""

from __future__ import annotations

import json
import random
from typing import Any

from conftest import PROFILE_SCHEMA, SEGMENTS, base_config, run_target, seed_contacts, seed_leads

STATUSES = ("realized", "existing", "exited")


def _message(stream: str, record: dict[str, Any]) -> str:
    return json.dumps({"type": "RECORD", "stream": stream, "record": record})


def _schema(stream: str) -> str:
    return json.dumps({"type": "SCHEMA", "stream": stream, "schema": PROFILE_SCHEMA,
                       "key_properties": []})


def _random_record(rng: random.Random, record_id: str, step: int, *, lead: bool) -> dict:
    """A partial profile: some of the mapped fields and some segment statuses."""
    record: dict[str, Any] = {"crmID": record_id}
    name: dict[str, str] = {}
    if rng.random() < 0.5:
        name["lastName"] = f"Last{step}"
    if rng.random() < 0.5 and not lead:
        name["firstName"] = f"First{step}"
    if name:
        record["person"] = {"name": name}
    if lead and rng.random() < 0.5:
        record["b2b"] = {"companyName": f"Company{step}"}
    ups = {seg: {"status": rng.choice(STATUSES)} for seg in SEGMENTS if rng.random() < 0.5}
    if ups:
        record["segmentMembership"] = {"ups": ups}
    return record


def _expected(records: list[tuple[str, dict]], object_of: dict[str, str]) -> dict:
    """Replay the input in order, field by field, as one stream would."""
    fields: dict[str, dict[str, Any]] = {}
    for _, record in records:
        values = fields.setdefault(record["crmID"], {})
        name = (record.get("person") or {}).get("name") or {}
        if "lastName" in name:
            values["LastName"] = name["lastName"]
        if "firstName" in name:
            values["FirstName"] = name["firstName"]
        company = (record.get("b2b") or {}).get("companyName")
        if company is not None:
            values["Company"] = company
        for seg, membership in ((record.get("segmentMembership") or {}).get("ups") or {}).items():
            values[SEGMENTS[seg]] = membership["status"]
    assert set(object_of) >= set(fields)
    return fields


def test_interleaved_streams_land_in_input_order(emulator, tmp_path):
    rng = random.Random(11)
    contacts = seed_contacts(emulator, 40)
    leads = seed_leads(emulator, 20)
    emulator.set_faults(latency_ms=30)
    object_of = {**dict.fromkeys(contacts, "Contact"), **dict.fromkeys(leads, "Lead")}
    streams = {"Contact": ["profiles", "segment_events"], "Lead": ["lead_profiles", "lead_events"]}
    records: list[tuple[str, dict]] = []
    for step in range(1500):
        record_id = rng.choice(contacts + leads)
        lead = object_of[record_id] == "Lead"
        stream = rng.choice(streams[object_of[record_id]])
        records.append((stream, _random_record(rng, record_id, step, lead=lead)))
    lines = [_schema(s) for pair in streams.values() for s in pair]
    for index, (stream, record) in enumerate(records, 1):
        lines.append(_message(stream, record))
        if index % 97 == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"offset": index}}))
    lines.append(json.dumps({"type": "STATE", "value": {"offset": len(records)}}))
    config = base_config(
        emulator, tmp_path, batch_size=7, max_concurrency=4,
        stream_object_types={"lead_profiles": "Lead", "lead_events": "Lead"},
    )

    run = run_target(config, "\n".join(lines) + "\n", tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert run.states[-1] == {"offset": len(records)}
    for record_id, values in _expected(records, object_of).items():
        stored = emulator.get(object_of[record_id], record_id)
        assert {name: stored.get(name) for name in values} == values, record_id
    streams_report = run.report["streams"]
    received = sum(s["received"] for s in streams_report.values())
    merged = sum(s["merged_duplicates"] for s in streams_report.values())
    updated = sum(s["updated"] for s in streams_report.values())
    assert received == len(records)
    assert updated + merged == len(records)
