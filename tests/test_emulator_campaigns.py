"""Campaign, CampaignMember and CampaignMemberStatus in the emulator (contract part 2, §3)."""

from __future__ import annotations

import pytest
import requests
from test_emulator_soql import V, admin, collections, login, soql

from target_salesforce_crm.emulator import Emulator


@pytest.fixture
def emu():
    with Emulator(random_seed=7) as emulator:
        yield emulator


def member(campaign_id: str, **fields: object) -> dict:
    return {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, **fields}


def statuses_of(session: requests.Session, emu: Emulator, campaign_id: str) -> dict[str, dict]:
    body = soql(session, emu, "SELECT Id, Label, IsDefault, HasResponded, SortOrder FROM "
                              f"CampaignMemberStatus WHERE CampaignId = '{campaign_id}'").json()
    return {record["Label"]: record for record in body["records"]}


@pytest.fixture
def world(emu):
    """A campaign made over the API, two Contacts and a Lead."""
    session = login(emu)
    created = session.post(f"{emu.url}/services/data/{V}/sobjects/Campaign",
                           json={"Name": "Seg High Value", "IsActive": True}, timeout=10)
    assert created.status_code == 201, created.text
    contacts = emu.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    leads = emu.seed("Lead", [{"LastName": "L", "Company": "C"}])
    return session, created.json()["id"], contacts, leads


def test_describe_of_the_campaign_objects(emu):
    session = login(emu)
    for name, prefix in [("Campaign", "701"), ("CampaignMember", "00v"),
                         ("CampaignMemberStatus", "01Y")]:
        body = session.get(f"{emu.url}/services/data/{V}/sobjects/{name}/describe",
                           timeout=10).json()
        assert body["keyPrefix"] == prefix
    fields = {f["name"]: f for f in session.get(
        f"{emu.url}/services/data/{V}/sobjects/CampaignMember/describe", timeout=10).json()[
        "fields"]}
    assert fields["CampaignId"]["createable"] and not fields["CampaignId"]["updateable"]
    assert fields["ContactId"]["referenceTo"] == ["Contact"]
    assert fields["Status"]["updateable"] and fields["Status"]["length"] == 40
    assert not fields["HasResponded"]["createable"] and not fields["HasResponded"]["updateable"]


def test_new_campaign_gets_sent_and_responded(emu, world):
    session, campaign_id, _, _ = world
    assert campaign_id.startswith("701")
    stored = emu.get("Campaign", campaign_id)
    assert stored["IsActive"] is True and stored["Name"] == "Seg High Value"
    statuses = statuses_of(session, emu, campaign_id)
    assert set(statuses) == {"Sent", "Responded"}
    assert statuses["Sent"]["IsDefault"] is True and statuses["Sent"]["HasResponded"] is False
    assert statuses["Responded"]["HasResponded"] is True
    assert {s["SortOrder"] for s in statuses.values()} == {1, 2}
    assert all(s["Id"].startswith("01Y") for s in statuses.values())


