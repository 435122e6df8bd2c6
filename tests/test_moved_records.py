"""Converted Leads and merged records are followed to the record that survived, in batches."""

from __future__ import annotations

import json
import math
import urllib.request
from typing import Any

from conftest import base_config, profile, run_target, seed_contacts, seed_leads, singer_lines

from target_salesforce_crm.emulator import make_id
from target_salesforce_crm.salesforce.moves import MoveResolver


def _admin(emu: Any, action: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{emu.url}/__emulator__/{action}", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _status(n: int) -> str:
    return ("realized", "existing", "exited")[n % 3]


def test_converted_merged_and_deleted_leads_land_on_their_survivors(emulator, tmp_path):
    leads = seed_leads(emulator, 1000)
    converted = leads[:100]                       # 10% converted into new Contacts
    chain = leads[100:120]                        # merged twice: A -> B, then B -> C
    merged_once = leads[120:150]                  # 5% merged in all, some in a chain
    deleted = leads[150:160]                      # 1% deleted outright
    contact_of = {lead: _admin(emulator, "convert-lead", {"lead_id": lead})["contact_id"]
                  for lead in converted}
    survivor = {}                                 # the live Lead, by the profile that wins it
    for n in range(0, len(chain), 2):             # a -> b, then b -> c (c is a live Lead)
        a, b, c = chain[n], chain[n + 1], leads[900 + n]
        _admin(emulator, "merge", {"object": "Lead", "master_id": b, "loser_ids": [a]})
        _admin(emulator, "merge", {"object": "Lead", "master_id": c, "loser_ids": [b]})
        survivor[b] = c                           # b's profile comes after a's: it wins
    for n, lead in enumerate(merged_once):
        survivor[lead] = leads[950 + n]
        _admin(emulator, "merge", {"object": "Lead", "master_id": leads[950 + n],
                                   "loser_ids": [lead]})
    _admin(emulator, "delete", {"ids": deleted})
    # the survivors' own profiles come first, so the moved profiles' values win on them
    order = leads[160:] + leads[:160]
    records = [profile(lead, n, lead=True, seg_loyal=_status(n)) for n, lead in enumerate(order)]
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead")

    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr
    by_lead = {lead: n for n, lead in enumerate(order)}
    for lead, contact in contact_of.items():
        n = by_lead[lead]
        stored = emulator.get("Contact", contact)
        assert stored["LastName"] == f"Last{n}" and stored["Seg_Loyal__c"] == _status(n)
    for lead, live in survivor.items():
        n = by_lead[lead]
        stored = emulator.get("Lead", live)
        assert stored["LastName"] == f"Last{n}" and stored["Seg_Loyal__c"] == _status(n)
    assert sorted(row["id"] for row in run.rejected) == sorted(deleted)
    assert {row["error_code"] for row in run.rejected} == {"ENTITY_IS_DELETED"}
    stream = run.report["streams"]["leads"]
    assert stream["redirected"] == {"converted_lead": 100, "merged": 50}
    assert stream["rejected"] == len(deleted)
    assert stream["fields_dropped_on_conversion"] == {}
    stats = emulator.stats()
    redirected = 160
    assert stats["collections_calls"] == math.ceil(1000 / 200) + 2 * math.ceil(redirected / 200)
    assert run.report["api"]["query_calls"] == 4  # one for the conversions, three merge hops


def test_merged_contacts_are_followed_and_remembered(emulator, tmp_path):
    contacts = seed_contacts(emulator, 400)
    losers, masters = contacts[:40], contacts[200:240]
    for loser, master in zip(losers, masters, strict=True):
        _admin(emulator, "merge", {"object": "Contact", "master_id": master,
                                   "loser_ids": [loser]})
    # each loser's profile twice: the two merge into one write, redirected once
    first = [profile(c, n, seg_news="realized") for n, c in enumerate(losers)]
    second = [profile(c, n + 1000, seg_news="exited") for n, c in enumerate(losers)]
    config = base_config(emulator, tmp_path, batch_size=40)

    run = run_target(config, singer_lines("contacts", first + second, state_every=40), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    for n, master in enumerate(masters):
        stored = emulator.get("Contact", master)
        assert stored["LastName"] == f"Last{n + 1000}"
        assert stored["Seg_Newsletter__c"] == "exited"
    report = run.report["streams"]["contacts"]
    assert report["redirected"] == {"merged": 80}
    assert report["merged_duplicates"] == 40
    # one refused call for the 40 merged writes, one query, one call to the masters
    assert emulator.stats()["collections_calls"] == 2


def test_a_lead_only_field_is_dropped_for_the_converted_contact(emulator, tmp_path):
    leads = seed_leads(emulator, 3)
    contact = _admin(emulator, "convert-lead", {"lead_id": leads[0]})["contact_id"]
    records = [profile(lead, n, lead=True) for n, lead in enumerate(leads)]
    mappings = [{"source": "person.name.lastName", "target": "LastName"},
                {"source": "b2b.companyName", "target": "Company"}]
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead", field_mappings=mappings)

    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert emulator.get("Contact", contact)["LastName"] == "Last0"
    assert emulator.get("Lead", leads[1])["Company"] == "Company1"
    stream = run.report["streams"]["leads"]
    assert stream["fields_dropped_on_conversion"] == {"Company": 1}
    assert "dropped: Company" in run.stderr


def test_reject_keeps_the_original_error(emulator, tmp_path):
    leads = seed_leads(emulator, 10)
    _admin(emulator, "convert-lead", {"lead_id": leads[0]})
    _admin(emulator, "merge", {"object": "Lead", "master_id": leads[2], "loser_ids": [leads[1]]})
    records = [profile(lead, n, lead=True) for n, lead in enumerate(leads)]
    config = base_config(emulator, tmp_path, salesforce_id_type="Lead",
                         converted_leads="reject", merged_records="reject")

    run = run_target(config, singer_lines("leads", records), tmp_path)

    assert run.returncode == 0, run.stderr
    codes = {row["id"]: row["error_code"] for row in run.rejected}
    assert codes == {leads[0]: "CANNOT_UPDATE_CONVERTED_LEAD", leads[1]: "ENTITY_IS_DELETED"}


class _CountingClient:
    """Answers SOQL like an org where Lead L1 was converted to Contact C1 and Contact A was
    merged into B, then B into C; counts the queries."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids
        self.queries: list[str] = []

    def query(self, soql: str, *, include_deleted: bool = False) -> list[dict]:
        self.queries.append(soql)
        i = self.ids
        rows = {
            i["L1"]: {"Id": i["L1"], "IsConverted": True, "ConvertedContactId": i["C1"]},
            i["A"]: {"Id": i["A"], "IsDeleted": True, "MasterRecordId": i["B"]},
            i["B"]: {"Id": i["B"], "IsDeleted": True, "MasterRecordId": i["C"]},
            i["C"]: {"Id": i["C"], "IsDeleted": False, "MasterRecordId": None},
        }
        return [row for key, row in rows.items() if key in soql]


def test_move_resolver_follows_chains_and_remembers():
    ids = {"L1": make_id("00Q", 1), "C1": make_id("003", 1), "A": make_id("003", 2),
           "B": make_id("003", 3), "C": make_id("003", 4), "X": make_id("003", 5)}
    client = _CountingClient(ids)
    resolver = MoveResolver(client)  # type: ignore[arg-type]

    assert resolver.converted_contacts([ids["L1"]]) == {ids["L1"]: ids["C1"]}
    assert resolver.survivors("Contact", [ids["A"], ids["X"]]) == {ids["A"]: ids["C"],
                                                                  ids["X"]: None}
    asked = len(client.queries)
    assert resolver.survivors("Contact", [ids["A"]]) == {ids["A"]: ids["C"]}
    assert resolver.converted_contacts([ids["L1"]]) == {ids["L1"]: ids["C1"]}
    assert len(client.queries) == asked  # answered from memory
    assert resolver.known("Contact", ids["A"]) == ("Contact", ids["C"])
    assert resolver.known("Lead", ids["L1"]) == ("Contact", ids["C1"])


def test_move_resolver_memory_is_bounded():
    ids = {"L1": make_id("00Q", 1), "C1": make_id("003", 1), "A": make_id("003", 2),
           "B": make_id("003", 3), "C": make_id("003", 4)}
    resolver = MoveResolver(_CountingClient(ids), remembered=2)  # type: ignore[arg-type]
    resolver.survivors("Contact", [ids["A"], ids["B"], ids["C"]])
    assert resolver.known("Contact", ids["A"]) is None  # the oldest answer was forgotten
    assert resolver.known("Contact", ids["B"]) == ("Contact", ids["C"])
