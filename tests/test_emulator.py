"""Tests for the local Salesforce org emulator, over real HTTP on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from target_salesforce_crm.emulator import Emulator, dml, make_id
from target_salesforce_crm.emulator.faults import FaultSettings
from target_salesforce_crm.emulator.ids import checksum, parse_id, to_18
from target_salesforce_crm.emulator.org import Org
from target_salesforce_crm.emulator.schema import build_schemas

V = "v60.0"
CLIENT_ID = "emulator-consumer-key"
CLIENT_SECRET = "emulator-consumer-secret"
USERNAME = "integration@example.com"
PASSWORD = "emulator-password" + "EMULATORTOKEN"
REPO = Path(__file__).resolve().parent.parent


# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def emu():
    with Emulator(random_seed=7) as emulator:
        yield emulator


def password_grant(emu: Emulator, **overrides: str) -> requests.Response:
    data = {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "username": USERNAME, "password": PASSWORD, **overrides}
    return requests.post(emu.url + "/services/oauth2/token", data=data, timeout=10)


def login(emu: Emulator) -> requests.Session:
    response = password_grant(emu)
    assert response.status_code == 200, response.text
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + response.json()["access_token"]
    return session


def api(emu: Emulator, path: str) -> str:
    return f"{emu.url}/services/data/{V}/{path}"


def collections(session: requests.Session, emu: Emulator, method: str, records: list,
                all_or_none: bool = False, path: str = "composite/sobjects") -> requests.Response:
    body = {"allOrNone": all_or_none, "records": records}
    return session.request(method, api(emu, path), json=body, timeout=10)


def contact(record_id: str | None = None, **fields: object) -> dict:
    record: dict = {"attributes": {"type": "Contact"}, **fields}
    if record_id is not None:
        record["id"] = record_id
    return record


def codes(result: dict) -> list[str]:
    return [error["statusCode"] for error in result["errors"]]


@pytest.fixture(scope="module")
def rsa_keys():
    def pair():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return private, public

    return pair(), pair()


# --- Ids -------------------------------------------------------------------------------


def test_id_checksum_known_example():
    assert checksum("001A0000006Vm9r") == "IAC"
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_make_id_is_deterministic_and_valid():
    first = make_id("003", 1)
    assert first == make_id("003", 1) != make_id("003", 2)
    assert len(first) == 18 and first.startswith("003")
    assert first[15:] == checksum(first[:15])
    assert parse_id(first) == first[:15]


def test_parse_id_rules():
    good = to_18("003Dx00000AbCdE")
    assert parse_id(good[:15]) == good[:15]
    assert parse_id(good[:15] + good[15:].lower()) == good[:15]
    assert parse_id(good[:15] + "AAA") is None
    assert parse_id(good[:14]) is None
    assert parse_id(good[:14] + "-") is None
    assert parse_id(12345) is None


def test_seeded_ids_are_repeatable_and_findable_by_15_and_18_chars():
    with Emulator() as a, Emulator() as b:
        ids_a = a.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
        ids_b = b.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
        assert ids_a == ids_b
        given = make_id("003", 999)
        assert a.seed("Contact", [{"Id": given, "LastName": "C"}]) == [given]
        assert a.get("Contact", given[:15])["LastName"] == "C"
        assert a.get("Contact", given[:15] + given[15:].lower())["LastName"] == "C"
        assert a.get("Contact", given[:15].lower()) is None
        assert [r["LastName"] for r in a.records("Contact")] == ["A", "B", "C"]
        with pytest.raises(ValueError):
            a.seed("Contact", [{"Id": make_id("00Q", 1), "LastName": "X"}])


# --- OAuth -----------------------------------------------------------------------------


def test_password_grant_success_body(emu):
    response = password_grant(emu)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["instance_url"] == emu.url
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
    assert "refresh_token" not in body
    expected = hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(),
                        hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected
    assert body["id"].startswith("https://login.salesforce.com/id/00D")


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"password": "emulator-password"}, "invalid_grant", "authentication failure"),
        ({"username": "someone@example.com"}, "invalid_grant", "authentication failure"),
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type",
         "grant type not supported"),
        ({"grant_type": ""}, "invalid_request", "grant type is missing"),
    ],
)
def test_token_errors(emu, overrides, error, description):
    response = password_grant(emu, **overrides)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["Cache-Control"] == "no-store"


def test_client_credentials_in_body_and_basic(emu):
    url = emu.url + "/services/oauth2/token"
    body = requests.post(url, data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                    "client_secret": CLIENT_SECRET}, timeout=10)
    assert body.status_code == 200 and body.json()["scope"] == "api"
    basic = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert basic.status_code == 200 and "refresh_token" not in basic.json()
    wrong = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, "bad"), timeout=10)
    assert wrong.json()["error"] == "invalid_client"


def test_client_credentials_refused_on_generic_login_host():
    with Emulator(generic_login_host=True) as emu:
        response = requests.post(emu.url + "/services/oauth2/token",
                                 data={"grant_type": "client_credentials",
                                       "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                                 timeout=10)
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant",
                                   "error_description": "request not supported on this domain"}
        assert password_grant(emu).status_code == 200


def test_refresh_token_grant_and_rotation():
    url_data = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET}
    with Emulator() as emu:
        url = emu.url + "/services/oauth2/token"
        ok = requests.post(url, data={**url_data, "refresh_token": "emulator-refresh-token"},
                           timeout=10)
        assert ok.status_code == 200
        assert ok.json()["scope"] == "api refresh_token" and "refresh_token" not in ok.json()
        again = requests.post(url, data={**url_data, "refresh_token": "emulator-refresh-token"},
                              timeout=10)
        assert again.status_code == 200
        bad = requests.post(url, data={**url_data, "refresh_token": "other"}, timeout=10)
        assert bad.json() == {"error": "invalid_grant",
                              "error_description": "expired access/refresh token"}
    with Emulator(rotate_refresh_tokens=True, refresh_tokens=["rt-1"]) as emu:
        url = emu.url + "/services/oauth2/token"
        first = requests.post(url, data={**url_data, "refresh_token": "rt-1"}, timeout=10).json()
        new_rt = first["refresh_token"]
        assert new_rt != "rt-1"
        stale = requests.post(url, data={**url_data, "refresh_token": "rt-1"}, timeout=10)
        assert stale.status_code == 400
        public = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": new_rt}
        assert requests.post(url, data=public, timeout=10).status_code == 200


def _assertion(private: str, **claims: object) -> str:
    base = {"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com",
            "exp": int(time.time()) + 180}
    base.update(claims)
    return jwt.encode(base, private, algorithm="RS256")


def test_jwt_bearer_grant(rsa_keys):
    (private, public), (other_private, _) = rsa_keys
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    with Emulator(jwt_public_key=public) as emu:
        url = emu.url + "/services/oauth2/token"

        def post(assertion: str) -> requests.Response:
            return requests.post(url, data={"grant_type": grant, "assertion": assertion},
                                 timeout=10)

        ok = post(_assertion(private))
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["scope"] == "api" and "refresh_token" not in body
        assert "issued_at" not in body
        assert post(_assertion(private, aud=emu.url)).status_code == 200
        assert post(_assertion(private, aud="https://test.salesforce.com")).status_code == 200
        cases = [
            (_assertion(other_private), "invalid_grant", "invalid assertion"),
            (_assertion(private, aud="https://evil.example.com"), "invalid_grant",
             "audience is invalid"),
            (_assertion(private, exp=int(time.time()) - 10), "invalid_grant", "expired JWT"),
            (_assertion(private, exp=int(time.time()) + 3600), "invalid_grant",
             "invalid assertion"),
            (_assertion(private, iss="other-app"), "invalid_client_id",
             "client identifier invalid"),
            (_assertion(private, sub="nobody@example.com"), "invalid_grant",
             "user hasn't approved this consumer"),
            ("not.a.jwt", "invalid_grant", "invalid assertion"),
        ]
        for assertion, error, description in cases:
            response = post(assertion)
            assert response.status_code == 400
            assert response.json() == {"error": error, "error_description": description}


def test_revoke(emu):
    session = login(emu)
    token = session.headers["Authorization"].split()[1]
    assert session.get(api(emu, "limits/"), timeout=10).status_code == 200
    revoke = requests.post(emu.url + "/services/oauth2/revoke", data={"token": token}, timeout=10)
    assert revoke.status_code == 200 and revoke.content == b""
    assert session.get(api(emu, "limits/"), timeout=10).status_code == 401
    again = requests.post(emu.url + "/services/oauth2/revoke", data={"token": token}, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


# --- versions, auth, limits -----------------------------------------------------------------


def test_versions_need_no_auth_and_carry_no_limit_header(emu):
    response = requests.get(emu.url + "/services/data/", timeout=10)
    assert response.status_code == 200
    assert "Sforce-Limit-Info" not in response.headers
    versions = {entry["version"]: entry for entry in response.json()}
    assert versions["59.0"]["label"] == "Winter '24"
    assert versions["67.0"] == {"label": "Summer '26", "url": "/services/data/v67.0",
                                "version": "67.0"}
    assert emu.stats()["api_calls"] == 0


def test_unknown_version_and_version_floors(emu):
    session = login(emu)
    missing = session.get(f"{emu.url}/services/data/v99.0/limits/", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == [{"message": "The requested resource does not exist",
                               "errorCode": "NOT_FOUND"}]
    old = session.patch(f"{emu.url}/services/data/v41.0/composite/sobjects",
                        json={"records": []}, timeout=10)
    assert old.status_code == 404
    upsert = session.patch(f"{emu.url}/services/data/v45.0/composite/sobjects/Contact/"
                           "External_Id__c", json={"records": []}, timeout=10)
    assert upsert.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc"])
def test_missing_or_unknown_token_is_401(emu, header):
    headers = {"Authorization": header} if header else {}
    response = requests.get(api(emu, "limits/"), headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID"}]


def test_limit_header_and_limits_resource(emu):
    session = login(emu)
    first = session.get(api(emu, "limits"), timeout=10)
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert first.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}
    second = session.get(api(emu, "sobjects/Contact/describe"), timeout=10)
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert emu.stats()["api_calls"] == 2


def test_daily_limit_403_and_reset():
    with Emulator(daily_api_limit=5, initial_api_usage=3) as emu:
        session = login(emu)
        assert session.get(api(emu, "limits"), timeout=10).status_code == 200
        last = session.get(api(emu, "limits"), timeout=10)
        assert last.headers["Sforce-Limit-Info"] == "api-usage=5/5"
        over = session.get(api(emu, "limits"), timeout=10)
        assert over.status_code == 403
        assert over.json() == [{"message": "TotalRequests Limit exceeded.",
                                "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert over.headers["Sforce-Limit-Info"] == "api-usage=5/5"
        emu.reset_usage()
        assert session.get(api(emu, "limits"), timeout=10).status_code == 200
        stats = emu.stats()
        assert stats["api_usage"] == 1 and stats["api_limit"] == 5
        assert stats["faults_injected"]["daily_limit"] == 1


def test_token_ttl_requests():
    with Emulator(token_ttl_requests=2) as emu:
        session = login(emu)
        assert session.get(api(emu, "limits"), timeout=10).status_code == 200
        assert session.get(api(emu, "limits"), timeout=10).status_code == 200
        expired = session.get(api(emu, "limits"), timeout=10)
        assert expired.status_code == 401
        assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        assert emu.stats()["faults_injected"]["token_expired"] == 1
        assert login(emu).get(api(emu, "limits"), timeout=10).status_code == 200


# --- describe ------------------------------------------------------------------------------


def test_describe_contact(emu):
    session = login(emu)
    response = session.get(api(emu, "sobjects/Contact/describe/"), timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["keyPrefix"], body["createable"], body["updateable"]) == \
        ("Contact", "003", True, True)
    fields = {field["name"]: field for field in body["fields"]}
    required_keys = {"name", "label", "type", "length", "byteLength", "createable", "updateable",
                     "nillable", "defaultedOnCreate", "externalId", "idLookup", "unique",
                     "caseSensitive", "calculated", "custom", "htmlFormatted", "extraTypeInfo",
                     "soapType", "picklistValues", "restrictedPicklist"}
    assert all(required_keys <= field.keys() for field in fields.values())
    last = fields["LastName"]
    assert (last["type"], last["length"], last["nillable"], last["byteLength"]) == \
        ("string", 80, False, 240)
    assert fields["Id"]["type"] == "id" and not fields["Id"]["updateable"]
    assert fields["Email"]["type"] == "email"
    assert fields["Description"]["length"] == 32000
    assert fields["Name"]["createable"] is False and fields["Name"]["updateable"] is False
    assert fields["HasOptedOutOfEmail"]["defaultedOnCreate"] is True
    assert fields["Salutation"]["type"] == "picklist" and fields["Salutation"]["picklistValues"]
    ext = fields["External_Id__c"]
    assert (ext["externalId"], ext["idLookup"], ext["unique"], ext["caseSensitive"],
            ext["custom"]) == (True, True, True, False, True)
    rich = fields["Rich_Note__c"]
    assert (rich["htmlFormatted"], rich["extraTypeInfo"], rich["length"]) == \
        (True, "richtextarea", 32768)
    assert fields["Short_Note__c"]["extraTypeInfo"] == "plaintextarea"
    assert fields["Formula_Tier__c"]["calculated"] is True
    assert not fields["Formula_Tier__c"]["createable"]
    seg = fields["Seg_Loyal__c"]
    assert (seg["type"], seg["length"], seg["extraTypeInfo"], seg["htmlFormatted"],
            seg["custom"], seg["createable"], seg["updateable"], seg["nillable"]) == \
        ("textarea", 32768, "plaintextarea", False, True, True, True, True)
    assert session.get(api(emu, "sobjects/Contact/describe"), timeout=10).status_code == 200
    assert emu.stats()["describe_calls"] == {"Contact": 2}


def test_describe_lead_and_unknown_object():
    with Emulator(segment_fields=["Seg_A__c", "Seg_B__c"]) as emu:
        session = login(emu)
        body = session.get(api(emu, "sobjects/Lead/describe"), timeout=10).json()
        fields = {field["name"]: field for field in body["fields"]}
        assert body["keyPrefix"] == "00Q"
        assert fields["Company"]["nillable"] is False and fields["Company"]["length"] == 255
        assert fields["Status"]["defaultedOnCreate"] is True
        assert {"Seg_A__c", "Seg_B__c", "Street", "PostalCode"} <= fields.keys()
        assert "Seg_Loyal__c" not in fields
        missing = session.get(api(emu, "sobjects/Account/describe"), timeout=10)
        assert missing.status_code == 404
        assert missing.json()[0]["errorCode"] == "NOT_FOUND"


def test_bad_segment_field_names_are_refused():
    with pytest.raises(ValueError):
        Emulator(segment_fields=["Has Space__c"])
    with pytest.raises(ValueError):
        Emulator(segment_fields=["Email"])
    with pytest.raises(ValueError):
        Emulator(no_such_fault=1)


# --- collections ---------------------------------------------------------------------------


def test_update_mixed_results_in_order(emu):
    ids = emu.seed("Contact", [{"LastName": f"Old{i}", "Email": f"o{i}@example.com"}
                               for i in range(3)])
    lead_id = emu.seed("Lead", [{"LastName": "L", "Company": "C"}])[0]
    before = emu.get("Contact", ids[0])["LastModifiedDate"]
    time.sleep(0.01)
    session = login(emu)
    records = [
        contact(ids[0], lastname="New0", SEG_LOYAL__C="realized"),       # ok, odd casing
        contact(ids[1][:15], Title="CTO"),                               # ok, 15-char id
        contact(lead_id, Title="x"),                                     # Lead id on Contact
        contact(ids[2][:15] + "ZZZ", Title="x"),                         # bad checksum
        contact(make_id("003", 5000), Title="x"),                        # unknown id
        contact(None, Title="x"),                                        # missing id
        contact(ids[2], LastName=None),                                  # required nulled
        contact(ids[2], LastName="x" * 81),                              # too long
        contact(ids[2], Email="not-an-email"),                           # bad email
        contact(ids[2], Name="Forbidden"),                               # not updateable
        contact(ids[2], HasOptedOutOfEmail=5),                           # wrong kind
        contact(ids[2], Loyalty_Score__c=True),                          # wrong kind
    ]
    response = collections(session, emu, "PATCH", records)
    assert response.status_code == 200
    results = response.json()
    assert len(results) == len(records)
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1] == {"id": ids[1], "success": True, "errors": []}
    assert results[2]["errors"] == [{"statusCode": "MALFORMED_ID", "fields": ["Id"],
                                     "message": f"Contact ID: id value of incorrect type: "
                                                f"{lead_id}"}]
    assert codes(results[3]) == ["MALFORMED_ID"]
    assert results[4]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert results[4]["errors"][0]["message"] == "entity is deleted"
    assert codes(results[5]) == ["MISSING_ARGUMENT"]
    assert results[6]["errors"] == [{"statusCode": "REQUIRED_FIELD_MISSING",
                                     "message": "Required fields are missing: [LastName]",
                                     "fields": ["LastName"]}]
    assert results[7]["errors"] == [{"statusCode": "STRING_TOO_LONG", "fields": ["LastName"],
                                     "message": f"Last Name: data value too large: {'x' * 81} "
                                                f"(max length=80)"}]
    assert codes(results[8]) == ["INVALID_EMAIL_ADDRESS"]
    assert codes(results[9]) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert codes(results[10]) == ["INVALID_TYPE_ON_FIELD_IN_RECORD"]
    assert codes(results[11]) == ["INVALID_TYPE_ON_FIELD_IN_RECORD"]
    assert all(not r["success"] and "id" not in r for r in results[2:])
    first = emu.get("Contact", ids[0])
    assert first["LastName"] == "New0" and first["Seg_Loyal__c"] == "realized"
    assert "lastname" not in first and first["Name"] == "New0"
    assert first["LastModifiedDate"] > before
    assert emu.get("Contact", ids[1])["Title"] == "CTO"
    untouched = emu.get("Contact", ids[2])
    assert untouched["LastName"] == "Old2" and untouched["Email"] == "o2@example.com"


def test_update_all_or_none_rolls_back(emu):
    ids = emu.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    session = login(emu)
    records = [contact(ids[0], Title="T"), contact(ids[1], LastName="")]
    results = collections(session, emu, "PATCH", records, all_or_none=True).json()
    assert results[0]["id"] == ids[0] and not results[0]["success"]
    assert codes(results[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[1]) == ["REQUIRED_FIELD_MISSING"]
    assert "Title" not in emu.get("Contact", ids[0])


def test_create_contacts_and_leads(emu):
    session = login(emu)
    records = [
        contact(LastName="Ng", Email="ng@example.com", Loyalty_Score__c="91.5"),
        contact(FirstName="NoLast"),
        {"attributes": {"type": "Lead"}, "LastName": "Lee", "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Lee"},
        {"attributes": {"type": "Lead"}, "LastName": "Lee", "Company": "A", "Status": "Bogus"},
        contact(LastName="WithId", Id=make_id("003", 77)),
    ]
    results = collections(session, emu, "POST", records).json()
    assert results[0]["success"] and results[0]["id"].startswith("003")
    assert results[1] == {"success": False, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: "
        "[LastName]", "fields": ["LastName"]}]}
    assert results[2]["success"] and results[2]["id"].startswith("00Q")
    assert codes(results[3]) == ["REQUIRED_FIELD_MISSING"]
    assert results[3]["errors"][0]["fields"] == ["Company"]
    assert codes(results[4]) == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    assert codes(results[5]) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    stored = emu.get("Contact", results[0]["id"])
    assert stored["Loyalty_Score__c"] == 91.5 and stored["Formula_Tier__c"] == "Gold"
    assert stored["HasOptedOutOfEmail"] is False and stored["CreatedDate"].endswith("+0000")
    assert emu.get("Lead", results[2]["id"])["Status"] == "Open - Not Contacted"
    assert emu.stats()["collections_records"] == len(records)


def test_upsert_created_flag_and_matching(emu):
    emu.seed("Contact", [{"LastName": "Existing", "External_Id__c": "ABC-1"}])
    session = login(emu)
    path = "composite/sobjects/Contact/External_Id__c"
    records = [contact(LastName="Upd", External_Id__c="abc-1"),
               contact(LastName="New", External_Id__c="NEW-1")]
    results = collections(session, emu, "PATCH", records, path=path).json()
    assert [r["created"] for r in results] == [False, True]
    assert all(r["success"] for r in results)
    assert emu.get("Contact", results[0]["id"])["LastName"] == "Upd"
    assert emu.get("Contact", results[1]["id"])["External_Id__c"] == "NEW-1"
    again = collections(session, emu, "PATCH", [contact(LastName="N2", External_Id__c="new-1")],
                        path=path).json()
    assert again[0]["created"] is False and again[0]["id"] == results[1]["id"]


def test_upsert_duplicates_and_bad_field(emu):
    emu.seed("Contact", [{"LastName": "D1", "External_Id__c": "dup"},
                         {"LastName": "D2", "External_Id__c": "DUP"}])
    session = login(emu)
    path = "composite/sobjects/Contact/External_Id__c"
    records = [contact(LastName="A", External_Id__c="X1"), contact(LastName="B"),
               contact(LastName="C", External_Id__c="x1"),
               contact(LastName="D", External_Id__c="dup"),
               contact(LastName="E", External_Id__c="fresh")]
    results = collections(session, emu, "PATCH", records, path=path).json()
    assert results[0]["errors"] == [{"statusCode": "DUPLICATE_VALUE", "fields": [],
                                     "message": "Duplicate external id specified: X1"}]
    assert codes(results[1]) == ["MISSING_ARGUMENT"]
    assert results[2]["errors"][0]["message"] == "Duplicate external id specified: x1"
    assert codes(results[3]) == ["DUPLICATE_EXTERNAL_ID"]
    assert results[4]["success"] and results[4]["created"]
    bad = collections(session, emu, "PATCH", records, path="composite/sobjects/Contact/Email")
    assert bad.status_code == 404
    assert bad.json() == [{"message": "Provided external ID field does not exist or is not "
                                      "accessible: Email", "errorCode": "NOT_FOUND"}]


def test_upsert_all_or_none(emu):
    session = login(emu)
    path = "composite/sobjects/Lead/External_Id__c"
    records = [{"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C",
                "External_Id__c": "L1"},
               {"attributes": {"type": "Lead"}, "LastName": "B", "External_Id__c": "L2"}]
    results = collections(session, emu, "PATCH", records, all_or_none=True, path=path).json()
    assert codes(results[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[1]) == ["REQUIRED_FIELD_MISSING"]
    assert emu.records("Lead") == []


def test_delete(emu):
    ids = emu.seed("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    session = login(emu)
    url = api(emu, "composite/sobjects")
    response = session.delete(url, params={"ids": f"{ids[0]},bogus", "allOrNone": "false"},
                              timeout=10)
    results = response.json()
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["errors"] == [{"statusCode": "MALFORMED_ID", "message": "malformed id bogus",
                                     "fields": []}]
    assert emu.get("Contact", ids[0]) is None
    gone = session.delete(url, params={"ids": ids[0]}, timeout=10).json()
    assert codes(gone[0]) == ["ENTITY_IS_DELETED"]
    updated = collections(session, emu, "PATCH", [contact(ids[0], Title="x")]).json()
    assert codes(updated[0]) == ["ENTITY_IS_DELETED"]
    rolled = session.delete(url, params={"ids": f"{ids[1]},{ids[0]}", "allOrNone": "true"},
                            timeout=10).json()
    assert rolled[0]["id"] == ids[1] and codes(rolled[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(rolled[1]) == ["ENTITY_IS_DELETED"]
    assert emu.get("Contact", ids[1]) is not None
    too_many = session.delete(url, params={"ids": ",".join([ids[1]] * 201)}, timeout=10)
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"records": [contact(LastName=str(i)) for i in range(201)]}, 400, "EXCEEDED_ID_LIMIT",
         "record limit reached. cannot submit more than 200 records into this call"),
        ({"records": [contact(LastName="ok"), contact(Foo__c="x")]}, 400, "INVALID_FIELD",
         "No such column 'Foo__c' on sobject of type Contact"),
        ({"records": [{"attributes": {"type": "Widget"}, "Name": "x"}]}, 400, "INVALID_TYPE",
         "sObject type 'Widget' is not supported."),
        ({"records": [contact(LastName={"nested": 1})]}, 400, "JSON_PARSER_ERROR", None),
        ({"records": [contact(LastName=["a"])]}, 400, "JSON_PARSER_ERROR", None),
    ],
)
def test_request_level_errors(emu, body, status, code, message):
    session = login(emu)
    response = session.post(api(emu, "composite/sobjects"), json=body, timeout=10)
    assert response.status_code == status
    error = response.json()[0]
    assert error["errorCode"] == code
    if message:
        assert error["message"] == message
    assert emu.records("Contact") == []
    assert "Sforce-Limit-Info" in response.headers


def test_invalid_json_body(emu):
    session = login(emu)
    response = session.patch(api(emu, "composite/sobjects"), data=b"{not json",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


# --- faults --------------------------------------------------------------------------------


def test_latency_fault(emu):
    session = login(emu)
    emu.set_faults(latency_ms=300)
    start = time.perf_counter()
    assert session.get(api(emu, "limits"), timeout=10).status_code == 200
    assert time.perf_counter() - start >= 0.3
    start = time.perf_counter()
    assert password_grant(emu).status_code == 200
    assert requests.get(emu.url + "/__emulator__/stats", timeout=10).status_code == 200
    assert time.perf_counter() - start < 0.3


def test_http_error_faults_apply_before_writes(emu):
    ids = emu.seed("Contact", [{"LastName": "A"}])
    session = login(emu)
    emu.set_faults(http_503_rate=1.0)
    busy = collections(session, emu, "PATCH", [contact(ids[0], Title="T")])
    assert busy.status_code == 503
    assert busy.json() == [{"errorCode": "SERVER_UNAVAILABLE", "message": "server too busy"}]
    assert "Title" not in emu.get("Contact", ids[0])
    assert password_grant(emu).status_code == 200
    assert requests.get(emu.url + "/services/data/", timeout=10).status_code == 200
    assert requests.get(emu.url + "/__emulator__/stats", timeout=10).status_code == 200
    emu.set_faults(http_503_rate=0.0, html_503_rate=1.0)
    html = session.get(api(emu, "limits"), timeout=10)
    assert html.status_code == 503 and html.headers["Content-Type"].startswith("text/html")
    assert "<html>" in html.text
    emu.set_faults(html_503_rate=0.0, http_500_rate=1.0)
    broken = session.get(api(emu, "limits"), timeout=10)
    assert broken.status_code == 500 and broken.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    emu.set_faults(http_500_rate=0.0)
    assert session.get(api(emu, "limits"), timeout=10).status_code == 200
    injected = emu.stats()["faults_injected"]
    assert (injected["http_503"], injected["html_503"], injected["http_500"]) == (1, 1, 1)


def test_drop_fault_closes_without_response(emu):
    ids = emu.seed("Contact", [{"LastName": "A"}])
    session = login(emu)
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        collections(session, emu, "PATCH", [contact(ids[0], Title="T")])
    assert "Title" not in emu.get("Contact", ids[0])
    emu.set_faults(drop_rate=0.0)
    assert session.get(api(emu, "limits"), timeout=10).status_code == 200
    assert emu.stats()["faults_injected"]["drop"] == 1


def test_lock_fault_per_record_and_repeatable():
    def run() -> list[bool]:
        with Emulator(lock_rate=0.5, random_seed=42) as emu:
            ids = emu.seed("Contact", [{"LastName": str(i)} for i in range(40)])
            session = login(emu)
            results = collections(session, emu, "PATCH",
                                  [contact(i, Title="T") for i in ids]).json()
            locked = [r for r in results if not r["success"]]
            assert locked and all(codes(r) == ["UNABLE_TO_LOCK_ROW"] for r in locked)
            first = next(i for i, r in enumerate(results) if not r["success"])
            assert locked[0]["errors"][0]["message"] == (
                f"unable to obtain exclusive access to this record or 1 records: {ids[first]}")
            for record_id, result in zip(ids, results, strict=True):
                assert ("Title" in emu.get("Contact", record_id)) == result["success"]
            assert emu.stats()["faults_injected"]["lock"] == len(locked)
            return [r["success"] for r in results]

    assert run() == run()


def test_concurrency_limit():
    with Emulator(concurrency_limit=1, latency_ms=400) as emu:
        session_token = login(emu).headers["Authorization"]
        statuses: list[int] = []
        bodies: list = []

        def call() -> None:
            response = requests.get(api(emu, "limits"), headers={"Authorization": session_token},
                                    timeout=10)
            statuses.append(response.status_code)
            bodies.append(response.json())

        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses.count(200) >= 1 and 403 in statuses
        rejected = bodies[statuses.index(403)]
        assert rejected == [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                             "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert emu.stats()["max_in_flight"] >= 2


# --- admin endpoints and command line ---------------------------------------------------------


def test_admin_endpoints(emu):
    base = emu.url + "/__emulator__"
    ids = requests.post(base + "/seed/Lead", json=[{"LastName": "A", "Company": "C"}],
                        timeout=10).json()["ids"]
    assert requests.get(f"{base}/records/Lead", timeout=10).json()[0]["Id"] == ids[0]
    assert requests.get(f"{base}/records/Lead/{ids[0]}", timeout=10).json()["Company"] == "C"
    assert requests.get(f"{base}/records/Lead/{make_id('00Q', 900)}",
                        timeout=10).status_code == 404
    faults = requests.post(base + "/faults", json={"lock_rate": 0.25, "daily_api_limit": 50},
                           timeout=10).json()
    assert faults["lock_rate"] == 0.25 and faults["daily_api_limit"] == 50
    assert requests.post(base + "/faults", json={"lock_rate": 2}, timeout=10).status_code == 400
    login(emu).get(api(emu, "limits"), timeout=10)
    stats = requests.get(base + "/stats", timeout=10).json()
    assert stats["api_usage"] == 1 and stats["api_limit"] == 50 and stats["token_requests"] == 1
    assert requests.post(base + "/reset-usage", timeout=10).json() == {"api_usage": 0}
    assert emu.stats()["api_usage"] == 0


def test_command_line(tmp_path):
    seed_file = tmp_path / "contacts.jsonl"
    seed_file.write_text(json.dumps({"LastName": "Seeded", "External_Id__c": "S1"}) + "\n\n")
    ready = tmp_path / "ready.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-m", "target_salesforce_crm.emulator", "--port", "0",
         "--segment-field", "Seg_One__c", "--seed", f"Contact={seed_file}",
         "--daily-api-limit", "10", "--lock-rate", "0", "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("emulator listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1]
            assert ready.read_text().strip() == url
            records = requests.get(url + "/__emulator__/records/Contact", timeout=10).json()
            assert records[0]["LastName"] == "Seeded"
            assert requests.get(url + "/__emulator__/stats", timeout=10).json()["api_limit"] == 10
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


# --- fast paths agree with the record-by-record reference ----------------------------------


def _random_value(rng, field: str, bad_rate: float):
    good = {
        "LastName": lambda: rng.choice(["Ng", "Okafor", "O'Brien", "Łukasz"]),
        "FirstName": lambda: rng.choice(["Ana", "Ben", "Zoë"]),
        "Email": lambda: f"{rng.choice(['a', 'b.c', 'd+e'])}{rng.randint(1, 9)}@example.com",
        "Title": lambda: "T" * rng.randint(1, 128),
        "Salutation": lambda: rng.choice(["Mr.", "Ms.", "Dr."]),
        "Seg_Loyal__c": lambda: rng.choice(["realized", "existing", "exited"]),
        "Loyalty_Score__c": lambda: rng.choice([5, 91.5, 80]),
        "HasOptedOutOfEmail": lambda: rng.choice([True, False]),
        "Birthdate": lambda: "1990-01-31",
        "External_Id__c": lambda: f"{rng.choice('Xx')}{rng.randint(1, 400)}",
    }
    bad = [None, "", "x" * 300, 7, True, 1.5, "not-an-email", "2024-02-30", "a\nb@c.de",
           "81", "false"]
    if rng.random() >= bad_rate:
        return good[field]()
    return rng.choice(bad)


def _random_batch(rng, ids: list[str], *, with_id: bool, key: str | None = None) -> list:
    fields = ["LastName", "FirstName", "Email", "Title", "Salutation", "Seg_Loyal__c",
              "Loyalty_Score__c", "HasOptedOutOfEmail"]
    shapes = [rng.sample(fields, rng.randint(1, 5))
              + [extra for extra in ("Birthdate", "External_Id__c") if rng.random() < 0.1]
              for _ in range(rng.randint(1, 3))]
    bad_rate = rng.choice([0.0, 0.0, 0.0, 0.02, 0.15])
    records = []
    for _ in range(rng.randint(1, 40)):
        shape = list(rng.choice(shapes))
        if key and key not in shape and rng.random() >= bad_rate:
            shape.append(key)
        if key and "LastName" not in shape and rng.random() < 0.8:
            shape.append("LastName")  # upserts that insert need it
        record: dict = {"attributes": {"type": "Contact"}}
        if with_id:
            choice = rng.random() if bad_rate else 0.5
            record_id = rng.choice(ids)
            if choice < 0.05:
                record_id = record_id[:15]
            elif choice < 0.08:
                record_id = record_id[:15] + "AAA"
            elif choice < 0.1:
                record_id = make_id("003", 99_999)
            if choice > 0.02:
                record["Id" if choice > 0.99 else "id"] = record_id
        for field in shape:
            name = field.lower() if rng.random() < bad_rate / 5 else field
            record[name] = _random_value(rng, field, bad_rate)
        if rng.random() < bad_rate / 10:
            record["Name"] = "not updateable"
        if rng.random() < 0.05:  # same keys, another order
            items = list(record.items())
            rng.shuffle(items)
            record = dict(items)
        records.append(record)
    if rng.random() < bad_rate / 5:
        rng.choice(records)["Unknown__c"] = "x"
    if rng.random() < bad_rate / 5:
        rng.choice(records)["Title"] = {"nested": True}
    return records


def test_fast_paths_match_the_reference(monkeypatch):
    """The column-wise checks and the all-success commits change nothing observable."""

    def new_org() -> Org:
        org = Org(build_schemas(["Seg_Loyal__c"]), FaultSettings())
        org.seed("Contact", [{"LastName": f"L{i}", "FirstName": "F", "Email": f"e{i}@x.io",
                              "External_Id__c": f"X{i}"} for i in range(1, 201)])
        return org

    real = (dml.scan, dml.update_clean, dml.upsert_clean)

    def off(*args):
        return None

    variants = {
        "fast": real,
        "no_clean_commit": (real[0], off, off),
        "reference": (off, *real[1:]),
    }
    orgs = {name: new_org() for name in variants}
    ids = [record["Id"] for record in orgs["fast"].records("Contact")]
    rng = random.Random(2026)
    for _ in range(600):
        op = rng.choice(["update", "update", "create", "upsert"])
        records = _random_batch(rng, ids, with_id=op == "update",
                                key="External_Id__c" if op == "upsert" else None)
        raw = json.dumps({"allOrNone": rng.random() < 0.2, "records": records}).encode()
        answers = {}
        for name, (scan, update_clean, upsert_clean) in variants.items():
            monkeypatch.setattr(dml, "scan", scan)
            monkeypatch.setattr(dml, "update_clean", update_clean)
            monkeypatch.setattr(dml, "upsert_clean", upsert_clean)
            org = orgs[name]
            try:
                if op == "upsert":
                    body = dml.upsert(org, "Contact", "External_Id__c", raw)
                else:
                    body = getattr(dml, op)(org, raw)
                answers[name] = ("ok", json.loads(body))
            except dml.RequestError as exc:
                answers[name] = (exc.status, exc.body)
        assert answers["fast"] == answers["reference"] == answers["no_clean_commit"], records
    states = []
    for org in orgs.values():
        rows = [{k: v for k, v in r.items() if not k.endswith("Date")}
                for r in org.records("Contact")]
        states.append((rows, org.indexes, org.collections_calls, org.collections_records))
    assert states[0] == states[1] == states[2]