def test_members_are_unique_per_campaign(emu, world):
    session, campaign_id, contacts, leads = world
    results = collections(session, emu, "POST", [
        member(campaign_id, ContactId=contacts[0]),
        member(campaign_id, LeadId=leads[0]),
        member(campaign_id, ContactId=contacts[0][:15]),
    ])
    assert [r["success"] for r in results] == [True, True, False]
    assert results[0]["id"].startswith("00v")
    assert results[2]["errors"] == [{"statusCode": "DUPLICATE_VALUE",
                                     "message": "Already a campaign member.", "fields": []}]
    again = collections(session, emu, "POST", [member(campaign_id, LeadId=leads[0])])
    assert again[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    stored = emu.get("CampaignMember", results[0]["id"])
    assert stored["Status"] == "Sent" and stored["HasResponded"] is False
    assert stored["LeadOrContactId"] == contacts[0]


def test_membership_query(emu, world):
    session, campaign_id, contacts, leads = world
    collections(session, emu, "POST", [member(campaign_id, ContactId=contacts[0]),
                                       member(campaign_id, ContactId=contacts[1])])
    body = soql(session, emu, "SELECT Id, CampaignId, ContactId, LeadId, Status FROM "
                              f"CampaignMember WHERE CampaignId IN ('{campaign_id}') AND "
                              f"ContactId IN ('{contacts[0]}', '{leads[0]}')").json()
    assert body["totalSize"] == 1
    record = body["records"][0]
    assert list(record)[1:] == ["Id", "CampaignId", "ContactId", "LeadId", "Status"]
    assert record["ContactId"] == contacts[0] and record["LeadId"] is None
    assert record["Status"] == "Sent" and record["CampaignId"] == campaign_id


def test_unknown_status_modes(emu, world):
    session, campaign_id, contacts, _ = world
    rejected = collections(session, emu, "POST", [
        member(campaign_id, ContactId=contacts[0], Status="In Segment")])
    assert rejected[0]["errors"] == [{
        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "message": "Status: bad value for restricted picklist field: In Segment",
        "fields": ["Status"]}]
    emu.set_options(unknown_status="default")
    defaulted = collections(session, emu, "POST", [
        member(campaign_id, ContactId=contacts[0], Status="In Segment")])
    assert emu.get("CampaignMember", defaulted[0]["id"])["Status"] == "Sent"
    emu.set_options(unknown_status="store")
    stored = collections(session, emu, "POST", [
        member(campaign_id, ContactId=contacts[1], Status="In Segment")])
    assert emu.get("CampaignMember", stored[0]["id"])["Status"] == "In Segment"


def test_custom_status_then_member_and_status_update(emu, world):
    session, campaign_id, contacts, _ = world
    created = session.post(f"{emu.url}/services/data/{V}/sobjects/CampaignMemberStatus",
                           json={"CampaignId": campaign_id, "Label": "In Segment",
                                 "HasResponded": False}, timeout=10)
    assert created.status_code == 201, created.text
    assert statuses_of(session, emu, campaign_id)["In Segment"]["SortOrder"] == 3
    duplicate = session.post(f"{emu.url}/services/data/{V}/sobjects/CampaignMemberStatus",
                             json={"CampaignId": campaign_id, "Label": "in segment"},
                             timeout=10)
    assert duplicate.status_code == 400
    assert duplicate.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    same_order = collections(session, emu, "POST", [
        {"attributes": {"type": "CampaignMemberStatus"}, "CampaignId": campaign_id,
         "Label": "Other", "SortOrder": 1}])
    assert same_order[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    added = collections(session, emu, "POST", [
        member(campaign_id, ContactId=contacts[0], Status="In Segment")])
    member_id = added[0]["id"]
    assert added[0]["success"] is True
    updated = collections(session, emu, "PATCH", [
        {"attributes": {"type": "CampaignMember"}, "id": member_id, "Status": "Responded"}])
    assert updated[0]["success"] is True
    stored = emu.get("CampaignMember", member_id)
    assert stored["HasResponded"] is True and stored["FirstRespondedDate"]
    moved = collections(session, emu, "PATCH", [
        {"attributes": {"type": "CampaignMember"}, "id": member_id, "ContactId": contacts[1]}])
    assert moved[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    bad = collections(session, emu, "PATCH", [
        {"attributes": {"type": "CampaignMember"}, "id": member_id, "Status": "Nope"}])
    assert bad[0]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_a_new_default_status_demotes_the_old_one(emu, world):
    session, campaign_id, contacts, _ = world
    collections(session, emu, "POST", [
        {"attributes": {"type": "CampaignMemberStatus"}, "CampaignId": campaign_id,
         "Label": "Targeted", "IsDefault": True}])
    statuses = statuses_of(session, emu, campaign_id)
    assert statuses["Targeted"]["IsDefault"] is True and statuses["Sent"]["IsDefault"] is False
    added = collections(session, emu, "POST", [member(campaign_id, ContactId=contacts[0])])
    assert emu.get("CampaignMember", added[0]["id"])["Status"] == "Targeted"
    no_default = collections(session, emu, "PATCH", [
        {"attributes": {"type": "CampaignMemberStatus"}, "id": statuses["Targeted"]["Id"],
         "IsDefault": False}])
    assert no_default[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def test_member_references_are_checked(emu, world):
    session, campaign_id, contacts, leads = world
    admin(emu, "convert-lead", {"lead_id": leads[0]})
    results = collections(session, emu, "POST", [
        member("701000000000000", ContactId=contacts[0]),
        member(campaign_id, ContactId="not-an-id"),
        member(campaign_id, ContactId="003000000000000"),
        member(campaign_id),
        member(campaign_id, LeadId=leads[0]),
    ])
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY",
        "REQUIRED_FIELD_MISSING", "CANNOT_UPDATE_CONVERTED_LEAD"]


def test_delete_then_readd_and_merge_moves_memberships(emu, world):
    session, campaign_id, contacts, _ = world
    first = collections(session, emu, "POST", [member(campaign_id, ContactId=contacts[0])])
    member_id = first[0]["id"]
    deleted = session.delete(f"{emu.url}/services/data/{V}/composite/sobjects",
                             params={"ids": member_id}, timeout=10).json()
    assert deleted[0]["success"] is True
    assert soql(session, emu, "SELECT Id FROM CampaignMember").json()["totalSize"] == 0
    readded = collections(session, emu, "POST", [member(campaign_id, ContactId=contacts[0])])
    assert readded[0]["success"] is True
    admin(emu, "merge", {"object": "Contact", "master_id": contacts[1],
                         "loser_ids": [contacts[0]]})
    moved = emu.get("CampaignMember", readded[0]["id"])
    assert moved["ContactId"] == contacts[1]


def test_seeded_campaigns_get_default_statuses(emu):
    campaign_id, = emu.seed("Campaign", [{"Name": "Seeded", "IsActive": True}])
    response = requests.post(f"{emu.url}/__emulator__/seed/Campaign",
                             json=[{"Name": "Over admin"}], timeout=10)
    assert response.status_code == 200
    session = login(emu)
    assert set(statuses_of(session, emu, campaign_id)) == {"Sent", "Responded"}
    assert set(statuses_of(session, emu, response.json()["ids"][0])) == {"Sent", "Responded"}
    body = soql(session, emu, "SELECT Name FROM Campaign WHERE IsActive = true").json()
    assert [r["Name"] for r in body["records"]] == ["Seeded"]
