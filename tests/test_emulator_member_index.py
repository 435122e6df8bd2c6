"""The emulator's CampaignMember index (emulator/references.py): membership checks and
`ContactId IN (...)` queries read the index, and answer exactly what a scan of every record
answers, through creates, deletes, undeletes, purges, merges, conversions and moves."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from target_salesforce_crm.emulator import dml, lifecycle
from target_salesforce_crm.emulator.faults import FaultSettings
from target_salesforce_crm.emulator.objects import more_schemas
from target_salesforce_crm.emulator.org import Org, timestamp
from target_salesforce_crm.emulator.query import _candidates, execute
from target_salesforce_crm.emulator.references import ReferenceIndex, reference_key
from target_salesforce_crm.emulator.schema import build_schemas
from target_salesforce_crm.emulator.soql import parse

FIELDS = "Id, CampaignId, ContactId, LeadId, LeadOrContactId, Status, IsDeleted"


@pytest.fixture
def org() -> Org:
    return Org({**build_schemas(["Seg_Loyal__c"]), **more_schemas()}, FaultSettings())


def create(org: Org, *members: dict[str, Any]) -> list[dict[str, Any]]:
    records = [{"attributes": {"type": "CampaignMember"}, **fields} for fields in members]
    return json.loads(dml.create(org, json.dumps({"allOrNone": False,
                                                  "records": records}).encode()))


def delete(org: Org, *ids: str) -> list[dict[str, Any]]:
    return json.loads(dml.delete(org, {"ids": [",".join(ids)]}))


def codes(results: list[dict[str, Any]]) -> list[str | None]:
    return [None if r["success"] else r["errors"][0]["statusCode"] for r in results]


def run(org: Org, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
    return execute(org, soql, include_deleted=include_deleted, version=60)[1]


def scanned(org: Org, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
    """The same query with the index set aside: every record tested, in store order."""
    kept = org.references["CampaignMember"]
    org.references["CampaignMember"] = ReferenceIndex(())
    try:
        return run(org, soql, include_deleted=include_deleted)
    finally:
        org.references["CampaignMember"] = kept


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["Id"] for row in rows]


def quoted(values: list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def shapes(campaigns: list[str], contacts: list[str], leads: list[str],
           members: list[str]) -> Iterator[str]:
    """WHERE clauses the index narrows, and some it must leave to the scan."""
    people = [*contacts[::2], contacts[1][:15], "003000000000000AAA"]
    yield f"CampaignId IN ({quoted(campaigns)}) AND ContactId IN ({quoted(people)})"
    yield f"ContactId IN ({quoted(people)})"
    yield f"ContactId IN ({quoted(people)}) AND CampaignId IN ({quoted(campaigns[:1])})"
    yield f"LeadId IN ({quoted(leads)}) AND CampaignId IN ({quoted(campaigns)})"
    yield f"ContactId = '{contacts[0]}'"
    yield f"LeadId = '{leads[0][:15]}'"
    yield f"CampaignId = '{campaigns[1]}'"
    yield f"Id IN ({quoted(members[::3])})"
    yield f"CampaignId = '{campaigns[0]}' AND (ContactId IN ({quoted(people)}) AND Status = 'Sent')"
    yield f"CampaignId = '{campaigns[2]}' AND ContactId = null"
    yield f"ContactId IN ({quoted(people)}) OR LeadId IN ({quoted(leads)})"
    yield f"ContactId NOT IN ({quoted(people)})"
    yield f"NOT ContactId = '{contacts[0]}'"
    yield "Status = 'Sent'"


def assert_same_as_scan(org: Org, world: dict[str, list[str]]) -> None:
    members = ids(run(org, "SELECT Id FROM CampaignMember", include_deleted=True))
    for where in shapes(world["campaigns"], world["contacts"], world["leads"], members):
        for tail in ("", " ORDER BY Status DESC LIMIT 5 OFFSET 1"):
            soql = f"SELECT {FIELDS} FROM CampaignMember WHERE {where}{tail}"
            for include_deleted in (False, True):
                assert run(org, soql, include_deleted=include_deleted) == scanned(
                    org, soql, include_deleted=include_deleted), (soql, include_deleted)
        count = f"SELECT COUNT() FROM CampaignMember WHERE {where}"
        assert len(run(org, count)) == len(scanned(org, count))
    assert_index_matches_store(org)


def assert_index_matches_store(org: Org) -> None:
    """Every stored member is filed under each of its references, nothing else is, and the
    index orders each store as the store itself does."""
    index = org.references["CampaignMember"]
    live, deleted = org.store["CampaignMember"], org.deleted["CampaignMember"]
    every = {**live, **deleted}
    for name in index.fields:
        values = {reference_key(record.get(name)) for record in every.values()} - {None}
        held = {key for key, record in every.items() if record.get(name)}
        assert index.holders(name, values) == held
        for value in values:
            assert index.holders(name, [value]) == {
                key for key, record in every.items() if reference_key(record.get(name)) == value}
    assert index.in_order(set(live)) == list(live)
    assert index.in_order(set(deleted)) == list(deleted)


@pytest.fixture
def world(org: Org) -> dict[str, list[str]]:
    """Three campaigns, eight Contacts and four Leads, members made through collections."""
    campaigns = org.seed("Campaign", [{"Name": f"Segment {n}"} for n in range(3)])
    contacts = org.seed("Contact", [{"LastName": f"C{n}"} for n in range(8)])
    leads = org.seed("Lead", [{"LastName": f"L{n}", "Company": "Co"} for n in range(4)])
    rng = random.Random(3)
    wanted = [{"CampaignId": campaign, "ContactId": contact}
              for contact in contacts for campaign in rng.sample(campaigns, 2)]
    wanted += [{"CampaignId": campaign, "LeadId": lead}
               for lead in leads for campaign in rng.sample(campaigns, 2)]
    rng.shuffle(wanted)
    assert codes(create(org, *wanted)) == [None] * len(wanted)
    return {"campaigns": campaigns, "contacts": contacts, "leads": leads}


def looked_at(org: Org, soql: str) -> list[dict[str, Any]]:
    """The records a query tests before its WHERE clause is applied."""
    where = parse(org.schemas_lower, soql).where
    return _candidates(org, org.schemas["CampaignMember"], where, include_deleted=False,
                       tooling=False)


def members_of(org: Org, field: str, person: str, *, include_deleted: bool = False) -> set:
    rows = run(org, f"SELECT CampaignId, {field} FROM CampaignMember WHERE {field} = '{person}'",
               include_deleted=include_deleted)
    return {row["CampaignId"] for row in rows}


def test_fresh_members_query_like_the_scan_and_the_index_narrows(org, world):
    assert_same_as_scan(org, world)
    contacts, campaigns = world["contacts"], world["campaigns"]
    soql = (f"SELECT Id FROM CampaignMember WHERE CampaignId IN ({quoted(campaigns)}) "
            f"AND ContactId IN ({quoted(contacts[:2])})")
    assert len(looked_at(org, soql)) == 4 and len(run(org, soql)) == 4
    assert len(looked_at(org, soql.replace(" AND ContactId", " OR ContactId"))) == 24


def test_deleted_members_leave_query_and_stay_in_query_all(org, world):
    contact = world["contacts"][0]
    gone = run(org, f"SELECT Id, CampaignId FROM CampaignMember WHERE ContactId = '{contact}'")
    assert delete(org, gone[0]["Id"])[0]["success"] is True
    assert members_of(org, "ContactId", contact) == {gone[1]["CampaignId"]}
    assert members_of(org, "ContactId", contact, include_deleted=True) == {
        row["CampaignId"] for row in gone}
    assert_same_as_scan(org, world)
    assert codes(create(org, {"CampaignId": gone[0]["CampaignId"], "ContactId": contact},
                        {"CampaignId": gone[1]["CampaignId"], "ContactId": contact})) == [
        None, "DUPLICATE_VALUE"]
    assert_same_as_scan(org, world)


def test_undelete_and_purge(org, world):
    lead = world["leads"][1]
    rows = run(org, f"SELECT Id, CampaignId FROM CampaignMember WHERE LeadId = '{lead}'")
    delete(org, *ids(rows))
    lifecycle.undelete(org, {"ids": [rows[1]["Id"]]})
    assert_same_as_scan(org, world)
    assert members_of(org, "LeadId", lead) == {rows[1]["CampaignId"]}
    lifecycle.purge(org, {"ids": [rows[0]["Id"]]})
    assert members_of(org, "LeadId", lead, include_deleted=True) == {rows[1]["CampaignId"]}
    assert_same_as_scan(org, world)


def test_merge_moves_members_to_the_master_and_drops_shared_campaigns(org, world):
    master, loser = world["contacts"][:2]
    before_master = members_of(org, "ContactId", master)
    before_loser = members_of(org, "ContactId", loser)
    lifecycle.merge(org, {"object": "Contact", "master_id": master, "loser_ids": [loser]})
    assert members_of(org, "ContactId", master) == before_master | before_loser
    assert members_of(org, "ContactId", loser) == set()
    assert members_of(org, "ContactId", loser, include_deleted=True) == \
        before_master & before_loser
    assert_same_as_scan(org, world)
    again = create(org, *({"CampaignId": campaign, "ContactId": master}
                          for campaign in world["campaigns"]))
    assert codes(again) == [
        "DUPLICATE_VALUE" if campaign in before_master | before_loser else None
        for campaign in world["campaigns"]]
    lead_master, lead_loser = world["leads"][:2]
    wanted = members_of(org, "LeadId", lead_master) | members_of(org, "LeadId", lead_loser)
    lifecycle.merge(org, {"object": "Lead", "master_id": lead_master,
                          "loser_ids": [lead_loser]})
    assert members_of(org, "LeadId", lead_master) == wanted
    assert_same_as_scan(org, world)


def test_conversion_adds_the_contact_to_the_leads_members(org, world):
    lead, contact = world["leads"][2], world["contacts"][3]
    lead_campaigns = members_of(org, "LeadId", lead)
    contact_campaigns = members_of(org, "ContactId", contact)
    lifecycle.convert_lead(org, {"lead_id": lead, "contact_id": contact})
    assert members_of(org, "ContactId", contact) == lead_campaigns | contact_campaigns
    assert members_of(org, "LeadId", lead) == lead_campaigns
    new_contact = lifecycle.convert_lead(org, {"lead_id": world["leads"][3]})["contact_id"]
    assert members_of(org, "ContactId", new_contact) == members_of(
        org, "LeadId", world["leads"][3])
    assert_same_as_scan(org, world)
    shared = sorted(lead_campaigns)[0]
    assert codes(create(org, {"CampaignId": shared, "ContactId": contact})) == [
        "DUPLICATE_VALUE"]


def test_a_member_moved_to_another_campaign(org, world):
    contact = world["contacts"][4]
    row = run(org, f"SELECT Id, CampaignId FROM CampaignMember WHERE ContactId = '{contact}'")[0]
    held = members_of(org, "ContactId", contact)
    free = next(c for c in world["campaigns"] if c not in held)
    with org.lock:
        org.update(org.schemas["CampaignMember"], row["Id"][:15], {"CampaignId": free},
                   timestamp())
    assert members_of(org, "ContactId", contact) == held - {row["CampaignId"]} | {free}
    assert ids(run(org, f"SELECT Id FROM CampaignMember WHERE CampaignId = '{free}' "
                        f"AND ContactId = '{contact}'")) == [row["Id"]]
    assert_same_as_scan(org, world)
    assert codes(create(org, {"CampaignId": free, "ContactId": contact},
                        {"CampaignId": row["CampaignId"], "ContactId": contact})) == [
        "DUPLICATE_VALUE", None]
    other = world["contacts"][5]
    org.seed("CampaignMember", [{"Id": row["Id"], "CampaignId": free, "ContactId": other}])
    assert row["Id"] in ids(run(org, f"SELECT Id FROM CampaignMember WHERE ContactId = '{other}'"))
    assert members_of(org, "ContactId", contact) == held
    assert_same_as_scan(org, world)


def test_duplicates_within_one_request_and_across_id_spellings(org, world):
    contact = org.seed("Contact", [{"LastName": "New"}])[0]
    campaign = world["campaigns"][0]
    results = create(org, {"CampaignId": campaign, "ContactId": contact},
                     {"CampaignId": campaign[:15], "ContactId": contact[:15]},
                     {"CampaignId": campaign, "LeadId": world["leads"][0], "ContactId": contact})
    assert codes(results) == [None, "DUPLICATE_VALUE", "DUPLICATE_VALUE"]
    assert results[1]["errors"] == [{"statusCode": "DUPLICATE_VALUE",
                                     "message": "Already a campaign member.", "fields": []}]
    assert_same_as_scan(org, world)


def test_seeded_deleted_members_and_random_operations_stay_consistent(org, world):
    rng = random.Random(11)
    contacts, leads, campaigns = world["contacts"], world["leads"], world["campaigns"]
    org.seed("CampaignMember", [
        {"CampaignId": campaigns[0], "ContactId": contacts[6], "IsDeleted": True},
        {"CampaignId": campaigns[1], "LeadId": leads[3], "ContactId": contacts[7]}])
    assert_same_as_scan(org, world)
    for _ in range(12):
        live = ids(run(org, "SELECT Id FROM CampaignMember"))
        dead = [row["Id"] for row in run(org, "SELECT Id, IsDeleted FROM CampaignMember",
                                         include_deleted=True) if row["IsDeleted"]]
        action = rng.choice(["create", "delete", "undelete", "purge"])
        if action == "create":
            create(org, *({"CampaignId": rng.choice(campaigns), "ContactId": rng.choice(contacts)}
                          for _ in range(5)))
        elif action == "delete" and live:
            delete(org, *rng.sample(live, min(3, len(live))))
        elif action == "undelete" and dead:
            lifecycle.undelete(org, {"ids": [rng.choice(dead)]})
        elif action == "purge" and dead:
            lifecycle.purge(org, {"ids": [rng.choice(dead)]})
        assert_same_as_scan(org, world)
