"""Tooling API CustomField, field-level security and the current user (contract part 2, §5)."""

from __future__ import annotations

import pytest
import requests
from test_emulator_soql import V, collections, login, soql

from target_salesforce_crm.emulator import FIXTURE_CREDENTIALS, Emulator, make_id

LONG_TEXT = {"FullName": "Contact.Seg_High_Value__c",
             "Metadata": {"label": "Seg High Value", "type": "LongTextArea", "length": 32768,
                          "visibleLines": 3, "required": False}}


@pytest.fixture
def emu():
    with Emulator(random_seed=7) as emulator:
        yield emulator


def test_userinfo_follows_a_configured_org_id():
    org_id = make_id("00D", 4242)
    with Emulator(org_id=org_id) as emulator:
        info = login(emulator).get(emulator.url + "/services/oauth2/userinfo", timeout=10).json()
        assert info["organization_id"] == org_id and org_id in info["sub"]


def tooling_field(session: requests.Session, emu: Emulator, body: dict) -> requests.Response:
    return session.post(f"{emu.url}/services/data/{V}/tooling/sobjects/CustomField", json=body,
                        timeout=10)


def create(session: requests.Session, emu: Emulator, object_name: str, body: dict) -> str:
    response = session.post(f"{emu.url}/services/data/{V}/sobjects/{object_name}", json=body,
                            timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def describe_fields(session: requests.Session, emu: Emulator, object_name: str) -> dict:
    body = session.get(f"{emu.url}/services/data/{V}/sobjects/{object_name}/describe",
                       timeout=10).json()
    return {field["name"]: field for field in body["fields"]}


def user_id(emu: Emulator, session: requests.Session) -> str:
    response = session.get(emu.url + "/services/oauth2/userinfo", timeout=10)
    assert response.status_code == 200
    return response.json()["user_id"]


def test_userinfo_names_the_token_user(emu):
    creds = FIXTURE_CREDENTIALS
    token = requests.post(emu.url + "/services/oauth2/token", data={
        "grant_type": "password", "client_id": creds["client_id"],
        "client_secret": creds["client_secret"], "username": creds["username"],
        "password": creds["password"] + creds["security_token"]}, timeout=10).json()
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + token["access_token"]
    info = session.get(emu.url + "/services/oauth2/userinfo", timeout=10).json()
    assert info["user_id"] == token["id"].rsplit("/", 1)[1]
    assert info["user_id"].startswith("005") and info["preferred_username"] == creds["username"]
    assert info["organization_id"] == token["id"].rsplit("/", 2)[1]
    assert requests.get(emu.url + "/services/oauth2/userinfo", timeout=10).status_code == 403


def test_new_field_is_hidden_until_granted_then_read_only_then_writable(emu):
    session = login(emu)
    contact, = emu.seed("Contact", [{"LastName": "A"}])
    made = tooling_field(session, emu, LONG_TEXT)
    assert made.status_code == 201, made.text
    assert made.json()["id"].startswith("00N") and made.json()["success"] is True
    assert "Seg_High_Value__c" not in describe_fields(session, emu, "Contact")
    hidden = soql(session, emu, "SELECT Id, Seg_High_Value__c FROM Contact")
    assert hidden.status_code == 400 and hidden.json()[0]["errorCode"] == "INVALID_FIELD"
    write = {"attributes": {"type": "Contact"}, "id": contact, "Seg_High_Value__c": "x"}
    refused = session.patch(f"{emu.url}/services/data/{V}/composite/sobjects",
                            json={"records": [write]}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()[0] == {"errorCode": "INVALID_FIELD", "message": "No such column "
                                 "'Seg_High_Value__c' on sobject of type Contact"}

    permission_set = create(session, emu, "PermissionSet", {
        "Name": "Segment_Sync_Access", "Label": "Segment Sync Access"})
    assert permission_set.startswith("0PS")
    grant = create(session, emu, "FieldPermissions", {
        "ParentId": permission_set, "SobjectType": "Contact",
        "Field": "Contact.Seg_High_Value__c", "PermissionsRead": True})
    assert "Seg_High_Value__c" not in describe_fields(session, emu, "Contact")  # not assigned
    assignment = create(session, emu, "PermissionSetAssignment", {
        "AssigneeId": user_id(emu, session), "PermissionSetId": permission_set})
    assert assignment.startswith("0Pa")
    field = describe_fields(session, emu, "Contact")["Seg_High_Value__c"]
    assert field["type"] == "textarea" and field["length"] == 32768
    assert field["updateable"] is False and field["filterable"] is False
    read_only = collections(session, emu, "PATCH", [write])
    assert read_only[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    edit = session.patch(f"{emu.url}/services/data/{V}/sobjects/FieldPermissions/{grant}",
                         json={"PermissionsEdit": True}, timeout=10)
    assert edit.status_code == 204, edit.text
    assert describe_fields(session, emu, "Contact")["Seg_High_Value__c"]["updateable"] is True
    assert collections(session, emu, "PATCH", [write])[0]["success"] is True
    body = soql(session, emu, f"SELECT Seg_High_Value__c FROM Contact WHERE Id = '{contact}'")
    assert body.json()["records"][0]["Seg_High_Value__c"] == "x"

    session.delete(f"{emu.url}/services/data/{V}/sobjects/PermissionSetAssignment/{assignment}",
                   timeout=10)
    assert "Seg_High_Value__c" not in describe_fields(session, emu, "Contact")


def test_tooling_query_finds_made_fields(emu):
    session = login(emu)
    made = tooling_field(session, emu, LONG_TEXT).json()["id"]
    response = session.get(f"{emu.url}/services/data/{V}/tooling/query/", params={
        "q": "SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = 'Contact' AND "
             "DeveloperName = 'Seg_High_Value'"}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalSize"] == 1 and body["records"][0]["Id"] == made
    assert body["records"][0]["attributes"]["url"] == \
        f"/services/data/{V}/tooling/sobjects/CustomField/{made}"
    missing = session.get(f"{emu.url}/services/data/{V}/tooling/query", params={
        "q": "SELECT Id FROM CustomField WHERE DeveloperName = 'Nope'"}, timeout=10).json()
    assert missing["totalSize"] == 0


@pytest.mark.parametrize(("body", "code", "fragment"), [
    ({"FullName": "Contact.Seg_C__c", "Metadata": {"label": "C", "type": "Checkbox"}},
     "FIELD_INTEGRITY_EXCEPTION", "Must specify 'defaultValue' for a CustomField of type Checkbox"),
    ({"FullName": "Contact.Seg_L__c", "Metadata": {"label": "L", "type": "LongTextArea",
                                                   "length": 32768}},
     "FIELD_INTEGRITY_EXCEPTION", "Must specify 'visibleLines'"),
    ({"FullName": "Contact.Seg_L__c", "Metadata": {"label": "L", "type": "LongTextArea",
                                                   "length": 100, "visibleLines": 3}},
     "FIELD_INTEGRITY_EXCEPTION", "Length must be between 256 and 131072"),
    ({"FullName": "Contact.Seg_P__c", "Metadata": {"label": "P", "type": "Picklist",
                                                   "valueSet": {"restricted": True}}},
     "FIELD_INTEGRITY_EXCEPTION", "At least one value is required"),
    ({"FullName": "Contact.Seg__Bad__c", "Metadata": {"label": "B", "type": "Checkbox",
                                                      "defaultValue": False}},
     "FIELD_INTEGRITY_EXCEPTION", "two consecutive underscores"),
    ({"FullName": "Contact.Seg_Loyal__c", "Metadata": {"label": "S", "type": "Checkbox",
                                                       "defaultValue": False}},
     "DUPLICATE_DEVELOPER_NAME", "There is already a field named Seg_Loyal on Contact"),
    ({"FullName": "Nope.Seg_X__c", "Metadata": {"label": "S", "type": "Checkbox",
                                                "defaultValue": False}},
     "INVALID_TYPE", "sObject type 'Nope' is not supported"),
])
def test_custom_field_errors(emu, body, code, fragment):
    session = login(emu)
    response = tooling_field(session, emu, body)
    assert response.status_code == 400, response.text
    assert response.json()[0]["errorCode"] == code
    assert fragment in response.json()[0]["message"]


def test_made_checkbox_and_restricted_picklist_once_granted(emu):
    session = login(emu)
    assert tooling_field(session, emu, {"FullName": "Lead.Seg_Churned__c", "Metadata": {
        "label": "Seg Churned", "type": "Checkbox", "defaultValue": "false"}}).status_code == 201
    again = tooling_field(session, emu, {"FullName": "Lead.Seg_Churned__c", "Metadata": {
        "label": "Seg Churned", "type": "Checkbox", "defaultValue": False}})
    assert again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    assert tooling_field(session, emu, {"FullName": "Lead.Seg_Status__c", "Metadata": {
        "label": "Seg Status", "type": "Picklist", "valueSet": {
            "restricted": True, "valueSetDefinition": {"sorted": False, "value": [
                {"fullName": "Active", "default": False, "label": "Active"},
                {"fullName": "Removed", "default": False, "label": "Removed"}]}}}},
    ).status_code == 201
    permission_set = create(session, emu, "PermissionSet", {"Name": "Seg", "Label": "Seg"})
    for name in ("Seg_Churned__c", "Seg_Status__c"):
        create(session, emu, "FieldPermissions", {
            "ParentId": permission_set, "SobjectType": "Lead", "Field": f"Lead.{name}",
            "PermissionsRead": True, "PermissionsEdit": True})
    create(session, emu, "PermissionSetAssignment", {
        "AssigneeId": user_id(emu, session), "PermissionSetId": permission_set})
    fields = describe_fields(session, emu, "Lead")
    assert fields["Seg_Churned__c"]["type"] == "boolean"
    assert fields["Seg_Status__c"]["restrictedPicklist"] is True
    results = collections(session, emu, "POST", [
        {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C",
         "Seg_Status__c": "Active"},
        {"attributes": {"type": "Lead"}, "LastName": "B", "Company": "C",
         "Seg_Status__c": "Gone"}])
    assert results[0]["success"] is True
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emu.get("Lead", results[0]["id"])["Seg_Churned__c"] is False
    rows = soql(session, emu, "SELECT Id FROM Lead WHERE Seg_Churned__c = false AND "
                              "Seg_Status__c = 'Active'").json()
    assert rows["totalSize"] == 1


def test_permission_object_rules(emu):
    session = login(emu)
    me = user_id(emu, session)
    permission_set = create(session, emu, "PermissionSet", {"Name": "Seg_Access", "Label": "S"})
    found = soql(session, emu, "SELECT Id, Name FROM PermissionSet WHERE Name = 'Seg_Access'")
    assert found.json()["records"][0]["Id"] == permission_set
    twin = session.post(f"{emu.url}/services/data/{V}/sobjects/PermissionSet",
                        json={"Name": "seg_access", "Label": "S"}, timeout=10)
    assert twin.status_code == 400 and twin.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    create(session, emu, "PermissionSetAssignment",
           {"AssigneeId": me, "PermissionSetId": permission_set})
    duplicate = session.post(f"{emu.url}/services/data/{V}/sobjects/PermissionSetAssignment",
                             json={"AssigneeId": me, "PermissionSetId": permission_set},
                             timeout=10)
    assert duplicate.status_code == 400
    assert duplicate.json() == [{
        "message": f"Duplicate PermissionSetAssignment.  Assignee: {me[:15]}; Permission Set: "
                   f"{permission_set[:15]}",
        "errorCode": "DUPLICATE_VALUE", "fields": ["AssigneeId", "PermissionSetId"]}]
    results = collections(session, emu, "POST", [
        {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set,
         "SobjectType": "Contact", "Field": "Contact.LastName", "PermissionsRead": True},
        {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set,
         "SobjectType": "Contact", "Field": "Contact.Seg_Loyal__c", "PermissionsEdit": True},
        {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set,
         "SobjectType": "Contact", "Field": "Contact.Seg_Loyal__c", "PermissionsRead": True},
        {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set,
         "SobjectType": "Contact", "Field": "Contact.Seg_Loyal__c", "PermissionsRead": True},
    ])
    assert results[0]["errors"] == [{
        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "message": "Field Name: bad value for restricted picklist field: Contact.LastName",
        "fields": ["Field"]}]
    assert results[1]["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert results[2]["success"] is True
    assert results[3]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    stranger = collections(session, emu, "POST", [
        {"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": "005000000000001",
         "PermissionSetId": permission_set}])
    assert stranger[0]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
