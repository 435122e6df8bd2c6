"""Regenerates the demo data: XDM-shaped profiles and the org records they update.

    python sample_data/generate.py

Writes, next to this file:
- ``org_contacts.jsonl`` / ``org_leads.jsonl``: records the emulator is seeded with (their Ids are
  the emulator's deterministic Ids, so the profiles can reference them);
- ``contacts.jsonl`` / ``leads.jsonl``: the profiles a tap reads, with segment memberships,
  including a handful of deliberately bad ones (missing, malformed, foreign or unknown Ids,
  invalid emails) that end up in the dead-letter file.
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

from target_salesforce_crm.emulator import make_id

HERE = Path(__file__).parent
SEGMENTS = {
    "5b2e6a1f-3c4d-4e5f-8a9b-0c1d2e3f4a5b": "Seg_Loyal_Customers__c",
    "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a": "Seg_Cart_Abandoners__c",
    "0a1b2c3d-4e5f-4a7b-9c8d-7e6f5a4b3c2d": "Seg_Newsletter__c",
}
STATUSES = ("realized", "existing", "exited")
FIRST = ("Ana", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gus", "Hana", "Ivan", "Jo", "Kwame",
         "Lena", "Mateo", "Noor", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq")
LAST = ("Okafor", "Müller", "Nguyen", "Garcia", "Kim", "Rossi", "Haddad", "Silva", "Novak",
        "Ito", "Dubois", "Kowalski", "Mensah", "Larsen", "Cohen", "Petrov", "Shah", "Lopez")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Hooli", "Vandelay Industries")
CONTACTS = 300
LEADS = 60


def _ascii(name: str) -> str:
    """Email local parts are ASCII: fold accents away (Chloé -> chloe)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return folded.lower().replace(" ", "").replace("-", "")


def _memberships(rng: random.Random) -> dict:
    ups = {}
    for segment_id in SEGMENTS:
        if rng.random() < 0.6:
            ups[segment_id] = {
                "status": rng.choice(STATUSES),
                "lastQualificationTime": f"2026-11-{rng.randint(1, 27):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
            }
    return {"ups": ups}


def _profile(rng: random.Random, record_id: str | None, n: int, lead: bool) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    profile: dict = {
        "crmID": record_id,
        "person": {"name": {"firstName": first, "lastName": last}},
        "personalEmail": {"address": f"{_ascii(first)}.{_ascii(last)}.{n}@example.com"},
        "segmentMembership": _memberships(rng),
    }
    if lead:
        profile["b2b"] = {"companyName": rng.choice(COMPANIES)}
    return profile


def _write(name: str, rows: list[dict]) -> None:
    with (HERE / name).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(20261128)
    contact_ids = [make_id("003", n) for n in range(1, CONTACTS + 1)]
    lead_ids = [make_id("00Q", n) for n in range(1, LEADS + 1)]
    _write("org_contacts.jsonl", [
        {"Id": i, "LastName": f"Old{n}", "FirstName": "Before", "Email": f"old{n}@example.org"}
        for n, i in enumerate(contact_ids, 1)
    ])
    _write("org_leads.jsonl", [
        {"Id": i, "LastName": f"OldLead{n}", "Company": "Unknown", "Email": f"lead{n}@example.org"}
        for n, i in enumerate(lead_ids, 1)
    ])
    contacts = [_profile(rng, i, n, lead=False) for n, i in enumerate(contact_ids, 1)]
    bad_contacts = [
        _profile(rng, None, 9001, lead=False),                       # missing Id
        _profile(rng, "003NOTANID", 9002, lead=False),               # malformed Id
        _profile(rng, lead_ids[0], 9003, lead=False),                # a Lead's Id
        _profile(rng, make_id("003", 5000), 9004, lead=False),       # well-formed, unknown
        _profile(rng, contact_ids[10], 9005, lead=False),            # invalid email below
    ]
    bad_contacts[4]["personalEmail"]["address"] = "not-an-email"
    leads = [_profile(rng, i, n, lead=True) for n, i in enumerate(lead_ids, 1)]
    bad_leads = [_profile(rng, lead_ids[1], 9101, lead=True)]
    bad_leads[0]["b2b"]["companyName"] = ""                          # empty required Company
    _write("contacts.jsonl", contacts[:150] + bad_contacts + contacts[150:])
    _write("leads.jsonl", leads[:30] + bad_leads + leads[30:])


if __name__ == "__main__":
    main()
