"""SOQL over REST against the emulator (contract part 2, §1), through raw HTTP on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import requests

from target_salesforce_crm.emulator import FIXTURE_CREDENTIALS, Emulator, make_id

V = "v60.0"


@pytest.fixture
def emu():
    with Emulator(segment_fields=["Seg_Loyal__c"], random_seed=7) as emulator:
        yield emulator


def login(emu: Emulator) -> requests.Session:
    creds = FIXTURE_CREDENTIALS
    response = requests.post(emu.url + "/services/oauth2/token", data={
        "grant_type": "password", "client_id": creds["client_id"],
        "client_secret": creds["client_secret"], "username": creds["username"],
        "password": creds["password"] + creds["security_token"]}, timeout=10)
    assert response.status_code == 200, response.text
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + response.json()["access_token"]
    return session


def soql(session: requests.Session, emu: Emulator, text: str, endpoint: str = "query",
         **headers: str) -> requests.Response:
    return session.get(f"{emu.url}/services/data/{V}/{endpoint}", params={"q": text},
                       headers=headers, timeout=10)


def error_of(response: requests.Response) -> dict:
    body = response.json()
    assert isinstance(body, list) and len(body) == 1, body
    return body[0]


def people(emu: Emulator) -> list[str]:
    return emu.seed("Contact", [
        {"LastName": "Smith", "FirstName": "Ann", "Email": "ann@example.com"},
        {"LastName": "O'Brien", "Email": "obrien@example.com", "HasOptedOutOfEmail": True},
        {"LastName": "Jones", "Email": "JONES@example.com", "Seg_Loyal__c": "active"},
        {"LastName": "NoMail"},
    ])


def test_query_returns_selected_fields_in_order_with_attributes(emu):
    ids = people(emu)
    session = login(emu)
    response = soql(session, emu, "SELECT Email, Id, LastName FROM Contact "
                                  "WHERE Email IN ('ann@example.com','jones@example.com')")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalSize"] == 2 and body["done"] is True and "nextRecordsUrl" not in body
    by_id = {record["Id"]: record for record in body["records"]}
    assert set(by_id) == {ids[0], ids[2]}
    record = by_id[ids[0]]
    assert list(record) == ["attributes", "Email", "Id", "LastName"]
    assert record["attributes"] == {"type": "Contact",
                                    "url": f"/services/data/{V}/sobjects/Contact/{ids[0]}"}
    assert by_id[ids[2]]["Email"] == "JONES@example.com"  # text matches ignoring case


def test_trailing_slash_and_percent20_spaces_are_accepted(emu):
    people(emu)
    session = login(emu)
    url = (f"{emu.url}/services/data/{V}/query/?q=SELECT%20Id%20FROM%20Contact%20WHERE%20"
           "LastName%20%3D%20%27Smith%27")
    body = session.get(url, timeout=10).json()
    assert body["totalSize"] == 1
    plus = (f"{emu.url}/services/data/{V}/query?q=SELECT+Id+FROM+Contact+WHERE+LastName+%3D+"
            "%27Smith%27")
    assert session.get(plus, timeout=10).json()["totalSize"] == 1


def test_empty_result_shape(emu):
    session = login(emu)
    body = soql(session, emu, "SELECT Id FROM Contact WHERE Email = 'nobody@example.com'").json()
    assert body == {"totalSize": 0, "done": True, "records": []}


@pytest.mark.parametrize(("where", "expected"), [
    ("LastName = 'O\\'Brien'", {"O'Brien"}),
    ("HasOptedOutOfEmail = true", {"O'Brien"}),
    ("HasOptedOutOfEmail = FALSE", {"Smith", "Jones", "NoMail"}),
    ("Email = null", {"NoMail"}),
    ("Email != null AND HasOptedOutOfEmail = false", {"Smith", "Jones"}),
    ("LastName != 'Smith'", {"O'Brien", "Jones", "NoMail"}),
    ("LastName NOT IN ('Smith', 'Jones')", {"O'Brien", "NoMail"}),
    ("Email LIKE '%@EXAMPLE.com'", {"Smith", "O'Brien", "Jones"}),
    ("LastName LIKE 'J_nes'", {"Jones"}),
    ("(LastName = 'Smith' OR LastName = 'Jones') AND Email != null", {"Smith", "Jones"}),
    ("NOT LastName = 'Smith' AND FirstName = null", {"O'Brien", "Jones", "NoMail"}),
    ("FirstName IN ('Ann', null)", {"Smith", "O'Brien", "Jones", "NoMail"}),
    ("CreatedDate > 2000-01-01T00:00:00Z", {"Smith", "O'Brien", "Jones", "NoMail"}),
    ("CreatedDate < 2000-01-01T00:00:00+01:00", set()),
])
def test_where_conditions(emu, where, expected):
    people(emu)
    session = login(emu)
    response = soql(session, emu, f"SELECT LastName FROM Contact WHERE {where}")
    assert response.status_code == 200, response.text
    assert {record["LastName"] for record in response.json()["records"]} == expected


def test_id_filters_accept_15_and_18_character_ids(emu):
    ids = people(emu)
    session = login(emu)
    body = soql(session, emu, f"SELECT Id FROM Contact WHERE Id IN ('{ids[1][:15]}', "
                              f"'{ids[3]}')").json()
    assert {record["Id"] for record in body["records"]} == {ids[1], ids[3]}


def test_order_by_limit_offset_and_count(emu):
    people(emu)
    session = login(emu)
    body = soql(session, emu, "SELECT LastName FROM Contact ORDER BY LastName DESC "
                              "LIMIT 2 OFFSET 1").json()
    assert [record["LastName"] for record in body["records"]] == ["O'Brien", "NoMail"]
    body = soql(session, emu, "SELECT Email FROM Contact ORDER BY Email NULLS LAST").json()
    assert [record["Email"] for record in body["records"]] == [
        "ann@example.com", "JONES@example.com", "obrien@example.com", None]
    count = soql(session, emu, "SELECT COUNT() FROM Contact WHERE Email != null").json()
    assert count == {"totalSize": 3, "done": True, "records": []}


def test_paging_follows_next_records_url_and_counts_each_page(emu):
    ids = emu.seed("Contact", [{"LastName": f"P{n}"} for n in range(5)])
    emu.set_options(query_batch_size=2)
    session = login(emu)
    before = emu.stats()["api_calls"]
    body = soql(session, emu, "SELECT Id FROM Contact").json()
    seen, pages = [], 1
    while True:
        assert body["totalSize"] == 5
        seen += [record["Id"] for record in body["records"]]
        if body["done"]:
            assert "nextRecordsUrl" not in body
            break
        assert body["nextRecordsUrl"].startswith(f"/services/data/{V}/query/")
        body = session.get(emu.url + body["nextRecordsUrl"], timeout=10).json()
        pages += 1
    assert sorted(seen) == sorted(ids) and pages == 3
    assert emu.stats()["api_calls"] - before == 3


def test_batch_size_header_and_default_page_of_2000(emu):
    emu.seed("Contact", [{"LastName": f"P{n}"} for n in range(2100)])
    session = login(emu)
    first = soql(session, emu, "SELECT Id FROM Contact").json()
    assert len(first["records"]) == 2000 and first["done"] is False
    small = soql(session, emu, "SELECT Id FROM Contact",
                 **{"Sforce-Query-Options": "batchSize=500"}).json()
    assert len(small["records"]) == 500
    rest = session.get(emu.url + first["nextRecordsUrl"], timeout=10).json()
    assert len(rest["records"]) == 100 and rest["done"] is True


def test_unknown_locator_is_invalid_query_locator(emu):
    session = login(emu)
    response = session.get(f"{emu.url}/services/data/{V}/query/0r8xx0000000000AAA-2000",
                           timeout=10)
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "INVALID_QUERY_LOCATOR"


@pytest.mark.parametrize(("text", "code", "fragment"), [
    ("SELECT Id FRM Contact", "MALFORMED_QUERY", "unexpected token: 'FRM'"),
    ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Email = 'c'",
     "MALFORMED_QUERY", "unexpected token: 'OR'"),
    ("SELECT Id FROM Contact WHERE LastName = 'O\\qBrien'", "MALFORMED_QUERY",
     "Illegal character sequence"),
    ("SELECT Id, Foo__c FROM Contact", "INVALID_FIELD",
     "ERROR at Row:1:Column:12\nNo such column 'Foo__c' on entity 'Contact'."),
    ("SELECT Id FROM Foo", "INVALID_TYPE", "sObject type 'Foo' is not supported."),
    ("SELECT Id FROM Contact WHERE Seg_Loyal__c != null", "INVALID_FIELD",
     "field 'Seg_Loyal__c' can not be filtered in a query call"),
    ("SELECT Id FROM Contact ORDER BY Seg_Loyal__c", "INVALID_FIELD",
     "can not be sorted in a query call"),
    ("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = 'true'", "INVALID_FIELD",
     "must be of type boolean and should not be enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE LastName = true", "INVALID_FIELD",
     "must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE Id = 'nonsense'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid ID field: nonsense"),
])
def test_query_errors_are_request_level(emu, text, code, fragment):
    session = login(emu)
    response = soql(session, emu, text)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["errorCode"] == code
    assert fragment in error["message"]


def test_error_message_points_at_the_token(emu):
    session = login(emu)
    error = error_of(soql(session, emu, "SELECT Id FROM Contact WHERE Seg_Loyal__c != null"))
    assert error["message"].startswith(
        "\nSELECT Id FROM Contact WHERE Seg_Loyal__c != null\n" + " " * 29 + "^\n"
        "ERROR at Row:1:Column:30\n")


def test_missing_q_and_wrong_method(emu):
    session = login(emu)
    response = session.get(f"{emu.url}/services/data/{V}/query", timeout=10)
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "MALFORMED_QUERY"
    response = session.post(f"{emu.url}/services/data/{V}/query", params={"q": "SELECT Id FROM "
                                                                                 "Contact"},
                            timeout=10)
    assert response.status_code == 405


def test_long_uri_is_refused_with_414(emu):
    emu.set_options(max_uri_bytes=200)
    session = login(emu)
    ids = ",".join(f"'{n:018d}'" for n in range(20))
    response = soql(session, emu, f"SELECT Id FROM Contact WHERE Id IN ({ids})")
    assert response.status_code == 414


def test_query_needs_a_token(emu):
    response = requests.get(f"{emu.url}/services/data/{V}/query",
                            params={"q": "SELECT Id FROM Contact"}, timeout=10)
    assert response.status_code == 401


def test_options_admin_endpoint(emu):
    response = requests.post(emu.url + "/__emulator__/options", json={"query_batch_size": 3},
                             timeout=10)
    assert response.status_code == 200 and response.json()["query_batch_size"] == 3
    bad = requests.post(emu.url + "/__emulator__/options", json={"query_batch_size": 0},
                        timeout=10)
    assert bad.status_code == 400


# --- converted Leads, merges, deletes and purges (contract part 2, §2) -----------------


def admin(emu: Emulator, action: str, payload: dict) -> dict:
    response = requests.post(f"{emu.url}/__emulator__/{action}", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def collections(session: requests.Session, emu: Emulator, method: str,
                records: list[dict]) -> list[dict]:
    response = session.request(method, f"{emu.url}/services/data/{V}/composite/sobjects",
                               json={"allOrNone": False, "records": records}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def upsert(session: requests.Session, emu: Emulator, object_name: str,
           records: list[dict]) -> list[dict]:
    url = f"{emu.url}/services/data/{V}/composite/sobjects/{object_name}/External_Id__c"
    response = session.patch(url, json={"allOrNone": False, "records": records}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_converted_lead_refuses_updates_and_upserts(emu):
    lead_id, other_id = emu.seed("Lead", [
        {"LastName": "Smith", "Company": "Acme", "Email": "lead@example.com",
         "External_Id__c": "L-1"},
        {"LastName": "Other", "Company": "Acme"}])
    converted = admin(emu, "convert-lead", {"lead_id": lead_id})
    contact = emu.get("Contact", converted["contact_id"])
    assert contact is not None and contact["Email"] == "lead@example.com"
    session = login(emu)
    results = collections(session, emu, "PATCH", [
        {"attributes": {"type": "Lead"}, "id": lead_id, "LastName": "NoEdit"},
        {"attributes": {"type": "Lead"}, "id": other_id, "LastName": "Edited"}])
    assert results[0] == {"success": False, "errors": [{
        "statusCode": "CANNOT_UPDATE_CONVERTED_LEAD",
        "message": "cannot reference converted lead", "fields": []}]}
    assert results[1]["success"] is True
    assert emu.get("Lead", lead_id)["LastName"] == "Smith"
    upserted = upsert(session, emu, "Lead", [
        {"attributes": {"type": "Lead"}, "External_Id__c": "L-1", "Title": "x"}])
    assert upserted[0]["success"] is False
    assert upserted[0]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    single = session.patch(f"{emu.url}/services/data/{V}/sobjects/Lead/{lead_id}",
                           json={"LastName": "NoEdit"}, timeout=10)
    assert single.status_code == 400
    assert single.json() == [{"message": "cannot reference converted lead",
                              "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD", "fields": []}]


def test_converted_lead_fields_are_queryable(emu):
    contact_id, = emu.seed("Contact", [{"LastName": "Existing"}])
    lead_id, = emu.seed("Lead", [{"LastName": "Smith", "Company": "Acme"}])
    admin(emu, "convert-lead", {"lead_id": lead_id, "contact_id": contact_id})
    session = login(emu)
    body = soql(session, emu, "SELECT Id, IsConverted, ConvertedContactId, ConvertedDate, Status "
                              f"FROM Lead WHERE Id IN ('{lead_id}')").json()
    record = body["records"][0]
    assert record["IsConverted"] is True and record["ConvertedContactId"] == contact_id
    assert len(record["ConvertedDate"]) == 10 and record["Status"] == "Closed - Converted"
    unconverted = soql(session, emu, "SELECT Id FROM Lead WHERE IsConverted = false").json()
    assert unconverted["totalSize"] == 0
    assert len(emu.records("Contact")) == 1  # converted into the given Contact


def test_converted_lead_edits_permission_allows_updates(emu):
    lead_id, = emu.seed("Lead", [{"LastName": "Smith", "Company": "Acme", "IsConverted": True}])
    session = login(emu)
    record = {"attributes": {"type": "Lead"}, "id": lead_id, "LastName": "Edited"}
    assert collections(session, emu, "PATCH", [record])[0]["success"] is False
    emu.set_options(converted_lead_edits=True)
    assert collections(session, emu, "PATCH", [record])[0]["success"] is True


def test_merge_chain_deletes_losers_with_master_record_id(emu):
    a, b, c = emu.seed("Contact", [{"LastName": n, "Email": f"{n}@x.com"} for n in "ABC"])
    admin(emu, "merge", {"object": "Contact", "master_id": b, "loser_ids": [a]})
    admin(emu, "merge", {"object": "Contact", "master_id": c, "loser_ids": [b]})
    session = login(emu)
    text = f"SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id IN ('{a}','{b}','{c}')"
    live = soql(session, emu, text).json()
    assert [record["Id"] for record in live["records"]] == [c]
    every = {record["Id"]: record for record in soql(session, emu, text, "queryAll").json()[
        "records"]}
    assert every[a]["IsDeleted"] is True and every[a]["MasterRecordId"] == b
    assert every[b]["IsDeleted"] is True and every[b]["MasterRecordId"] == c
    assert every[c]["IsDeleted"] is False and every[c]["MasterRecordId"] is None
    merged = soql(session, emu, "SELECT Id FROM Contact WHERE IsDeleted = true AND "
                                "MasterRecordId != null", "queryAll").json()
    assert merged["totalSize"] == 2
    results = collections(session, emu, "PATCH", [
        {"attributes": {"type": "Contact"}, "id": a, "LastName": "X"},
        {"attributes": {"type": "Contact"}, "id": c, "LastName": "Y"}])
    assert results[0]["success"] is False
    assert results[0]["errors"] == [{"statusCode": "ENTITY_IS_DELETED",
                                     "message": "entity is deleted", "fields": []}]
    assert results[1]["success"] is True


def test_plain_delete_and_purge(emu):
    a, b = emu.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    session = login(emu)
    gone = session.delete(f"{emu.url}/services/data/{V}/composite/sobjects",
                          params={"ids": a}, timeout=10).json()
    assert gone[0]["success"] is True
    admin(emu, "delete", {"ids": [b]})
    every = soql(session, emu, "SELECT Id, IsDeleted, MasterRecordId FROM Contact",
                 "queryAll").json()["records"]
    assert {(r["Id"], r["IsDeleted"], r["MasterRecordId"]) for r in every} == {
        (a, True, None), (b, True, None)}
    assert soql(session, emu, "SELECT Id FROM Contact").json()["totalSize"] == 0
    admin(emu, "purge", {"ids": [a]})
    every = soql(session, emu, "SELECT Id FROM Contact", "queryAll").json()["records"]
    assert [r["Id"] for r in every] == [b]
    record = [{"attributes": {"type": "Contact"}, "id": a, "LastName": "X"}]
    assert collections(session, emu, "PATCH", record)[0]["errors"][0]["statusCode"] \
        == "ENTITY_IS_DELETED"
    emu.set_options(missing_record_error="INVALID_CROSS_REFERENCE_KEY")
    assert collections(session, emu, "PATCH", record)[0]["errors"][0]["statusCode"] \
        == "INVALID_CROSS_REFERENCE_KEY"
    record[0]["id"] = b  # still in the Recycle Bin
    assert collections(session, emu, "PATCH", record)[0]["errors"][0]["statusCode"] \
        == "ENTITY_IS_DELETED"
    admin(emu, "undelete", {"ids": [b]})
    assert collections(session, emu, "PATCH", record)[0]["success"] is True


def test_upsert_does_not_match_a_deleted_record(emu):
    old, = emu.seed("Contact", [{"LastName": "Old", "External_Id__c": "E-1"}])
    admin(emu, "merge", {"object": "Contact", "master_id": emu.seed("Contact", [
        {"LastName": "Master"}])[0], "loser_ids": [old]})
    session = login(emu)
    result = upsert(session, emu, "Contact", [
        {"attributes": {"type": "Contact"}, "External_Id__c": "E-1", "LastName": "New"}])
    assert result[0]["success"] is True and result[0]["created"] is True
    assert result[0]["id"] != old


def test_seeded_lifecycle_states(emu):
    master, = emu.seed("Contact", [{"LastName": "Master"}])
    loser, plain = emu.seed("Contact", [
        {"LastName": "Loser", "IsDeleted": True, "MasterRecordId": master},
        {"LastName": "Gone", "IsDeleted": True}])
    lead, = emu.seed("Lead", [{"LastName": "L", "Company": "C", "IsConverted": True,
                              "ConvertedContactId": master, "ConvertedDate": "2024-05-01"}])
    session = login(emu)
    assert [r["Id"] for r in soql(session, emu, "SELECT Id FROM Contact").json()["records"]] \
        == [master]
    every = soql(session, emu, "SELECT Id, MasterRecordId FROM Contact WHERE IsDeleted = true",
                 "queryAll").json()["records"]
    assert {(r["Id"], r["MasterRecordId"]) for r in every} == {(loser, master), (plain, None)}
    result = collections(session, emu, "PATCH", [
        {"attributes": {"type": "Lead"}, "id": lead, "Title": "x"}])
    assert result[0]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    deleted = requests.get(f"{emu.url}/__emulator__/deleted/Contact/{loser}", timeout=10)
    assert deleted.status_code == 200 and deleted.json()["MasterRecordId"] == master


def test_admin_lifecycle_errors(emu):
    contact, = emu.seed("Contact", [{"LastName": "A"}])
    lead, = emu.seed("Lead", [{"LastName": "L", "Company": "C"}])
    for action, payload in [
        ("convert-lead", {"lead_id": contact}),
        ("merge", {"object": "Contact", "master_id": contact, "loser_ids": [contact]}),
        ("merge", {"object": "Lead", "master_id": contact, "loser_ids": [lead]}),
        ("delete", {"ids": ["bogus"]}),
        ("purge", {"ids": []}),
    ]:
        response = requests.post(f"{emu.url}/__emulator__/{action}", json=payload, timeout=10)
        assert response.status_code == 400, (action, payload, response.text)
    admin(emu, "convert-lead", {"lead_id": lead})
    again = requests.post(f"{emu.url}/__emulator__/convert-lead", json={"lead_id": lead},
                          timeout=10)
    assert again.status_code == 400


def test_single_record_resources(emu):
    session = login(emu)
    base = f"{emu.url}/services/data/{V}/sobjects/Contact"
    created = session.post(base, json={"LastName": "Single"}, timeout=10)
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert created.headers["Location"] == f"/services/data/{V}/sobjects/Contact/{new_id}"
    assert session.patch(f"{base}/{new_id}", json={"Title": "Boss"}, timeout=10).status_code \
        == 204
    fetched = session.get(f"{base}/{new_id}", timeout=10).json()
    assert fetched["Title"] == "Boss" and fetched["IsDeleted"] is False
    missing = session.post(base, json={"FirstName": "NoLast"}, timeout=10)
    assert missing.status_code == 400
    assert missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert session.delete(f"{base}/{new_id}", timeout=10).status_code == 204
    after = session.patch(f"{base}/{new_id}", json={"Title": "x"}, timeout=10)
    assert after.status_code == 404 and after.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert session.get(f"{base}/{new_id}", timeout=10).status_code == 404


# --- checkbox and picklist segment fields (contract part 2, §4) ---------------------------

TYPED_SEGMENTS = ["Seg_Churned__c:checkbox", "Seg_Status__c:picklist=realized|existing|exited",
                  "Seg_Note__c", "Seg_Long__c:textarea"]


def test_typed_segment_fields_in_describe():
    with Emulator(segment_fields=TYPED_SEGMENTS) as emu:
        session = login(emu)
        for object_name in ("Contact", "Lead"):
            fields = {f["name"]: f for f in session.get(
                f"{emu.url}/services/data/{V}/sobjects/{object_name}/describe",
                timeout=10).json()["fields"]}
            checkbox = fields["Seg_Churned__c"]
            assert (checkbox["type"], checkbox["nillable"], checkbox["defaultValue"],
                    checkbox["filterable"]) == ("boolean", False, False, True)
            picklist = fields["Seg_Status__c"]
            assert picklist["type"] == "picklist" and picklist["restrictedPicklist"] is True
            assert [v["value"] for v in picklist["picklistValues"]] == [
                "realized", "existing", "exited"]
            for name in ("Seg_Note__c", "Seg_Long__c"):
                assert fields[name]["type"] == "textarea"
                assert fields[name]["length"] == 32768 and fields[name]["filterable"] is False


def test_typed_segment_field_writes_and_queries():
    with Emulator(segment_fields=TYPED_SEGMENTS) as emu:
        a, b = emu.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
        session = login(emu)
        results = collections(session, emu, "PATCH", [
            {"attributes": {"type": "Contact"}, "id": a, "Seg_Churned__c": True,
             "Seg_Status__c": "realized"},
            {"attributes": {"type": "Contact"}, "id": b, "Seg_Status__c": "Realized"},
            {"attributes": {"type": "Contact"}, "id": b, "Seg_Churned__c": "yes"},
        ])
        assert results[0]["success"] is True
        assert results[1]["errors"] == [{
            "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": "Seg Status: bad value for restricted picklist field: Realized",
            "fields": ["Seg_Status__c"]}]
        assert results[2]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
        assert emu.get("Contact", b)["Seg_Churned__c"] is False  # the checkbox default
        body = soql(session, emu, "SELECT Id, Seg_Churned__c FROM Contact WHERE "
                                  "Seg_Churned__c = TRUE AND Seg_Status__c = 'realized'").json()
        assert body["records"] == [{"attributes": {
            "type": "Contact", "url": f"/services/data/{V}/sobjects/Contact/{a}"},
            "Id": a, "Seg_Churned__c": True}]


@pytest.mark.parametrize("spec", ["Seg_A__c:bogus", "Seg_A__c:picklist", "Seg_A__c:picklist=",
                                  "Seg_A__c:checkbox=a|b", "Seg A__c:checkbox"])
def test_bad_segment_field_specs(spec):
    with pytest.raises(ValueError, match="segment field"):
        Emulator(segment_fields=[spec])


def test_cli_takes_typed_segment_fields_seeds_and_batch_size(tmp_path):
    master, loser = make_id("003", 901), make_id("003", 902)
    (tmp_path / "contacts.jsonl").write_text("\n".join(json.dumps(row) for row in [
        {"Id": master, "LastName": "Master", "Seg_Churned__c": True},
        {"Id": loser, "LastName": "Loser", "IsDeleted": True, "MasterRecordId": master},
        {"LastName": "Third"},
    ]) + "\n")
    (tmp_path / "campaigns.jsonl").write_text(json.dumps({"Name": "From seed"}) + "\n")
    ready = tmp_path / "ready"
    with subprocess.Popen(
        [sys.executable, "-m", "target_salesforce_crm.emulator", "--ready-file", str(ready),
         "--segment-field", "Seg_Churned__c:checkbox", "--query-batch-size", "1",
         "--seed", f"Contact={tmp_path / 'contacts.jsonl'}",
         "--seed", f"Campaign={tmp_path / 'campaigns.jsonl'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + 30
            while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.exists(), process.stderr.read() if process.poll() is not None else "slow"
            url = ready.read_text().strip()
            session = login(type("Started", (), {"url": url})())
            first = session.get(f"{url}/services/data/{V}/queryAll",
                                params={"q": "SELECT Id, IsDeleted, MasterRecordId FROM Contact "
                                             "ORDER BY LastName"}, timeout=10).json()
            assert first["totalSize"] == 3 and len(first["records"]) == 1
            assert first["records"][0] == {**first["records"][0], "Id": loser,
                                           "IsDeleted": True, "MasterRecordId": master}
            second = session.get(url + first["nextRecordsUrl"], timeout=10).json()
            assert second["records"][0]["Id"] == master and second["done"] is False
            churned = session.get(f"{url}/services/data/{V}/query", params={
                "q": "SELECT Id FROM Contact WHERE Seg_Churned__c = true"}, timeout=10).json()
            assert [r["Id"] for r in churned["records"]] == [master]
            statuses = session.get(f"{url}/services/data/{V}/query", params={
                "q": "SELECT COUNT() FROM CampaignMemberStatus"}, timeout=10).json()
            assert statuses["totalSize"] == 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
